//! TURN over TCP (`turn:…?transport=tcp`) and TLS (`turns:`) against a real coturn that
//! has no UDP listener (`--no-udp`), so nothing could have worked over UDP: Peerline's
//! loopback bridge (peerline-net `ice/turn_bridge.rs`) carries the agent's TURN client.
//!
//! - gathering with only a TCP (then only a TLS) server gives a relay candidate on coturn's
//!   relay address; coturn's log shows the TCP/TLS session; a TLS server whose certificate
//!   is not from the configured CA gives none;
//! - `peerline doctor --json` allocates over TCP and TLS (`[tls] ca_file`), with static and
//!   REST (shared secret) credentials, and a wrong password over TCP gets the same clear
//!   401 reason as over UDP;
//! - in the NAT lab, two `ice-peer`s behind symmetric NATs connect through coturn's relay
//!   reached over TCP, and over TLS.
//!
//! Run as root: `cargo test -p peerline-interop --test turn_tcp -- --ignored --test-threads=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use peerline_interop::{
    alloc_port_block, tails, wait_for, Coturn, CoturnOptions, LabHost, MatrixEntry, Nat, NatLab,
    Process, ProcessOptions, TestDir,
};
use peerline_net::{probe_allocate, IceConfig, IceSession, TurnServer, TurnTlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

const USER: &str = "peerline";
const PASS: &str = "tcp-secret";
const SECRET: &str = "south-wind-51c2";

/// The test's PEM files: a CA, an unrelated CA, and coturn's certificate for `ip`.
struct Pki {
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(p, key))
}

fn pki(dir: &TestDir, ip: &str) -> Pki {
    let d = dir.subdir("pki").unwrap();
    let (ca_pem, ca) = make_ca("Peerline TURN Test CA");
    let (other_pem, _) = make_ca("Unrelated Test CA");
    let mut p = CertificateParams::new(vec![ip.to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "turn.peerline.test");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca_file: d.join("ca.pem"),
        other_ca_file: d.join("other-ca.pem"),
        cert: d.join("coturn.pem"),
        key: d.join("coturn.key"),
    };
    std::fs::write(&pki.ca_file, ca_pem).unwrap();
    std::fs::write(&pki.other_ca_file, other_pem).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

/// A rustls client config trusting only `ca` (what the UA builds from `[tls] ca_file`).
fn trusting(ca: &Path) -> Arc<TurnTlsConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// coturn on 127.0.0.1 with TCP and TLS but no UDP listener; relay ports `relay..relay+39`.
fn loopback_coturn(dir: &TestDir, pki: &Pki, rest: bool) -> (Coturn, u16) {
    let relay = alloc_port_block(40).unwrap();
    let mut o = CoturnOptions::new()
        .relay_ports(relay, relay + 39)
        .tls(&pki.cert, &pki.key)
        .no_udp();
    o = if rest {
        o.rest_secret(SECRET)
    } else {
        o.user(USER, PASS)
    };
    let mut c = Coturn::start(o, dir).unwrap();
    c.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[c.process()], 40)));
    (c, relay)
}

/// Gathers with only `server`: the relay candidates' addresses and the bridge counters.
fn gather_relays(
    server: TurnServer,
    tls: Option<Arc<TurnTlsConfig>>,
) -> (
    Vec<String>,
    Vec<(String, peerline_net::TurnBridgeStats, bool)>,
) {
    runtime().block_on(async {
        let cfg = IceConfig {
            turn_servers: vec![server],
            turn_tls: tls,
            host_ips: vec!["127.0.0.1".parse().unwrap()],
            include_loopback: true,
            gather_timeout: Duration::from_secs(5),
            ..IceConfig::default()
        };
        let s = IceSession::gather(cfg).await.unwrap();
        let relays = s
            .local_params()
            .candidates
            .iter()
            .filter(|c| c.typ == peerline_sdp::CandidateType::Relay)
            .map(|c| format!("{}:{}", c.address, c.port))
            .collect();
        let stats = s.turn_bridge_stats();
        s.close().await;
        (relays, stats)
    })
}

