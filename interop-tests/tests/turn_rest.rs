//! TURN REST credentials (coturn `--use-auth-secret --static-auth-secret=…`, the "TURN REST
//! API"): `peerline doctor --json` with `[[ice.turn]] secret = …` against a real coturn on
//! loopback allocates a relayed address with the credentials it derives, and a wrong
//! secret is refused with a clear reason (401) — the secret never shows in the output.
//! And in the NAT lab (as `ice_nat.rs`'s relayed cases, but with a secret instead of a
//! static user): two `ice-peer`s behind symmetric NATs connect through coturn's relay with
//! REST credentials each derived when it gathers.
//!
//! Run as root: `cargo test -p peerline-interop --test turn_rest -- --ignored --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use peerline_interop::{
    tails, wait_for, Coturn, CoturnOptions, LabHost, MatrixEntry, Nat, NatLab, Process,
    ProcessOptions, TestDir,
};
use serde_json::Value;

const SECRET: &str = "north-wind-7f3a";

/// `peerline --config DIR/NAME.toml doctor --json --timeout 3` with only `[[ice.turn]]`.
fn doctor(bin: &Path, dir: &TestDir, name: &str, turn: &Coturn, secret: &str) -> Output {
    let config = format!(
        "[network]\nsip_listen = \"127.0.0.1:0\"\n\n[ice]\nenabled = true\n\n[[ice.turn]]\n\
         url = \"turn:{}\"\nsecret = \"{secret}\"\nusername = \"doctor\"\nttl_secs = 600\n",
        turn.address()
    );
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    Command::new(bin)
        .arg("--config")
        .arg(&path)
        .args(["doctor", "--json", "--timeout", "3"])
        .output()
        .unwrap()
}

#[ignore = "needs real peers; run by cargo xtask test"]
#[test]
fn doctor_allocates_with_rest_credentials_and_a_wrong_secret_gets_401() {
    let mut entry = MatrixEntry::new("coturn", "turn-rest-credentials", "udp");
    let bin = peerline_interop::peerline_binary().unwrap();
    let dir = TestDir::new("turn_rest_doctor").unwrap();
    let mut turn = Coturn::start(CoturnOptions::new().rest_secret(SECRET), &dir).unwrap();
    turn.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[turn.process()], 40)));

    // The right secret: derived credentials, an allocation, a relayed address.
    let out = doctor(&bin, &dir, "right", &turn, SECRET);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout:\n{stdout}\nstderr:\n{stderr}\n{}",
            tails(&[turn.process()], 40)
        )
    });
    let t = &v["turn"][0];
    assert_eq!(t["ok"], true, "{v}\n{}", tails(&[turn.process()], 40));
    let relayed = t["address"].as_str().unwrap_or_default();
    assert!(relayed.starts_with("127.0.0.1:"), "{v}");
    assert!(
        t["result"]
            .as_str()
            .unwrap_or_default()
            .starts_with("allocate ok, relayed address: 127.0.0.1:"),
        "{v}"
    );
    assert_eq!(v["ok"], true, "{v}");
    assert!(out.status.success(), "{v}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    // coturn saw a REST user name: "<expiry>:doctor".
    let log = turn.process().log_tail(400);
    assert!(
        log.lines()
            .any(|l| l.contains(":doctor") && l.contains("user <")),
        "no REST user name in coturn's log\n{log}"
    );

    // ... and the expiry coturn saw is now + ttl_secs (600 s).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = log
        .split("username=<")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no username=<expiry:doctor> in coturn's log\n{log}"));
    assert!(
        (now + 550..=now + 600).contains(&expiry),
        "expiry {expiry}, now {now}"
    );

    // A wrong secret: refused with 401, and doctor fails.
    let out = doctor(&bin, &dir, "wrong", &turn, "not-the-secret");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let t = &v["turn"][0];
    assert_eq!(t["ok"], false, "{v}");
    let result = t["result"].as_str().unwrap_or_default();
    assert!(
        result.starts_with("allocation refused:") && result.contains("401"),
        "{v}"
    );
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert!(!stdout.contains("not-the-secret"));

    entry.note(format!(
        "doctor --json with [[ice.turn]] secret: allocate ok ({relayed}); wrong secret: {result}"
    ));
    entry.pass();
    turn.stop();
}

