//! UDP and TCP through `SipTransports`, loopback only: delivery, framing across writes,
//! connection reuse, limits, timeouts, garbage, connect failures, and a real
//! `peerline_sip::Endpoint` transaction over TCP driven the way the phone's driver will.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use peerline_sip::transport::FramingError;
use peerline_sip::{Endpoint, Event, Target};
use peerline_transport::{
    CloseReason, ConnectError, Direction, SendError, SipTransports, Transport, TransportConfig,
    TransportEvent,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn udp_datagrams_both_ways_and_tcp_listens_on_the_same_port() {
    let mut a = bind(config()).await;
    let mut b = bind(config()).await;
    let a_udp = a.local_addr(Transport::Udp).unwrap();
    let b_udp = b.local_addr(Transport::Udp).unwrap();
    assert_eq!(
        b.local_addr(Transport::Tcp).unwrap(),
        b_udp,
        "TCP on the UDP port"
    );
    assert_eq!(b.local_addr(Transport::Tls), None);

    let sent = a
        .send(&transmit(
            b_udp,
            Transport::Udp,
            None,
            message(1, Transport::Udp),
        ))
        .await
        .unwrap();
    assert_eq!(sent, None, "UDP has no connection");
    let m = incoming(&mut b).await;
    assert_eq!(
        (m.transport, m.source, m.conn),
        (Transport::Udp, a_udp, None)
    );
    assert_eq!(m.bytes, message(1, Transport::Udp));

    b.send(&transmit(
        m.source,
        Transport::Udp,
        None,
        message(2, Transport::Udp),
    ))
    .await
    .unwrap();
    let back = incoming(&mut a).await;
    assert_eq!(
        (back.source, back.bytes),
        (b_udp, message(2, Transport::Udp))
    );
    assert_eq!(a.stats().udp_sent, 1);
    assert_eq!(a.stats().udp_received, 1);
    assert_eq!(a.stats().connections_connected, 0);
}

#[tokio::test]
async fn tcp_two_components_exchange_messages_on_one_connection() {
    let mut a = bind(config()).await;
    let mut b = bind(config()).await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();

    let a_conn = a
        .send(&transmit(
            b_tcp,
            Transport::Tcp,
            None,
            message(1, Transport::Tcp),
        ))
        .await
        .unwrap()
        .unwrap();
    let m = incoming(&mut b).await;
    assert_eq!(m.transport, Transport::Tcp);
    assert_eq!(m.bytes, message(1, Transport::Tcp));
    let b_conn = m.conn.unwrap();
    let info = b.connection(b_conn).unwrap();
    assert_eq!(info.direction, Direction::Incoming);
    assert_eq!(info.remote, m.source);

    // The answer goes back on the connection the request came in (as a server
    // transaction's Transmit carries it).
    let used = b
        .send(&transmit(
            m.source,
            Transport::Tcp,
            Some(b_conn),
            message(2, Transport::Tcp),
        ))
        .await
        .unwrap();
    assert_eq!(used, Some(b_conn));
    let back = incoming(&mut a).await;
    assert_eq!(
        (back.conn, back.bytes),
        (Some(a_conn), message(2, Transport::Tcp))
    );
    assert_eq!(back.source, b_tcp);

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.connections_connected, sa.connections_accepted), (1, 0));
    assert_eq!((sb.connections_connected, sb.connections_accepted), (0, 1));
    assert_eq!(
        (sa.stream_messages_sent, sa.stream_messages_received),
        (1, 1)
    );
    assert_eq!(
        (sb.stream_messages_sent, sb.stream_messages_received),
        (1, 1)
    );
}

#[tokio::test]
async fn message_split_across_many_writes_and_several_in_one_write() {
    let mut b = bind(config()).await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();
    let mut raw = TcpStream::connect(b_tcp).await.unwrap();
    raw.set_nodelay(true).unwrap();

    // One message in 7-byte writes with pauses so they arrive as separate segments.
    let one = message(1, Transport::Tcp);
    for chunk in one.chunks(7) {
        raw.write_all(chunk).await.unwrap();
        raw.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let m = incoming(&mut b).await;
    assert_eq!(m.bytes, one);
    let conn = m.conn;

    // Three messages, a stray CRLF and a keep-alive ping in a single write.
    let mut batch = Vec::new();
    batch.extend(message(2, Transport::Tcp));
    batch.extend(b"\r\n\r\n");
    batch.extend(message(3, Transport::Tcp));
    batch.extend(message(4, Transport::Tcp));
    raw.write_all(&batch).await.unwrap();
    for n in 2..=4 {
        let m = incoming(&mut b).await;
        assert_eq!(m.bytes, message(n, Transport::Tcp));
        assert_eq!(m.conn, conn, "same connection");
    }
    // The ping was answered with a CRLF pong (RFC 5626 §4.4.1).
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), raw.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    assert_eq!(b.stats().pings_answered, 1);
    assert_eq!(b.stats().stream_messages_received, 4);
}