/// coturn's log once it holds every one of `needles`, or after 5 s as it is: coturn logs
/// a session's close lines ("TCP socket closed", "TLS/TCP socket error") a moment after
/// the client is gone.
fn log_with(coturn: &Coturn, lines: usize, needles: &[&str]) -> String {
    let mut log = coturn.process().log_tail(lines);
    for _ in 0..50 {
        if needles.iter().all(|n| log.contains(n)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        log = coturn.process().log_tail(lines);
    }
    log
}

fn in_relay_range(addr: &str, relay: u16) -> bool {
    let a: std::net::SocketAddr = addr.parse().unwrap();
    a.ip().is_loopback() && (relay..relay + 40).contains(&a.port())
}

#[ignore = "needs real peers; run by cargo xtask test"]
#[test]
fn gathering_allocates_over_tcp_and_tls_on_a_coturn_without_udp() {
    let mut entry = MatrixEntry::new("coturn", "turn-over-tcp-tls-gather", "tcp+tls");
    let dir = TestDir::new("turn_tcp_gather").unwrap();
    let pki = pki(&dir, "127.0.0.1");
    let (mut coturn, relay) = loopback_coturn(&dir, &pki, false);
    let tcp_url = format!("turn:{}?transport=tcp", coturn.address());
    let tls_url = format!("turns:{}", coturn.tls_address().unwrap());

    // TCP.
    let tcp = TurnServer::parse(&tcp_url, USER, PASS).unwrap();
    let (relays, stats) = gather_relays(tcp.clone(), None);
    let log = log_with(
        &coturn,
        400,
        &["ALLOCATE processed, success", ": TCP socket"],
    );
    assert!(
        relays.len() == 1 && in_relay_range(&relays[0], relay),
        "TCP: {relays:?} {stats:?}\n{log}"
    );
    let (server, st, _) = &stats[0];
    assert_eq!(server, &tcp_url);
    assert!(st.to_server >= 2 && st.from_server >= 2, "{st:?}");
    assert_eq!(st.framing_errors, 0, "{st:?}");
    // webrtc-ice also asks every TURN URL for a srflx address: refused locally.
    assert!(st.bindings_refused >= 1, "{st:?}");
    // coturn's log: the allocation succeeded on a TCP session.
    assert!(
        log.contains("ALLOCATE processed, success") && log.contains(": TCP socket"),
        "no TCP allocation in coturn's log\n{log}"
    );

    // TLS, verified against the test CA.
    let tls = TurnServer::parse(&tls_url, USER, PASS).unwrap();
    let (relays_tls, stats) = gather_relays(tls.clone(), Some(trusting(&pki.ca_file)));
    let log = log_with(&coturn, 400, &["TLS/TCP socket"]);
    assert!(
        relays_tls.len() == 1 && in_relay_range(&relays_tls[0], relay),
        "TLS: {relays_tls:?} {stats:?}\n{log}"
    );
    assert!(stats[0].1.to_server >= 2, "{stats:?}");
    assert!(
        log.contains("TLS/TCP socket"),
        "no TLS session in coturn's log\n{log}"
    );

    // TLS with a CA that did not issue coturn's certificate: no relay, and the probe
    // says why.
    let other = trusting(&pki.other_ca_file);
    let (none, _) = gather_relays(tls.clone(), Some(other.clone()));
    assert!(none.is_empty(), "{none:?}");
    let why = runtime()
        .block_on(probe_allocate(
            &tls,
            Some(&other),
            std::time::SystemTime::now(),
            Duration::from_secs(3),
        ))
        .unwrap_err();
    assert!(why.contains("TLS handshake"), "{why}");

    // The bare probe works over both too.
    let rt = runtime();
    for (s, t) in [(&tcp, None), (&tls, Some(trusting(&pki.ca_file)))] {
        let a = rt
            .block_on(probe_allocate(
                s,
                t.as_ref(),
                std::time::SystemTime::now(),
                Duration::from_secs(3),
            ))
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(in_relay_range(&a.to_string(), relay), "{a}");
    }
    entry.note(format!(
        "coturn --no-udp: relay {} over TCP, {} over TLS; wrong CA: {why}",
        relays[0], relays_tls[0]
    ));
    entry.pass();
    coturn.stop();
}

/// `peerline --config DIR/NAME.toml doctor --json --timeout 3` with one `[[ice.turn]]`.
fn doctor(bin: &Path, dir: &TestDir, name: &str, turn: &str, ca: Option<&Path>) -> (Value, Output) {
    let tls = ca
        .map(|c| format!("[tls]\nca_file = \"{}\"\n\n", c.display()))
        .unwrap_or_default();
    let config = format!(
        "[network]\nsip_listen = \"127.0.0.1:0\"\n\n{tls}[ice]\nenabled = true\n\n[[ice.turn]]\n{turn}\n"
    );
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .args(["doctor", "--json", "--timeout", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out)
}

#[ignore = "needs real peers; run by cargo xtask test"]
#[test]
fn doctor_allocates_over_tcp_and_tls_and_a_wrong_password_gets_401() {
    let mut entry = MatrixEntry::new("coturn", "turn-over-tcp-tls-doctor", "tcp+tls");
    let bin = peerline_interop::peerline_binary().unwrap();
    let dir = TestDir::new("turn_tcp_doctor").unwrap();
    let pki = pki(&dir, "127.0.0.1");
    let (mut coturn, relay) = loopback_coturn(&dir, &pki, false);
    let tcp = format!("turn:{}?transport=tcp", coturn.address());
    let tls = format!("turns:{}", coturn.tls_address().unwrap());
    let mut notes = Vec::new();
    for (name, url, ca) in [
        ("tcp", &tcp, None),
        ("tls", &tls, Some(pki.ca_file.as_path())),
    ] {
        let entry_toml = format!("url = \"{url}\"\nusername = \"{USER}\"\ncredential = \"{PASS}\"");
        let (v, out) = doctor(&bin, &dir, name, &entry_toml, ca);
        let t = &v["turn"][0];
        assert_eq!(t["server"], url.as_str(), "{v}");
        assert_eq!(t["ok"], true, "{v}\n{}", tails(&[coturn.process()], 40));
        let relayed = t["address"].as_str().unwrap_or_default();
        assert!(in_relay_range(relayed, relay), "{v}");
        assert!(out.status.success(), "{v}");
        notes.push(format!("{name}: {relayed}"));
    }
    // A wrong password over TCP: the same reason as over UDP (turn_rest.rs).
    let wrong = format!("url = \"{tcp}\"\nusername = \"{USER}\"\ncredential = \"not-it\"");
    let (v, out) = doctor(&bin, &dir, "wrong", &wrong, None);
    let t = &v["turn"][0];
    let result = t["result"].as_str().unwrap_or_default();
    assert_eq!(t["ok"], false, "{v}");
    assert!(
        result.starts_with("allocation refused:") && result.contains("401"),
        "{v}"
    );
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not-it"));
    notes.push(format!("wrong password: {result}"));
    // turns: with the system roots (no [tls] ca_file): the test CA is not trusted.
    let (v, _) = doctor(
        &bin,
        &dir,
        "untrusted",
        &format!("url = \"{tls}\"\nusername = \"{USER}\"\ncredential = \"{PASS}\""),
        None,
    );
    let result = v["turn"][0]["result"].as_str().unwrap_or_default();
    assert_eq!(v["turn"][0]["ok"], false, "{v}");
    assert!(result.contains("TLS handshake"), "{v}");
    coturn.stop();

    // REST credentials (shared secret) over TCP and TLS.
    let dir2 = TestDir::new("turn_tcp_doctor_rest").unwrap();
    let (mut rest, relay) = loopback_coturn(&dir2, &pki, true);
    let tcp = format!("turn:{}?transport=tcp", rest.address());
    let tls = format!("turns:{}", rest.tls_address().unwrap());
    for (name, url, ca) in [
        ("rest-tcp", &tcp, None),
        ("rest-tls", &tls, Some(pki.ca_file.as_path())),
    ] {
        let e = format!(
            "url = \"{url}\"\nsecret = \"{SECRET}\"\nusername = \"doctor\"\nttl_secs = 600"
        );
        let (v, out) = doctor(&bin, &dir2, name, &e, ca);
        let t = &v["turn"][0];
        assert_eq!(t["ok"], true, "{v}\n{}", tails(&[rest.process()], 40));
        assert!(
            in_relay_range(t["address"].as_str().unwrap_or_default(), relay),
            "{v}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    }
    let log = rest.process().log_tail(400);
    assert!(
        log.contains(":doctor"),
        "no REST user name in coturn's log\n{log}"
    );
    notes.push("REST secret over TCP and TLS: ok".into());
    rest.stop();
    entry.note(notes.join("; "));
    entry.pass();
}

/// One `ice-peer` in `host`'s namespace, TURN only through `turn` (no STUN: coturn has no
/// UDP listener).
fn peer(
    name: &str,
    other: &str,
    controlling: bool,
    host: &LabHost,
    dir: &TestDir,
    turn: &str,
    ca: Option<&Path>,
) -> Process {
    let role = if controlling {
        "controlling"
    } else {
        "controlled"
    };
    let mut o = ProcessOptions::new(&format!("ice-{name}"), env!("CARGO_BIN_EXE_ice-peer"))
        .args(["--name", name, "--peer", other, "--role", role])
        .args(["--dir", &dir.path().display().to_string()])
        .args(["--timeout-ms", "25000"])
        .args(["--turn", turn, "--turn-user", USER, "--turn-pass", PASS])
        .netns(Some(&host.netns))
        .grace(Duration::from_secs(2));
    if let Some(ca) = ca {
        o = o.args(["--turn-ca", &ca.display().to_string()]);
    }
    Process::spawn(o, dir.path()).unwrap()
}

/// Two ice-peers behind symmetric NATs, coturn (`--no-udp`) reached over TCP or TLS.
fn sym_sym_relayed(tls: bool) {
    let transport = if tls { "tls" } else { "tcp" };
    let mut entry = MatrixEntry::new(
        "coturn",
        &format!("ice-sym-sym-relayed-{transport}"),
        transport,
    );
    let dir = TestDir::new(&format!("turn_tcp_sym_sym_{transport}")).unwrap();
    let server_ip = NatLab::PUBLIC_SERVER_IP.to_string();
    let pki = pki(&dir, &server_ip);
    let mut lab = NatLab::new(if tls { "tlsss" } else { "tcpss" }).unwrap();
    let ha = lab.add_host(Nat::Symmetric).unwrap();
    let hb = lab.add_host(Nat::Symmetric).unwrap();
    let mut coturn = Coturn::start(
        CoturnOptions::new()
            .listen_ip(&server_ip)
            .port(3478)
            .tls(&pki.cert, &pki.key)
            .tls_port(5349)
            .no_udp()
            .netns(&lab.public_netns())
            .user(USER, PASS)
            .allow_loopback_peers(false),
        &dir,
    )
    .unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();
    let url = if tls {
        format!("turns:{server_ip}:5349")
    } else {
        format!("turn:{server_ip}:3478?transport=tcp")
    };
    let ca = tls.then_some(pki.ca_file.as_path());
    let mut pa = peer("a", "b", true, &ha, &dir, &url, ca);
    let mut pb = peer("b", "a", false, &hb, &dir, &url, ca);
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
    let needle = if tls {
        "TLS/TCP socket"
    } else {
        ": TCP socket"
    };
    let coturn_log = log_with(&coturn, 2000, &[needle]);
    drop((pa, pb));
    coturn.stop();
    drop(coturn);
    drop(lab);
    for (name, ok, r) in [("a", ok_a, &ra), ("b", ok_b, &rb)] {
        assert!(ok && r["ok"] == true, "{name} failed: {r}\n{logs}");
        assert_eq!(r["path"]["direct"], false, "{name}: {r}");
        if r["path"]["local_type"] == "relay" {
            // The path names the configured server, not the loopback bridge.
            assert_eq!(r["path"]["turn_server"], url.as_str(), "{name}: {r}");
        }
        let b = &r["turn_bridges"][0];
        assert_eq!(b["server"], url.as_str(), "{name}: {r}");
        assert!(b["to_server"].as_u64().unwrap_or(0) >= 2, "{name}: {r}");
        assert_eq!(b["framing_errors"], 0, "{name}: {r}");
    }
    assert_eq!(ra["pongs_received"], 5, "{ra}");
    let relayed = [&ra, &rb]
        .iter()
        .filter(|r| r["path"]["local_type"] == "relay")
        .count();
    assert!(relayed >= 1, "a {ra}\nb {rb}");
    assert!(
        coturn_log.contains(needle),
        "no {needle} session in coturn's log\n{coturn_log}"
    );
    entry.note(format!(
        "relayed {}-{} through {url} (coturn --no-udp)",
        ra["path"]["local_type"].as_str().unwrap_or("?"),
        ra["path"]["remote_type"].as_str().unwrap_or("?")
    ));
    entry.pass();
}

#[ignore = "needs real peers; run by cargo xtask test"]
#[test]
fn ice_sym_sym_relayed_over_tcp() {
    sym_sym_relayed(false);
}

#[ignore = "needs real peers; run by cargo xtask test"]
#[test]
fn ice_sym_sym_relayed_over_tls() {
    sym_sym_relayed(true);
}
