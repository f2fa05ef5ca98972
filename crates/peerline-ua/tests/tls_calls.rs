//! SIP over TLS between two phones on loopback (issue 5), with a test CA made here by
//! rcgen: Bob listens for TLS with a certificate for 127.0.0.1; Alice trusts only that CA
//! (`[tls] ca_file`). The call and a MESSAGE go over TLS; with another CA the call ends at
//! once with the certificate problem named, and nothing is sent in clear.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use peerline_ua::{AudioSource, Config, EndReason, Event, Events, MediaOptions, Phone};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

struct Pki {
    /// SHA-256 pin of Bob's certificate.
    pin: String,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(p, key))
}

fn pki(test: &str) -> Pki {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ua-tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca_pem, issuer) = ca("Peerline Test CA");
    let (other_pem, _) = ca("Somebody Else's CA");
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    let pki = Pki {
        pin: peerline_transport::CertPin::of_der(cert.der()).to_string(),
        ca_file: dir.join("ca.pem"),
        other_ca_file: dir.join("other-ca.pem"),
        cert_file: dir.join("bob.pem"),
        key_file: dir.join("bob.key"),
    };
    std::fs::write(&pki.ca_file, ca_pem).unwrap();
    std::fs::write(&pki.other_ca_file, other_pem).unwrap();
    std::fs::write(&pki.cert_file, cert.pem()).unwrap();
    std::fs::write(&pki.key_file, key.serialize_pem()).unwrap();
    pki
}

fn config(user: &str, tls: &str) -> Config {
    let text =
        format!("[identity]\nuser = \"{user}\"\n[network]\nsip_listen = \"127.0.0.1:0\"\n{tls}");
    Config::parse(&text, Path::new("<tls test>")).unwrap()
}

fn bob_config(pki: &Pki) -> Config {
    config(
        "bob",
        &format!(
            "[tls]\nlisten_port = 0\ncert_file = {:?}\nkey_file = {:?}\n",
            pki.cert_file, pki.key_file
        ),
    )
}

async fn next<T>(events: &mut Events, what: &str, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(ev) = events.recv().await {
            if let Some(t) = pick(ev) {
                return t;
            }
        }
        panic!("{what}: the phone stopped")
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: nothing within 8 s"))
}

