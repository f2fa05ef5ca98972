//! `cargo xtask bench`: Peerline next to the peer it is compared with, in the same run, on
//! loopback only, written to a section of docs/benchmarks.md.
//!
//! * Figure 1 — signaling, Peerline as UAS: `sipp -sn uac` against `peerline-bench-uas`
//!   and against `sipp -sn uas`, stepping the rate up; the highest rate with 0 failed calls.
//! * Figure 2 — signaling, Peerline as UAC: `peerline bot run` in load mode against
//!   `sipp -sn uas`, next to `sipp -sn uac` against `sipp -sn uas`.
//! * Figure 3 — memory per established call (RSS growth / calls held), Peerline PCMU and
//!   Opus next to `sipp -sn uas`.
//!
//! * Figures 5 and 7 — mouth-to-ear latency, post-dial delay with ICE, the CLI's time to
//!   registered, medians over several runs: `latency.rs`, its own section, also run
//!   alone by `cargo xtask bench latency`.
//! * Issue 9's figure 3 — concurrent media calls per core (SRTP, PCMU and Opus, one
//!   pinned core) next to baresip: `media.rs`, its own section, also run alone by
//!   `cargo xtask bench media`.
//! * Figure 6 — idle cost of a registered phone: `cargo xtask bench idle` (ten minutes,
//!   its own section; `idle.rs`).
//!
//! `cargo xtask bench` runs every figure (about 45 minutes in release; `--no-idle` skips
//! figure 6's ten minutes). `--smoke` runs one tiny step of each (debug binaries unless `--release`) and writes to
//! `target/bench/smoke/` only. Every process is stopped by its PID; every wait is bounded.

mod idle;
mod latency;
mod machine;
mod media;
mod memory;
mod process;
mod report;
mod signaling;
mod sipp;

use std::path::PathBuf;

use super::Result;
use signaling::Pair;

/// What one bench run does.
pub struct Bench {
    pub smoke: bool,
    pub release: bool,
    /// Requested calls per second, in order.
    pub rates: Vec<u64>,
    pub step_secs: u64,
    /// Times the signaling ladders are run; figures 1 and 2 are the medians.
    pub runs: u32,
    pub memory_calls: u64,
    pub opus_calls: u64,
    /// Logs and per-step files.
    pub work: PathBuf,
    /// Where the markdown section goes (spliced between markers).
    pub out: PathBuf,
    /// `key=value` lines for tests.
    pub results: PathBuf,
    pub build: bool,
    /// Cores the callers and the answerers are pinned to (`taskset`), so a multi-threaded
    /// answerer gets one core like single-threaded SIPp, and the caller its own; `None`
    /// with `--no-pin` or on one core.
    pub caller_cpu: Option<u32>,
    pub answerer_cpu: Option<u32>,
}

impl Bench {
    fn from_args(args: &[String]) -> Result<Self> {
        let root = super::workspace_root();
        let target = target_dir();
        let smoke = args.iter().any(|a| a == "--smoke");
        let release = args.iter().any(|a| a == "--release")
            || (!smoke && !args.iter().any(|a| a == "--debug"));
        let work = target
            .join("bench")
            .join(if smoke { "smoke" } else { "full" });
        let mut out = if smoke {
            work.join("benchmarks-section.md")
        } else {
            root.join("docs/benchmarks.md")
        };
        let mut runs = if smoke { 1 } else { 3 };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--smoke" | "--release" | "--debug" | "--no-build" | "--no-pin" | "--no-idle" => {}
                "--out" => out = PathBuf::from(it.next().ok_or("--out needs a path")?),
                "--runs" => {
                    runs = it
                        .next()
                        .and_then(|v| v.parse::<u32>().ok())
                        .filter(|&n| n >= 1)
                        .ok_or("--runs needs a number ≥ 1")?
                }
                other => return Err(format!("bench: unknown option {other}")),
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = cores >= 2 && !args.iter().any(|a| a == "--no-pin");
        Ok(Self {
            caller_cpu: pin.then_some(0),
            answerer_cpu: pin.then_some(1),
            smoke,
            release,
            rates: if smoke {
                vec![20]
            } else {
                vec![
                    250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000,
                ]
            },
            step_secs: if smoke { 2 } else { 6 },
            runs,
            memory_calls: if smoke { 20 } else { 1000 },
            opus_calls: if smoke { 10 } else { 200 },
            results: work.join("results.txt"),
            work,
            out,
            build: !args.iter().any(|a| a == "--no-build"),
        })
    }

    /// `cargo build --bins` of these packages in the bench's profile, unless `--no-build`.
    pub fn build_bins(&self, packages: &[&str]) -> Result {
        if !self.build {
            return Ok(());
        }
        let mut args = vec!["build"];
        for p in packages {
            args.extend(["-p", p]);
        }
        args.push("--bins");
        if self.release {
            args.push("--release");
        }
        super::cargo(&args)
    }

