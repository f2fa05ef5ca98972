//! Issue 8, done-when 3: a bot calls a real baresip 1.0 that auto-answers and plays a
//! 1000 Hz tone from a WAV (`aufile`). The bot's `expect_audio { tone = 1000 }` passes;
//! the same scenario expecting another frequency fails, naming the step, its line and the
//! frequency observed (the CLI turns a failed run into exit code 1:
//! `crates/peerline/tests/bot_cli.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use peerline_bot::{RunOptions, Scenario};
use peerline_interop::{tails, write_tone_wav, Baresip, BaresipOptions, MatrixEntry, TestDir};
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One leg calls baresip (plain RTP, PCMU, as baresip is configured), checks the tone
/// `${tone}` for 2 s of a 3 s window, and hangs up.
fn scenario(target: &str) -> String {
    format!(
        r#"# Written by interop-tests/tests/bot_baresip.rs
name = "bot against baresip"
timeout = 30

[vars]
tone = 1000

[[leg]]
name = "caller"
srtp = "off"
codecs = ["PCMU"]
steps = [
  {{ call = "{target}", timeout = 10 }},
  {{ expect = "answered", within = 5 }},
  {{ expect_audio = {{ tone = "${{tone}}" }}, for = 2, within = 3 }},
  "hangup",
]
"#
    )
}

/// Runs the scenario file with `tone` and returns its JSON result as `--json` writes it.
fn run(rt: &tokio::runtime::Runtime, file: &Path, tone: &str) -> Value {
    let vars = BTreeMap::from([("tone".to_string(), tone.to_string())]);
    let scenario = Scenario::load(file, &vars).unwrap();
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(40),
            peerline_bot::run(scenario, &RunOptions::default()),
        )
        .await
        .expect("the bot run took over 40 s")
        .unwrap()
    });
    let json = file.with_extension(format!("{tone}.json"));
    peerline_bot::write_json(&result, &json).unwrap();
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// The frequency in "…; dominant 1000 Hz at -9 dBFS".
fn dominant(observed: &str) -> f64 {
    observed
        .split_once("dominant ")
        .and_then(|(_, r)| r.split_once(" Hz"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no dominant frequency in {observed:?}"))
}

fn steps(v: &Value) -> &Vec<Value> {
    v["steps"].as_array().expect("steps[] in the JSON")
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn expect_audio_hears_baresips_tone_and_fails_on_another_frequency() {
    let started = Instant::now();
    let entry = MatrixEntry::new("baresip", "bot-expect-audio", "udp");
    let dir =
        TestDir::new("expect_audio_hears_baresips_tone_and_fails_on_another_frequency").unwrap();
    let wav = dir.path().join("tone1000.wav");
    // Longer than both calls: baresip restarts the file for each call it answers.
    write_tone_wav(&wav, 1000.0, 8000, 1, 20.0, 0.5).unwrap();
    let mut b = Baresip::start(
        BaresipOptions::new("b")
            .audio_source(&wav)
            .audio_format(8000, 1)
            .audio_codecs("PCMU")
            .run_for(Duration::from_secs(40)),
        &dir,
    )
    .unwrap();
    b.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
    let rt = runtime();
    let file = dir.path().join("call-baresip.toml");
    std::fs::write(&file, scenario(&b.uri())).unwrap();

    let v = run(&rt, &file, "1000");
    let logs = |b: &Baresip| tails(&[b.process()], 40);
    assert_eq!(v["passed"], true, "{v:#}\n{}", logs(&b));
    assert_eq!(steps(&v).len(), 4, "{v:#}");
    for s in steps(&v) {
        assert_eq!(s["status"], "passed", "{s:#}\n{}", logs(&b));
    }
    let heard = steps(&v)[2]["observed"].as_str().unwrap().to_string();
    assert!(heard.starts_with("1000 Hz present"), "{heard}");
    assert!((dominant(&heard) - 1000.0).abs() < 20.0, "{heard}");
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{v:#}");
    assert_eq!(calls[0]["codec"], "PCMU", "{v:#}");
    assert!(calls[0]["packets_received"].as_u64() > Some(100), "{v:#}");

    // The same scenario expecting 700 Hz: step 3 fails, observing baresip's 1000 Hz.
    let v = run(&rt, &file, "700");
    assert_eq!(v["passed"], false, "{v:#}");
    let failed: Vec<&Value> = steps(&v)
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{v:#}\n{}", logs(&b));
    let f = failed[0];
    assert_eq!(f["leg"], "caller");
    assert_eq!(f["step"], "3");
    assert_eq!(f["line"], 15, "{f:#}");
    assert_eq!(f["action"], "expect_audio tone 700 Hz for 2 s within 3 s");
    let observed = f["observed"].as_str().unwrap();
    assert!(observed.starts_with("700 Hz present 0.0 s of "), "{f:#}");
    assert!((dominant(observed) - 1000.0).abs() < 20.0, "{f:#}");
    // Audio is judged when the call ends, so the hangup after it still ran.
    assert_eq!(steps(&v)[3]["status"], "passed", "{v:#}");

    b.stop();
    entry.pass();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
