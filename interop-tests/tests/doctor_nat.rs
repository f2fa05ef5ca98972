//! `peerline doctor`'s NAT behaviour discovery (RFC 5780) in the NAT lab: coturn 4.6.1 on
//! the public segment listening on two addresses (203.0.113.1 and .2, so it answers with
//! OTHER-ADDRESS and honours CHANGE-REQUEST), and `peerline doctor --json` (then the text
//! form) run inside a home namespace of each NAT type:
//!
//! | NAT | mapping | filtering | likely path |
//! |---|---|---|---|
//! | none (public address) | endpoint-independent | endpoint-independent | direct |
//! | MASQUERADE | endpoint-independent | address-and-port-dependent | srflx hole punching |
//! | MASQUERADE `--random-fully` | address-and-port-dependent | address-and-port-dependent | relay needed |
//!
//! And with coturn on one address only, doctor says the server does not support RFC 5780
//! instead of guessing.
//!
//! Run as root: `cargo test -p peerline-interop --test doctor_nat -- --ignored --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use peerline_interop::{
    tails, wait_for, Coturn, CoturnOptions, LabHost, MatrixEntry, Nat, NatLab, Process,
    ProcessOptions, TestDir,
};
use serde_json::Value;

/// Runs `peerline doctor` (with `extra` arguments) in `host`'s namespace; its stdout.
fn doctor(bin: &Path, host: &LabHost, dir: &TestDir, extra: &[&str], coturn: &Coturn) -> String {
    let config = dir
        .write(
            "phone.toml",
            &format!(
                "[network]\nsip_listen = \"127.0.0.1:0\"\nrtp_ports = \"31000-31099\"\n\
                 [ice]\nstun = [\"stun:{}:3478\"]\n",
                NatLab::PUBLIC_SERVER_IP
            ),
        )
        .unwrap();
    let name = format!("doctor{}", extra.join(""));
    let mut p = Process::spawn(
        ProcessOptions::new(&name, &bin.display().to_string())
            .arg("--config")
            .arg(config.display().to_string())
            .arg("doctor")
            .args(extra.iter().copied())
            .netns(Some(&host.netns))
            .grace(Duration::from_secs(1)),
        dir.path(),
    )
    .unwrap();
    let st = p.wait_exit(Duration::from_secs(40));
    let logs = tails(&[&p, coturn.process()], 40);
    let st = st.unwrap_or_else(|e| panic!("doctor did not finish: {e}\n{logs}"));
    // No account configured and the STUN server answers: nothing failed.
    assert!(st.success(), "doctor exit {st}\n{logs}");
    p.stdout_text()
}

