//! Two ICE sessions in one process on 127.0.0.1 (host candidates only) connect and exchange
//! datagrams both ways; the relay policy holds with no TURN configured.

// Helpers outside #[test] fns are not covered by allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use peerline_net::{
    CandidateKind, Direction, IceConfig, IceError, IceSession, PortRange, TrafficClass,
};
use peerline_sdp::{CandidateType, IceParams, RemoteIce};

fn loopback_config(controlling: bool, range: &str) -> IceConfig {
    IceConfig {
        controlling,
        include_loopback: true,
        host_ips: vec!["127.0.0.1".parse().unwrap()],
        port_range: PortRange::parse(range).unwrap(),
        gather_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(5),
        ..IceConfig::default()
    }
}

/// What the phone does with the peer's SDP: `peerline_sdp` hands it a `RemoteIce`.
fn as_remote(p: &IceParams) -> RemoteIce {
    RemoteIce {
        ufrag: p.ufrag.clone(),
        pwd: p.pwd.clone(),
        options: p.options.clone(),
        candidates: p.candidates.clone(),
        remote_candidates: Vec::new(),
        end_of_candidates: p.end_of_candidates,
        lite: p.lite,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_connect_on_loopback_and_exchange_datagrams() {
    let a = IceSession::gather(loopback_config(true, "41000-41099"))
        .await
        .unwrap();
    let b = IceSession::gather(loopback_config(false, "41100-41199"))
        .await
        .unwrap();
    for s in [&a, &b] {
        let p = s.local_params();
        assert!(p.ufrag.len() >= 4 && p.pwd.len() >= 22, "{p:?}");
        assert!(!p.candidates.is_empty());
        assert!(s.gather_complete());
        for c in &p.candidates {
            // No STUN, no TURN configured: host candidates only, inside the port range.
            assert_eq!(c.typ, CandidateType::Host, "{c}");
            assert_eq!(c.address, "127.0.0.1", "{c}");
            assert!(s.config().port_range.contains(c.port), "{c}");
        }
    }

    let ra = as_remote(b.local_params());
    let rb = as_remote(a.local_params());
    let t = Instant::now();
    let (ca, cb) = tokio::join!(a.connect(&ra), b.connect(&rb));
    let elapsed = t.elapsed();
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    eprintln!(
        "loopback connect: {elapsed:?} (controlling {:?}, controlled {:?})",
        ca.path.connect_time, cb.path.connect_time
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    for c in [&ca, &cb] {
        assert_eq!(c.path.local_type, CandidateKind::Host);
        assert_eq!(c.path.remote_type, CandidateKind::Host);
        assert!(c.path.is_direct());
        assert_eq!(c.path.turn_server, None);
    }
    assert_eq!(ca.path.local_addr, cb.path.remote_addr);
    assert_eq!(ca.path.remote_addr, cb.path.local_addr);

    // A datagram each way (RTP-sized), then a round trip for the RTT.
    let rtp = [0x80u8; 172];
    ca.conn.send(&rtp).await.unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), cb.conn.recv(&mut buf))
        .await
        .expect("b receives in time")
        .unwrap();
    assert_eq!(&buf[..n], &rtp[..]);
    let t = Instant::now();
    cb.conn.send(b"pong-from-b").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), ca.conn.recv(&mut buf))
        .await
        .expect("a receives in time")
        .unwrap();
    assert_eq!(&buf[..n], b"pong-from-b");
    eprintln!("one-way + recv on loopback: {:?}", t.elapsed());
    assert_eq!(a.media_bytes().0, 172);
    assert!(a
        .path_report()
        .unwrap()
        .to_json()
        .contains("\"direct\":true"));

    // A second connect on the same session is refused, not undefined.
    assert_eq!(
        a.connect(&ra).await.err(),
        Some(IceError::AlreadyConnecting)
    );
    a.close().await;
    b.close().await;

    // The connectivity checks are in each side's ledger, as STUN to the other side's
    // address, both ways; the RTP-sized datagram is not (the media path counts media).
    for (name, s, peer) in [
        ("a", &a, ca.path.remote_addr),
        ("b", &b, cb.path.remote_addr),
    ] {
        let l = s.stun_ledger();
        let sent = l.total(TrafficClass::Stun, Direction::Sent);
        let received = l.total(TrafficClass::Stun, Direction::Received);
        assert!(
            sent.packets >= 1 && received.packets >= 1,
            "{name}: {}",
            l.to_json()
        );
        assert!(sent.bytes >= 20 * sent.packets, "{name}: {}", l.to_json());
        assert!(l.destinations().contains(&peer), "{name}: {}", l.to_json());
        assert_eq!(l.total(TrafficClass::Media, Direction::Sent).packets, 0);
        // Read after close: the counts outlive the agent's sockets.
        assert_eq!(s.stun_ledger().to_json(), l.to_json());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_peer_fails_with_the_clear_reason() {
    let mut cfg = loopback_config(true, "41200-41299");
    cfg.connect_timeout = Duration::from_secs(2);
    let a = IceSession::gather(cfg).await.unwrap();
    // A peer whose only candidate is a port nobody listens on.
    let mut remote = as_remote(a.local_params());
    remote.ufrag = "peerufrag".into();
    remote.pwd = "peerpasswordpeerpassword".into();
    for c in &mut remote.candidates {
        c.port = 9; // discard
    }
    let t = Instant::now();
    let err = a.connect(&remote).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let msg = err.to_string();
    assert!(
        msg.starts_with("no direct path and no TURN server configured"),
        "{msg}"
    );
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_without_usable_candidates_is_an_error_not_a_hang() {
    let a = IceSession::gather(loopback_config(false, "41300-41399"))
        .await
        .unwrap();
    let mut remote = as_remote(a.local_params());
    for c in &mut remote.candidates {
        c.component = 2;
    }
    assert!(matches!(
        a.connect(&remote).await,
        Err(IceError::NoRemoteCandidates { .. })
    ));
    a.close().await;
}
