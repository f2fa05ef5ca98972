//! Figures 1 and 2: calls per second with 0 failed calls, stepping the rate up.
//!
//! Every step is a fresh pair of processes: a caller placing `rate × step_secs` calls at
//! `rate` calls/s with SIPp's default call flow (INVITE, 100, 180, 200, ACK, pause 0, BYE,
//! 200), and an answerer. A side stops stepping at its first step with a failed call.

use std::path::Path;
use std::time::Duration;

use super::process::Proc;
use super::sipp::{Sipp, SippRun};
use super::{Bench, Result};

/// Who answers or who calls in a ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    /// `sipp -sn uac` → `peerline-bench-uas`.
    SippToPeerline,
    /// `sipp -sn uac` → `sipp -sn uas`.
    SippToSipp,
    /// `peerline bot run` (load mode) → `sipp -sn uas`.
    PeerlineBotToSipp,
}

impl Pair {
    pub fn label(self) -> &'static str {
        match self {
            Self::SippToPeerline => "sipp uac → Peerline UAS",
            Self::SippToSipp => "sipp uac → sipp uas",
            Self::PeerlineBotToSipp => "Peerline bot UAC → sipp uas",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Self::SippToPeerline => "sipp-to-peerline",
            Self::SippToSipp => "sipp-to-sipp",
            Self::PeerlineBotToSipp => "peerline-bot-to-sipp",
        }
    }
}

/// One rate step.
#[derive(Debug, Clone)]
pub struct Step {
    pub rate: u64,
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    /// Calls placed per second as the caller measured it.
    pub achieved: f64,
    pub note: String,
}

impl Step {
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.ok == self.calls
    }
}

/// The steps of one pair, in order.
pub struct Ladder {
    pub pair: Pair,
    pub steps: Vec<Step>,
}

impl Ladder {
    /// The passing step with the highest achieved rate.
    pub fn best(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.passed())
            .max_by(|a, b| a.achieved.total_cmp(&b.achieved))
    }
}

/// Runs the ladders of `pairs` side by side: at each rate every pair still climbing runs
/// one step, so all pairs see the same machine at about the same time (it is shared). A
/// failed step is run once more (a burst of someone else's load can fail one step); a pair
/// stops climbing when that retry fails too.
pub fn ladders(bench: &Bench, pairs: &[Pair]) -> Vec<Ladder> {
    let mut out: Vec<Ladder> = pairs
        .iter()
        .map(|&pair| Ladder {
            pair,
            steps: Vec::new(),
        })
        .collect();
    let mut climbing = vec![true; pairs.len()];
    for &rate in &bench.rates {
        for (i, ladder) in out.iter_mut().enumerate() {
            if !climbing[i] {
                continue;
            }
            let mut step = one_step(bench, ladder.pair, rate, 1);
            if !step.passed() {
                let retry = one_step(bench, ladder.pair, rate, 2);
                step.note = format!(
                    "{}; first try: {} OK, {} failed",
                    retry.note, step.ok, step.failed
                );
                step = Step {
                    note: step.note,
                    ..retry
                };
                climbing[i] = step.passed();
            }
            ladder.steps.push(step);
        }
        if !climbing.iter().any(|&c| c) {
            break;
        }
    }
    out
}

fn one_step(bench: &Bench, pair: Pair, rate: u64, attempt: u32) -> Step {
    let dir = bench.work.join(format!("{}-{rate}-{attempt}", pair.key()));
    let calls = rate * bench.step_secs;
    println!(
        "bench: {} at {rate} calls/s ({calls} calls), try {attempt}",
        pair.label()
    );
    let step = match pair {
        Pair::SippToPeerline => sipp_to_peerline(bench, &dir, rate, calls),
        Pair::SippToSipp => sipp_to_sipp(bench, &dir, rate, calls),
        Pair::PeerlineBotToSipp => bot_to_sipp(bench, &dir, rate, calls),
    }
    .unwrap_or_else(|e| Step {
        rate,
        calls,
        ok: 0,
        failed: calls,
        achieved: 0.0,
        note: format!("harness error: {e}"),
    });
    println!(
        "bench:   {} OK, {} failed, {:.0} calls/s achieved {}",
        step.ok, step.failed, step.achieved, step.note
    );
    step
}

fn caller_timeout(bench: &Bench) -> Duration {
    Duration::from_secs(bench.step_secs + 15)
}

