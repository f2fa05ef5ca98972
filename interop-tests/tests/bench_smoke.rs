//! `cargo xtask bench --smoke` (issue 9): the side-by-side harness runs one tiny step of
//! each figure — SIPp → Peerline UAS, SIPp → SIPp, Peerline bot UAC → SIPp, memory per
//! call — and writes figures that parse. Debug binaries (a release build does not fit the
//! CI budget), so nothing here is about speed: no rate or memory figure is asserted, only
//! that calls completed with 0 failures at the smoke rate, that RSS was read, and that
//! one latency run measured each of figures 5 and 7, and that the media step held its
//! calls with SRTP for each subject and codec.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use peerline_interop::{target_dir, workspace_dir, Process, ProcessOptions, TestDir};

/// The `key=value` fields of the `results.txt` lines that start with `kind`.
fn lines<'a>(text: &'a str, kind: &str) -> Vec<HashMap<&'a str, &'a str>> {
    text.lines()
        .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' '))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .collect()
        })
        .collect()
}

fn num(fields: &HashMap<&str, &str>, key: &str) -> f64 {
    fields
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {fields:?}"))
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn bench_smoke_pass_writes_parsed_figures() {
    let dir = TestDir::new("bench_smoke").unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let opts = ProcessOptions::new("xtask-bench", &cargo)
        .args(["run", "--quiet", "-p", "xtask", "--", "bench", "--smoke"])
        .cwd(workspace_dir());
    let mut bench = Process::spawn(opts, dir.path()).unwrap();
    // Debug builds are normally already there (cargo test built them); the run takes
    // 2-3 min (signaling steps, memory, the media steps, one latency run, 5 s of idle).
    let status = bench.wait_exit(Duration::from_secs(600)).unwrap();
    let log = std::fs::read_to_string(dir.path().join("xtask-bench.stdout.log"))
        .unwrap_or_default()
        + &std::fs::read_to_string(dir.path().join("xtask-bench.stderr.log")).unwrap_or_default();
    assert!(
        status.success(),
        "cargo xtask bench --smoke: {status}\n{log}"
    );

    let results = target_dir().join("bench/smoke/results.txt");
    let text = std::fs::read_to_string(&results).unwrap();
    for pair in ["sipp-to-peerline", "sipp-to-sipp", "peerline-bot-to-sipp"] {
        let steps: Vec<_> = lines(&text, "step")
            .into_iter()
            .filter(|f| f.get("pair") == Some(&pair))
            .collect();
        assert_eq!(steps.len(), 1, "{pair}: one smoke step\n{text}\n{log}");
        let s = &steps[0];
        assert!(
            num(s, "ok") > 0.0,
            "{pair}: no call completed\n{text}\n{log}"
        );
        assert_eq!(num(s, "failed"), 0.0, "{pair}: failed calls\n{text}\n{log}");
        assert_eq!(num(s, "ok"), num(s, "calls"), "{pair}\n{text}");
        assert!(num(s, "achieved") > 0.0, "{pair}\n{text}");
    }
    let memory = lines(&text, "memory");
    for (who, codec) in [("Peerline", "PCMU"), ("Peerline", "opus"), ("sipp", "PCMU")] {
        let m = memory
            .iter()
            .find(|f| f.get("who") == Some(&who) && f.get("codec") == Some(&codec))
            .unwrap_or_else(|| panic!("no memory figure for {who} {codec}\n{text}\n{log}"));
        assert_eq!(
            num(m, "held"),
            num(m, "calls"),
            "{who} {codec}: calls not all up\n{text}"
        );
        assert!(
            num(m, "idle_kib") > 0.0 && num(m, "loaded_kib") > 0.0,
            "{text}"
        );
    }
    let section =
        std::fs::read_to_string(target_dir().join("bench/smoke/benchmarks-section.md")).unwrap();
    assert!(
        section.contains("### 1. Signaling, Peerline as UAS"),
        "{section}"
    );
    assert!(section.contains("ratio"), "{section}");

    // Figures 5 and 7 (one run): every figure measured, each a plausible number of ms.
    let text =
        std::fs::read_to_string(target_dir().join("bench/smoke/latency-results.txt")).unwrap();
    let f = &lines(&text, "latency")[0];
    assert_eq!(num(f, "errors"), 0.0, "{text}\n{log}");
    for key in [
        "one_way_ms",
        "dial_to_pair_ms",
        "dial_to_first_rtp_ms",
        "start_to_registered_ms",
    ] {
        let v = num(f, key);
        assert!(v > 0.0 && v < 10_000.0, "{key} = {v}\n{text}\n{log}");
    }
    // First RTP comes after the pair is selected.
    assert!(
        num(f, "dial_to_first_rtp_ms") >= num(f, "dial_to_pair_ms"),
        "{text}"
    );
    let section =
        std::fs::read_to_string(target_dir().join("bench/smoke/latency-section.md")).unwrap();
    assert!(section.contains("5. mouth-to-ear, one way"), "{section}");
    assert!(section.contains("7. CLI start → registered"), "{section}");

    // Concurrent media calls per core (one 5-call step per subject and codec): every call
    // up with SDES-SRTP, the counters read on each side, CPU read; no verdict asserted
    // (debug binaries on a shared machine).
    let text = std::fs::read_to_string(target_dir().join("bench/smoke/media-results.txt")).unwrap();
    let steps = lines(&text, "media");
    for subject in ["peerline", "baresip"] {
        for codec in ["PCMU", "opus"] {
            let f = steps
                .iter()
                .find(|f| f.get("subject") == Some(&subject) && f.get("codec") == Some(&codec))
                .unwrap_or_else(|| panic!("no media step {subject} {codec}\n{text}\n{log}"));
            assert_eq!(num(f, "calls"), 5.0, "{text}");
            assert_eq!(
                num(f, "up"),
                5.0,
                "{subject} {codec}: calls up\n{text}\n{log}"
            );
            assert_eq!(num(f, "srtp_calls"), 5.0, "{subject} {codec}: SRTP\n{text}");
            let cpu = num(f, "cpu_percent");
            assert!(
                (0.0..=400.0).contains(&cpu),
                "{subject} {codec}: cpu {cpu}\n{text}"
            );
            let bad = num(f, "ref_bad_percent");
            assert!((0.0..=100.0).contains(&bad), "{text}");
            assert!(
                num(f, "ref_pps") > 10.0,
                "{subject} {codec}: media flowed\n{text}"
            );
        }
    }
    assert_eq!(lines(&text, "media_best").len(), 4, "{text}");
    let section =
        std::fs::read_to_string(target_dir().join("bench/smoke/media-section.md")).unwrap();
    assert!(
        section.contains("Concurrent media calls per core"),
        "{section}"
    );
}

/// `cargo xtask bench idle --smoke`: figure 6's harness (SIPp as registrar, a `dumpcap`
/// capture, `peerline register --stay`) runs for 5 s and counts what it saw: the
/// registration and its removal each way, bytes from the capture, and the CPU read.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn bench_idle_smoke_counts_a_registered_phone() {
    let dir = TestDir::new("bench_idle_smoke").unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let opts = ProcessOptions::new("xtask-bench-idle", &cargo)
        .args([
            "run", "--quiet", "-p", "xtask", "--", "bench", "idle", "--smoke",
        ])
        .cwd(workspace_dir());
    let mut bench = Process::spawn(opts, dir.path()).unwrap();
    let status = bench.wait_exit(Duration::from_secs(240)).unwrap();
    let log = std::fs::read_to_string(dir.path().join("xtask-bench-idle.stdout.log"))
        .unwrap_or_default()
        + &std::fs::read_to_string(dir.path().join("xtask-bench-idle.stderr.log"))
            .unwrap_or_default();
    assert!(
        status.success(),
        "cargo xtask bench idle --smoke: {status}\n{log}"
    );
    let text = std::fs::read_to_string(target_dir().join("bench/smoke/idle-results.txt")).unwrap();
    let f = &lines(&text, "idle")[0];
    assert!(num(f, "secs") >= 5.0, "{text}");
    // A REGISTER and its 200, and the unregistering REGISTER and its 200, at the least.
    assert!(num(f, "bytes_sent") > 300.0, "{text}\n{log}");
    assert!(num(f, "bytes_received") > 200.0, "{text}\n{log}");
    assert!(num(f, "messages") >= 2.0, "{text}\n{log}");
    assert!(num(f, "cpu_secs") >= 0.0, "{text}");
    let section =
        std::fs::read_to_string(target_dir().join("bench/smoke/idle-section.md")).unwrap();
    assert!(section.contains("sent REGISTER"), "{section}");
    assert!(section.contains("received SIP/2.0 200"), "{section}");
}
