//! Writes what the bench measured: `key=value` lines for tests (`results.txt`) and a
//! markdown section spliced between two markers of docs/benchmarks.md (appended when the
//! markers are missing), so hand-written text around it survives a re-run.

use std::fmt::Write as _;

use super::memory::Memory;
use super::signaling::{Ladder, Pair};
use super::{Bench, Figures, Result};

pub const BEGIN: &str = "<!-- cargo xtask bench: begin (generated, do not edit by hand) -->";
pub const END: &str = "<!-- cargo xtask bench: end -->";

/// Target for figures 1 and 2: Peerline / SIPp ≥ 1.0.
const SIGNALING_TARGET: f64 = 1.0;
/// Target for figure 3 (PCMU), KiB per established call.
const MEMORY_TARGET_PCMU_KIB: f64 = 100.0;
const MEMORY_TARGET_OPUS_KIB: f64 = 300.0;

pub fn write(bench: &Bench, f: &Figures) -> Result {
    let results = results_text(f);
    std::fs::write(&bench.results, results)
        .map_err(|e| format!("{}: {e}", bench.results.display()))?;
    splice(&bench.out, BEGIN, END, &markdown(bench, f))
}

/// Puts `section` (which starts with `begin` and ends with `end`) in place of the text
/// between those markers in `out`, or at its end the first time.
pub fn splice(out: &std::path::Path, begin: &str, end: &str, section: &str) -> Result {
    let old = std::fs::read_to_string(out).unwrap_or_default();
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{section}{}", &old[..b], &old[e + end.len()..])
        }
        _ if old.is_empty() => format!("{section}\n"),
        _ => format!("{}\n\n{section}\n", old.trim_end()),
    };
    std::fs::write(out, new).map_err(|e| format!("{}: {e}", out.display()))
}

fn results_text(f: &Figures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "machine nproc={} load_before={} load_after={}",
        f.machine.nproc,
        f.load_before.replace(' ', "/"),
        f.load_after.replace(' ', "/")
    );
    for pair in [
        Pair::SippToPeerline,
        Pair::SippToSipp,
        Pair::PeerlineBotToSipp,
    ] {
        if let Some(m) = best(f, pair) {
            let _ = writeln!(
                s,
                "median pair={} runs={} achieved={m:.1}",
                pair.key(),
                f.run_bests.len()
            );
        }
    }
    for l in &f.ladders {
        for st in &l.steps {
            let _ = writeln!(
                s,
                "step pair={} rate={} calls={} ok={} failed={} achieved={:.1}",
                l.pair.key(),
                st.rate,
                st.calls,
                st.ok,
                st.failed,
                st.achieved
            );
        }
        if let Some(b) = l.best() {
            let _ = writeln!(
                s,
                "best pair={} rate={} achieved={:.1}",
                l.pair.key(),
                b.rate,
                b.achieved
            );
        }
    }
    for m in &f.memory {
        let _ = writeln!(
            s,
            "memory who={} codec={} calls={} held={} idle_kib={} loaded_kib={} per_call_kib={:.1}",
            m.who.split_whitespace().next().unwrap_or("?"),
            m.codec.split_whitespace().next().unwrap_or("?"),
            m.calls,
            m.held,
            m.rss_idle_kib,
            m.rss_loaded_kib,
            m.per_call_kib()
        );
    }
    s
}

/// The median over the runs of the pair's best passing rate (runs where no step passed
/// count as 0).
fn best(f: &Figures, pair: Pair) -> Option<f64> {
    let bests: Vec<f64> = f
        .run_bests
        .iter()
        .filter_map(|run| run.iter().find(|(p, _)| *p == pair))
        .map(|(_, b)| b.unwrap_or(0.0))
        .collect();
    super::latency::median(&bests).filter(|&m| m > 0.0)
}

