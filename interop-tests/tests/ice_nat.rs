//! Peerline ICE across NATs, in network namespaces: two `ice-peer` processes (one
//! `IceSession` each) in different home namespaces, coturn (STUN + TURN) on the public
//! segment. For each pair of NAT behaviours: connected, datagrams both ways, and the
//! selected pair is direct (host/srflx/prflx) where hole punching works and relayed through
//! the configured coturn only where it cannot. Without TURN, symmetric↔symmetric fails
//! with the clear reason.
//!
//! Run as root: `cargo test -p peerline-interop --test ice_nat -- --ignored --test-threads=1`.

// Helpers outside #[test] fns are not covered by allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use peerline_interop::{
    tails, wait_for, Coturn, CoturnOptions, LabHost, MatrixEntry, Nat, NatLab, Process,
    ProcessOptions, TestDir,
};
use serde_json::Value;

const TURN_USER: &str = "peerline";
const TURN_PASS: &str = "lab-secret";

/// What one side reported.
#[derive(Debug)]
struct Side {
    exit_ok: bool,
    result: Value,
}

impl Side {
    fn path(&self) -> &Value {
        &self.result["path"]
    }
    fn local_type(&self) -> &str {
        self.path()["local_type"].as_str().unwrap_or("?")
    }
    fn remote_type(&self) -> &str {
        self.path()["remote_type"].as_str().unwrap_or("?")
    }
    fn direct(&self) -> bool {
        self.path()["direct"].as_bool().unwrap_or(false)
    }
}

fn peer(
    name: &str,
    other: &str,
    controlling: bool,
    host: &LabHost,
    dir: &TestDir,
    turn: bool,
) -> Process {
    let server = format!("{}:3478", NatLab::PUBLIC_SERVER_IP);
    let mut o = ProcessOptions::new(&format!("ice-{name}"), env!("CARGO_BIN_EXE_ice-peer"))
        .args(["--name", name, "--peer", other])
        .args(["--dir", &dir.path().display().to_string()])
        .args([
            "--role",
            if controlling {
                "controlling"
            } else {
                "controlled"
            },
        ])
        .args(["--stun", &server, "--timeout-ms", "25000"])
        .netns(Some(&host.netns))
        .grace(Duration::from_secs(2));
    if turn {
        o = o.args([
            "--turn",
            &server,
            "--turn-user",
            TURN_USER,
            "--turn-pass",
            TURN_PASS,
        ]);
    }
    Process::spawn(o, dir.path()).unwrap()
}

/// Runs A (controlling, behind `a`) against B (controlled, behind `b`) in a fresh lab.
fn run_pair(a: Nat, b: Nat, turn: bool) -> (Side, Side) {
    let label = format!(
        "ice-{}-{}{}",
        a.name(),
        b.name(),
        if turn { "" } else { "-noturn" }
    );
    let dir = TestDir::new(&label).unwrap();
    let mut lab = NatLab::new(&format!("{}{}", a.name(), b.name())).unwrap();
    let ha = lab.add_host(a).unwrap();
    let hb = lab.add_host(b).unwrap();
    let mut coturn = Coturn::start(
        CoturnOptions::new()
            .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
            .port(3478)
            .netns(&lab.public_netns())
            .user(TURN_USER, TURN_PASS)
            .allow_loopback_peers(false),
        &dir,
    )
    .unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();

    let mut pa = peer("a", "b", true, &ha, &dir, turn);
    let mut pb = peer("b", "a", false, &hb, &dir, turn);
    let done = wait_for(
        "both ice-peers to exit",
        Duration::from_secs(40),
        Duration::from_millis(100),
        || !pa.is_running() && !pb.is_running(),
    );
    let logs = tails(&[&pa, &pb, coturn.process()], 30);
    done.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let side = |p: &mut Process, name: &str| {
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.result.json")))
            .unwrap_or_else(|e| panic!("no result from {name}: {e}\n{logs}"));
        Side {
            exit_ok: p.try_wait().is_some_and(|s| s.success()),
            result: serde_json::from_str(&text).unwrap(),
        }
    };
    let (ra, rb) = (side(&mut pa, "a"), side(&mut pb, "b"));
    eprintln!("{label}: a {}\n{label}: b {}", ra.result, rb.result);
    drop((pa, pb));
    coturn.stop();
    drop(coturn);
    // The lab is deleted here; check nothing is left behind.
    let names: Vec<String> = lab.namespaces().to_vec();
    drop(lab);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for n in &names {
        assert!(
            !left.lines().any(|l| l.split_whitespace().next() == Some(n)),
            "namespace {n} left behind"
        );
    }
    (ra, rb)
}