/// A lab with one host behind `nat` and coturn on the public segment (two addresses when
/// `rfc5780`).
fn lab(nat: Nat, rfc5780: bool, dir: &TestDir) -> (NatLab, LabHost, Coturn) {
    let mut lab = NatLab::new(&format!("dn{}", nat.name())).unwrap();
    let host = lab.add_host(nat).unwrap();
    let mut opts = CoturnOptions::new()
        .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
        .port(3478)
        .netns(&lab.public_netns())
        .allow_loopback_peers(false);
    if rfc5780 {
        let second = lab.add_second_server_ip().unwrap();
        opts = opts.second_listen_ip(&second.to_string());
    }
    let mut coturn = Coturn::start(opts, dir).unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();
    // "Relay ports initialization done" comes before the listeners: wait for the UDP
    // listeners doctor will talk to.
    let mut listeners = vec![format!(
        "UDP listener opened on: {}:3478",
        NatLab::PUBLIC_SERVER_IP
    )];
    if rfc5780 {
        // RFC 5780 on: the alternate port is open on the second address too.
        listeners.push(format!(
            "UDP listener opened on: {}:3479",
            NatLab::PUBLIC_SERVER_IP2
        ));
    }
    wait_for(
        "coturn's UDP listeners",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || listeners.iter().all(|l| coturn.process().log_contains(l)),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", coturn.process().log_tail(60)));
    // With one address coturn warns that CHANGE-REQUEST (RFC 5780) is unsupported.
    assert_eq!(
        coturn
            .process()
            .log_contains("cannot support STUN CHANGE_REQUEST"),
        !rfc5780,
        "{}",
        coturn.process().log_tail(60)
    );
    (lab, host, coturn)
}

fn teardown(lab: NatLab, mut coturn: Coturn) {
    coturn.stop();
    drop(coturn);
    let names: Vec<String> = lab.namespaces().to_vec();
    drop(lab);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for n in &names {
        assert!(
            !left.lines().any(|l| l.split_whitespace().next() == Some(n)),
            "namespace {n} left behind"
        );
    }
}

fn expect(nat: Nat, mapping: &str, filtering: &str, path: &str) {
    let feature = format!("doctor-nat-{}", nat.name());
    let mut entry = MatrixEntry::new("coturn", &feature, "udp");
    let dir = TestDir::new(&feature).unwrap();
    let bin = peerline_interop::peerline_binary().unwrap();
    let (lab, host, coturn) = lab(nat, true, &dir);

    let out = doctor(&bin, &host, &dir, &["--json"], &coturn);
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("doctor --json: {e}\n{out}"));
    let n = &report["nat"];
    eprintln!("{feature}: {n}");
    assert_eq!(n["udp"], true, "{n}");
    assert_eq!(n["rfc5780"], true, "{n}");
    assert_eq!(
        n["server"],
        format!("stun:{}:3478", NatLab::PUBLIC_SERVER_IP),
        "{n}"
    );
    assert_eq!(
        n["other_address"],
        format!("{}:3479", NatLab::PUBLIC_SERVER_IP2),
        "{n}"
    );
    assert_eq!(n["behind_nat"], nat != Nat::None, "{n}");
    assert_eq!(n["mapping"], mapping, "{n}");
    assert_eq!(n["filtering"], filtering, "{n}");
    // Reachable by a host we never sent to exactly when nothing filters.
    let open = filtering == "endpoint-independent";
    assert_eq!(n["reachable_from_outside"], open, "{n}");
    assert_eq!(n["likely_path"], path, "{n}");
    let mapped: std::net::SocketAddr = n["mapped_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(mapped.ip(), host.public_ip, "{n}");
    let local: std::net::SocketAddr = n["local_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(local.ip(), host.ip, "{n}");
    assert!((31000..=31099).contains(&local.port()), "{n}");
    assert_eq!(report["ok"], true, "{report}");

    let text = doctor(&bin, &host, &dir, &[], &coturn);
    eprintln!("{feature} text:\n{text}");
    assert!(
        text.contains(&format!(
            "NAT behaviour (RFC 5780) via stun:{}:3478: RFC 5780 tests complete",
            NatLab::PUBLIC_SERVER_IP
        )),
        "{text}"
    );
    assert!(text.contains(&format!("  mapping: {mapping}\n")), "{text}");
    assert!(
        text.contains(&format!("  filtering: {filtering}\n")),
        "{text}"
    );
    assert!(text.contains("  likely call path: "), "{text}");
    assert!(
        text.contains(if open {
            "  reachable from outside: yes"
        } else {
            "  reachable from outside: no"
        }),
        "{text}"
    );
    assert!(
        text.contains(if nat == Nat::None {
            "  NAT: no"
        } else {
            "  NAT: yes"
        }),
        "{text}"
    );
    teardown(lab, coturn);
    entry.note(format!(
        "mapping {mapping}, filtering {filtering}, path {path}"
    ));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn doctor_nat_none() {
    expect(
        Nat::None,
        "endpoint-independent",
        "endpoint-independent",
        "direct",
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn doctor_nat_eim() {
    expect(
        Nat::EndpointIndependent,
        "endpoint-independent",
        "address-and-port-dependent",
        "srflx-hole-punching",
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn doctor_nat_full_cone() {
    expect(
        Nat::FullCone,
        "endpoint-independent",
        "endpoint-independent",
        "direct",
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn doctor_nat_sym() {
    expect(
        Nat::Symmetric,
        "address-and-port-dependent",
        "address-and-port-dependent",
        "relay-needed",
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn doctor_nat_server_without_rfc5780_says_so() {
    let mut entry = MatrixEntry::new("coturn", "doctor-nat-no-rfc5780", "udp");
    let dir = TestDir::new("doctor-nat-no-rfc5780").unwrap();
    let bin = peerline_interop::peerline_binary().unwrap();
    let (lab, host, coturn) = lab(Nat::EndpointIndependent, false, &dir);
    let out = doctor(&bin, &host, &dir, &["--json"], &coturn);
    let report: Value = serde_json::from_str(&out).unwrap();
    let n = &report["nat"];
    eprintln!("doctor-nat-no-rfc5780: {n}");
    assert_eq!(n["udp"], true, "{n}");
    assert_eq!(n["rfc5780"], false, "{n}");
    assert!(n["mapping"].is_null() && n["filtering"].is_null(), "{n}");
    assert!(
        n["result"]
            .as_str()
            .unwrap()
            .starts_with("server does not support RFC 5780"),
        "{n}"
    );
    assert_eq!(n["likely_path"], "unknown", "{n}");
    assert_eq!(report["ok"], true, "{report}");
    teardown(lab, coturn);
    entry.note("server does not support RFC 5780 (no OTHER-ADDRESS): no guess");
    entry.pass();
}
