//! SIP over TCP against a running phone under abuse (issue 10), on loopback: a connection
//! that never sends a message (half-open), one that stops in the middle of a message
//! (slow loris), an idle one, and more connections than the limit. Each must be closed by
//! the phone within its configured time or at once, while a well-behaved connection keeps
//! getting answers. Timeouts come from the phone's config (`[network] tcp_*`), set short
//! here; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use peerline_ua::{Config, Phone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(max: usize, message_secs: u64, idle_secs: u64) -> Config {
    let text = format!(
        "[identity]\nuser = \"bob\"\n[network]\nsip_listen = \"127.0.0.1:0\"\n\
         tcp_max_connections = {max}\ntcp_message_timeout_secs = {message_secs}\n\
         tcp_idle_timeout_secs = {idle_secs}\n"
    );
    Config::parse(&text, Path::new("<tcp limits test>")).unwrap()
}

fn options(to: SocketAddr, from: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/TCP {from};branch=z9hG4bKtcp{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{from}>;tag=t{n}\r\nTo: <sip:bob@{to}>\r\n\
         Call-ID: tcp-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends an OPTIONS on `s` and returns the status code of the answer (within 3 s).
async fn ask(s: &mut TcpStream, to: SocketAddr, n: u32) -> Option<u16> {
    let from = s.local_addr().ok()?;
    s.write_all(options(to, from, n).as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..len]);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Waits up to `limit` for the phone to close `s` (EOF or reset); `true` if it did.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let r = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // an answer (e.g. a 400): keep reading until the close
            }
        }
    })
    .await;
    r.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_slow_connections_are_closed_after_the_message_timeout() {
    let (bob, _events) = Phone::start(config(64, 1, 600)).await.unwrap();
    let to = bob.sip_addr();
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(to).await.unwrap();
    // Sends half a request and stops.
    let mut slow = TcpStream::connect(to).await.unwrap();
    let from = slow.local_addr().unwrap();
    let half = options(to, from, 1);
    slow.write_all(&half.as_bytes()[..half.len() / 2])
        .await
        .unwrap();
    // A well-behaved connection, asking every 400 ms meanwhile.
    let mut good = TcpStream::connect(to).await.unwrap();
    for n in 0..4 {
        assert_eq!(ask(&mut good, to, 10 + n).await, Some(200), "request {n}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // 1 s message timeout: both are closed by now or very soon (bounded at 4 s).
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)).await,
        "a connection that sent nothing is still open"
    );
    assert!(
        closed_within(&mut slow, Duration::from_secs(4)).await,
        "a connection stuck in the middle of a message is still open"
    );
    // The good one still works.
    assert_eq!(ask(&mut good, to, 20).await, Some(200));
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let (bob, _events) = Phone::start(config(64, 10, 2)).await.unwrap();
    let to = bob.sip_addr();
    let mut c = TcpStream::connect(to).await.unwrap();
    assert_eq!(ask(&mut c, to, 1).await, Some(200));
    // Still open after 1 s of silence (idle timeout 2 s)…
    assert!(
        !closed_within(&mut c, Duration::from_secs(1)).await,
        "closed before the idle timeout"
    );
    // …and closed within a few seconds after it.
    assert!(
        closed_within(&mut c, Duration::from_secs(5)).await,
        "an idle connection is still open"
    );
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let limit = 4;
    let (bob, _events) = Phone::start(config(limit, 10, 600)).await.unwrap();
    let to = bob.sip_addr();
    let mut open = Vec::new();
    for n in 0..limit {
        let mut s = TcpStream::connect(to).await.unwrap();
        // A message on each, so the phone has surely accepted it.
        assert_eq!(ask(&mut s, to, n as u32).await, Some(200), "connection {n}");
        open.push(s);
    }
    // The kernel accepts the connect; the phone closes it at once and answers nothing.
    for n in 0..3u32 {
        let mut extra = TcpStream::connect(to).await.unwrap();
        let from = extra.local_addr().unwrap();
        let _ = extra.write_all(options(to, from, 100 + n).as_bytes()).await;
        assert!(
            closed_within(&mut extra, Duration::from_secs(2)).await,
            "connection {} beyond the limit of {limit} stays open",
            n + 1
        );
    }
    // The ones within the limit still work.
    for (n, s) in open.iter_mut().enumerate() {
        assert_eq!(
            ask(s, to, 200 + n as u32).await,
            Some(200),
            "connection {n}"
        );
    }
    // Closing one frees a place.
    open.pop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = TcpStream::connect(to).await.unwrap();
    assert_eq!(ask(&mut again, to, 300).await, Some(200));
    bob.shutdown().await;
}