/// `key=N` from the counters line `peerline-bench-uas` prints (0 when absent).
pub(super) fn counter(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The last `counters …` line `peerline-bench-uas` printed, without its prefix.
pub(super) fn last_counters(uas: &Proc) -> String {
    uas.stdout_text()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("counters "))
        .unwrap_or("")
        .to_string()
}

/// Starts `peerline-bench-uas` on an ephemeral port; returns it and its `ip:port`.
pub fn start_peerline_uas(
    bench: &Bench,
    dir: &Path,
    rtp_ports: &str,
    codec: &str,
) -> Result<(Proc, String)> {
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--rtp-ports",
        rtp_ports,
        "--codec",
        codec,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut uas = Proc::spawn(
        "peerline-bench-uas",
        &bench.binary("peerline-bench-uas"),
        &args,
        dir,
        bench.answerer_cpu,
    )?;
    let addr = uas.wait_line("listening on ", Duration::from_secs(20))?;
    Ok((uas, addr))
}

/// Reads the counters `peerline-bench-uas` printed last.
pub fn uas_counter(uas: &Proc, key: &str) -> u64 {
    counter(&last_counters(uas), key)
}

fn run_uac(dir: &Path, bench: &Bench, remote: String, rate: u64, calls: u64) -> Result<Sipp> {
    let mut run = SippRun::new("uac", "uac", calls, caller_timeout(bench));
    run.remote = Some(remote);
    run.rate = Some(rate);
    run.cpu = bench.caller_cpu;
    let mut uac = Sipp::start(&run, dir)?;
    if uac
        .proc
        .wait_exit(caller_timeout(bench) + Duration::from_secs(5))
        .is_none()
    {
        uac.proc.stop();
    }
    Ok(uac)
}

fn sipp_to_peerline(bench: &Bench, dir: &Path, rate: u64, calls: u64) -> Result<Step> {
    let (mut uas, addr) = start_peerline_uas(bench, dir, "61000-62999", "PCMU")?;
    let uac = run_uac(dir, bench, addr, rate, calls)?;
    let stats = uac.stats()?;
    // Let the answerer print its final counters.
    std::thread::sleep(Duration::from_millis(500));
    let c = last_counters(&uas);
    uas.stop();
    Ok(Step {
        rate,
        calls,
        ok: stats.successful,
        failed: stats.failed + calls.saturating_sub(stats.successful + stats.failed),
        achieved: stats.call_rate,
        note: format!(
            "(Peerline: {} INVITEs, {} answered, {} ended, {} answer errors; SIPp: {} retransmissions)",
            counter(&c, "incoming"),
            counter(&c, "established"),
            counter(&c, "ended"),
            counter(&c, "answer_errors"),
            stats.retransmissions
        ),
    })
}

fn start_sipp_uas(bench: &Bench, dir: &Path, calls: u64) -> Result<Sipp> {
    let mut run = SippRun::new(
        "uas",
        "uas",
        calls,
        caller_timeout(bench) + Duration::from_secs(5),
    );
    run.cpu = bench.answerer_cpu;
    let uas = Sipp::start(&run, dir)?;
    // SIPp binds its socket within milliseconds; give it a moment before calling.
    std::thread::sleep(Duration::from_millis(300));
    Ok(uas)
}

fn sipp_to_sipp(bench: &Bench, dir: &Path, rate: u64, calls: u64) -> Result<Step> {
    let mut uas = start_sipp_uas(bench, dir, calls)?;
    let uac = run_uac(dir, bench, uas.address(), rate, calls)?;
    let stats = uac.stats()?;
    uas.proc.wait_exit(Duration::from_secs(6));
    uas.proc.stop();
    let uas_stats = uas.stats().unwrap_or_default();
    Ok(Step {
        rate,
        calls,
        ok: stats.successful,
        failed: stats.failed + calls.saturating_sub(stats.successful + stats.failed),
        achieved: stats.call_rate,
        note: format!(
            "(sipp uas: {} OK, {} failed; uac: {} retransmissions)",
            uas_stats.successful, uas_stats.failed, stats.retransmissions
        ),
    })
}

