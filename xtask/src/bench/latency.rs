//! Figures 5 and 7: added mouth-to-ear latency through two Peerline phones, post-dial
//! delay with ICE, and the CLI's time from start to registered, each a median over
//! several runs. The phone-to-phone figures come from `peerline-bench-latency`
//! (crates/peerline-bot/src/bin, which documents how each is measured); the registration
//! time is `peerline register` started against SIPp acting as a registrar, from the
//! process's start to its "registered" line. `cargo xtask bench latency` runs only these
//! and writes their own section of docs/benchmarks.md; `cargo xtask bench` runs them too.

use std::fmt::Write as _;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::idle::REGISTRAR_XML;
use super::process::{free_udp_port, Proc};
use super::sipp::{Sipp, SippRun};
use super::{Bench, Result};

/// Targets: figure 5 (one way, 20 ms ptime) and issue 6's post-dial delay, host-only ICE.
const MOUTH_TO_EAR_TARGET_MS: f64 = 40.0;
const POST_DIAL_TARGET_MS: f64 = 150.0;

/// What the runs measured, one value per run.
#[derive(Debug, Default, Clone)]
pub struct Latency {
    pub runs: u32,
    pub dial_to_pair_ms: Vec<f64>,
    pub dial_to_first_rtp_ms: Vec<f64>,
    pub one_way_ms: Vec<f64>,
    pub start_to_registered_ms: Vec<f64>,
    pub errors: Vec<String>,
}

/// The middle value (the mean of the two middle ones for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn measure(bench: &Bench, runs: u32) -> Result<Latency> {
    let dir = bench.work.join("latency");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Latency {
        runs,
        ..Latency::default()
    };
    phones(bench, runs, &dir, &mut out)?;
    registrations(bench, runs, &dir, &mut out)?;
    Ok(out)
}

/// `key=value` fields of a line.
fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn phones(bench: &Bench, runs: u32, dir: &std::path::Path, out: &mut Latency) -> Result {
    let args: Vec<String> = [
        "--runs".to_string(),
        runs.to_string(),
        "--dir".into(),
        dir.join("wav").display().to_string(),
        "--talk-secs".into(),
        if bench.smoke { "3" } else { "6" }.into(),
    ]
    .to_vec();
    let mut p = Proc::spawn(
        "latency",
        &bench.binary("peerline-bench-latency"),
        &args,
        dir,
        None,
    )?;
    // Each run: two calls of a few seconds each.
    let limit = Duration::from_secs(30 + 25 * u64::from(runs));
    if p.wait_exit(limit).is_none() {
        p.stop();
        out.errors.push(format!(
            "peerline-bench-latency did not finish within {limit:?}"
        ));
    }
    for line in p.stdout_text().lines() {
        if line.contains("error=") {
            out.errors.push(line.to_string());
        } else if line.starts_with("pdd ") {
            out.dial_to_pair_ms.extend(field(line, "dial_to_pair_ms"));
            out.dial_to_first_rtp_ms
                .extend(field(line, "dial_to_first_rtp_ms"));
        } else if line.starts_with("m2e ") {
            out.one_way_ms.extend(field(line, "one_way_ms"));
        }
    }
    Ok(())
}

fn registrations(bench: &Bench, runs: u32, dir: &std::path::Path, out: &mut Latency) -> Result {
    let scenario = dir.join("registrar.xml");
    std::fs::write(&scenario, REGISTRAR_XML).map_err(|e| format!("{e}"))?;
    // Each run registers and unregisters within one Call-ID: one SIPp call per run.
    let run = SippRun::new(
        "registrar",
        &scenario.display().to_string(),
        u64::from(runs) + 1,
        Duration::from_secs(60 + 10 * u64::from(runs)),
    );
    let mut registrar = Sipp::start(&run, dir)?;
    for n in 1..=runs {
        let port = free_udp_port()?;
        let config = dir.join(format!("register{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "[identity]\nuser = \"reg\"\n\n[network]\nsip_listen = \"127.0.0.1:{port}\"\n\n\
                 [[account]]\naor = \"sip:reg@127.0.0.1\"\nregistrar = \"sip:127.0.0.1:{}\"\n",
                registrar.port
            ),
        )
        .map_err(|e| format!("{e}"))?;
        let started = Instant::now();
        let mut phone = Proc::spawn(
            &format!("register{n}"),
            &bench.binary("peerline"),
            &[
                "--config".into(),
                config.display().to_string(),
                "register".into(),
            ],
            dir,
            None,
        )?;
        // Polled every millisecond, at most 10 s.
        let mut registered = None;
        for _ in 0..10_000 {
            let text = phone.stdout_text();
            if text.contains("not registered") {
                break;
            }
            if text.contains("registered sip:reg@127.0.0.1") {
                registered = Some(started.elapsed());
                break;
            }
            if phone.try_status().is_some() {
                break;
            }
            sleep(Duration::from_millis(1));
        }
        if phone.wait_exit(Duration::from_secs(10)).is_none() {
            phone.stop();
        }
        match registered {
            Some(d) => out.start_to_registered_ms.push(d.as_secs_f64() * 1000.0),
            None => out.errors.push(format!(
                "run {n}: peerline register did not register: {}",
                phone.stdout_text().trim()
            )),
        }
    }
    registrar.proc.stop();
    Ok(())
}