/// One `ice-peer` in `host`'s namespace with `--turn-secret`.
fn rest_peer(name: &str, other: &str, controlling: bool, host: &LabHost, dir: &TestDir) -> Process {
    let server = format!("{}:3478", NatLab::PUBLIC_SERVER_IP);
    let role = if controlling {
        "controlling"
    } else {
        "controlled"
    };
    let o = ProcessOptions::new(&format!("ice-{name}"), env!("CARGO_BIN_EXE_ice-peer"))
        .args(["--name", name, "--peer", other, "--role", role])
        .args(["--dir", &dir.path().display().to_string()])
        .args(["--stun", &server, "--timeout-ms", "25000"])
        .args([
            "--turn",
            &server,
            "--turn-secret",
            SECRET,
            "--turn-user",
            name,
        ])
        .netns(Some(&host.netns))
        .grace(Duration::from_secs(2));
    Process::spawn(o, dir.path()).unwrap()
}

#[ignore = "needs real peers; run by cargo xtask test"]
#[test]
fn ice_sym_sym_relayed_with_rest_credentials() {
    let mut entry = MatrixEntry::new("coturn", "ice-sym-sym-relayed-rest", "udp");
    let dir = TestDir::new("turn_rest_ice_sym_sym").unwrap();
    let mut lab = NatLab::new("restss").unwrap();
    let ha = lab.add_host(Nat::Symmetric).unwrap();
    let hb = lab.add_host(Nat::Symmetric).unwrap();
    let mut coturn = Coturn::start(
        CoturnOptions::new()
            .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
            .port(3478)
            .netns(&lab.public_netns())
            .rest_secret(SECRET)
            .allow_loopback_peers(false),
        &dir,
    )
    .unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();
    let mut pa = rest_peer("a", "b", true, &ha, &dir);
    let mut pb = rest_peer("b", "a", false, &hb, &dir);
    let done = wait_for(
        "both ice-peers to exit",
        Duration::from_secs(40),
        Duration::from_millis(100),
        || !pa.is_running() && !pb.is_running(),
    );
    let logs = tails(&[&pa, &pb, coturn.process()], 30);
    done.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let result = |p: &mut Process, name: &str| -> (bool, Value) {
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.result.json")))
            .unwrap_or_else(|e| panic!("no result from {name}: {e}\n{logs}"));
        (
            p.try_wait().is_some_and(|s| s.success()),
            serde_json::from_str(&text).unwrap(),
        )
    };
    let (ok_a, ra) = result(&mut pa, "a");
    let (ok_b, rb) = result(&mut pb, "b");
    eprintln!("a {ra}\nb {rb}");
    let coturn_log = coturn.process().log_tail(2000);
    drop((pa, pb));
    coturn.stop();
    drop(coturn);
    drop(lab);
    for (name, ok, r) in [("a", ok_a, &ra), ("b", ok_b, &rb)] {
        assert!(ok && r["ok"] == true, "{name} failed: {r}\n{logs}");
        assert_eq!(r["path"]["direct"], false, "{name}: {r}");
    }
    assert_eq!(ra["pongs_received"], 5, "{ra}");
    let relayed = [&ra, &rb]
        .iter()
        .filter(|r| r["path"]["local_type"] == "relay")
        .count();
    assert!(relayed >= 1, "a {ra}\nb {rb}");
    for r in [&ra, &rb] {
        if r["path"]["local_type"] == "relay" {
            assert_eq!(
                r["path"]["turn_server"],
                format!("turn:{}:3478?transport=udp", NatLab::PUBLIC_SERVER_IP)
            );
        }
    }
    // coturn allocated for REST user names ("<expiry>:a"/"<expiry>:b"), never a static one.
    assert!(
        coturn_log
            .lines()
            .any(|l| l.contains("ALLOCATE processed, success")
                && (l.contains(":a>") || l.contains(":b>"))),
        "no allocation for a REST user name\n{coturn_log}"
    );
    entry.note(format!(
        "sym-sym relayed with TURN REST credentials: a {}-{}, rtt {:.1} ms",
        ra["path"]["local_type"].as_str().unwrap_or("?"),
        ra["path"]["remote_type"].as_str().unwrap_or("?"),
        ra["path"]["rtt_ms"].as_f64().unwrap_or(-1.0)
    ));
    entry.pass();
}
