//! Issue 8, done-when 2 (signaling): a bot in load mode places 2,000 calls at 200 calls/s,
//! at most 200 at once, against a real `sipp -sn uas`. Every call is answered and hung up
//! with 0 failures, counted by the bot and by SIPp; the bot's JSON result holds the setup
//! latency percentiles.
//!
//! Each call holds for 0.5 s, so about 100 are up at once, with RTP flowing both ways: the
//! bot sends PCMU silence and SIPp (`-rtp_echo`) sends it back; every call received some.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use peerline_bot::{RunOptions, Scenario};
use peerline_interop::{alloc_port_block, MatrixEntry, Sipp, SippOptions, SippTransport, TestDir};
use serde_json::Value;
use sipp_support::{diag, finish_sipp, runtime, sipp_options};

const CALLS: u32 = 2_000;
const RATE: u32 = 200;
const CONCURRENCY: u32 = 200;

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
