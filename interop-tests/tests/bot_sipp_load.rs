//! Issue 8, done-when 2 (signaling): a bot in load mode places 2,000 calls at 200 calls/s,
//! at most 200 at once, against a real `sipp -sn uas`. Every call is answered and hung up
//! with 0 failures, counted by the bot and by SIPp; the bot's JSON result holds the setup
//! latency percentiles.
//!
//! Each call holds for 0.5 s, so about 100 are up at once, with RTP flowing both ways: the
//! bot sends PCMU silence and SIPp (`-rtp_echo`) sends it back; every call received some.
//!
//! Then "thousands of concurrent calls" from one process: a `peerline bot run` process
//! (the CLI, as a user runs it) holds 2,000 calls established at once against
//! `sipp -sn uas`, without RTP (`play = "none"`), and 250 at once with RTP echoed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use peerline_bot::{RunOptions, Scenario};
use peerline_interop::{
    alloc_port_block, tails, MatrixEntry, Process, ProcessOptions, Sipp, SippOptions,
    SippTransport, TestDir,
};
use serde_json::Value;
use sipp_support::{diag, finish_sipp, runtime, sipp_options};

const CALLS: u32 = 2_000;
const RATE: u32 = 200;
const CONCURRENCY: u32 = 200;
/// Calls held at once with RTP flowing (see the test); `PEERLINE_RTP_CALLS` overrides.
const RTP_CALLS: u32 = 250;

