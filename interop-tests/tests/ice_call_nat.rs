//! Phone-to-phone calls with ICE across the NAT lab: each phone runs in its own home
//! namespace behind its own NAT router, coturn on the public segment is the only STUN
//! server configured (no TURN). SIP crosses a separate signaling link between the two
//! homes (so a NAT does not have to be traversed by SIP, which the phone cannot do yet);
//! that link drops every UDP datagram that is not SIP, so media can only go through the
//! NATs. The call must connect a direct pair (server- or peer-reflexive, public addresses),
//! run DTLS-SRTP over it and carry each side's tone to the other.
//!
//! Each phone is this test binary run again inside its namespace (`ip netns exec`), as the
//! helper test `netns_phone_helper`, told what to do through environment variables; it
//! writes its result as JSON into the test directory.
//!
//! Run as root: `cargo test -p peerline-interop --test ice_call_nat -- --ignored --test-threads=1`.

// Helpers outside #[test] fns are not covered by allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_phone;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netns_phone::{ledger_json, next, path_json, tone_secs};
use peerline_interop::{
    tails, wait_for, Coturn, CoturnOptions, LabHost, MatrixEntry, Nat, NatLab, Process,
    ProcessOptions, TestDir,
};
use peerline_ua::{AudioSource, Config, Event, MediaOptions, Phone};
use serde_json::{json, Value};

const ROLE: &str = "PEERLINE_NETNS_PHONE";
const DIR: &str = "PEERLINE_NETNS_DIR";
const TARGET: &str = "PEERLINE_NETNS_TARGET";
/// Set when the phones may relay through the lab's coturn: "password" (long-term
/// credentials), "secret" (coturn's shared secret, TURN REST credentials) or "tcp"
/// (long-term credentials, TURN over TCP to a coturn without UDP listener) or "tls" (the
/// same over TLS, `turns:`, verified with `[tls] ca_file` = the test CA).
const TURN: &str = "PEERLINE_NETNS_TURN";
const REST_SECRET: &str = "lab-shared-secret";

/// Whether the phones may relay through the lab's coturn, and how they authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    Off,
    Password,
    Secret,
    Tcp,
    Tls,
}
/// The call's length in seconds when not CALL_SECS (the address-change test is longer).
const SECS: &str = "PEERLINE_NETNS_CALL_SECS";
const TURN_USER: &str = "peerline";
const TURN_PASS: &str = "lab-secret";
const SIG_A: &str = "192.168.100.1";
const SIG_B: &str = "192.168.100.2";
const CALL_SECS: u64 = 3;

/// Runs one phone when started by [`run_call`] inside a namespace; does nothing otherwise.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn netns_phone_helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let rt = netns_phone::runtime();
    let result = rt.block_on(phone(&role, &dir));
    std::fs::write(
        dir.join(format!("{role}.result.json")),
        result.to_string() + "\n",
    )
    .unwrap();
}

