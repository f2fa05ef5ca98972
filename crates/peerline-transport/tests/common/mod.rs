//! Helpers shared by the transport tests: loopback configs, SIP messages, event waits.
#![allow(dead_code)]

use peerline_transport::{
    ConnectionId, Incoming, SipTransports, Transmit, Transport, TransportConfig, TransportEvent,
};
use std::net::SocketAddr;
use std::time::Duration;

/// Loopback, any port, short timeouts so the tests run in well under a second each.
pub fn config() -> TransportConfig {
    TransportConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        message_timeout: Duration::from_secs(5),
        ..TransportConfig::default()
    }
}

pub async fn bind(config: TransportConfig) -> SipTransports {
    SipTransports::bind(config).await.unwrap()
}

/// An OPTIONS request with a body, framed by Content-Length.
pub fn message(n: u32, transport: Transport) -> Vec<u8> {
    let body = format!("body number {n}\r\n");
    format!(
        "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/{transport} 127.0.0.1:5060;branch=z9hG4bK-{n}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@127.0.0.1>;tag=a{n}\r\n\
To: <sip:bob@127.0.0.1>\r\n\
Call-ID: call-{n}@test\r\n\
CSeq: {n} OPTIONS\r\n\
Content-Type: text/plain\r\n\
Content-Length: {}\r\n\
\r\n\
{body}",
        body.len()
    )
    .into_bytes()
}

pub fn transmit(
    dest: SocketAddr,
    transport: Transport,
    conn: Option<ConnectionId>,
    bytes: Vec<u8>,
) -> Transmit {
    Transmit {
        dest,
        bytes,
        transport,
        conn,
    }
}

/// The next event, or a panic after 5 s.
pub async fn event(t: &mut SipTransports) -> TransportEvent {
    tokio::time::timeout(Duration::from_secs(5), t.recv())
        .await
        .expect("no transport event within 5 s")
        .expect("transports closed")
}

/// The next incoming message (other events are a test failure).
pub async fn incoming(t: &mut SipTransports) -> Incoming {
    match event(t).await {
        TransportEvent::Incoming(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Asserts that nothing arrives for `d`.
pub async fn quiet(t: &mut SipTransports, d: Duration) {
    if let Ok(ev) = tokio::time::timeout(d, t.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}
