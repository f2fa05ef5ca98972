//! Issue 8, done-when 1: a bot scenario through a real Kamailio 5.6 (registrar + proxy,
//! digest users in SQLite). Two legs, alice and bob, each with an account at Kamailio:
//! both `register`; bob tells alice he is ready by MESSAGE; alice calls bob's AOR through
//! the proxy, bob answers; each checks the other's tone with `expect_audio`; alice sends
//! DTMF and a MESSAGE that bob expects; bob hangs up. The bot's JSON result (what
//! `peerline bot run --json` writes) says passed for every step. The same scenario with
//! one wrong expectation fails, naming that step and what was observed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use peerline_bot::{RunOptions, Scenario};
use peerline_interop::{tails, Kamailio, KamailioOptions, MatrixEntry, TestDir};
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A leg's account at Kamailio: registrar and outbound proxy are Kamailio itself.
fn account(kam: &Kamailio, user: &str, password: &str) -> String {
    format!(
        "account = {{ aor = \"{}\", password = \"{password}\", registrar = \"{}\", outbound_proxy = \"{}\", expires = 300 }}",
        kam.aor(user),
        kam.proxy_uri(),
        kam.proxy_uri()
    )
}

/// The scenario; `bob_expects` is the text bob's `expect_message` step wants. Both phones
/// start registering when the run starts; bob waits 1 s after his own registration before
/// messaging alice's AOR, so hers (a few ms on loopback) is surely done and Kamailio can
/// route to her.
fn scenario(kam: &Kamailio, bob_expects: &str) -> String {
    format!(
        r#"# Written by interop-tests/tests/bot_kamailio.rs
name = "bot through kamailio"
timeout = 40

[[leg]]
name = "alice"
{alice_account}
steps = [
  {{ register = true, within = 5 }},
  {{ expect_message = "bob is ready", from = "bob", within = 10 }},
  {{ play = {{ tone = 440 }} }},
  {{ call = "{bob}", timeout = 10 }},
  {{ expect = "answered", within = 5 }},
  {{ expect_audio = {{ tone = 1000 }}, for = 1, within = 1.5 }},
  {{ send_dtmf = "42#" }},
  {{ send_message = "hello bob", to = "{bob}" }},
  {{ expect_hangup = true, within = 10 }},
]

[[leg]]
name = "bob"
{bob_account}
steps = [
  {{ register = true, within = 5 }},
  {{ wait = 1 }},
  {{ send_message = "bob is ready", to = "{alice}" }},
  {{ expect = "incoming", within = 10 }},
  {{ play = {{ tone = 1000 }} }},
  "answer",
  {{ expect_audio = {{ tone = 440 }}, for = 1, within = 1.5 }},
  {{ expect_dtmf = "42#", within = 5 }},
  {{ expect_message = "{bob_expects}", from = "alice", within = 5 }},
  "hangup",
]
"#,
        alice_account = account(kam, "alice", "alice-secret"),
        bob_account = account(kam, "bob", "bob-secret"),
        alice = kam.aor("alice"),
        bob = kam.aor("bob"),
    )
}

/// Runs the scenario file and returns its JSON result as `--json` writes it.
fn run(rt: &tokio::runtime::Runtime, file: &Path) -> Value {
    let scenario = Scenario::load(file, &BTreeMap::new()).unwrap();
    let result = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            peerline_bot::run(scenario, &RunOptions::default()),
        )
        .await
        .expect("the bot run took over 60 s")
        .unwrap()
    });
    let json = file.with_extension("json");
    peerline_bot::write_json(&result, &json).unwrap();
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn steps(v: &Value) -> &Vec<Value> {
    v["steps"].as_array().expect("steps[] in the JSON")
}

fn step<'a>(v: &'a Value, leg: &str, n: &str) -> &'a Value {
    steps(v)
        .iter()
        .find(|s| s["leg"] == leg && s["step"] == n)
        .unwrap_or_else(|| panic!("no step {leg} {n} in {v:#}"))
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn bot_legs_register_call_and_message_through_kamailio() {
    let started = Instant::now();
    let entry = MatrixEntry::new("kamailio", "bot-scenario", "udp");
    let dir = TestDir::new("bot_legs_register_call_and_message_through_kamailio").unwrap();
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .user("alice", "alice-secret")
            .user("bob", "bob-secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let rt = runtime();

    let good = dir.path().join("through-kamailio.toml");
    std::fs::write(&good, scenario(&kam, "hello bob")).unwrap();
    let v = run(&rt, &good);
    let logs = || tails(&[kam.process()], 40);
    assert_eq!(v["passed"], true, "{v:#}\n{}", logs());
    assert_eq!(steps(&v).len(), 9 + 10, "{v:#}");
    for s in steps(&v) {
        assert_eq!(s["status"], "passed", "{s:#}\n{}", logs());
    }
    for leg in ["alice", "bob"] {
        let reg = step(&v, leg, "1");
        assert!(
            reg["observed"]
                .as_str()
                .is_some_and(|o| o.starts_with("registered for ")),
            "{reg:#}"
        );
    }
    let observed = |leg: &str, n: &str| step(&v, leg, n)["observed"].as_str().unwrap().to_string();
    // Messages went through Kamailio (challenged, resent with credentials, 200).
    assert_eq!(observed("bob", "3"), "200");
    assert_eq!(observed("alice", "8"), "200");
    assert!(observed("alice", "2").contains("\"bob is ready\" from"));
    assert!(observed("bob", "9").contains("\"hello bob\" from"));
    // Each side heard the other's tone, and bob the digits.
    assert!(observed("alice", "6").contains("dominant 1000 Hz"), "{v:#}");
    assert!(observed("bob", "7").contains("dominant 440 Hz"), "{v:#}");
    assert_eq!(observed("bob", "8"), "digits 42#");
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{v:#}");
    assert!(calls
        .iter()
        .all(|c| c["packets_received"].as_u64() > Some(40)));

    // One wrong expectation: bob waits for another text. That step fails with what came,
    // bob's last step is skipped, everything else still passes.
    let bad = dir.path().join("wrong-expectation.toml");
    std::fs::write(&bad, scenario(&kam, "hello carol")).unwrap();
    let v = run(&rt, &bad);
    assert_eq!(v["passed"], false, "{v:#}");
    let failed: Vec<&Value> = steps(&v)
        .iter()
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{v:#}\n{}", logs());
    let f = failed[0];
    assert_eq!(f["leg"], "bob");
    assert_eq!(f["step"], "9");
    assert_eq!(f["line"], 32, "{f:#}");
    assert!(
        f["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("expect_message \"hello carol\" from alice")),
        "{f:#}"
    );
    assert!(
        f["observed"]
            .as_str()
            .is_some_and(|o| o.contains("\"hello bob\" from")),
        "{f:#}"
    );
    assert_eq!(step(&v, "bob", "10")["status"], "skipped");

    kam.stop();
    entry.pass();
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
}