/// `latency …` lines for `results.txt`-style files (tests parse them).
pub fn results_text(l: &Latency) -> String {
    let m = |v: &[f64]| median(v).map_or("none".to_string(), |x| format!("{x:.1}"));
    format!(
        "latency runs={} one_way_ms={} dial_to_pair_ms={} dial_to_first_rtp_ms={} start_to_registered_ms={} errors={}\n",
        l.runs,
        m(&l.one_way_ms),
        m(&l.dial_to_pair_ms),
        m(&l.dial_to_first_rtp_ms),
        m(&l.start_to_registered_ms),
        l.errors.len()
    )
}

fn row(s: &mut String, what: &str, values: &[f64], target: Option<f64>, unit_note: &str) {
    let list: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
    let med = median(values);
    let verdict = match (med, target) {
        (Some(m), Some(t)) if m <= t => format!("≤ {t:.0} ms: **met**"),
        (Some(m), Some(t)) => format!("≤ {t:.0} ms: **missed** by {:.1} ms", m - t),
        (None, _) => "no measurement".to_string(),
        (_, None) => "—".to_string(),
    };
    let _ = writeln!(
        s,
        "| {what} | **{}** | {} | {verdict} | {unit_note} |",
        med.map_or("—".to_string(), |m| format!("{m:.1} ms")),
        list.join(", ")
    );
}

/// The figures as a section of docs/benchmarks.md.
pub fn markdown(l: &Latency, machine: &str, when: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Latency: mouth-to-ear, post-dial delay, time to registered (figures 5 and 7)\n"
    );
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench latency` ({when}; {machine}); {} runs, each with fresh \
         phones, on 127.0.0.1. Medians, then every run's value.\n",
        l.runs
    );
    let _ = writeln!(s, "| figure | median | runs | target | how |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    row(
        &mut s,
        "5. mouth-to-ear, one way (PCMU, 20 ms ptime)",
        &l.one_way_ms,
        Some(MOUTH_TO_EAR_TARGET_MS),
        "half the round trip of 1 kHz burst onsets: each phone plays bursts and records the other; the two phones' clock offset cancels in the sum (no sound card)",
    );
    row(
        &mut s,
        "7. post-dial delay with ICE: dial → first RTP received",
        &l.dial_to_first_rtp_ms,
        Some(POST_DIAL_TARGET_MS),
        "host candidates only; `Phone::call` (gathering, INVITE) to the caller's first RTP packet (`call_stats`, polled each ms); the callee answers at once",
    );
    row(
        &mut s,
        "7. post-dial delay with ICE: dial → pair selected",
        &l.dial_to_pair_ms,
        None,
        "the same calls, to the caller's `MediaUp` with the selected pair",
    );
    row(
        &mut s,
        "7. CLI start → registered",
        &l.start_to_registered_ms,
        None,
        "`peerline register` started against SIPp as a registrar, to its \"registered\" line (process start, config, REGISTER, 200)",
    );
    if !l.errors.is_empty() {
        let _ = writeln!(s, "\nErrors in this run: {}.", l.errors.join("; "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn fields_are_read_from_the_binary_s_lines() {
        let line = "pdd run=2 dial_to_pair_ms=4.8 dial_to_first_rtp_ms=7.0";
        assert_eq!(field(line, "dial_to_pair_ms"), Some(4.8));
        assert_eq!(field(line, "dial_to_first_rtp_ms"), Some(7.0));
        assert_eq!(field(line, "one_way_ms"), None);
    }

    #[test]
    fn the_section_states_each_target_verdict() {
        let l = Latency {
            runs: 3,
            one_way_ms: vec![50.0, 40.0, 50.0],
            dial_to_first_rtp_ms: vec![27.0, 7.0, 26.0],
            dial_to_pair_ms: vec![6.0, 5.0, 5.4],
            start_to_registered_ms: vec![12.0, 11.0, 13.0],
            errors: vec![],
        };
        let md = markdown(&l, "m", "w");
        assert!(
            md.contains("| **50.0 ms** | 50.0, 40.0, 50.0 | ≤ 40 ms: **missed** by 10.0 ms |"),
            "{md}"
        );
        assert!(
            md.contains("| **26.0 ms** | 27.0, 7.0, 26.0 | ≤ 150 ms: **met** |"),
            "{md}"
        );
        assert!(results_text(&l).starts_with("latency runs=3 one_way_ms=50.0 dial_to_pair_ms=5.4"));
    }
}