/// One row per run: each pair's best passing rate.
fn runs_table(s: &mut String, f: &Figures) {
    let pairs = [
        Pair::SippToPeerline,
        Pair::SippToSipp,
        Pair::PeerlineBotToSipp,
    ];
    let head: Vec<&str> = pairs.iter().map(|p| p.label()).collect();
    let _ = writeln!(
        s,
        "\nEach run's best passing rate (calls/s; the figures above are the medians):\n\n| run | {} |\n|---|{}",
        head.join(" | "),
        "---|".repeat(pairs.len())
    );
    for (i, run) in f.run_bests.iter().enumerate() {
        let cells: Vec<String> = pairs
            .iter()
            .map(|p| {
                run.iter()
                    .find(|(q, _)| q == p)
                    .and_then(|(_, b)| *b)
                    .map_or("none".into(), |b| format!("{b:.0}"))
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", i + 1, cells.join(" | "));
    }
}

fn ratio_line(f: &Figures, ours: Pair, theirs: Pair, last_rate: u64) -> String {
    // A side that passed the top rung was not driven to its limit.
    let top = |p: Pair| {
        f.ladders
            .iter()
            .find(|l| l.pair == p)
            .and_then(|l| l.steps.last())
            .is_some_and(|st| st.passed() && st.rate == last_rate)
    };
    match (best(f, ours), best(f, theirs)) {
        (Some(a), Some(b)) if b > 0.0 => {
            let r = a / b;
            let verdict = if r >= SIGNALING_TARGET {
                "target ≥ 1.0× **met**"
            } else {
                "target ≥ 1.0× **missed**"
            };
            let capped = if top(theirs) || top(ours) {
                format!(" (a side that passed every step up to {last_rate}/s is capped by the ladder, not measured to its limit)")
            } else {
                String::new()
            };
            format!(
                "**{}: {a:.0} calls/s; {}: {b:.0} calls/s; ratio {r:.2}×** — {verdict}{capped}.",
                ours.label(),
                theirs.label()
            )
        }
        (None, _) => format!("**{}: no step passed** — target missed.", ours.label()),
        _ => format!("{}: no passing step to compare with.", theirs.label()),
    }
}

fn ladder_table(s: &mut String, l: &Ladder) {
    let _ = writeln!(
        s,
        "\n{}:\n\n| requested calls/s | calls | OK | failed | achieved calls/s | details |\n|---|---|---|---|---|---|",
        l.pair.label()
    );
    for st in &l.steps {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {} |",
            st.rate,
            st.calls,
            st.ok,
            st.failed,
            st.achieved,
            st.note.replace('|', "/")
        );
    }
}

fn memory_table(s: &mut String, memory: &[Memory], errors: &[String]) {
    let _ = writeln!(
        s,
        "| process | codec | calls held / asked | RSS idle | RSS with the calls up | per call | target | notes |\n|---|---|---|---|---|---|---|---|"
    );
    for m in memory {
        let target = match (m.who.starts_with("Peerline"), m.codec.as_str()) {
            (true, "PCMU") => Some(MEMORY_TARGET_PCMU_KIB),
            (true, "opus") => Some(MEMORY_TARGET_OPUS_KIB),
            _ => None,
        };
        let verdict = match target {
            Some(t) if m.held == m.calls && m.per_call_kib() <= t => {
                format!("≤ {t:.0} KiB: **met**")
            }
            Some(t) if m.held == m.calls => format!("≤ {t:.0} KiB: **missed**"),
            Some(t) => format!("≤ {t:.0} KiB: not all calls were up"),
            None => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} | {} KiB | {} KiB | **{:.1} KiB** | {verdict} | {} |",
            m.who,
            m.codec,
            m.held,
            m.calls,
            m.rss_idle_kib,
            m.rss_loaded_kib,
            m.per_call_kib(),
            m.note
        );
    }
    for e in errors {
        let _ = writeln!(s, "\nNot measured this run: {e}");
    }
}