/// Both connected, pings answered, and the pair is direct or relayed as expected; a relay
/// is on the lab's coturn (the only TURN server configured).
fn expect_connected(a: Nat, b: Nat, want_direct: bool) {
    let feature = format!("ice-{}-{}", a.name(), b.name());
    let mut entry = MatrixEntry::new("coturn", &feature, "udp");
    let (ra, rb) = run_pair(a, b, true);
    for (name, s) in [("a", &ra), ("b", &rb)] {
        assert!(
            s.exit_ok && s.result["ok"] == true,
            "{feature}: {name} failed: {}",
            s.result
        );
        assert_eq!(
            s.direct(),
            want_direct,
            "{feature}: {name} path {}",
            s.path()
        );
        if s.local_type() == "relay" {
            let turn = s.path()["turn_server"].as_str().unwrap_or_default();
            assert_eq!(
                turn,
                format!("turn:{}:3478?transport=udp", NatLab::PUBLIC_SERVER_IP),
                "{feature}: {name}"
            );
        }
        for key in ["local_addr", "remote_addr"] {
            if let Some(addr) = s.path()[key].as_str() {
                let ip: IpAddr = addr.parse::<std::net::SocketAddr>().unwrap().ip();
                // Every address on the path is in the lab (TEST-NET-3 or 10/8).
                let lab = match ip {
                    IpAddr::V4(v4) => v4.octets()[..3] == [203, 0, 113] || v4.octets()[0] == 10,
                    IpAddr::V6(_) => false,
                };
                assert!(lab, "{feature}: {name} {key} {addr} outside the lab");
            }
        }
    }
    assert_eq!(ra.result["pongs_received"], 5, "{}", ra.result);
    if !want_direct {
        // At least one side's own candidate is the relay, on the configured coturn.
        assert!(
            ra.local_type() == "relay" || rb.local_type() == "relay",
            "{feature}: a {} b {}",
            ra.path(),
            rb.path()
        );
    }
    let rtt = ra.path()["rtt_ms"].as_f64().unwrap_or(-1.0);
    let connect = ra.path()["connect_ms"].as_f64().unwrap_or(-1.0);
    entry.note(format!(
        "{} {}-{} rtt {rtt:.1} ms, connect {connect:.0} ms",
        if want_direct { "direct" } else { "relay" },
        ra.local_type(),
        ra.remote_type()
    ));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_none_none_direct() {
    expect_connected(Nat::None, Nat::None, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_none_eim_direct() {
    expect_connected(Nat::None, Nat::EndpointIndependent, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_none_sym_direct() {
    expect_connected(Nat::None, Nat::Symmetric, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_eim_eim_direct() {
    expect_connected(Nat::EndpointIndependent, Nat::EndpointIndependent, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_full_eim_direct() {
    expect_connected(Nat::FullCone, Nat::EndpointIndependent, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_full_sym_direct() {
    // A full-cone NAT takes the symmetric side's fresh mapping: no relay needed.
    expect_connected(Nat::FullCone, Nat::Symmetric, true);
}

// The relayed cases. They need the lab's public segment to have a way out ("the
// Internet"): coturn 4.6 drops an allocation's relay socket after a send to a peer address
// it has no route for (a private host candidate), see `NatLab::new`.

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_eim_sym_relayed() {
    // Port-restricted filtering drops the symmetric side's new mapping: no direct path.
    expect_connected(Nat::EndpointIndependent, Nat::Symmetric, false);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_sym_sym_relayed() {
    expect_connected(Nat::Symmetric, Nat::Symmetric, false);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_sym_sym_without_turn_fails_clearly() {
    let mut entry = MatrixEntry::new("coturn", "ice-sym-sym-noturn", "udp");
    let (ra, rb) = run_pair(Nat::Symmetric, Nat::Symmetric, false);
    for (name, s) in [("a", &ra), ("b", &rb)] {
        assert!(!s.exit_ok, "{name}: {}", s.result);
        let err = s.result["error"].as_str().unwrap_or_default();
        assert!(
            err.starts_with("no direct path and no TURN server configured"),
            "{name}: {}",
            s.result
        );
        // The relay policy: no TURN configured, no relay candidate gathered.
        let kinds = s.result["local_kinds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!kinds.iter().any(|k| k == "relay"), "{name}: {kinds:?}");
        assert!(kinds.iter().any(|k| k == "srflx"), "{name}: {kinds:?}");
    }
    entry.note("fails: no direct path and no TURN server configured");
    entry.pass();
}
