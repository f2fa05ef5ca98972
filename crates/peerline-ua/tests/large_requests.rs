//! RFC 3261 §18.1.1: a request larger than 1300 bytes (the path MTU being unknown) is
//! sent over TCP even when UDP was chosen, and retried over UDP when the TCP connection is
//! refused. The callee is a test-owned UDP socket and TCP listener on the same port, so
//! the test sees which transport carried the INVITE.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use peerline_ua::{AudioSource, Config, MediaOptions, Phone};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

/// A caller whose INVITE is well over 1300 bytes (a long display name).
fn caller() -> Config {
    let name = "Alice with a very long display name ".repeat(30);
    let text = format!(
        "[identity]\nuser = \"alice\"\ndisplay_name = \"{name}\"\n\
         [network]\nsip_listen = \"127.0.0.1:0\"\n[media]\nsrtp = \"off\"\n"
    );
    Config::parse(&text, Path::new("<large request test>")).unwrap()
}

fn silence() -> MediaOptions {
    MediaOptions {
        source: AudioSource::Silence,
        record: None,
    }
}

/// The first datagram on `udp` within `wait`, as text.
async fn udp_request(udp: &UdpSocket, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(wait, udp.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_invite_goes_over_tcp() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let tcp = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let (alice, _events) = Phone::start(caller()).await.unwrap();
    alice
        .call(&format!("sip:bob@127.0.0.1:{port}"), silence())
        .await
        .unwrap();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), tcp.accept())
        .await
        .expect("no TCP connection for the large INVITE")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("INVITE sip:bob@"), "{head}");
    assert!(head.contains("Via: SIP/2.0/TCP "), "{head}");
    assert!(head.contains(";transport=tcp"), "Contact for TCP: {head}");
    // Nothing went over UDP.
    assert_eq!(udp_request(&udp, Duration::from_millis(300)).await, None);
    alice.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_invite_falls_back_to_udp_when_tcp_is_refused() {
    // Only UDP on this port: the TCP connect is refused.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let (alice, _events) = Phone::start(caller()).await.unwrap();
    alice
        .call(&format!("sip:bob@127.0.0.1:{port}"), silence())
        .await
        .unwrap();
    let req = udp_request(&udp, Duration::from_secs(5))
        .await
        .expect("the INVITE was not retried over UDP");
    assert!(req.starts_with("INVITE sip:bob@"), "{req}");
    assert!(req.contains("Via: SIP/2.0/UDP "), "{req}");
    assert!(req.len() > 1300, "{} bytes", req.len());
    alice.shutdown().await;
}