fn markdown(bench: &Bench, f: &Figures) -> String {
    let m = &f.machine;
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let last_rate = bench.rates.last().copied().unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "## Side by side with SIPp (`cargo xtask bench`)\n\n\
         Generated by `cargo xtask bench{}` on {date} in {:.1} minutes. Everything on \
         127.0.0.1, each figure measured against its peer in the same run.\n",
        if bench.smoke { " --smoke" } else { "" },
        f.minutes
    );
    let _ = writeln!(
        s,
        "- Machine: `nproc` = {}, {}; load average {} before the run, {} after \
         (the machine is shared with other engineers' builds and tests).\n\
         - Versions: {}; {}; Peerline git {} ({} build); {}.\n\
         - Figures 1 and 2 are medians over {} runs of the whole ladder (each run's figures \
         are in the table after figure 1; the step tables are the last run's).\n\
         - Each rate step: a fresh caller and answerer, {} s of calls at the requested rate \
         (SIPp's default uac flow: INVITE, 100, 180, 200, ACK, pause 0 ms, BYE, 200), SRTP \
         off, PCMU. {} The pairs climb side by side (at each rate each pair runs its step in \
         turn); a step with a failed call is run once more, and a pair stops climbing when \
         the retry fails too. \"Achieved\" is the \
         caller's own count of calls placed per second (SIPp's `CallRate(C)`, the bot's \
         `calls_per_sec`); the figure is the highest achieved rate of a step with 0 failed \
         calls.",
        m.nproc,
        m.cpu_model,
        f.load_before,
        f.load_after,
        m.sipp,
        m.baresip,
        m.peerline_rev,
        if bench.release { "release" } else { "debug" },
        m.rustc,
        f.run_bests.len(),
        bench.step_secs,
        match (bench.caller_cpu, bench.answerer_cpu) {
            (Some(c), Some(a)) => format!(
                "Callers are pinned to core {c} and answerers to core {a} (`taskset -c`), so \
                 multi-threaded Peerline gets one core for its side like single-threaded SIPp."
            ),
            _ => "Nothing is pinned (`--no-pin` or one core).".to_string(),
        }
    );
    let _ = writeln!(
        s,
        "\n### 1. Signaling, Peerline as UAS\n\n`sipp -sn uac` calls `peerline-bench-uas` \
         (crates/peerline-bot/src/bin: a phone answering every call at once, sending silence, \
         SIP rate limiter opened wide) and, in the same run, `sipp -sn uas`.\n\n{}",
        ratio_line(f, Pair::SippToPeerline, Pair::SippToSipp, last_rate)
    );
    for l in f
        .ladders
        .iter()
        .filter(|l| l.pair != Pair::PeerlineBotToSipp)
    {
        ladder_table(&mut s, l);
    }
    runs_table(&mut s, f);
    let _ = writeln!(
        s,
        "\n### 2. Signaling, Peerline as UAC\n\n`peerline bot run` in load mode (one leg: \
         call, expect answered, hang up; concurrency = the rate) calls `sipp -sn uas`; the \
         SIPp pair is `sipp -sn uac` → `sipp -sn uas` from figure 1 (the same measurement).\n\n{}",
        ratio_line(f, Pair::PeerlineBotToSipp, Pair::SippToSipp, last_rate)
    );
    for l in f
        .ladders
        .iter()
        .filter(|l| l.pair == Pair::PeerlineBotToSipp)
    {
        ladder_table(&mut s, l);
    }
    let _ = writeln!(
        s,
        "\n### 4. Memory per established call\n\n`sipp -sn uac -d HOLD -l N` fills the \
         answerer with N calls at 200 calls/s and holds them; RSS (`VmRSS` of \
         /proc/PID/status) is read before the first call and 2 s after the last is up; \
         per call = growth / calls up. Opus: SIPp's uac scenario with its SDP offering \
         `opus/48000/2` instead of PCMU.\n"
    );
    memory_table(&mut s, &f.memory, &f.memory_errors);
    let _ = writeln!(
        s,
        "\n### Figures 3, 5, 6 and 7\n\n\
         - Concurrent media calls per core (SRTP, PCMU and Opus, one pinned core) next to \
         baresip is `cargo xtask bench media`; mouth-to-ear latency, post-dial delay and \
         the CLI's time to registered are `cargo xtask bench latency`; the idle cost of a \
         registered phone is `cargo xtask bench idle`: each writes its own section below \
         (`cargo xtask bench` runs them all)."
    );
    let _ = writeln!(s, "{END}");
    s
}
