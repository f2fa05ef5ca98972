//! SIP over TLS against a real Kamailio 5.6 with its tls module (issue 5), with CAs made
//! here by rcgen: a server certificate for 127.0.0.1/localhost issued by a test CA, and a
//! second, unrelated CA for the wrong-CA case.
//!
//! * harness self-test: Kamailio's TLS port completes a handshake with the test CA and
//!   answers an OPTIONS sent over it; with the other CA the handshake fails on the
//!   certificate (rustls `UnknownIssuer`);
//! * a Peerline phone trusting only the test CA registers over TLS (the binding's socket is
//!   `tls:` and Kamailio's script logged the REGISTER "over tls"), messages and calls a
//!   second phone registered over UDP through Kamailio, and gets a MESSAGE back;
//! * the same phone trusting the other CA: the registration fails with the certificate
//!   error in the reason, a call ends `Unreachable` with it, and no request reaches
//!   Kamailio's script (nothing went in clear).
//!
//! Test directory names stay short: Kamailio's ctl socket path must fit in 104 bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use peerline_interop::{tails, wait_for, Kamailio, KamailioOptions, MatrixEntry, TestDir};
use peerline_ua::{
    AccountConfig, AudioSource, CodecName, Config, EndReason, Event, Events, MediaOptions, Phone,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sipp_support::{next_event, runtime};

const READY: Duration = Duration::from_secs(5);

/// The test's PEM files: the CA Kamailio's certificate chains to, another CA, and
/// Kamailio's certificate (SAN IP 127.0.0.1 and DNS localhost) with its key.
struct Pki {
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
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

fn pki(dir: &TestDir) -> Pki {
    let d = dir.subdir("pki").unwrap();
    let (ca_pem, ca) = make_ca("Peerline Interop Test CA");
    let (other_pem, _) = make_ca("Unrelated Test CA");
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "kamailio.peerline.test");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca_file: d.join("ca.pem"),
        other_ca_file: d.join("other-ca.pem"),
        server_cert: d.join("kamailio.pem"),
        server_key: d.join("kamailio.key"),
    };
    std::fs::write(&pki.ca_file, ca_pem).unwrap();
    std::fs::write(&pki.other_ca_file, other_pem).unwrap();
    std::fs::write(&pki.server_cert, cert.pem()).unwrap();
    std::fs::write(&pki.server_key, key.serialize_pem()).unwrap();
    pki
}

fn start_kamailio(dir: &TestDir, pki: &Pki, users: &[(&str, &str)]) -> Kamailio {
    let mut opts = KamailioOptions::new().tls(&pki.server_cert, &pki.server_key);
    for (u, p) in users {
        opts = opts.user(u, p);
    }
    let mut kam = Kamailio::start(opts, dir).unwrap();
    kam.wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    kam
}

/// What a TLS client (rustls, trusting only `ca_file`, server name 127.0.0.1) got from
/// Kamailio's TLS port: the protocol version and the response to one OPTIONS.
#[derive(Debug)]
struct Probe {
    version: rustls::ProtocolVersion,
    response: String,
}

fn tls_options_probe(kam: &Kamailio, ca_file: &Path) -> Result<Probe, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let addr = kam.tls_address().unwrap();
    let mut sock = TcpStream::connect(&addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    let version = conn.protocol_version().unwrap();
    let local = sock.local_addr()?;
    let request = format!(
        "OPTIONS sip:{addr};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-tlsprobe-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{domain}>;tag=tlsprobe\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: tls-probe-{port}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        domain = kam.domain(),
        port = local.port()
    );
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    let mut response = Vec::new();
    let mut buf = [0u8; 2048];
    // Bounded by the socket's read timeout; the response has no body.
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    Ok(Probe {
        version,
        response: String::from_utf8_lossy(&response).into_owned(),
    })
}