fn tone(hz: f32) -> MediaOptions {
    MediaOptions {
        source: AudioSource::Tone(hz),
        record: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_message_over_tls_with_the_test_ca() {
    let pki = pki("ok");
    let (bob, mut be) = Phone::start(bob_config(&pki)).await.unwrap();
    let tls: SocketAddr = bob.tls_addr().expect("bob listens for TLS");
    assert_ne!(tls.port(), bob.sip_addr().port());
    let alice_tls = format!("[tls]\nca_file = {:?}\n", pki.ca_file);
    let (alice, mut ae) = Phone::start(config("alice", &alice_tls)).await.unwrap();
    let target = format!("sip:bob@{tls};transport=tls");
    let a = alice.call(&target, tone(440.0)).await.unwrap();
    let b = next(&mut be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0)).await.unwrap();
    next(&mut ae, "answered", |e| match e {
        Event::Answered { call } if call == a => Some(()),
        Event::Ended { reason, .. } => panic!("ended: {reason}"),
        _ => None,
    })
    .await;
    // A MESSAGE over the same TLS connection, then the BYE.
    assert_eq!(alice.send_message(&target, "over TLS").await.unwrap(), 200);
    let body = next(&mut be, "message", |e| match e {
        Event::Message { body, .. } => Some(body),
        _ => None,
    })
    .await;
    assert_eq!(body, "over TLS");
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.hangup(a).await.unwrap();
    let (reason, media) = next(&mut ae, "ended", |e| match e {
        Event::Ended {
            call,
            reason,
            media,
        } if call == a => Some((reason, media)),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::LocalHangup);
    assert!(media.received.packets_received > 0, "{media:?}");
    // Alice's SIP went to Bob's TLS port only: nothing to his UDP/TCP port.
    let ledger = alice.ledger().await.unwrap();
    let to_plain_port = ledger
        .entries()
        .filter(|e| e.remote == bob.sip_addr() && e.class.name() == "sip")
        .count();
    assert_eq!(to_plain_port, 0, "SIP to bob's plain port");
    let to_tls_port = ledger
        .entries()
        .filter(|e| e.remote == tls && e.class.name() == "sip")
        .count();
    assert!(to_tls_port > 0, "no SIP to bob's TLS port in the ledger");
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_ends_the_call_at_once_naming_the_certificate() {
    let pki = pki("wrong-ca");
    let (bob, mut be) = Phone::start(bob_config(&pki)).await.unwrap();
    let tls = bob.tls_addr().unwrap();
    let alice_tls = format!("[tls]\nca_file = {:?}\n", pki.other_ca_file);
    let (alice, mut ae) = Phone::start(config("alice", &alice_tls)).await.unwrap();
    let a = alice
        .call(&format!("sip:bob@{tls};transport=tls"), tone(440.0))
        .await
        .unwrap();
    let reason = next(&mut ae, "ended", |e| match e {
        Event::Ended { call, reason, .. } if call == a => Some(reason),
        _ => None,
    })
    .await;
    let EndReason::Unreachable(why) = &reason else {
        panic!("ended with {reason:?}");
    };
    let lower = why.to_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("issuer"),
        "reason does not name the certificate problem: {why}"
    );
    // Bob never saw the INVITE.
    let early = tokio::time::timeout(Duration::from_millis(300), be.recv()).await;
    assert!(
        !matches!(early, Ok(Some(Event::Incoming { .. }))),
        "bob got the call"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// `[tls] pins`: with the right pin (and CA) the call goes through; with another
/// certificate's pin it ends at once naming the pin mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_certificate_is_required() {
    let pki = pki("pins");
    let (bob, mut be) = Phone::start(bob_config(&pki)).await.unwrap();
    let tls = bob.tls_addr().unwrap();
    let target = format!("sip:bob@{tls};transport=tls");
    let wrong_pin = "00".repeat(32);
    for (pin, ok) in [(pki.pin.as_str(), true), (wrong_pin.as_str(), false)] {
        let alice_tls = format!("[tls]\nca_file = {:?}\npins = [\"{pin}\"]\n", pki.ca_file);
        let (alice, mut ae) = Phone::start(config("alice", &alice_tls)).await.unwrap();
        let a = alice.call(&target, tone(440.0)).await.unwrap();
        if ok {
            let b = next(&mut be, "incoming", |e| match e {
                Event::Incoming { call, .. } => Some(call),
                _ => None,
            })
            .await;
            bob.answer(b, tone(1000.0)).await.unwrap();
            next(&mut ae, "answered", |e| match e {
                Event::Answered { call } if call == a => Some(()),
                Event::Ended { reason, .. } => panic!("ended: {reason}"),
                _ => None,
            })
            .await;
            alice.hangup(a).await.unwrap();
            next(&mut be, "bob's end", |e| match e {
                Event::Ended { call, .. } if call == b => Some(()),
                _ => None,
            })
            .await;
        } else {
            let reason = next(&mut ae, "ended", |e| match e {
                Event::Ended { call, reason, .. } if call == a => Some(reason),
                _ => None,
            })
            .await;
            let EndReason::Unreachable(why) = &reason else {
                panic!("ended with {reason:?}");
            };
            assert!(why.to_lowercase().contains("pin"), "{why}");
        }
        alice.shutdown().await;
    }
    bob.shutdown().await;
}

/// A bad pin in the config is refused with its line.
#[test]
fn a_malformed_pin_names_its_line() {
    let text = "[identity]\nuser = \"alice\"\n[tls]\npins = [\"abc\"]\n";
    let err = Config::parse(text, Path::new("phone.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("phone.toml:4"), "{err}");
    assert!(err.contains("pins"), "{err}");
}

/// SDES keying is allowed by default when the signaling is TLS (the keys in the SDP are
/// then encrypted): a mandatory-SDES call over TLS is keyed with SDES.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdes_over_tls_is_allowed_by_default() {
    let pki = pki("sdes");
    let mut bob_cfg = bob_config(&pki);
    bob_cfg.media.srtp_keying = peerline_ua::SrtpKeying::Sdes;
    let (bob, mut be) = Phone::start(bob_cfg).await.unwrap();
    let tls = bob.tls_addr().unwrap();
    let mut alice_cfg = config("alice", &format!("[tls]\nca_file = {:?}\n", pki.ca_file));
    alice_cfg.media.srtp_keying = peerline_ua::SrtpKeying::Sdes;
    let (alice, mut ae) = Phone::start(alice_cfg).await.unwrap();
    let a = alice
        .call(&format!("sip:bob@{tls};transport=tls"), tone(440.0))
        .await
        .unwrap();
    let b = next(&mut be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0)).await.unwrap();
    next(&mut ae, "answered", |e| match e {
        Event::Answered { call } if call == a => Some(()),
        Event::Ended { reason, .. } => panic!("ended: {reason}"),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.hangup(a).await.unwrap();
    let media = next(&mut ae, "ended", |e| match e {
        Event::Ended { call, media, .. } if call == a => Some(media),
        _ => None,
    })
    .await;
    assert!(
        media.srtp.as_deref().is_some_and(|s| s.starts_with("SDES")),
        "{:?}",
        media.srtp
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
