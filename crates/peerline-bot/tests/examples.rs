//! Every example in docs/bots/ runs here against Peerline legs on loopback, so the
//! examples cannot rot; and each is changed once so that it must fail, to show the
//! failure names the step and what was observed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use peerline_bot::{RunOptions, RunResult, Scenario, Status};
use peerline_ua::{AudioSource, Config, Event, MediaOptions, Phone};

/// The audio checks are timing-sensitive: run one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/bots")
        .join(name)
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn run(name: &str, v: &[(&str, &str)]) -> RunResult {
    let scenario = Scenario::load(&example(name), &vars(v)).unwrap();
    peerline_bot::run(scenario, &RunOptions::default())
        .await
        .unwrap()
}

fn assert_passed(r: &RunResult) {
    assert!(r.passed, "{:#?}", r.failures());
    assert!(r.steps.iter().all(|s| s.status == Status::Passed));
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("peerline-bot-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A service for the probe: answers every call with a 1000 Hz tone.
async fn responder() -> Phone {
    let mut c = Config::default();
    c.identity.user = "echo".into();
    c.network.sip_listen = ([127, 0, 0, 1], 0).into();
    let (phone, mut events) = Phone::start(c).await.unwrap();
    let p = phone.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if let Event::Incoming { call, .. } = e {
                let media = MediaOptions {
                    source: AudioSource::Tone(1000.0),
                    record: None,
                };
                let _ = p.answer(call, media).await;
            }
        }
    });
    phone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_passes_against_a_healthy_service_and_names_a_wrong_tone() {
    let _serial = SERIAL.lock().await;
    let service = responder().await;
    let target = service.uri("echo");
    let r = run("probe.toml", &[("target", &target)]).await;
    assert_passed(&r);
    assert_eq!(r.steps.len(), 4);
    assert!(
        r.steps[2].observed.contains("dominant 1000 Hz"),
        "{:?}",
        r.steps[2]
    );

    // The same probe expecting another tone fails at that step, with what it heard.
    let r = run("probe.toml", &[("target", &target), ("tone", "1500")]).await;
    assert!(!r.passed);
    let failures = r.failures();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(
        failures[0].contains("probe.toml:18 [probe] step 3"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("expected tone 1500 Hz"),
        "{}",
        failures[0]
    );
    assert!(failures[0].contains("dominant 1000 Hz"), "{}", failures[0]);
    let junit = r.to_junit();
    assert!(
        junit.contains("<failure message=\"expected tone 1500 Hz"),
        "{junit}"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_fails_when_nobody_answers() {
    let _serial = SERIAL.lock().await;
    // A bound socket that never answers: the call is not answered within 2 s.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("sip:echo@{}", silent.local_addr().unwrap());
    let r = run("probe.toml", &[("target", &target)]).await;
    assert!(!r.passed);
    let f = r.failures();
    assert!(
        f[0].contains("step 2 `expect answered within 2 s`"),
        "{f:#?}"
    );
    assert!(f[0].contains("no response yet"), "{f:#?}");
    // The steps after the failure did not run.
    assert_eq!(r.steps[2].status, Status::Skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ivr_is_navigated_by_digits() {
    let _serial = SERIAL.lock().await;
    let r = run("ivr.toml", &[]).await;
    assert_passed(&r);
    // The IVR took branch 1, then 9 in the sub-menu.
    let ivr: Vec<_> = r.steps.iter().filter(|s| s.leg == "ivr").collect();
    assert!(
        ivr.iter()
            .any(|s| s.step == "4" && s.observed.contains("branch 1")),
        "{ivr:#?}"
    );
    assert!(
        ivr.iter()
            .any(|s| s.step == "4.1.2" && s.observed.contains("branch 9")),
        "{ivr:#?}"
    );

    // Pressing 2 takes the other branch: the caller is told 2 and hung up on, so its
    // expectation of the confirmation 1 fails with what it observed.
    let r = run("ivr.toml", &[("choice", "2")]).await;
    assert!(!r.passed);
    let f = r.failures();
    assert!(f[0].contains("[caller] step 5 `expect_dtmf 1"), "{f:#?}");
    assert!(f[0].contains("observed digits 2"), "{f:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_machine_records_after_ringing() {
    let _serial = SERIAL.lock().await;
    let dir = temp_dir("machine");
    let message = dir.join("message.wav");
    let r = run(
        "answering-machine.toml",
        &[("message", message.to_str().unwrap())],
    )
    .await;
    assert_passed(&r);
    // It rang for 2 s before the machine answered.
    let setup = r.calls.iter().find_map(|c| c.setup_ms).unwrap();
    assert!(setup >= 2000.0, "answered after {setup} ms");
    // The message holds the caller's voice: about the 3-4 s the caller talked.
    let audio = peerline_audio::read_wav(&message).unwrap();
    let secs = audio.duration_secs();
    assert!((2.5..6.0).contains(&secs), "{secs} s recorded");
    let c =
        peerline_bot::audio::correlate(&example("voice.wav"), &audio.samples, audio.sample_rate)
            .unwrap();
    assert!(c > 0.8, "correlation {c}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_200_calls_20_at_a_time() {
    let _serial = SERIAL.lock().await;
    let r = run("load.toml", &[]).await;
    let load = r.load.clone().unwrap();
    assert_eq!(load.attempted, 200, "{load:#?}");
    assert_eq!(load.succeeded, 200, "{load:#?} {:#?}", r.failures());
    assert_eq!(load.failed, 0);
    assert!(
        load.max_concurrent <= 20 && load.max_concurrent >= 2,
        "{load:#?}"
    );
    let p = load.setup_latency_ms.clone().unwrap();
    assert_eq!(p.count, 200);
    assert!(
        p.p50 > 0.0 && p.p50 <= p.p90 && p.p90 <= p.p95 && p.p95 <= p.p99 && p.p99 <= p.max,
        "{p:?}"
    );
    assert_passed(&r);
    // Each caller step ran 200 times; the CSV rows went round.
    let call = r
        .steps
        .iter()
        .find(|s| s.leg == "caller" && s.step == "2")
        .unwrap();
    assert_eq!(call.passes, 200);
    assert_eq!(r.calls.iter().filter(|c| c.outgoing).count(), 200);
    assert_eq!(r.calls.iter().filter(|c| !c.outgoing).count(), 200);
    assert!(
        r.calls.iter().all(|c| c.packets_received > 0),
        "media flowed on every call: {:#?}",
        r.calls
            .iter()
            .filter(|c| c.packets_received == 0)
            .collect::<Vec<_>>()
    );

    // Results and report files.
    let dir = temp_dir("load");
    let (json, junit, svg, html) = (
        dir.join("r.json"),
        dir.join("r.xml"),
        dir.join("r.svg"),
        dir.join("r.html"),
    );
    peerline_bot::write_json(&r, &json).unwrap();
    peerline_bot::write_junit(&r, &junit).unwrap();
    peerline_bot::write_report(&r, &svg).unwrap();
    peerline_bot::write_report(&r, &html).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["load"]["succeeded"], 200);
    assert!(v["load"]["setup_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(v["calls"].as_array().unwrap().len(), 400);
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.starts_with("<?xml")
            && x.contains("<testsuite name=\"load test.load\"")
            && x.trim_end().ends_with("</testsuites>")
    );
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg")
            && s.contains("Calls per second")
            && s.contains("Setup latency")
            && s.contains("MOS")
    );
    assert!(s.matches("<circle").count() >= 200, "a point per call");
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(
        h.starts_with("<!DOCTYPE html>")
            && h.contains("<svg")
            && h.contains("id=\"steps\"")
            && h.contains("PASSED")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_around_and_during_a_call() {
    let _serial = SERIAL.lock().await;
    let r = run("messages.toml", &[]).await;
    assert_passed(&r);
    let step = |leg: &str, n: &str| {
        r.steps
            .iter()
            .find(|s| s.leg == leg && s.step == n)
            .unwrap_or_else(|| panic!("no step {leg} {n}: {:#?}", r.steps))
    };
    // What each side received, and the status each MESSAGE got.
    let hello = step("bob", "1");
    assert!(
        hello
            .observed
            .contains("\"Hello Bob, are you there?\" from")
            && hello.observed.contains("sip:alice@127.0.0.1"),
        "{hello:?}"
    );
    assert_eq!(step("bob", "2").observed, "200");
    assert!(step("alice", "2")
        .observed
        .contains("\"Yes: call me\" from"));
    assert_eq!(step("alice", "6").observed, "200");
    assert!(step("bob", "6").observed.contains("\"Bye for now\""));
    assert!(step("bob", "5").observed.contains("dominant 440 Hz"));

    // A wrong expectation fails at that step, with the message that came instead.
    let path = example("messages.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "expect_message = \"Bye for now\"",
        "expect_message = \"Bye forever\"",
    );
    let scenario = Scenario::parse(&text, &path, &BTreeMap::new()).unwrap();
    let r = peerline_bot::run(scenario, &RunOptions::default())
        .await
        .unwrap();
    assert!(!r.passed);
    let f = r.failures();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].contains("messages.toml:33 [bob] step 6"), "{f:#?}");
    assert!(
        f[0].contains("expected message \"Bye forever\" from alice"),
        "{f:#?}"
    );
    assert!(
        f[0].contains("observed message \"Bye for now\" from"),
        "{f:#?}"
    );
    assert_eq!(step_status(&r, "bob", "7"), Status::Skipped);
}

fn step_status(r: &RunResult, leg: &str, n: &str) -> Status {
    r.steps
        .iter()
        .find(|s| s.leg == leg && s.step == n)
        .map(|s| s.status)
        .unwrap()
}

/// `auth` on a leg: an authenticating UAS. With the right password the caller's MESSAGE
/// and call get through the 401 challenge; with a wrong one the MESSAGE step fails with
/// the 401 it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticating_uas_leg_lets_only_the_right_password_in() {
    let _serial = SERIAL.lock().await;
    let r = run("auth-uas.toml", &[]).await;
    assert_passed(&r);
    let path = example("auth-uas.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "password = \"s3cret\", register",
        "password = \"wrong\", register",
    );
    let scenario = Scenario::parse(&text, &path, &BTreeMap::new()).unwrap();
    let r = peerline_bot::run(scenario, &RunOptions::default())
        .await
        .unwrap();
    assert!(!r.passed);
    let f = r.failures();
    assert!(
        f.iter()
            .any(|f| f.contains("[alice] step 1") && f.contains("401")),
        "{f:#?}"
    );
}

/// `expect_message` in load mode (docs/bots/load-messages.toml): 20 calls, 5 at once,
/// each taking the callee's reply and its own numbered note out of the messages of all
/// the calls in flight; a note expected with the wrong text fails every call, naming
/// the messages left waiting for others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_calls_each_take_their_own_message() {
    let _serial = SERIAL.lock().await;
    let r = run("load-messages.toml", &[]).await;
    assert_passed(&r);
    let load = r.load.clone().unwrap();
    assert_eq!(
        (load.attempted, load.succeeded, load.failed),
        (20, 20, 0),
        "{load:#?}"
    );
    assert!(load.max_concurrent >= 2, "{load:#?}");
    let step = |leg: &str, n: &str| {
        r.steps
            .iter()
            .find(|s| s.leg == leg && s.step == n)
            .unwrap_or_else(|| panic!("no step {leg} {n}"))
            .clone()
    };
    // Every call took its own note (20 passes of the exact `${call.index}` text) and one
    // reply; the callee took one ticket per call.
    for (leg, n) in [("caller", "5"), ("caller", "6"), ("callee", "3")] {
        let s = step(leg, n);
        assert_eq!((s.passes, s.failures), (20, 0), "{s:#?}");
    }
    assert!(step("caller", "6").observed.contains(" placed\" from"));

    // The wrong note: each call waits its `within` and fails, none takes another's.
    let path = example("load-messages.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let want = "{ expect_message = \"call ${call.index} placed\", from = \"caller\", within = 10 }";
    assert!(text.contains(want));
    let text = text
        .replace(
            want,
            "{ expect_message = \"call ${call.index} was placed\", from = \"caller\", within = 1 }",
        )
        .replace("calls = 20", "calls = 5");
    let scenario = Scenario::parse(&text, &path, &BTreeMap::new()).unwrap();
    let r = peerline_bot::run(scenario, &RunOptions::default())
        .await
        .unwrap();
    assert!(!r.passed);
    let load = r.load.clone().unwrap();
    assert_eq!((load.attempted, load.failed), (5, 5), "{load:#?}");
    let s = r
        .steps
        .iter()
        .find(|s| s.leg == "caller" && s.step == "6")
        .unwrap();
    assert_eq!(s.failures, 5, "{s:#?}");
    assert!(
        s.observed.contains("no matching message within 1 s")
            && s.observed.contains("waiting for the other calls"),
        "{}",
        s.observed
    );
}