fn scenario(target: &str, rtp_lo: u16, rtp_hi: u16) -> String {
    format!(
        r#"# Written by interop-tests/tests/bot_sipp_load.rs
name = "bot load against sipp uas"
timeout = 45

[load]
leg = "caller"
calls = {CALLS}
concurrency = {CONCURRENCY}
rate = {RATE}

[[leg]]
name = "caller"
rtp_ports = "{rtp_lo}-{rtp_hi}"
codecs = ["PCMU"]
srtp = "off"
steps = [
  {{ play = "silence" }},
  {{ call = "sip:service@{target}", timeout = 10 }},
  {{ expect = "answered", within = 10 }},
  {{ wait = 0.5 }},
  "hangup",
]
"#
    )
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn bot_places_2000_calls_at_200_per_second_to_sipp_uas() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "bot-load-2000", "udp");
    let dir = TestDir::new("bot_places_2000_calls_at_200_per_second_to_sipp_uas").unwrap();
    let opts = SippOptions::builtin("sipp", "uas")
        .calls(CALLS)
        .timeout(Duration::from_secs(50))
        .args(["-rtp_echo"]);
    let mut sipp = Sipp::start(sipp_options(opts, &dir, false), &dir).unwrap();
    sipp.wait_listening(SippTransport::Udp, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", diag(&sipp, &dir)));
    // Two RTP ports per call (RTP, RTCP) for up to CONCURRENCY calls, with room to spare.
    let rtp_lo = alloc_port_block(1_000).unwrap();
    let file = dir.path().join("load.toml");
    std::fs::write(&file, scenario(&sipp.address(), rtp_lo, rtp_lo + 999)).unwrap();
    let scenario = Scenario::load(&file, &BTreeMap::new()).unwrap();

    let rt = runtime();
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(50),
            peerline_bot::run(scenario, &RunOptions::default()),
        )
        .await
        .expect("the bot run took over 50 s")
        .unwrap()
    });
    let json = dir.path().join("results.json");
    peerline_bot::write_json(&result, &json).unwrap();
    // SIPp exits by itself after its CALLS calls (and a short time-wait).
    let (code, stats) = finish_sipp(&mut sipp, &dir, Duration::from_secs(10));
    let logs = diag(&sipp, &dir);

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let load = &v["load"];
    assert_eq!(v["passed"], true, "{load:#}\n{logs}");
    assert_eq!(load["attempted"], CALLS, "{load:#}");
    assert_eq!(load["succeeded"], CALLS, "{load:#}");
    assert_eq!(load["failed"], 0, "{load:#}");
    assert_eq!(v["calls"].as_array().map(Vec::len), Some(CALLS as usize));
    let max_concurrent = load["max_concurrent"].as_u64().unwrap();
    assert!(
        (50..=u64::from(CONCURRENCY)).contains(&max_concurrent),
        "{load:#}"
    );
    // 2,000 calls at 200/s take 10 s to start: the rate held, neither above 200/s nor far
    // below (over the whole run, including the last calls' 0.5 s, a little less).
    let calls = v["calls"].as_array().unwrap();
    let starts: Vec<f64> = calls
        .iter()
        .map(|c| c["start_secs"].as_f64().unwrap())
        .collect();
    let span = starts.iter().cloned().fold(f64::MIN, f64::max)
        - starts.iter().cloned().fold(f64::MAX, f64::min);
    assert!((9.5..=11.5).contains(&span), "calls started over {span} s");
    let rate = load["calls_per_sec"].as_f64().unwrap();
    assert!(rate > 0.8 * f64::from(RATE), "{load:#}");
    // RTP flowed both ways in every call (SIPp echoes what it receives).
    let quiet: Vec<&Value> = calls
        .iter()
        .filter(|c| c["packets_received"].as_u64() < Some(5))
        .collect();
    assert!(
        quiet.is_empty(),
        "{} calls received under 5 RTP packets, first: {:#}",
        quiet.len(),
        quiet[0]
    );
    // Setup latency percentiles over every call, in order.
    let lat = &load["setup_latency_ms"];
    assert_eq!(lat["count"], CALLS, "{lat:#}");
    let keys = ["min", "p50", "p90", "p95", "p99", "max"];
    let values: Vec<f64> = keys.iter().map(|k| lat[k].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{lat:#}");
    assert!(values[0] > 0.0 && values[5] < 10_000.0, "{lat:#}");

    assert_eq!(
        (stats.successful, stats.failed),
        (u64::from(CALLS), 0),
        "SIPp: {stats:?}, exit {code:?}\n{logs}"
    );
    assert_eq!(code, Some(0), "SIPp exit code\n{logs}");
    eprintln!(
        "bot -> sipp uas: {CALLS} calls, 0 failed, {rate:.0} calls/s, {max_concurrent} at once \
         at most, setup p50 {:.1} ms p95 {:.1} ms p99 {:.1} ms; test {:.1} s",
        values[1],
        values[3],
        values[4],
        started.elapsed().as_secs_f64()
    );
    entry.pass();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// A load that holds every call up together: `calls` at once at most, `rate` new calls
/// per second, each held `hold` seconds after the answer; `play` is the source
/// (`"none"`: no RTP at all).
fn held_scenario(
    target: &str,
    rtp: (u16, u16),
    calls: u32,
    rate: u32,
    hold: u32,
    play: &str,
) -> String {
    let (lo, hi) = rtp;
    format!(
        r#"# Written by interop-tests/tests/bot_sipp_load.rs
name = "bot holds {calls} calls at once against sipp uas"
timeout = 50

[load]
leg = "caller"
calls = {calls}
concurrency = {calls}
rate = {rate}

[[leg]]
name = "caller"
rtp_ports = "{lo}-{hi}"
codecs = ["PCMU"]
srtp = "off"
steps = [
  {{ play = {play} }},
  {{ call = "sip:service@{target}", timeout = 20 }},
  {{ expect = "answered", within = 20 }},
  {{ wait = {hold} }},
  "hangup",
]
"#
    )
}

/// What one `peerline bot run` of [`held_scenario`] against `sipp -sn uas` measured.
struct Held {
    load: Value,
    calls: Vec<Value>,
    sipp: peerline_interop::SippStats,
    sipp_code: Option<i32>,
    bot_code: Option<i32>,
    logs: String,
}

/// Runs one `peerline bot run` process (load mode) against one `sipp -sn uas`, both
/// stopped by their PIDs at the end whatever happened.
fn run_held(
    bin: &std::path::Path,
    dir: &TestDir,
    calls: u32,
    rate: u32,
    hold: u32,
    play: &str,
    sipp_args: &[&str],
) -> Held {
    let opts = SippOptions::builtin("sipp", "uas")
        .calls(calls)
        .timeout(Duration::from_secs(55))
        .args(sipp_args.iter().copied());
    let mut sipp = Sipp::start(sipp_options(opts, dir, false), dir).unwrap();
    sipp.wait_listening(SippTransport::Udp, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", diag(&sipp, dir)));
    // RTP and RTCP ports for every call at once, with room to spare.
    let ports = u16::try_from(calls * 2 + 400).unwrap();
    let lo = alloc_port_block(ports).unwrap();
    let file = dir.path().join("held.toml");
    let text = held_scenario(
        &sipp.address(),
        (lo, lo + ports - 1),
        calls,
        rate,
        hold,
        play,
    );
    std::fs::write(&file, text).unwrap();
    let json = dir.path().join("held.json");
    let po = ProcessOptions::new("peerline-bot", &bin.display().to_string())
        .args(["bot", "run"])
        .arg(file.display().to_string())
        .arg("--json")
        .arg(json.display().to_string())
        .cwd(dir.path());
    let mut bot = Process::spawn(po, dir.path()).unwrap();
    let bot_code = match bot.wait_exit(Duration::from_secs(58)) {
        Ok(st) => st.code(),
        Err(_) => {
            bot.stop();
            None
        }
    };
    let (sipp_code, stats) = finish_sipp(&mut sipp, dir, Duration::from_secs(10));
    let logs = format!("{}\n{}", tails(&[&bot], 40), diag(&sipp, dir));
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no bot JSON ({e}), exit {bot_code:?}\n{logs}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    Held {
        load: v["load"].clone(),
        calls: v["calls"].as_array().cloned().unwrap_or_default(),
        sipp: stats,
        sipp_code,
        bot_code,
        logs,
    }
}

/// Issue 8, "one process on tokio reaching thousands of concurrent calls": one
/// `peerline bot run` process (load mode, `play = "none"`: no RTP) holds 2,000 calls
/// established at the same time against `sipp -sn uas`: 2,000 placed at up to 500/s, each
/// held 12 s after its answer, so the last starts (4 s at the full rate, 10 s at 200/s)
/// before the first ends. 0 failures counted by the bot and by SIPp; the JSON's
/// `max_established` (swept over each call's answer and end times) is 2,000.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn one_bot_process_holds_2000_calls_at_once_against_sipp_uas() {
    const N: u32 = 2_000;
    let bin = peerline_interop::peerline_binary().unwrap();
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "bot-load-2000-at-once", "udp");
    let dir = TestDir::new("one_bot_process_holds_2000_calls_at_once_against_sipp_uas").unwrap();
    let h = run_held(&bin, &dir, N, 500, 12, "\"none\"", &[]);
    let (load, logs) = (&h.load, &h.logs);
    assert_eq!(load["attempted"], N, "{load:#}\n{logs}");
    assert_eq!(load["succeeded"], N, "{load:#}\n{logs}");
    assert_eq!(load["failed"], 0, "{load:#}\n{logs}");
    assert_eq!(h.bot_code, Some(0), "bot exit code\n{logs}");
    assert_eq!(h.calls.len(), N as usize);
    let established = load["max_established"].as_u64().unwrap();
    let concurrent = load["max_concurrent"].as_u64().unwrap();
    assert!(established >= u64::from(N), "{load:#}");
    assert!(concurrent >= established, "{load:#}");
    // No RTP went either way: the source was "none" and SIPp's uas sends none.
    let sent: u64 = h
        .calls
        .iter()
        .filter_map(|c| c["packets_received"].as_u64())
        .sum();
    assert_eq!(sent, 0, "RTP received without -rtp_echo?");
    assert_eq!(
        (h.sipp.successful, h.sipp.failed),
        (u64::from(N), 0),
        "SIPp: {:?}, exit {:?}\n{logs}",
        h.sipp,
        h.sipp_code
    );
    assert_eq!(h.sipp_code, Some(0), "SIPp exit code\n{logs}");
    let lat = &load["setup_latency_ms"];
    eprintln!(
        "peerline bot run -> sipp uas: {N} calls, 0 failed, {} established at once ({} call \
         tasks), {:.0} calls/s, setup p50 {:.1} ms p99 {:.1} ms max {:.1} ms; test {:.1} s",
        established,
        concurrent,
        load["calls_per_sec"].as_f64().unwrap_or(0.0),
        lat["p50"].as_f64().unwrap_or(0.0),
        lat["p99"].as_f64().unwrap_or(0.0),
        lat["max"].as_f64().unwrap_or(0.0),
        started.elapsed().as_secs_f64()
    );
    entry.pass();
}

/// The same with RTP: one `peerline bot run` process holds `RTP_CALLS` calls at once,
/// each sending PCMU silence that `sipp -sn uas -rtp_echo` sends back, every call
/// receiving some. Fewer calls than without RTP: each sends and receives 50 packets/s,
/// and SIPp echoes them all, on the same two shared cores.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn one_bot_process_holds_calls_with_rtp_at_once_against_sipp_uas() {
    let n: u32 = std::env::var("PEERLINE_RTP_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RTP_CALLS);
    let bin = peerline_interop::peerline_binary().unwrap();
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "bot-load-rtp-at-once", "udp");
    let dir =
        TestDir::new("one_bot_process_holds_calls_with_rtp_at_once_against_sipp_uas").unwrap();
    let h = run_held(&bin, &dir, n, 250, 8, "\"silence\"", &["-rtp_echo"]);
    let (load, logs) = (&h.load, &h.logs);
    assert_eq!(load["attempted"], n, "{load:#}\n{logs}");
    assert_eq!(load["succeeded"], n, "{load:#}\n{logs}");
    assert_eq!(load["failed"], 0, "{load:#}\n{logs}");
    assert_eq!(h.bot_code, Some(0), "bot exit code\n{logs}");
    let established = load["max_established"].as_u64().unwrap();
    assert!(established >= u64::from(n), "{load:#}");
    let quiet: Vec<&Value> = h
        .calls
        .iter()
        .filter(|c| c["packets_received"].as_u64() < Some(50))
        .collect();
    assert!(
        quiet.is_empty(),
        "{} calls received under 50 RTP packets, first: {:#}",
        quiet.len(),
        quiet[0]
    );
    assert_eq!(
        (h.sipp.successful, h.sipp.failed),
        (u64::from(n), 0),
        "SIPp: {:?}, exit {:?}\n{logs}",
        h.sipp,
        h.sipp_code
    );
    assert_eq!(h.sipp_code, Some(0), "SIPp exit code\n{logs}");
    let received: Vec<f64> = h
        .calls
        .iter()
        .filter_map(|c| c["packets_received"].as_f64())
        .collect();
    let loss: Vec<f64> = h
        .calls
        .iter()
        .filter_map(|c| c["loss_percent"].as_f64())
        .collect();
    let lat = &load["setup_latency_ms"];
    eprintln!(
        "peerline bot run -> sipp uas -rtp_echo: {n} calls, 0 failed, {established} established \
         at once, RTP received per call {:.0}..{:.0} packets, loss max {:.2} %, setup p50 {:.1} \
         ms p99 {:.1} ms; test {:.1} s",
        received.iter().cloned().fold(f64::MAX, f64::min),
        received.iter().cloned().fold(f64::MIN, f64::max),
        loss.iter().cloned().fold(0.0, f64::max),
        lat["p50"].as_f64().unwrap_or(0.0),
        lat["p99"].as_f64().unwrap_or(0.0),
        started.elapsed().as_secs_f64()
    );
    entry.pass();
}
