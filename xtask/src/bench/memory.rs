//! Figure 3: memory per established call — RSS growth of the answering process divided by
//! the calls it holds, `sipp -sn uac -d HOLD` calling it until N calls are up at once.
//! Peerline (`peerline-bench-uas`, PCMU, and Opus from a generated SIPp scenario) next to
//! `sipp -sn uas` holding the same calls.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::signaling::{start_peerline_uas, uas_counter};
use super::sipp::{opus_uac_scenario, Sipp, SippRun};
use super::{Bench, Result};

/// One memory figure.
#[derive(Debug, Clone)]
pub struct Memory {
    pub who: String,
    pub codec: String,
    /// Calls asked for, and calls up when RSS was read.
    pub calls: u64,
    pub held: u64,
    pub rss_idle_kib: u64,
    pub rss_loaded_kib: u64,
    pub note: String,
}

impl Memory {
    pub fn per_call_kib(&self) -> f64 {
        if self.held == 0 {
            return 0.0;
        }
        self.rss_loaded_kib.saturating_sub(self.rss_idle_kib) as f64 / self.held as f64
    }
}

/// Calls per second while filling up (SIPp and Peerline both take this easily).
const FILL_RATE: u64 = 200;

fn holding_uac(dir: &Path, scenario: &str, remote: String, calls: u64) -> Result<Sipp> {
    let fill_secs = calls / FILL_RATE + 1;
    // Held far longer than the measurement; SIPp is stopped by its PID afterwards.
    let mut run = SippRun::new("uac", scenario, calls, Duration::from_secs(fill_secs + 60));
    run.remote = Some(remote);
    run.rate = Some(FILL_RATE.min(calls));
    run.limit = Some(calls);
    run.hold_ms = Some((fill_secs + 60) * 1000);
    Sipp::start(&run, dir)
}

/// Polls `held()` until it reaches `calls` or `limit` passes, then lets RSS settle.
fn wait_held(calls: u64, limit: Duration, mut held: impl FnMut() -> u64) -> u64 {
    let start = Instant::now();
    for _ in 0..=(limit.as_millis() / 100) {
        if held() >= calls || start.elapsed() >= limit {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(2));
    held()
}

/// Peerline answering `calls` calls offered with `codec` (`PCMU` or `opus`).
pub fn peerline(bench: &Bench, codec: &str, calls: u64) -> Result<Memory> {
    let dir = bench.work.join(format!("memory-peerline-{codec}"));
    let (mut uas, addr) = start_peerline_uas(bench, &dir, "61000-64999", codec)?;
    let scenario = match codec {
        "opus" => opus_uac_scenario(&dir)?.display().to_string(),
        _ => "uac".to_string(),
    };
    sleep(Duration::from_secs(1));
    let idle = uas.rss_kib()?;
    let mut uac = holding_uac(&dir, &scenario, addr, calls)?;
    let limit = Duration::from_secs(calls / FILL_RATE + 15);
    let held = wait_held(calls, limit, || uas_counter(&uas, "established"));
    let loaded = uas.rss_kib()?;
    let failed = uac.stats().map(|s| s.failed).unwrap_or(0);
    uac.proc.stop();
    uas.stop();
    Ok(Memory {
        who: "Peerline (peerline-bench-uas)".into(),
        codec: codec.into(),
        calls,
        held,
        rss_idle_kib: idle,
        rss_loaded_kib: loaded,
        note: format!("SRTP off, silence sent at 50 packets/s per call; {failed} failed"),
    })
}

/// `sipp -sn uas` holding `calls` calls from `sipp -sn uac` (no media).
pub fn sipp(bench: &Bench, calls: u64) -> Result<Memory> {
    let dir = bench.work.join("memory-sipp");
    let run = SippRun::new(
        "uas",
        "uas",
        calls,
        Duration::from_secs(calls / FILL_RATE + 80),
    );
    let mut uas = Sipp::start(&run, &dir)?;
    sleep(Duration::from_secs(1));
    let idle = uas.proc.rss_kib()?;
    let mut uac = holding_uac(&dir, "uac", uas.address(), calls)?;
    let limit = Duration::from_secs(calls / FILL_RATE + 15);
    // SIPp's CSV is written once a second: CurrentCall counts calls in progress.
    let held = wait_held(calls, limit, || uas.stats().map(|s| s.current).unwrap_or(0));
    let loaded = uas.proc.rss_kib()?;
    uac.proc.stop();
    uas.proc.stop();
    Ok(Memory {
        who: "sipp -sn uas".into(),
        codec: "PCMU (SDP only)".into(),
        calls,
        held,
        rss_idle_kib: idle,
        rss_loaded_kib: loaded,
        note: "no media".into(),
    })
}