/// The caller calls `TARGET` and hangs up after CALL_SECS of media; the callee answers.
/// Both record and report the ICE path, the tone heard and the call's ledger.
async fn phone(role: &str, dir: &Path) -> Value {
    let mut config = Config::default();
    config.identity.user = role.into();
    config.network.sip_listen = SocketAddr::from(([0, 0, 0, 0], 5060));
    config.network.rtp_ports = peerline_net::PortRange::parse("20000-20099").unwrap();
    config.ice.enabled = true;
    config.ice.stun = vec![format!("stun:{}:3478", NatLab::PUBLIC_SERVER_IP)];
    match std::env::var(TURN).as_deref() {
        Ok("password") => {
            config.ice.turn = vec![peerline_ua::ice_settings::TurnEntry::with_password(
                &turn_url(),
                TURN_USER,
                TURN_PASS,
            )];
        }
        Ok(t @ ("tcp" | "tls")) => {
            // coturn has no UDP listener: no STUN either, TURN only over TCP or TLS.
            config.ice.stun = Vec::new();
            let url = if t == "tls" {
                // turns: is verified as SIP over TLS is: against `[tls] ca_file`.
                config.tls.ca_file = Some(dir.join("pki/ca.pem"));
                turn_tls_url()
            } else {
                turn_tcp_url()
            };
            config.ice.turn = vec![peerline_ua::ice_settings::TurnEntry::with_password(
                &url, TURN_USER, TURN_PASS,
            )];
        }
        Ok("secret") => {
            config.ice.turn = vec![peerline_ua::ice_settings::TurnEntry {
                url: turn_url(),
                credential: peerline_net::TurnCredential::SharedSecret {
                    secret: REST_SECRET.into(),
                    label: role.into(),
                    ttl: Duration::from_secs(600),
                },
            }];
        }
        _ => {}
    }
    let rec = dir.join(format!("{role}.wav"));
    let (hz_out, hz_in) = if role == "caller" {
        (440.0, 1000.0)
    } else {
        (1000.0, 440.0)
    };
    let media = MediaOptions {
        source: AudioSource::Tone(hz_out),
        record: Some(rec.clone()),
    };
    let (phone, mut events) = match Phone::start(config).await {
        Ok(p) => p,
        Err(e) => return json!({"ok": false, "error": format!("start: {e}")}),
    };
    std::fs::write(dir.join(format!("{role}.ready")), "").unwrap();
    let mut out = json!({"ok": false});
    let r: Result<(), String> = async {
        let call = if role == "caller" {
            let target = std::env::var(TARGET).map_err(|e| e.to_string())?;
            phone
                .call(&target, media)
                .await
                .map_err(|e| format!("call: {e}"))?
        } else {
            let call = loop {
                if let Event::Incoming { call, .. } = next(&mut events, 60, "incoming").await? {
                    break call;
                }
            };
            phone
                .answer(call, media)
                .await
                .map_err(|e| format!("answer: {e}"))?;
            call
        };
        loop {
            match next(&mut events, 20, "media up").await? {
                Event::MediaUp { path, .. } => {
                    out["path"] = path_json(path.as_ref());
                    break;
                }
                Event::Ended { reason, .. } => return Err(format!("ended before media: {reason}")),
                _ => {}
            }
        }
        std::fs::write(dir.join(format!("{role}.media_up")), "").map_err(|e| e.to_string())?;
        let secs = std::env::var(SECS)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(CALL_SECS);
        // Later MediaUp events: the media moved to a new pair (ICE restart).
        let mut moved = Vec::new();
        let mut ended = None;
        let until = tokio::time::Instant::now() + Duration::from_secs(secs);
        while let Ok(Some(e)) = tokio::time::timeout_at(until, events.recv()).await {
            eprintln!("during the call: {e:?}");
            match e {
                Event::MediaUp { path, .. } => moved.push(path_json(path.as_ref())),
                e @ Event::Ended { .. } => {
                    ended = Some(e);
                    break;
                }
                _ => {}
            }
        }
        out["moved_to"] = json!(moved);
        if role == "caller" && ended.is_none() {
            phone.hangup(call).await.map_err(|e| e.to_string())?;
        }
        loop {
            let e = match ended.take() {
                Some(e) => e,
                None => next(&mut events, 20, "end").await?,
            };
            if let Event::Ended { reason, media, .. } = e {
                out["reason"] = json!(format!("{reason:?}"));
                out["srtp"] = json!(media.srtp);
                out["media_error"] = json!(media.error);
                out["ice_restarts"] = json!(media.ice_restarts);
                out["final_path"] = match &media.path {
                    Some(p) => serde_json::from_str(&p.to_json()).map_err(|e| e.to_string())?,
                    None => Value::Null,
                };
                out["ledger"] = ledger_json(&media.ledger);
                break;
            }
        }
        Ok(())
    }
    .await;
    phone.shutdown().await;
    if let Err(e) = r {
        out["error"] = json!(e);
        return out;
    }
    out["heard_secs"] = json!(tone_secs(&rec, hz_in));
    out["ok"] = json!(true);
    out
}

/// The lab's coturn as a TURN server, the only one the phones may relay through.
fn turn_url() -> String {
    format!("turn:{}:3478?transport=udp", NatLab::PUBLIC_SERVER_IP)
}