/// The load scenario: one leg calls SIPp `calls` times at `rate`, SRTP off, PCMU, and
/// hangs up as soon as the call is answered (SIPp's uac with `-d 0` does the same).
fn bot_scenario(target: &str, rate: u64, calls: u64, timeout: u64) -> String {
    format!(
        "# Written by cargo xtask bench.\n\
         name = \"bench uac {rate}/s\"\n\
         timeout = {timeout}\n\n\
         [load]\n\
         leg = \"caller\"\n\
         calls = {calls}\n\
         concurrency = {concurrency}\n\
         rate = {rate}\n\n\
         [[leg]]\n\
         name = \"caller\"\n\
         listen = \"127.0.0.1:0\"\n\
         rtp_ports = \"63000-64999\"\n\
         codecs = [\"PCMU\"]\n\
         srtp = \"off\"\n\
         steps = [\n\
         \x20 {{ play = \"silence\" }},\n\
         \x20 {{ call = \"sip:service@{target}\", timeout = 10 }},\n\
         \x20 {{ expect = \"answered\", within = 10 }},\n\
         \x20 \"hangup\",\n\
         ]\n",
        concurrency = rate.clamp(10, 5000),
    )
}

/// The number after `"key":` in the text after the last `"load"` key of the bot's JSON.
pub(super) fn load_field(json: &str, key: &str) -> Option<f64> {
    let load = &json[json.rfind("\"load\"")?..];
    let pat = format!("\"{key}\":");
    let rest = load[load.find(&pat)? + pat.len()..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn bot_to_sipp(bench: &Bench, dir: &Path, rate: u64, calls: u64) -> Result<Step> {
    let mut uas = start_sipp_uas(bench, dir, calls)?;
    let timeout = caller_timeout(bench).as_secs();
    let scenario = dir.join("load.toml");
    std::fs::write(
        &scenario,
        bot_scenario(&uas.address(), rate, calls, timeout),
    )
    .map_err(|e| format!("{}: {e}", scenario.display()))?;
    let json = dir.join("results.json");
    let args = vec![
        "bot".to_string(),
        "run".to_string(),
        scenario.display().to_string(),
        "--json".to_string(),
        json.display().to_string(),
    ];
    let mut bot = Proc::spawn(
        "peerline-bot",
        &bench.binary("peerline"),
        &args,
        dir,
        bench.caller_cpu,
    )?;
    if bot.wait_exit(Duration::from_secs(timeout + 10)).is_none() {
        bot.stop();
    }
    uas.proc.wait_exit(Duration::from_secs(6));
    uas.proc.stop();
    let uas_stats = uas.stats().unwrap_or_default();
    let Ok(text) = std::fs::read_to_string(&json) else {
        // Killed at its bound before writing results: count what SIPp answered.
        return Ok(Step {
            rate,
            calls,
            ok: uas_stats.successful,
            failed: calls.saturating_sub(uas_stats.successful),
            achieved: 0.0,
            note: format!(
                "(the bot did not finish within {} s and was stopped; sipp uas: {} OK, {} failed)",
                timeout + 10,
                uas_stats.successful,
                uas_stats.failed
            ),
        });
    };
    let field =
        |k: &str| load_field(&text, k).ok_or_else(|| format!("no load.{k} in {}", json.display()));
    let ok = field("succeeded")? as u64;
    let failed = field("failed")? as u64;
    Ok(Step {
        rate,
        calls,
        ok,
        failed: failed + calls.saturating_sub(ok + failed) + uas_stats.failed,
        achieved: field("calls_per_sec")?,
        note: format!(
            "(sipp uas: {} OK, {} failed; bot: {} at once at most)",
            uas_stats.successful,
            uas_stats.failed,
            load_field(&text, "max_concurrent").unwrap_or(0.0)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_and_load_fields() {
        let line = "incoming=5 answered=4 established=4 ended=3 answer_errors=1";
        assert_eq!(counter(line, "answered"), 4);
        assert_eq!(counter(line, "answer_errors"), 1);
        assert_eq!(counter(line, "missing"), 0);
        let json = "{\"calls\": [{\"failed\": 9}], \"load\": {\n  \"succeeded\": 10,\n  \"failed\": 0,\n  \"calls_per_sec\": 49.5\n}}";
        assert_eq!(load_field(json, "succeeded"), Some(10.0));
        assert_eq!(load_field(json, "failed"), Some(0.0));
        assert_eq!(load_field(json, "calls_per_sec"), Some(49.5));
        assert_eq!(load_field(json, "nope"), None);
    }
}
