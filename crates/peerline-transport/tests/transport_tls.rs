//! SIP over TLS through `SipTransports`, loopback only, with CAs made here by rcgen:
//! success with the right CA (SNI seen by the server, pin of the server certificate),
//! clear errors for a wrong CA, a pin mismatch and a name mismatch, the driver's
//! `set_server_name` + `send` path, mutual TLS, and plaintext on the TLS port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use peerline_transport::{
    CertPin, ClientCert, CloseReason, ConnectError, SipTransports, TlsClientConfig, TlsError,
    TlsServerConfig, Transport, TransportConfig, TransportEvent,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn make_ca(name: &str) -> Ca {
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
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    pin: CertPin,
}

fn make_leaf(ca: &Ca, dir: &Path, name: &str, sans: &[&str]) -> Leaf {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, sans[0]);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let leaf = Leaf {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
        pin: CertPin::of_der(cert.der()),
    };
    std::fs::write(&leaf.cert, cert.pem()).unwrap();
    std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
    leaf
}

/// A fresh directory with two CAs and a server certificate for localhost/127.0.0.1
/// issued by the first.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    server: Leaf,
}

fn pki(test: &str) -> Pki {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = make_ca("Peerline Test CA");
    let other = make_ca("Somebody Else's CA");
    let ca_file = dir.join("ca.pem");
    let other_ca_file = dir.join("other-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    std::fs::write(&other_ca_file, &other.pem).unwrap();
    let server = make_leaf(&ca, &dir, "server", &["localhost", "127.0.0.1"]);
    Pki {
        dir,
        ca,
        ca_file,
        other_ca_file,
        server,
    }
}

async fn tls_server(p: &Pki, client_ca: Option<PathBuf>) -> SipTransports {
    bind(TransportConfig {
        tls_server: Some(TlsServerConfig {
            port: 0,
            cert_file: p.server.cert.clone(),
            key_file: p.server.key.clone(),
            client_ca_file: client_ca,
        }),
        ..config()
    })
    .await
}

async fn tls_client(tls: TlsClientConfig) -> SipTransports {
    bind(TransportConfig {
        tls_client: tls,
        ..config()
    })
    .await
}

fn trusting(p: &Pki) -> TlsClientConfig {
    TlsClientConfig {
        ca_file: Some(p.ca_file.clone()),
        ..Default::default()
    }
}

#[tokio::test]
async fn tls_with_the_right_ca_carries_messages_both_ways() {
    let p = pki("ok");
    let mut b = tls_server(&p, None).await;
    let b_tls = b.local_addr(Transport::Tls).unwrap();
    assert_ne!(b_tls.port(), b.local_addr(Transport::Udp).unwrap().port());
    let mut a = tls_client(trusting(&p)).await;

    let conn = a
        .connect(b_tls, Transport::Tls, Some("localhost"))
        .await
        .unwrap();
    let info = a.connection(conn).unwrap();
    assert!(info.established);
    assert_eq!(info.server_name.as_deref(), Some("localhost"));
    assert_eq!(
        info.peer_cert,
        Some(p.server.pin),
        "we saw the server's certificate"
    );

    a.send(&transmit(
        b_tls,
        Transport::Tls,
        Some(conn),
        message(1, Transport::Tls),
    ))
    .await
    .unwrap();
    let m = incoming(&mut b).await;
    assert_eq!(
        (m.transport, m.bytes.clone()),
        (Transport::Tls, message(1, Transport::Tls))
    );
    let server_side = b.connection(m.conn.unwrap()).unwrap();
    assert_eq!(
        server_side.server_name.as_deref(),
        Some("localhost"),
        "SNI from the URI host reached the server"
    );
    assert_eq!(server_side.peer_cert, None, "no client certificate");

    b.send(&transmit(
        m.source,
        Transport::Tls,
        m.conn,
        message(2, Transport::Tls),
    ))
    .await
    .unwrap();
    let back = incoming(&mut a).await;
    assert_eq!(
        (back.conn, back.bytes),
        (Some(conn), message(2, Transport::Tls))
    );
    assert_eq!(a.stats().connections_connected, 1);
    assert_eq!(b.stats().connections_accepted, 1);

    // By IP address: no SNI, verified against the certificate's IP SAN.
    let mut c = tls_client(trusting(&p)).await;
    let by_ip = c.connect(b_tls, Transport::Tls, None).await.unwrap();
    c.send(&transmit(
        b_tls,
        Transport::Tls,
        Some(by_ip),
        message(3, Transport::Tls),
    ))
    .await
    .unwrap();
    let m = incoming(&mut b).await;
    assert_eq!(b.connection(m.conn.unwrap()).unwrap().server_name, None);
    quiet(&mut c, Duration::from_millis(20)).await;
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn tls_with_the_wrong_ca_fails_with_certificate_not_trusted() {
    let p = pki("wrongca");
    let mut b = tls_server(&p, None).await;
    let b_tls = b.local_addr(Transport::Tls).unwrap();
    let mut a = tls_client(TlsClientConfig {
        ca_file: Some(p.other_ca_file.clone()),
        ..Default::default()
    })
    .await;
    let err = a
        .connect(b_tls, Transport::Tls, Some("localhost"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.tls(), Some(TlsError::NotTrusted(_))),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("certificate not trusted"), "{text}");
    assert!(text.contains("other-ca.pem"), "names the anchors: {text}");
    // The failed attempt is reported as a Closed event with that reason too.
    match event(&mut a).await {
        TransportEvent::Closed {
            reason: CloseReason::ConnectFailed(e),
            ..
        } => assert_eq!(e, err),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.stats().connect_failures, 1);
    // The server saw the handshake fail (our client sent an alert) and counted it.
    match event(&mut b).await {
        TransportEvent::Closed {
            reason: CloseReason::Tls(_),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(b.stats().tls_handshake_failures, 1);
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn tls_pins_must_match_the_server_certificate() {
    let p = pki("pin");
    let b = tls_server(&p, None).await;
    let b_tls = b.local_addr(Transport::Tls).unwrap();
    let someone_else = make_leaf(&p.ca, &p.dir, "other", &["localhost"]);

    let a = tls_client(TlsClientConfig {
        pins: vec![someone_else.pin],
        ..trusting(&p)
    })
    .await;
    let err = a
        .connect(b_tls, Transport::Tls, Some("localhost"))
        .await
        .unwrap_err();
    match err.tls() {
        Some(TlsError::PinMismatch { presented }) => {
            assert_eq!(presented, &p.server.pin.to_string())
        }
        other => panic!("{other:?} / {err}"),
    }
    assert!(
        err.to_string().contains("certificate pin mismatch"),
        "{err}"
    );

    let ok = tls_client(TlsClientConfig {
        pins: vec![someone_else.pin, p.server.pin.to_string().parse().unwrap()],
        ..trusting(&p)
    })
    .await;
    ok.connect(b_tls, Transport::Tls, Some("localhost"))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn tls_name_mismatch_is_reported() {
    let p = pki("name");
    let b = tls_server(&p, None).await;
    let a = tls_client(trusting(&p)).await;
    let err = a
        .connect(
            b.local_addr(Transport::Tls).unwrap(),
            Transport::Tls,
            Some("pbx.example.com"),
        )
        .await
        .unwrap_err();
    match err.tls() {
        Some(TlsError::NameMismatch { name, .. }) => assert_eq!(name, "pbx.example.com"),
        other => panic!("{other:?} / {err}"),
    }
    let bad = a
        .connect(
            b.local_addr(Transport::Tls).unwrap(),
            Transport::Tls,
            Some("not a name!"),
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, ConnectError::InvalidServerName(_)));
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn endpoint_transmit_over_tls_uses_the_registered_server_name() {
    let p = pki("send");
    let mut b = tls_server(&p, None).await;
    let b_tls = b.local_addr(Transport::Tls).unwrap();
    let a = tls_client(trusting(&p)).await;
    // What the driver does after resolving sips:bob@localhost to b_tls.
    a.set_server_name(b_tls, "localhost");
    let conn = a
        .send(&transmit(
            b_tls,
            Transport::Tls,
            None,
            message(1, Transport::Tls),
        ))
        .await
        .unwrap()
        .unwrap();
    let again = a
        .send(&transmit(
            b_tls,
            Transport::Tls,
            None,
            message(2, Transport::Tls),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn, again, "queued on the connection being opened");
    let m1 = incoming(&mut b).await;
    let m2 = incoming(&mut b).await;
    assert_eq!(m1.bytes, message(1, Transport::Tls));
    assert_eq!(m2.bytes, message(2, Transport::Tls));
    assert_eq!(
        b.connection(m1.conn.unwrap())
            .unwrap()
            .server_name
            .as_deref(),
        Some("localhost")
    );
    assert_eq!(a.stats().connections_connected, 1);
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn mutual_tls_requires_and_reports_the_client_certificate() {
    let p = pki("mutual");
    let client = make_leaf(&p.ca, &p.dir, "client", &["alice.example.com"]);
    let mut b = tls_server(&p, Some(p.ca_file.clone())).await;
    let b_tls = b.local_addr(Transport::Tls).unwrap();

    let a = tls_client(TlsClientConfig {
        client_cert: Some(ClientCert {
            cert_file: client.cert.clone(),
            key_file: client.key.clone(),
        }),
        ..trusting(&p)
    })
    .await;
    let conn = a
        .connect(b_tls, Transport::Tls, Some("localhost"))
        .await
        .unwrap();
    a.send(&transmit(
        b_tls,
        Transport::Tls,
        Some(conn),
        message(1, Transport::Tls),
    ))
    .await
    .unwrap();
    let m = incoming(&mut b).await;
    assert_eq!(
        b.connection(m.conn.unwrap()).unwrap().peer_cert,
        Some(client.pin),
        "the server knows who the client is"
    );

    // Without a client certificate the server refuses the handshake.
    let mut anon = tls_client(trusting(&p)).await;
    let r = anon.connect(b_tls, Transport::Tls, Some("localhost")).await;
    // TLS 1.3: the client may finish its side before the server's verdict arrives; the
    // refusal then closes the connection. Either way nothing gets through.
    if let Ok(c) = r {
        let _ = anon
            .send(&transmit(
                b_tls,
                Transport::Tls,
                Some(c),
                message(2, Transport::Tls),
            ))
            .await;
        match event(&mut anon).await {
            TransportEvent::Closed { reason, .. } => {
                assert!(!matches!(reason, CloseReason::Local), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    match event(&mut b).await {
        TransportEvent::Closed {
            reason: CloseReason::Tls(e),
            ..
        } => assert_eq!(e, TlsError::NoCertificate),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn system_roots_by_default_do_not_trust_a_private_ca() {
    let p = pki("system");
    let b = tls_server(&p, None).await;
    let a = tls_client(TlsClientConfig::default()).await;
    let err = a
        .connect(
            b.local_addr(Transport::Tls).unwrap(),
            Transport::Tls,
            Some("localhost"),
        )
        .await
        .unwrap_err();
    match &err {
        // Normal machine: the system store is there and does not hold our test CA.
        ConnectError::Tls {
            error: TlsError::NotTrusted(detail),
            ..
        } => assert!(detail.contains("the system roots"), "{detail}"),
        // A machine without any root store says so.
        ConnectError::TlsConfig(why) => assert!(why.contains("root"), "{why}"),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn plaintext_on_the_tls_port_is_closed() {
    let p = pki("plain");
    let mut b = tls_server(&p, None).await;
    let mut raw = tokio::net::TcpStream::connect(b.local_addr(Transport::Tls).unwrap())
        .await
        .unwrap();
    raw.write_all(&message(1, Transport::Tcp)).await.unwrap();
    match event(&mut b).await {
        TransportEvent::Closed {
            reason: CloseReason::Tls(TlsError::Handshake(_)),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    let mut buf = [0u8; 256];
    // rustls may send an alert before closing; then EOF.
    let mut total = 0;
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        total += n;
        assert!(total < 4096);
    }
    assert_eq!(b.stats().tls_handshake_failures, 1);
    assert_eq!(b.connections().len(), 0);
    let _ = std::fs::remove_dir_all(&p.dir);
}

#[tokio::test]
async fn bad_tls_files_fail_at_bind_with_the_path() {
    let p = pki("badfiles");
    let err = SipTransports::bind(TransportConfig {
        tls_server: Some(TlsServerConfig {
            port: 0,
            cert_file: p.dir.join("missing.pem"),
            key_file: p.server.key.clone(),
            client_ca_file: None,
        }),
        ..config()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let err = SipTransports::bind(TransportConfig {
        tls_client: TlsClientConfig {
            ca_file: Some(p.server.key.clone()), // a key, not a certificate
            ..Default::default()
        },
        ..config()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("server.key"), "{err}");
    let _ = std::fs::remove_dir_all(&p.dir);
}