/// The lab's coturn as a TURN-over-TCP server.
fn turn_tcp_url() -> String {
    format!("turn:{}:3478?transport=tcp", NatLab::PUBLIC_SERVER_IP)
}

/// The lab's coturn as a TURN-over-TLS server.
fn turn_tls_url() -> String {
    format!("turns:{}:5349", NatLab::PUBLIC_SERVER_IP)
}

/// A test CA (`pki/ca.pem`) and coturn's certificate for the lab's server address, signed
/// by it: returns (certificate, key) files.
fn coturn_tls_files(dir: &TestDir) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let d = dir.subdir("pki").unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Peerline Lab TURN CA");
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(d.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec![NatLab::PUBLIC_SERVER_IP.to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let (c, k) = (d.join("coturn.pem"), d.join("coturn.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// Caller behind `a`, callee behind `b`, with or without TURN; returns both results.
fn run_call(a: Nat, b: Nat, turn: Turn) -> (Value, Value) {
    run_call_with(a, b, turn, None, |_, _| {})
}

/// [`run_call`] with the call's length (`secs`) and something done to the lab once both
/// phones have media (`mid_call`, given the caller's and the callee's hosts).
fn run_call_with(
    a: Nat,
    b: Nat,
    turn: Turn,
    secs: Option<u64>,
    mid_call: impl FnOnce(&LabHost, &LabHost),
) -> (Value, Value) {
    let label = format!(
        "ice-call-{}-{}{}",
        a.name(),
        b.name(),
        match turn {
            Turn::Off => "",
            Turn::Password => "-turn",
            Turn::Secret => "-turn-rest",
            Turn::Tcp => "-turn-tcp",
            Turn::Tls => "-turn-tls",
        }
    );
    let dir = TestDir::new(&label).unwrap();
    let mut lab = NatLab::new(&format!("c{}{}", a.name(), b.name())).unwrap();
    let ha = lab.add_host(a).unwrap();
    let hb = lab.add_host(b).unwrap();
    peerline_interop::signaling_link(&ha.netns, SIG_A, &hb.netns, SIG_B, 5060).unwrap();
    let options = CoturnOptions::new()
        .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
        .port(3478)
        .netns(&lab.public_netns())
        .allow_loopback_peers(false);
    let options = match turn {
        Turn::Secret => options.rest_secret(REST_SECRET),
        Turn::Tcp => options.user(TURN_USER, TURN_PASS).no_udp(),
        Turn::Tls => {
            let (cert, key) = coturn_tls_files(&dir);
            options
                .user(TURN_USER, TURN_PASS)
                .no_udp()
                .tls(&cert, &key)
                .tls_port(5349)
        }
        _ => options.user(TURN_USER, TURN_PASS),
    };
    let mut coturn = Coturn::start(options, &dir).unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();
    let exe = std::env::current_exe().unwrap().display().to_string();
    let spawn = |role: &str, ns: &str| {
        let mut o = ProcessOptions::new(role, &exe)
            .args(["netns_phone_helper", "--exact", "--ignored", "--nocapture"])
            .env(ROLE, role)
            .env(DIR, &dir.path().display().to_string())
            .env(TARGET, &format!("sip:callee@{SIG_B}:5060"))
            .netns(Some(ns))
            .grace(Duration::from_secs(2));
        match turn {
            Turn::Off => {}
            Turn::Password => o = o.env(TURN, "password"),
            Turn::Secret => o = o.env(TURN, "secret"),
            Turn::Tcp => o = o.env(TURN, "tcp"),
            Turn::Tls => o = o.env(TURN, "tls"),
        }
        if let Some(s) = secs {
            o = o.env(SECS, &s.to_string());
        }
        Process::spawn(o, dir.path()).unwrap()
    };
    let mut callee = spawn("callee", &hb.netns);
    wait_for(
        "the callee's phone",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || dir.path().join("callee.ready").exists(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[&callee], 30)));
    let mut caller = spawn("caller", &ha.netns);
    if secs.is_some() {
        let up = wait_for(
            "media up on both phones",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                dir.path().join("caller.media_up").exists()
                    && dir.path().join("callee.media_up").exists()
            },
        );
        up.unwrap_or_else(|e| panic!("{e}\n{}", tails(&[&caller, &callee], 40)));
        std::thread::sleep(Duration::from_secs(1));
        mid_call(&ha, &hb);
    }
    let done = wait_for(
        "both phones to finish",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || !caller.is_running() && !callee.is_running(),
    );
    let logs = tails(&[&caller, &callee, coturn.process()], 40);
    done.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let read = |role: &str| -> Value {
        let text = std::fs::read_to_string(dir.path().join(format!("{role}.result.json")))
            .unwrap_or_else(|e| panic!("no result from the {role}: {e}\n{logs}"));
        serde_json::from_str(&text).unwrap()
    };
    let (ra, rb) = (read("caller"), read("callee"));
    eprintln!("{label}: caller {ra}\n{label}: callee {rb}");
    drop((caller, callee));
    coturn.stop();
    drop(coturn);
    drop(lab);
    (ra, rb)
}

/// One side's media ran as it should on its selected pair: DTLS-SRTP, no media error, the
/// other side's tone heard nearly all the call, and media exchanged only with the pair's
/// remote address (nothing over the signaling link).
fn expect_media_on_the_pair(feature: &str, name: &str, r: &Value, remote: &str) {
    assert!(
        r["srtp"]
            .as_str()
            .is_some_and(|s| s.starts_with("DTLS-SRTP")),
        "{feature}: {name} {r}"
    );
    assert!(r["media_error"].is_null(), "{feature}: {name} {r}");
    let heard = r["heard_secs"].as_f64().unwrap_or(0.0);
    assert!(
        heard >= CALL_SECS as f64 - 1.0,
        "{feature}: {name} heard the other tone for {heard} s of {CALL_SECS} s"
    );
    for row in r["ledger"].as_array().unwrap() {
        if row["class"] == "media" {
            assert_eq!(
                row["remote"].as_str(),
                Some(remote),
                "{feature}: {name} {row}"
            );
        }
    }
}

/// (bytes sent, bytes received) of `class` rows in a result's ledger, to `remote` only
/// when given.
fn ledger_bytes(r: &Value, class: &str, remote: Option<&str>) -> (u64, u64) {
    let mut out = (0, 0);
    for row in r["ledger"].as_array().into_iter().flatten() {
        if row["class"] != class || remote.is_some_and(|a| row["remote"].as_str() != Some(a)) {
            continue;
        }
        let bytes = row["bytes"].as_u64().unwrap_or(0);
        if row["sent"] == true {
            out.0 += bytes;
        } else {
            out.1 += bytes;
        }
    }
    out
}

/// One side of a call with TURN configured: its ledger has TURN rows to the configured
/// server's address (counted by Peerline's bridge), bytes both ways, and to nothing
/// else. Returns (sent, received) TURN bytes.
fn expect_turn_rows(feature: &str, name: &str, r: &Value, server: &str) -> (u64, u64) {
    let (sent, received) = ledger_bytes(r, "turn", Some(server));
    assert!(
        sent > 0 && received > 0,
        "{feature}: {name}: no TURN bytes with {server} both ways: {r}"
    );
    assert_eq!(
        ledger_bytes(r, "turn", None),
        (sent, received),
        "{feature}: {name}: TURN rows to another address: {r}"
    );
    (sent, received)
}

/// The matrix note of a call: how it went, the caller's pair, connect time, tones heard.
fn call_note(how: &str, ra: &Value, rb: &Value) -> String {
    format!(
        "{how} {}-{}, connect {:.0} ms, tone {:.1}/{:.1} s",
        ra["path"]["local_type"].as_str().unwrap_or("?"),
        ra["path"]["remote_type"].as_str().unwrap_or("?"),
        ra["path"]["connect_ms"].as_f64().unwrap_or(-1.0),
        ra["heard_secs"].as_f64().unwrap_or(0.0),
        rb["heard_secs"].as_f64().unwrap_or(0.0),
    )
}

/// The call connected directly through the NATs (public addresses on both ends of the
/// pair, never the signaling link), DTLS-SRTP ran on it and each side heard the other.
fn expect_direct_call(a: Nat, b: Nat, kinds: &[&str]) {
    let feature = format!("ice-call-{}-{}", a.name(), b.name());
    let mut entry = MatrixEntry::new("coturn", &feature, "udp");
    let (ra, rb) = run_call(a, b, Turn::Off);
    assert!(
        ra["ok"] == true && rb["ok"] == true,
        "{feature}: caller {ra}\ncallee {rb}"
    );
    for (name, r) in [("caller", &ra), ("callee", &rb)] {
        let path = &r["path"];
        assert_eq!(path["direct"], true, "{feature}: {name} {r}");
        for side in ["local_type", "remote_type"] {
            let k = path[side].as_str().unwrap_or_default();
            assert!(kinds.contains(&k), "{feature}: {name} {side} {k}: {r}");
        }
        let remote = path["remote_addr"].as_str().unwrap_or_default();
        assert!(
            peerline_interop::is_lab_public(remote),
            "{feature}: {name} remote {remote} not via the NAT"
        );
        expect_media_on_the_pair(&feature, name, r, remote);
        // No TURN server configured: no TURN rows at all.
        assert_eq!(
            ledger_bytes(r, "turn", None),
            (0, 0),
            "{feature}: {name} {r}"
        );
    }
    // The two sides agree on the pair, seen from each end.
    assert_eq!(
        ra["path"]["remote_addr"]
            .as_str()
            .map(peerline_interop::is_lab_public),
        Some(true)
    );
    entry.note(call_note("direct", &ra, &rb));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_eim_eim_direct_srflx() {
    // Both behind endpoint-independent NATs: hole punching, server-reflexive both ways
    // (a peer-reflexive remote when the peer's check arrives before its SDP is in).
    expect_direct_call(
        Nat::EndpointIndependent,
        Nat::EndpointIndependent,
        &["srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_eim_eim_direct_with_turn_configured() {
    // Both behind endpoint-independent NATs with coturn configured as TURN too: the direct
    // pair still wins; the ledger shows the TURN allocation's traffic with coturn (both
    // ways), but no media through it: far fewer TURN bytes than media bytes.
    let feature = "ice-call-eim-eim-direct-turn-configured";
    let mut entry = MatrixEntry::new("coturn", feature, "udp");
    let (ra, rb) = run_call(
        Nat::EndpointIndependent,
        Nat::EndpointIndependent,
        Turn::Password,
    );
    assert!(
        ra["ok"] == true && rb["ok"] == true,
        "{feature}: caller {ra}\ncallee {rb}"
    );
    let turn_addr = format!("{}:3478", NatLab::PUBLIC_SERVER_IP);
    for (name, r) in [("caller", &ra), ("callee", &rb)] {
        assert_eq!(r["path"]["direct"], true, "{feature}: {name} {r}");
        let remote = r["path"]["remote_addr"].as_str().unwrap_or_default();
        expect_media_on_the_pair(feature, name, r, remote);
        let (turn_sent, turn_received) = expect_turn_rows(feature, name, r, &turn_addr);
        let (media_sent, media_received) = ledger_bytes(r, "media", None);
        assert!(
            turn_sent * 2 < media_sent && turn_received * 2 < media_received,
            "{feature}: {name}: TURN {turn_sent}/{turn_received} bytes vs media \
             {media_sent}/{media_received}: media went through TURN? {r}"
        );
    }
    entry.note(call_note("direct, TURN only allocated", &ra, &rb));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_none_eim_direct() {
    // A public caller and a callee behind an endpoint-independent NAT: the callee's check
    // opens its NAT, the caller sees it as peer-reflexive (or its srflx).
    expect_direct_call(
        Nat::None,
        Nat::EndpointIndependent,
        &["host", "srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_sym_sym_without_turn_fails_clearly() {
    // Two symmetric NATs: no hole punching, and no TURN server configured. The call is set
    // up, no media path exists, and it ends with the reason saying so; no media flows.
    let mut entry = MatrixEntry::new("coturn", "ice-call-sym-sym-noturn", "udp");
    let (ra, rb) = run_call(Nat::Symmetric, Nat::Symmetric, Turn::Off);
    let clear = "no direct path and no TURN server configured";
    let says = |r: &Value| r["error"].as_str().is_some_and(|e| e.contains(clear));
    for (name, r) in [("caller", &ra), ("callee", &rb)] {
        assert_eq!(r["ok"], false, "{name}: {r}");
        assert!(r["path"].is_null(), "{name}: no pair expected: {r}");
        // Each side either found out itself or was hung up on by the side that did.
        let err = r["error"].as_str().unwrap_or_default();
        assert!(says(r) || err.contains("remote hangup"), "{name}: {r}");
    }
    assert!(says(&ra) || says(&rb), "caller {ra}\ncallee {rb}");
    entry.note("fails: no direct path and no TURN server configured");
    entry.pass();
}

/// Where hole punching cannot work and a TURN server is configured: the call is relayed,
/// through that coturn only; DTLS-SRTP runs end to end over the relay (coturn sees only
/// ciphertext) and each side hears the other.
fn expect_relayed_call(a: Nat, b: Nat, turn: Turn) {
    let feature = format!(
        "ice-call-{}-{}-relayed{}",
        a.name(),
        b.name(),
        match turn {
            Turn::Secret => "-rest",
            Turn::Tcp => "-tcp",
            Turn::Tls => "-tls",
            _ => "",
        }
    );
    let (transport, url) = match turn {
        Turn::Tcp => ("tcp", turn_tcp_url()),
        Turn::Tls => ("tls", turn_tls_url()),
        _ => ("udp", turn_url()),
    };
    let turn_addr = format!(
        "{}:{}",
        NatLab::PUBLIC_SERVER_IP,
        if turn == Turn::Tls { 5349 } else { 3478 }
    );
    let mut entry = MatrixEntry::new("coturn", &feature, transport);
    let (ra, rb) = run_call(a, b, turn);
    assert!(
        ra["ok"] == true && rb["ok"] == true,
        "{feature}: caller {ra}\ncallee {rb}"
    );
    let relay_ip = NatLab::PUBLIC_SERVER_IP.to_string();
    let mut relays = 0;
    for (name, r) in [("caller", &ra), ("callee", &rb)] {
        let path = &r["path"];
        assert_eq!(path["direct"], false, "{feature}: {name} {r}");
        let local = path["local_addr"].as_str().unwrap_or_default();
        let remote = path["remote_addr"].as_str().unwrap_or_default();
        if path["local_type"] == "relay" {
            relays += 1;
            // Our relayed address is on the configured coturn, and the report names it.
            assert!(
                local.starts_with(&format!("{relay_ip}:")),
                "{feature}: {name} {r}"
            );
            assert_eq!(path["turn_server"], url, "{feature}: {name} {r}");
        }
        if path["remote_type"] == "relay" {
            assert!(
                remote.starts_with(&format!("{relay_ip}:")),
                "{feature}: {name} {r}"
            );
        }
        assert!(
            peerline_interop::is_lab_public(remote),
            "{feature}: {name} remote {remote}"
        );
        expect_media_on_the_pair(&feature, name, r, remote);
        // The ledger shows the TURN traffic with coturn's address; on a relayed local
        // candidate the media went through it, so it is at least the media's bytes.
        let (turn_sent, turn_received) = expect_turn_rows(&feature, name, r, &turn_addr);
        if path["local_type"] == "relay" {
            let (media_sent, media_received) = ledger_bytes(r, "media", None);
            assert!(
                turn_sent >= media_sent && turn_received >= media_received && media_sent > 0,
                "{feature}: {name}: relayed media not in the TURN rows: {r}"
            );
        }
    }
    assert!(
        relays >= 1,
        "{feature}: no relay candidate selected: caller {ra}\ncallee {rb}"
    );
    entry.note(call_note("relay via the configured coturn", &ra, &rb));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_sym_sym_relayed() {
    // Two symmetric NATs with the lab's coturn configured as TURN: relayed.
    expect_relayed_call(Nat::Symmetric, Nat::Symmetric, Turn::Password);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_sym_sym_relayed_over_tcp() {
    // As ice_call_sym_sym_relayed, but the phones reach coturn only over TCP (coturn has
    // no UDP listener): Peerline's loopback bridge carries the TURN client's messages.
    expect_relayed_call(Nat::Symmetric, Nat::Symmetric, Turn::Tcp);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_sym_sym_relayed_over_tls() {
    // The same over TLS (`turns:`), coturn's certificate checked against `[tls] ca_file`.
    expect_relayed_call(Nat::Symmetric, Nat::Symmetric, Turn::Tls);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_eim_sym_relayed() {
    // A port-restricted (endpoint-independent mapping) NAT cannot take the symmetric
    // side's fresh mappings: relayed as well. The phones authenticate to coturn with
    // TURN REST credentials derived from its shared secret.
    expect_relayed_call(Nat::EndpointIndependent, Nat::Symmetric, Turn::Secret);
}

/// One side's address changes mid-call (it moved to another network): the phone notices,
/// restarts ICE with a re-INVITE (RFC 8445 §9), both sides move the media to the new pair,
/// and the tone comes back. The caller sits behind an endpoint-independent NAT; its LAN
/// address changes from 10.0.1.2 to 10.0.1.50 (new address first, then the old one
/// removed, default route restored), as a DHCP renumbering would do.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn ice_call_address_change_restarts_ice() {
    const SECS: u64 = 10;
    let mut entry = MatrixEntry::new("coturn", "ice-restart-address-change", "udp");
    let new_ip = "10.0.1.50";
    let (ra, rb) = run_call_with(
        Nat::EndpointIndependent,
        Nat::None,
        Turn::Off,
        Some(SECS),
        |caller, _| {
            let ns = caller.netns.as_str();
            let old = caller.ip.to_string();
            let gw = {
                let o = caller.ip.octets();
                format!("{}.{}.{}.1", o[0], o[1], o[2])
            };
            use peerline_interop::in_ns;
            // Keep the new address when the old (primary) one goes.
            let keep = "net.ipv4.conf.eth0.promote_secondaries=1";
            in_ns(ns, "sysctl", &["-q", "-w", keep]).unwrap();
            let (new, old) = (format!("{new_ip}/24"), format!("{old}/24"));
            in_ns(ns, "ip", &["addr", "add", &new, "dev", "eth0"]).unwrap();
            in_ns(ns, "ip", &["addr", "del", &old, "dev", "eth0"]).unwrap();
            let route = ["route", "replace", "default", "via", &gw, "src", new_ip];
            in_ns(ns, "ip", &route).unwrap();
        },
    );
    for (name, r) in [("caller", &ra), ("callee", &rb)] {
        assert_eq!(r["ok"], true, "{name}: {r}");
        assert!(r["media_error"].is_null(), "{name}: {r}");
        assert!(
            r["ice_restarts"].as_u64().unwrap_or(0) >= 1,
            "{name}: media never moved to a new pair: {r}"
        );
        let moved = r["moved_to"].as_array().cloned().unwrap_or_default();
        assert!(!moved.is_empty(), "{name}: no second MediaUp: {r}");
        let heard = r["heard_secs"].as_f64().unwrap_or(0.0);
        // The call is SECS long after media first came up; the switch costs the detection
        // (≤ 1 s), the re-INVITE and the new checks.
        assert!(
            heard >= SECS as f64 - 4.0,
            "{name}: heard the other tone for {heard} s of about {SECS} s: {r}"
        );
    }
    // The caller's new pair starts from its new address (host, or its NAT's mapping of
    // it); the callee now sends to wherever that is.
    let moved = &ra["moved_to"].as_array().unwrap()[0];
    let local = moved["local_addr"].as_str().unwrap_or_default();
    assert!(
        local.starts_with(&format!("{new_ip}:")) || moved["local_type"] != "host",
        "caller's new pair {moved}"
    );
    assert_ne!(ra["path"], *moved, "the pair did not change");
    entry.note(format!(
        "address change mid-call: ICE restart, tone {:.1}/{:.1} s of {SECS} s",
        ra["heard_secs"].as_f64().unwrap_or(0.0),
        rb["heard_secs"].as_f64().unwrap_or(0.0),
    ));
    entry.pass();
}