    /// Where a figure's own section goes: `docs/benchmarks.md` (or `--out`), or `NAME`
    /// under the smoke work directory with `--smoke`.
    pub fn section_out(&self, smoke_name: &str) -> PathBuf {
        if self.smoke {
            self.work.join(smoke_name)
        } else {
            self.out.clone()
        }
    }

    /// A binary of this workspace, in the profile's target directory.
    pub fn binary(&self, name: &str) -> PathBuf {
        let profile = if self.release { "release" } else { "debug" };
        target_dir().join(profile).join(name)
    }
}

/// `$CARGO_TARGET_DIR` (relative to the workspace root) or `<workspace>/target`.
fn target_dir() -> PathBuf {
    let root = super::workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Everything one run measured.
pub struct Figures {
    pub machine: machine::Machine,
    pub load_before: String,
    pub load_after: String,
    /// The last run's ladders (their steps are the tables).
    pub ladders: Vec<signaling::Ladder>,
    /// Each run's best passing rate per pair (figures 1 and 2 are their medians).
    pub run_bests: Vec<Vec<(Pair, Option<f64>)>>,
    pub memory: Vec<memory::Memory>,
    pub memory_errors: Vec<String>,
    pub minutes: f64,
}

pub fn run(args: &[String]) -> Result {
    match args.first().map(String::as_str) {
        Some("idle") => return run_idle(&args[1..]),
        Some("latency") => return run_latency(&args[1..]),
        Some("media") => return run_media(&args[1..]),
        _ => {}
    }
    let bench = Bench::from_args(args)?;
    let started = std::time::Instant::now();
    bench.build_bins(&["peerline", "peerline-bot"])?;
    for bin in ["peerline", "peerline-bench-uas", "peerline-bench-latency"] {
        if !bench.binary(bin).is_file() {
            return Err(format!("{} is missing", bench.binary(bin).display()));
        }
    }
    let _ = std::fs::remove_dir_all(&bench.work);
    std::fs::create_dir_all(&bench.work).map_err(|e| format!("{}: {e}", bench.work.display()))?;
    let load_before = machine::load_average();
    // Versions and the git revision as they are when the run starts.
    let machine = machine::Machine::probe();
    let pairs = [
        Pair::SippToPeerline,
        Pair::SippToSipp,
        Pair::PeerlineBotToSipp,
    ];
    let mut ladders = Vec::new();
    let mut run_bests = Vec::new();
    for run in 1..=bench.runs {
        println!("bench: signaling ladders, run {run} of {}", bench.runs);
        ladders = signaling::ladders(&bench, &pairs);
        run_bests.push(
            ladders
                .iter()
                .map(|l| (l.pair, l.best().map(|s| s.achieved)))
                .collect(),
        );
    }
    let mut memory = Vec::new();
    let mut memory_errors = Vec::new();
    let runs: [(&str, u64); 3] = [
        ("PCMU", bench.memory_calls),
        ("opus", bench.opus_calls),
        ("sipp", bench.memory_calls),
    ];
    for (what, calls) in runs {
        println!("bench: memory, {what}, {calls} calls held");
        let m = match what {
            "sipp" => memory::sipp(&bench, calls),
            codec => memory::peerline(&bench, codec, calls),
        };
        match m {
            Ok(m) => {
                println!(
                    "bench:   {} held, {} → {} KiB, {:.1} KiB/call",
                    m.held,
                    m.rss_idle_kib,
                    m.rss_loaded_kib,
                    m.per_call_kib()
                );
                memory.push(m);
            }
            Err(e) => memory_errors.push(format!("{what}: {e}")),
        }
    }
    let figures = Figures {
        machine,
        load_before,
        load_after: machine::load_average(),
        ladders,
        run_bests,
        memory,
        memory_errors,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    report::write(&bench, &figures)?;
    latency_section(&bench)?;
    media_section(&bench)?;
    // Figure 6 last: ten minutes of an idle phone (`--no-idle` leaves its section as it is).
    if !args.iter().any(|a| a == "--no-idle") {
        idle_section(&bench)?;
    }
    println!(
        "bench: results in {} and {}",
        bench.out.display(),
        bench.results.display()
    );
    Ok(())
}

/// Marks the idle figure's own section of docs/benchmarks.md.
const IDLE_BEGIN: &str = "<!-- cargo xtask bench idle: begin (generated, do not edit by hand) -->";
const IDLE_END: &str = "<!-- cargo xtask bench idle: end -->";

/// `cargo xtask bench idle [--smoke] [--release] [--no-build] [--out FILE]`: figure 6 only
/// (600 s; 5 s with `--smoke`, written under target/bench/smoke/).
fn run_idle(args: &[String]) -> Result {
    let bench = Bench::from_args(args)?;
    bench.build_bins(&["peerline"])?;
    idle_section(&bench)
}

/// Measures figure 6 and writes its section and `idle-results.txt`.
fn idle_section(bench: &Bench) -> Result {
    let secs = if bench.smoke { 5 } else { 600 };
    std::fs::create_dir_all(&bench.work).map_err(|e| format!("{}: {e}", bench.work.display()))?;
    println!("bench: idle cost of a registered phone, {secs} s");
    let idle = idle::measure(bench, secs)?;
    println!(
        "bench:   {:.0} B/min ({} sent, {} received), CPU {:.3} %",
        idle.bytes_per_minute(),
        idle.bytes_sent,
        idle.bytes_received,
        idle.cpu_percent()
    );
    let results = bench.work.join("idle-results.txt");
    std::fs::write(
        &results,
        format!(
            "idle secs={:.1} bytes_sent={} bytes_received={} cpu_secs={:.3} messages={}\n",
            idle.secs,
            idle.bytes_sent,
            idle.bytes_received,
            idle.cpu_secs,
            idle.messages.len()
        ),
    )
    .map_err(|e| format!("{}: {e}", results.display()))?;
    let (what, when) = stamp(bench);
    let section = format!(
        "{IDLE_BEGIN}\n{}{IDLE_END}",
        idle::markdown(&idle, &what, &when)
    );
    let out = bench.section_out("idle-section.md");
    report::splice(&out, IDLE_BEGIN, IDLE_END, &section)?;
    println!(
        "bench: results in {} and {}",
        out.display(),
        results.display()
    );
    Ok(())
}

/// What ran and when, for a section's first line.
fn stamp(bench: &Bench) -> (String, String) {
    let m = machine::Machine::probe();
    let when = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let what = format!(
        "{} cores, {}, Peerline {}{}",
        m.nproc,
        m.cpu_model,
        m.peerline_rev,
        if bench.release { " release" } else { " debug" }
    );
    (what, when)
}

/// Marks the latency figures' own section of docs/benchmarks.md.
const LATENCY_BEGIN: &str =
    "<!-- cargo xtask bench latency: begin (generated, do not edit by hand) -->";
const LATENCY_END: &str = "<!-- cargo xtask bench latency: end -->";

/// `cargo xtask bench latency [--smoke] [--release] [--no-build] [--out FILE]`: figures 5
/// and 7 only (5 runs; 1 with `--smoke`, written under target/bench/smoke/).
fn run_latency(args: &[String]) -> Result {
    let bench = Bench::from_args(args)?;
    bench.build_bins(&["peerline", "peerline-bot"])?;
    std::fs::create_dir_all(&bench.work).map_err(|e| format!("{}: {e}", bench.work.display()))?;
    latency_section(&bench)
}

/// Measures figures 5 and 7 and writes their section and `latency-results.txt`.
fn latency_section(bench: &Bench) -> Result {
    let runs = if bench.smoke { 1 } else { 5 };
    println!("bench: latency, {runs} runs");
    let l = latency::measure(bench, runs)?;
    let results = bench.work.join("latency-results.txt");
    let text = latency::results_text(&l);
    print!("bench:   {text}");
    std::fs::write(&results, text).map_err(|e| format!("{}: {e}", results.display()))?;
    let (what, when) = stamp(bench);
    let section = format!(
        "{LATENCY_BEGIN}\n{}{LATENCY_END}",
        latency::markdown(&l, &what, &when)
    );
    let out = bench.section_out("latency-section.md");
    report::splice(&out, LATENCY_BEGIN, LATENCY_END, &section)?;
    println!(
        "bench: latency in {} and {}",
        out.display(),
        results.display()
    );
    Ok(())
}

/// Marks the media figure's own section of docs/benchmarks.md.
const MEDIA_BEGIN: &str =
    "<!-- cargo xtask bench media: begin (generated, do not edit by hand) -->";
const MEDIA_END: &str = "<!-- cargo xtask bench media: end -->";

/// `cargo xtask bench media [--smoke] [--release] [--no-build] [--out FILE]`: concurrent
/// media calls per core next to baresip only (one 5-call step per subject and codec with
/// `--smoke`, written under target/bench/smoke/).
fn run_media(args: &[String]) -> Result {
    let bench = Bench::from_args(args)?;
    bench.build_bins(&["peerline", "peerline-bot"])?;
    std::fs::create_dir_all(&bench.work).map_err(|e| format!("{}: {e}", bench.work.display()))?;
    media_section(&bench)
}

/// Measures the media figure and writes its section and `media-results.txt`.
fn media_section(bench: &Bench) -> Result {
    for bin in ["peerline", "peerline-bench-uas"] {
        if !bench.binary(bin).is_file() {
            return Err(format!("{} is missing", bench.binary(bin).display()));
        }
    }
    println!("bench: concurrent media calls per core, next to baresip");
    let m = media::measure(bench)?;
    let results = bench.work.join("media-results.txt");
    let text = media::results_text(&m);
    print!("{text}");
    std::fs::write(&results, text).map_err(|e| format!("{}: {e}", results.display()))?;
    let (what, when) = stamp(bench);
    let section = format!(
        "{MEDIA_BEGIN}\n{}{MEDIA_END}",
        media::markdown(&m, &what, &when, bench.smoke)
    );
    let out = bench.section_out("media-section.md");
    report::splice(&out, MEDIA_BEGIN, MEDIA_END, &section)?;
    println!(
        "bench: media in {} and {}",
        out.display(),
        results.display()
    );
    Ok(())
}