#[tokio::test]
async fn second_send_reuses_the_connection() {
    let a = bind(config()).await;
    let mut b = bind(config()).await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(
            a.send(&transmit(
                b_tcp,
                Transport::Tcp,
                None,
                message(n, Transport::Tcp),
            ))
            .await
            .unwrap(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one connection for five sends: {ids:?}");
    let mut b_conns = Vec::new();
    for n in 1..=5 {
        let m = incoming(&mut b).await;
        assert_eq!(m.bytes, message(n, Transport::Tcp), "in order");
        b_conns.push(m.conn);
    }
    b_conns.dedup();
    assert_eq!(b_conns.len(), 1);
    assert_eq!(
        a.open(b_tcp, Transport::Tcp, None).unwrap(),
        ids[0].unwrap()
    );
    assert_eq!(a.stats().connections_connected, 1, "exactly one connect");
    assert_eq!(b.stats().connections_accepted, 1);
    assert_eq!(a.connections().len(), 1);
}

#[tokio::test]
async fn idle_connection_is_closed_on_both_sides() {
    let mut a = bind(config()).await;
    let mut b = bind(TransportConfig {
        idle_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();
    let a_conn = a.connect(b_tcp, Transport::Tcp, None).await.unwrap();
    a.send(&transmit(
        b_tcp,
        Transport::Tcp,
        Some(a_conn),
        message(1, Transport::Tcp),
    ))
    .await
    .unwrap();
    let m = incoming(&mut b).await;
    let started = std::time::Instant::now();
    match event(&mut b).await {
        TransportEvent::Closed { conn, reason, .. } => {
            assert_eq!(Some(conn), m.conn);
            assert_eq!(reason, CloseReason::Idle(Duration::from_millis(300)));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
    match event(&mut a).await {
        TransportEvent::Closed { conn, reason, .. } => {
            assert_eq!(conn, a_conn);
            assert_eq!(reason, CloseReason::RemoteClosed);
        }
        other => panic!("{other:?}"),
    }
    assert!(!a.is_open(a_conn));
    assert_eq!(b.stats().idle_closed, 1);
    assert_eq!(b.stats().connections_closed, 1);
    assert_eq!(a.stats().connections_closed, 1);

    // A later send opens a new connection (the old id is gone).
    let again = a
        .send(&transmit(
            b_tcp,
            Transport::Tcp,
            Some(a_conn),
            message(2, Transport::Tcp),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(again, a_conn);
    assert_eq!(incoming(&mut b).await.bytes, message(2, Transport::Tcp));
    assert_eq!(a.stats().connections_connected, 2);
}

#[tokio::test]
async fn max_connections_holds_for_accepts_and_opens() {
    let mut b = bind(TransportConfig {
        max_connections: 2,
        ..config()
    })
    .await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();
    let mut first = TcpStream::connect(b_tcp).await.unwrap();
    let mut second = TcpStream::connect(b_tcp).await.unwrap();
    // Let the acceptor register both before the third arrives.
    first.write_all(&message(1, Transport::Tcp)).await.unwrap();
    second.write_all(&message(2, Transport::Tcp)).await.unwrap();
    incoming(&mut b).await;
    incoming(&mut b).await;
    assert_eq!(b.connections().len(), 2);

    let mut third = TcpStream::connect(b_tcp).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("the refused connection is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert_eq!(b.stats().connections_refused, 1);
    assert_eq!(b.stats().connections_accepted, 2);

    // The two admitted connections still work.
    first.write_all(&message(3, Transport::Tcp)).await.unwrap();
    assert_eq!(incoming(&mut b).await.bytes, message(3, Transport::Tcp));

    // Outgoing opens count against the same limit.
    let other = bind(config()).await;
    let err = b
        .open(
            other.local_addr(Transport::Tcp).unwrap(),
            Transport::Tcp,
            None,
        )
        .unwrap_err();
    assert_eq!(err, ConnectError::TooManyConnections { limit: 2 });
    let err = b
        .send(&transmit(
            other.local_addr(Transport::Tcp).unwrap(),
            Transport::Tcp,
            None,
            message(4, Transport::Tcp),
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SendError::Connect(ConnectError::TooManyConnections { .. })
    ));
    assert_eq!(b.stats().connections_refused, 3);

    // Once one closes, there is room again.
    drop(second);
    match event(&mut b).await {
        TransportEvent::Closed { reason, .. } => assert_eq!(reason, CloseReason::RemoteClosed),
        other => panic!("{other:?}"),
    }
    let _fourth = TcpStream::connect(b_tcp).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.stats().connections_accepted < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.stats().connections_accepted, 3);
    assert_eq!(b.stats().connections_refused, 3);
}

#[tokio::test]
async fn garbage_and_half_open_streams_are_closed() {
    let mut b = bind(TransportConfig {
        message_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();

    // No Content-Length on a stream: the framer cannot find the next message.
    let mut garbage = TcpStream::connect(b_tcp).await.unwrap();
    garbage
        .write_all(b"GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    match event(&mut b).await {
        TransportEvent::Closed { reason, .. } => assert_eq!(
            reason,
            CloseReason::Framing(FramingError::MissingContentLength)
        ),
        other => panic!("{other:?}"),
    }
    let mut buf = [0u8; 64];
    assert_eq!(garbage.read(&mut buf).await.unwrap_or(0), 0);
    assert_eq!(b.stats().framing_errors, 1);

    // Binary noise without a header end, then silence: half-open, closed by the timer.
    let mut noise = TcpStream::connect(b_tcp).await.unwrap();
    noise
        .write_all(&[0xff, 0x00, 0x13, 0x37, b'\r'])
        .await
        .unwrap();
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(b_tcp).await.unwrap();
    for _ in 0..2 {
        match event(&mut b).await {
            TransportEvent::Closed { reason, .. } => {
                assert_eq!(
                    reason,
                    CloseReason::MessageTimeout(Duration::from_millis(300))
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(noise.read(&mut buf).await.unwrap_or(0), 0);
    assert_eq!(silent.read(&mut buf).await.unwrap_or(0), 0);
    assert_eq!(b.stats().half_open_closed, 2);

    // A message that stalls halfway is closed too, after earlier complete ones.
    let mut stall = TcpStream::connect(b_tcp).await.unwrap();
    let m = message(1, Transport::Tcp);
    stall.write_all(&m).await.unwrap();
    stall.write_all(&m[..20]).await.unwrap();
    assert_eq!(incoming(&mut b).await.bytes, m);
    match event(&mut b).await {
        TransportEvent::Closed { reason, .. } => {
            assert!(matches!(reason, CloseReason::MessageTimeout(_)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.connections().len(), 0);
    assert_eq!(b.stats().connections_closed, 4);
}

#[tokio::test]
async fn oversized_message_closes_the_connection() {
    let mut b = bind(config()).await;
    let mut raw = TcpStream::connect(b.local_addr(Transport::Tcp).unwrap())
        .await
        .unwrap();
    raw.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4000000000\r\n\r\n")
        .await
        .unwrap();
    match event(&mut b).await {
        TransportEvent::Closed { reason, .. } => {
            assert!(matches!(
                reason,
                CloseReason::Framing(FramingError::TooLarge { .. })
            ))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failed_connect_is_reported_with_the_connection_id() {
    let mut a = bind(config()).await;
    // A port with nobody listening: bind, learn it, close.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let err = a.connect(dead, Transport::Tcp, None).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::Io { dest, .. } if dest == dead),
        "{err}"
    );
    // The Closed event for that attempt.
    assert!(matches!(event(&mut a).await, TransportEvent::Closed { .. }));

    let id = a
        .send(&transmit(
            dead,
            Transport::Tcp,
            None,
            message(1, Transport::Tcp),
        ))
        .await
        .unwrap()
        .unwrap();
    match event(&mut a).await {
        TransportEvent::Closed { conn, reason, .. } => {
            assert_eq!(conn, id);
            assert!(matches!(
                reason,
                CloseReason::ConnectFailed(ConnectError::Io { .. })
            ));
            assert!(reason
                .to_string()
                .starts_with("cannot connect to 127.0.0.1:"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.stats().connect_failures, 2);
    assert_eq!(a.stats().connections_closed, 0);
    assert!(a.connect(dead, Transport::Udp, None).await.is_err());
}

#[tokio::test]
async fn ping_gets_a_pong_event() {
    let mut a = bind(config()).await;
    let mut b = bind(config()).await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();
    let conn = a.connect(b_tcp, Transport::Tcp, None).await.unwrap();
    a.ping(conn).unwrap();
    assert_eq!(event(&mut a).await, TransportEvent::Pong { conn });
    assert_eq!(b.stats().pings_answered, 1);
    // The keep-alive counts as the accepted connection's first "message".
    quiet(&mut b, Duration::from_millis(50)).await;
    a.close(conn);
    assert!(matches!(
        event(&mut a).await,
        TransportEvent::Closed {
            reason: CloseReason::Local,
            ..
        }
    ));
    assert!(matches!(
        event(&mut b).await,
        TransportEvent::Closed {
            reason: CloseReason::RemoteClosed,
            ..
        }
    ));
}

/// What the driver does: endpoint transmits go to `send`, incoming messages to
/// `handle_stream_message`, and `Closed` to `connection_closed`.
async fn pump(ep: &mut Endpoint, t: &SipTransports) {
    while let Some(tx) = ep.poll_transmit() {
        t.send(&tx).await.unwrap();
    }
}

fn feed(ep: &mut Endpoint, ev: TransportEvent) {
    let now = std::time::Instant::now();
    match ev {
        TransportEvent::Incoming(m) => match m.conn {
            None => ep.handle_datagram(now, m.source, &m.bytes),
            Some(conn) => ep.handle_stream_message(now, conn, m.transport, m.source, &m.bytes),
        },
        TransportEvent::Closed { conn, .. } => ep.connection_closed(conn),
        TransportEvent::Pong { .. } => {}
    }
}

#[tokio::test]
async fn endpoint_transaction_over_tcp_and_connection_loss() {
    use peerline_sip::message::{make_response, RequestBuilder};
    let mut a = bind(config()).await;
    let mut b = bind(config()).await;
    let a_tcp = a.local_addr(Transport::Tcp).unwrap();
    let b_tcp = b.local_addr(Transport::Tcp).unwrap();
    let mut ua = Endpoint::new(peerline_sip::Config::default());
    let mut ub = Endpoint::new(peerline_sip::Config::default());

    let request = |n: u32| {
        RequestBuilder::new(
            rsip::Method::Options,
            format!("sip:bob@{b_tcp};transport=tcp"),
        )
        .via("TCP", &a_tcp.to_string(), &format!("z9hG4bK-e{n}"))
        .from(&format!("sip:alice@{a_tcp}"), None, "t1")
        .to(&format!("sip:bob@{b_tcp}"), None)
        .call_id(&format!("c{n}@test"))
        .cseq(n)
        .build()
        .unwrap()
    };
    // The connection is opened first so its id goes in the Target.
    let conn = a.open(b_tcp, Transport::Tcp, None).unwrap();
    let key = ua
        .send_request_to(
            std::time::Instant::now(),
            request(1),
            Target::stream(b_tcp, Transport::Tcp, Some(conn)),
        )
        .unwrap();
    pump(&mut ua, &a).await;

    let ev = event(&mut b).await;
    feed(&mut ub, ev);
    let Some(Event::IncomingRequest {
        key: skey,
        request: req,
        ..
    }) = ub.poll_event()
    else {
        panic!("no request");
    };
    ub.send_response(
        std::time::Instant::now(),
        &skey,
        make_response(&req, 200, Some("b1")),
    )
    .unwrap();
    pump(&mut ub, &b).await;

    let ev = event(&mut a).await;
    feed(&mut ua, ev);
    match ua.poll_event() {
        Some(Event::Response { key: k, response }) => {
            assert_eq!(k, key);
            assert_eq!(response.status_code.code(), 200);
        }
        other => panic!("{other:?}"),
    }

    // Connection lost while a transaction is pending: it fails at once (RFC 3261
    // §17.1.4), not after Timer F.
    ua.send_request_to(
        std::time::Instant::now(),
        request(2),
        Target::stream(b_tcp, Transport::Tcp, Some(conn)),
    )
    .unwrap();
    pump(&mut ua, &a).await;
    incoming(&mut b).await; // b receives it but does not answer
    a.close(conn);
    let ev = event(&mut a).await;
    assert!(matches!(ev, TransportEvent::Closed { .. }));
    feed(&mut ua, ev);
    assert!(matches!(
        ua.poll_event(),
        Some(Event::TransactionTimeout { .. })
    ));
}