/// The rustls error inside an I/O error from `complete_io`.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Lines of Kamailio's log where its script saw a request (`REQ <method> … over <proto>`);
/// method "" for all of them.
fn script_requests(kam: &Kamailio, method: &str) -> Vec<String> {
    let needle = match method {
        "" => "REQ ".to_string(),
        m => format!("REQ {m} "),
    };
    kam.process()
        .stderr_text()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Bounded wait until Kamailio's tls module logged the client's "unknown ca" alert: the
/// client reached the TLS port and refused the certificate during the handshake.
fn wait_unknown_ca_alert(kam: &Kamailio) {
    wait_for(
        "kamailio logging the client's unknown-CA alert",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || kam.process().log_contains("alert unknown ca"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
}

/// A phone on 127.0.0.1 with its own RTP block, plain RTP, PCMU.
fn phone_config(user: &str) -> Config {
    let mut config = sipp_support::config(&[CodecName::Pcmu]);
    config.identity.user = user.into();
    config
}

fn account(aor: &str, password: &str, proxy: &str) -> AccountConfig {
    let text = format!(
        "aor = \"{aor}\"\npassword = \"{password}\"\nregistrar = \"{proxy}\"\n\
         outbound_proxy = \"{proxy}\"\nexpires = 300\n"
    );
    toml::from_str(&text).unwrap()
}

/// Starts a phone and waits (bounded) for its one account's registration outcome.
async fn start_registered(config: Config) -> (Phone, Events, Result<u32, (u16, String)>) {
    let (phone, mut events) = Phone::start(config).await.unwrap();
    let outcome = next_event(&mut events, Duration::from_secs(8), |ev| match ev {
        Event::Registered { expires, .. } => Some(Ok(expires)),
        Event::RegistrationFailed { code, reason, .. } => Some(Err((code, reason))),
        _ => None,
    })
    .await
    .unwrap_or_else(|| Err((0, "no registration outcome within 8 s".into())));
    (phone, events, outcome)
}

/// Harness self-test (no Peerline code): Kamailio's TLS listener presents the test
/// certificate, completes a TLS 1.2+ handshake with a client trusting the test CA and
/// answers SIP over it; a client trusting another CA fails the handshake on the
/// certificate. The plain UDP/TCP listener is still there.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn kamailio_tls_listener_handshakes_with_the_test_ca() {
    let dir = TestDir::new("kamailio_tls_selftest").unwrap();
    let pki = pki(&dir);
    let kam = start_kamailio(&dir, &pki, &[]);
    let logs = || tails(&[kam.process()], 40);
    assert_ne!(kam.tls_port(), Some(kam.port()));
    assert_eq!(
        kam.tls_proxy_uri().unwrap(),
        format!("sip:127.0.0.1:{};transport=tls", kam.tls_port().unwrap())
    );
    let tls_cfg = std::fs::read_to_string(kam.work_dir().join("tls.cfg")).unwrap();
    assert!(tls_cfg.contains("method = TLSv1.2+"), "{tls_cfg}");

    let probe = tls_options_probe(&kam, &pki.ca_file)
        .unwrap_or_else(|e| panic!("TLS with the test CA: {e}\n{}", logs()));
    assert!(
        matches!(
            probe.version,
            rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
        ),
        "{probe:?}"
    );
    assert!(
        probe.response.starts_with("SIP/2.0 200"),
        "OPTIONS over TLS: {probe:?}\n{}",
        logs()
    );
    let seen = script_requests(&kam, "OPTIONS");
    assert!(
        seen.len() == 1 && seen[0].ends_with("over tls"),
        "{seen:?}\n{}",
        logs()
    );

    let err = tls_options_probe(&kam, &pki.other_ca_file)
        .expect_err("a client trusting another CA completed the handshake");
    assert_eq!(
        rustls_error(&err),
        Some(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
        "{err}"
    );
    wait_unknown_ca_alert(&kam);
    // Nothing more reached the script.
    assert_eq!(script_requests(&kam, "OPTIONS").len(), 1, "{}", logs());
    assert!(
        TcpStream::connect(kam.address()).is_ok(),
        "plain TCP listener gone"
    );
}

/// Issue 5, "SIP over TLS to a real Kamailio with its TLS module and a CA made by the
/// test: register and call". alice trusts only the test CA and uses Kamailio's TLS port
/// as registrar and outbound proxy; bob is registered over UDP. alice registers over
/// TLS, her MESSAGE (challenged 407) reaches bob, bob's reaches her back over her TLS
/// connection, and her call to bob is answered with media both ways.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_registers_messages_and_calls_over_tls_through_kamailio() {
    let entry = MatrixEntry::new("kamailio", "register-tls", "tls");
    let dir = TestDir::new("kamailio_tls_register_call").unwrap();
    let pki = pki(&dir);
    let mut kam = start_kamailio(
        &dir,
        &pki,
        &[("alice", "alice-secret"), ("bob", "bob-secret")],
    );
    let tls_proxy = kam.tls_proxy_uri().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let logs = || tails(&[kam.process()], 40);
        let mut bob_config = phone_config("bob");
        bob_config.accounts = vec![account(&kam.aor("bob"), "bob-secret", &kam.proxy_uri())];
        let (bob, mut bob_events, outcome) = start_registered(bob_config).await;
        assert!(outcome.is_ok(), "bob over UDP: {outcome:?}\n{}", logs());

        let mut alice_config = phone_config("alice");
        alice_config.tls.ca_file = Some(pki.ca_file.clone());
        alice_config.accounts = vec![account(&kam.aor("alice"), "alice-secret", &tls_proxy)];
        let (alice, mut alice_events, outcome) = start_registered(alice_config).await;
        let expires = outcome.unwrap_or_else(|e| panic!("alice over TLS: {e:?}\n{}", logs()));
        assert!(expires > 0 && expires <= 300, "{expires}");

        // The binding is on Kamailio's TLS socket, and the script saw the REGISTERs
        // (challenge + credentials) only over TLS.
        // `ul.dump` (full) lists each contact with the socket it came in on.
        let ul = kam.kamcmd(&["ul.dump"]).unwrap();
        let alice_binding = ul
            .split("AoR: ")
            .find(|b| b.starts_with("alice"))
            .unwrap_or_else(|| panic!("no binding for alice:\n{ul}"));
        let tls_socket = format!("tls:{}", kam.tls_address().unwrap());
        assert!(
            alice_binding.contains(&tls_socket),
            "alice's binding is not on {tls_socket}:\n{alice_binding}"
        );
        // Her Contact is sips: and Kamailio keeps her TLS connection as the way back.
        assert!(
            alice_binding.contains("Address: sips:alice@")
                && alice_binding.contains(";transport=tls"),
            "{alice_binding}"
        );
        let registers: Vec<String> = script_requests(&kam, "REGISTER")
            .into_iter()
            .filter(|l| l.contains(&tls_proxy.replace(";transport=tls", "")))
            .collect();
        assert!(registers.len() >= 2, "{registers:?}\n{}", logs());
        assert!(
            registers.iter().all(|l| l.ends_with("over tls")),
            "{registers:?}"
        );

        // MESSAGE alice (TLS) -> Kamailio (407, then relayed over UDP) -> bob.
        let text = "Hello Bob, over TLS";
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            alice.send_message(&kam.aor("bob"), text),
        )
        .await
        .expect("MESSAGE: no final response within 5 s");
        assert_eq!(sent.ok(), Some(200), "{}", logs());
        let got = next_event(&mut bob_events, Duration::from_secs(5), |ev| match ev {
            Event::Message { from, body, .. } => Some((from, body)),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("bob got no MESSAGE\n{}", logs()));
        assert!(got.0.contains("alice"), "{got:?}");
        assert_eq!(got.1, text);
        let to_bob: Vec<String> = script_requests(&kam, "MESSAGE")
            .into_iter()
            .filter(|l| l.contains("sip:bob@"))
            .collect();
        assert!(
            !to_bob.is_empty() && to_bob.iter().all(|l| l.ends_with("over tls")),
            "{to_bob:?}"
        );

        // And back: bob (UDP) -> Kamailio -> alice's binding, over her TLS connection.
        let back = "Hi Alice";
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            bob.send_message(&kam.aor("alice"), back),
        )
        .await
        .expect("MESSAGE to alice: no final response within 5 s");
        assert_eq!(sent.ok(), Some(200), "{}", logs());
        let got = next_event(&mut alice_events, Duration::from_secs(5), |ev| match ev {
            Event::Message { body, .. } => Some(body),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("alice got no MESSAGE over TLS\n{}", logs()));
        assert_eq!(got, back);
        let to_alice: Vec<String> = script_requests(&kam, "MESSAGE")
            .into_iter()
            .filter(|l| l.contains("sip:alice@"))
            .collect();
        assert!(
            !to_alice.is_empty() && to_alice.iter().all(|l| l.ends_with("over udp")),
            "{to_alice:?}"
        );

        // A call alice -> bob through the proxy, INVITE over TLS; bob answers.
        let call = alice
            .call(
                &kam.aor("bob"),
                MediaOptions {
                    source: AudioSource::Tone(440.0),
                    record: None,
                },
            )
            .await
            .unwrap();
        let incoming = next_event(&mut bob_events, Duration::from_secs(5), |ev| match ev {
            Event::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("bob saw no INVITE\n{}", logs()));
        bob.answer(
            incoming,
            MediaOptions {
                source: AudioSource::Tone(1000.0),
                record: None,
            },
        )
        .await
        .unwrap();
        let answered = next_event(&mut alice_events, Duration::from_secs(5), |ev| match ev {
            Event::Answered { .. } => Some(Ok(())),
            Event::Ended { reason, .. } => Some(Err(reason)),
            _ => None,
        })
        .await;
        assert!(matches!(answered, Some(Ok(()))), "{answered:?}\n{}", logs());
        let invites = script_requests(&kam, "INVITE");
        assert!(
            !invites.is_empty() && invites.iter().all(|l| l.ends_with("over tls")),
            "{invites:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        alice.hangup(call).await.unwrap();
        let (reason, media) =
            next_event(&mut alice_events, Duration::from_secs(5), |ev| match ev {
                Event::Ended { reason, media, .. } => Some((reason, media)),
                _ => None,
            })
            .await
            .unwrap_or_else(|| panic!("BYE not answered\n{}", logs()));
        assert_eq!(reason, EndReason::LocalHangup, "{}", logs());
        assert!(media.received.packets_received >= 50, "{media:?}");
        let bob_end = next_event(&mut bob_events, Duration::from_secs(5), |ev| match ev {
            Event::Ended { reason, media, .. } => Some((reason, media)),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("bob's call did not end\n{}", logs()));
        assert_eq!(bob_end.0, EndReason::RemoteHangup, "{}", logs());
        assert!(bob_end.1.received.packets_received >= 50, "{:?}", bob_end.1);

        // Everything alice sent came in on her one TLS connection: REGISTER, MESSAGE,
        // INVITE, ACK, BYE, all from the source of her first REGISTER, all over TLS.
        let source = registers[0]
            .split(" from ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .unwrap()
            .to_string();
        let from_alice: Vec<String> = script_requests(&kam, "")
            .into_iter()
            .filter(|l| l.contains(&format!(" from {source} ")))
            .collect();
        for method in ["REGISTER", "MESSAGE", "INVITE", "ACK", "BYE"] {
            assert!(
                from_alice
                    .iter()
                    .any(|l| l.contains(&format!("REQ {method} "))),
                "no {method} from {source}: {from_alice:?}"
            );
        }
        assert!(
            from_alice.iter().all(|l| l.ends_with("over tls")),
            "{from_alice:?}"
        );

        alice.shutdown().await;
        bob.shutdown().await;
    });
    kam.stop();
    entry.pass();
}

/// The same phone trusting an unrelated CA: the TLS handshake fails on Kamailio's
/// certificate, the registration fails with that in its reason, a call through the proxy
/// ends `Unreachable` with it, and no request reached Kamailio's script in clear.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_over_tls_with_the_wrong_ca_fails_on_the_certificate() {
    let entry = MatrixEntry::new("kamailio", "register-tls-wrong-ca", "tls");
    let dir = TestDir::new("kamailio_tls_wrong_ca").unwrap();
    let pki = pki(&dir);
    let mut kam = start_kamailio(&dir, &pki, &[("alice", "alice-secret")]);
    let tls_proxy = kam.tls_proxy_uri().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let logs = || tails(&[kam.process()], 40);
        let mut config = phone_config("alice");
        config.tls.ca_file = Some(pki.other_ca_file.clone());
        config.accounts = vec![account(&kam.aor("alice"), "alice-secret", &tls_proxy)];
        let (alice, mut events, outcome) = start_registered(config).await;
        let (code, reason) = match outcome {
            Err(e) => e,
            Ok(expires) => panic!("registered ({expires} s) through a CA it does not trust"),
        };
        assert_eq!(code, 0, "{reason}");
        // peerline-transport's TlsError::NotTrusted for rustls' UnknownIssuer, naming
        // the trust anchors it used.
        assert!(
            reason.contains("certificate not trusted") && reason.contains("other-ca.pem"),
            "registration failure does not name the certificate problem: {reason}"
        );

        let call = alice
            .call(
                &kam.aor("alice"),
                MediaOptions {
                    source: AudioSource::Silence,
                    record: None,
                },
            )
            .await
            .unwrap();
        let ended = next_event(&mut events, Duration::from_secs(8), |ev| match ev {
            Event::Ended {
                call: c, reason, ..
            } if c == call => Some(reason),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("the call did not end\n{}", logs()));
        match ended {
            EndReason::Unreachable(why) => assert!(
                why.contains("certificate not trusted") && why.contains("other-ca.pem"),
                "{why}"
            ),
            other => panic!("call ended {other:?}, not Unreachable"),
        }
        alice.shutdown().await;
    });
    // The phone did reach the TLS port, but nothing got past the handshake.
    wait_unknown_ca_alert(&kam);
    assert!(
        script_requests(&kam, "REGISTER").is_empty(),
        "{}",
        tails(&[kam.process()], 40)
    );
    assert!(script_requests(&kam, "INVITE").is_empty());
    let ul = kam.registrations().unwrap();
    assert!(!ul.contains("alice"), "{ul}");
    kam.stop();
    entry.pass();
}
