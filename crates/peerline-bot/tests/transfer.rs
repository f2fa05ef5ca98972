//! Blind transfer between bot legs on loopback: alice transfers bob to carol and bob
//! follows the new call (docs/bots/transfer.toml); a transfer to a busy target fails
//! naming the step and the status observed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use peerline_bot::{RunOptions, RunResult, Scenario, Status};

/// The audio checks are timing-sensitive: one scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/bots")
        .join(name)
}

async fn run(scenario: Scenario) -> RunResult {
    peerline_bot::run(scenario, &RunOptions::default())
        .await
        .unwrap()
}

fn step<'a>(r: &'a RunResult, leg: &str, n: &str) -> &'a peerline_bot::StepResult {
    r.steps
        .iter()
        .find(|s| s.leg == leg && s.step == n)
        .unwrap_or_else(|| panic!("no step {leg} {n}: {:#?}", r.steps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transferee_follows_the_new_call_and_hears_the_target() {
    let _serial = SERIAL.lock().await;
    let scenario = Scenario::load(&example("transfer.toml"), &BTreeMap::new()).unwrap();
    let r = run(scenario).await;
    assert!(r.passed, "{:#?}", r.failures());
    assert!(r.steps.iter().all(|s| s.status == Status::Passed));
    // alice heard bob before the transfer; the transfer ended 200.
    assert!(step(&r, "alice", "4").observed.contains("660 Hz present"));
    let t = step(&r, "alice", "5");
    assert!(t.observed.starts_with("ended 200"), "{t:?}");
    // bob heard alice, was referred to carol, then heard carol on the new call.
    assert!(step(&r, "bob", "4").observed.contains("440 Hz present"));
    let e = step(&r, "bob", "5");
    assert!(
        e.observed.starts_with("referred to sip:carol@127.0.0.1:"),
        "{e:?}"
    );
    let s6 = step(&r, "bob", "6");
    assert!(s6.observed.contains("880 Hz present"), "{s6:?}");
    // carol heard bob (not alice).
    assert!(step(&r, "carol", "4").observed.contains("660 Hz present"));
    // Calls: alice→bob (ended by the transfer), bob→carol placed by bob's phone.
    let bob_calls: Vec<_> = r.calls.iter().filter(|c| c.leg == "bob").collect();
    assert_eq!(bob_calls.len(), 2, "{:#?}", r.calls);
    assert!(!bob_calls[0].outgoing && bob_calls[1].outgoing);
    assert!(bob_calls[1].setup_ms.is_some());
    let alice = r.calls.iter().find(|c| c.leg == "alice").unwrap();
    assert_eq!(alice.end_reason, "transferred");
}

/// Without `expect_transfer`, the transferee follows the new call at its next step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transferee_without_expect_transfer_follows_at_its_next_step() {
    let _serial = SERIAL.lock().await;
    let path = example("transfer.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let bob_step = "  { expect_transfer = \"${leg.carol.uri}\", within = 10 },\n";
    assert!(text.contains(bob_step));
    // The wait ends early when alice's BYE ends bob's first call.
    let text = text.replace(bob_step, "  { wait = 8 },\n");
    let scenario = Scenario::parse(&text, &path, &BTreeMap::new()).unwrap();
    let r = run(scenario).await;
    assert!(r.passed, "{:#?}", r.failures());
    let s6 = step(&r, "bob", "6");
    assert!(s6.observed.contains("880 Hz present"), "{s6:?}");
    assert!(step(&r, "carol", "4").observed.contains("660 Hz present"));
    assert!(step(&r, "bob", "5").duration_secs < 7.0);
}

const BUSY_TARGET: &str = r#"
name = "transfer to a busy target"
timeout = 30

[[leg]]
name = "alice"
steps = [
  { call = "${leg.bob.uri}" },
  { expect = "answered", within = 5 },
  { transfer = "${leg.carol.uri}", timeout = 10 },
]

[[leg]]
name = "bob"
steps = [
  { expect = "incoming", within = 5 },
  "answer",
  { expect_transfer = true, within = 10 },
]

[[leg]]
name = "carol"
steps = [
  { expect = "incoming", within = 10 },
  { reject = 486 },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_a_busy_target_fails_with_the_status_observed() {
    let _serial = SERIAL.lock().await;
    let scenario = Scenario::parse(BUSY_TARGET, Path::new("busy.toml"), &BTreeMap::new()).unwrap();
    let r = run(scenario).await;
    assert!(!r.passed);
    let failures = r.failures();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    let t = step(&r, "alice", "3");
    assert_eq!(t.status, Status::Failed);
    assert_eq!(t.line, 10);
    assert!(
        failures[0].starts_with("busy.toml:10 [alice] step 3 `transfer to ${leg.carol.uri} ending 2xx within 10 s` failed: expected transfer to sip:carol@127.0.0.1:"),
        "{}",
        failures[0]
    );
    assert!(t.expected.contains("ending 2xx"), "{t:?}");
    assert!(t.observed.starts_with("ended 486"), "{t:?}");
    // The REFER itself was accepted (202) before the target refused.
    assert!(t.observed.contains("202"), "{t:?}");
    // bob was referred, but his call to carol was refused: his old call stays up.
    let b = step(&r, "bob", "3");
    assert_eq!(b.status, Status::Failed);
    assert!(
        b.observed.starts_with("referred to sip:carol@127.0.0.1:")
            && b.observed
                .contains("our call to it failed with 486; the old call stays up"),
        "{b:?}"
    );
    assert_eq!(step(&r, "carol", "2").status, Status::Passed);
}

/// A `record` step on the transferee: the first call records to the file named, and the
/// call the phone places to the transfer target to a file of its own beside it
/// (`bob.wav` → `bob.call<N>.wav`), so the second does not overwrite the first (nor
/// write into it while the first is still ending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transferee_recording_goes_to_a_file_per_call() {
    let _serial = SERIAL.lock().await;
    let path = example("transfer.toml");
    let dir =
        std::env::temp_dir().join(format!("peerline-bot-transfer-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("bob.wav");
    let text = std::fs::read_to_string(&path).unwrap();
    let bob_first = "  { play = { tone = 660 } },\n  { expect = \"incoming\", within = 5 },\n";
    assert!(text.contains(bob_first));
    let text = text.replace(
        bob_first,
        &format!(
            "  {{ play = {{ tone = 660 }} }},\n  {{ record = \"{}\" }},\n  {{ expect = \"incoming\", within = 5 }},\n",
            rec.display()
        ),
    );
    let scenario = Scenario::parse(&text, &path, &BTreeMap::new()).unwrap();
    let r = run(scenario).await;
    assert!(r.passed, "{:#?}", r.failures());
    // bob's steps moved one down: 7 is the check of carol's tone on the new call.
    assert!(step(&r, "bob", "7").observed.contains("880 Hz present"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with("bob.call") && files[0].ends_with(".wav"),
        "{files:?}"
    );
    assert_eq!(files[1], "bob.wav");
    let tone = |name: &str, hz: f32| {
        let a = peerline_audio::read_wav(dir.join(name)).unwrap();
        peerline_bot::audio::judge(
            &peerline_bot::scenario::AudioCheck::Tone(hz),
            &a.samples,
            a.sample_rate,
            std::time::Duration::from_secs(1),
        )
    };
    // The first call (from alice) heard 440 Hz; the second (to carol) 880 Hz.
    let first = tone("bob.wav", 440.0);
    assert!(first.passed, "bob.wav: {}", first.observed);
    let second = tone(&files[0], 880.0);
    assert!(second.passed, "{}: {}", files[0], second.observed);
    let crossed = tone("bob.wav", 880.0);
    assert!(
        !crossed.passed,
        "bob.wav holds carol's tone: {}",
        crossed.observed
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Transfer in load mode: each of 10 calls (5 at once) from the load leg is answered by
/// bob, who transfers it to carol; the caller's call follows (`expect_transfer`) and
/// hears carol's tone, carol hears the caller's. Every call of every leg passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_mode_calls_are_transferred_and_follow() {
    let _serial = SERIAL.lock().await;
    let text = r#"
name = "load transfer"
timeout = 60

[load]
leg = "caller"
calls = 10
concurrency = 5
rate = 5

[[leg]]
name = "caller"
steps = [
  { play = { tone = 660 } },
  { call = "${leg.bob.uri}", timeout = 10 },
  { expect = "answered", within = 5 },
  { expect_transfer = "${leg.carol.uri}", within = 15 },
  { expect_audio = { tone = 880 }, for = 1, within = 3 },
  "hangup",
]

[[leg]]
name = "bob"
steps = [
  { expect = "incoming", within = 30 },
  { play = { tone = 440 } },
  "answer",
  { wait = 0.5 },
  { transfer = "${leg.carol.uri}", expect_status = 200, timeout = 10 },
]

[[leg]]
name = "carol"
steps = [
  { expect = "incoming", within = 30 },
  { play = { tone = 880 } },
  "answer",
  { expect_audio = { tone = 660 }, for = 1, within = 3 },
  { expect_hangup = true, within = 10 },
]
"#;
    let scenario =
        Scenario::parse(text, Path::new("load-transfer.toml"), &BTreeMap::new()).unwrap();
    let r = run(scenario).await;
    assert!(r.passed, "{:#?}", r.failures());
    let load = r.load.clone().unwrap();
    assert_eq!(
        (load.attempted, load.succeeded, load.failed),
        (10, 10, 0),
        "{load:#?}"
    );
    for (leg, n) in [
        ("caller", "4"),
        ("caller", "5"),
        ("bob", "5"),
        ("carol", "4"),
    ] {
        let s = step(&r, leg, n);
        assert_eq!((s.passes, s.failures), (10, 0), "{s:#?}");
    }
    // Per caller call: the call to bob and the one to carol its phone placed.
    let caller_calls = r.calls.iter().filter(|c| c.leg == "caller").count();
    assert_eq!(caller_calls, 20, "{:#?}", r.calls);
    assert_eq!(r.calls.iter().filter(|c| c.leg == "carol").count(), 10);
}
