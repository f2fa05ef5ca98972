//! DTLS-SRTP fingerprint mismatch (RFC 5763 §5): a relay between two phones alters the
//! `a=fingerprint` in the offer, as a man in the middle would. The callee's DTLS check
//! fails, the call ends with a reason that says so, and no media packet leaves either side.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use peerline_net::{Direction, TrafficClass};
use peerline_ua::{AudioSource, Config, EndReason, Event, Events, MediaOptions, Phone};
use tokio::net::UdpSocket;

fn config(user: &str) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}

/// Forwards the caller's datagrams to `to`, changing one hex digit of any
/// `a=fingerprint:` line (same length, so Content-Length stays right), and `to`'s back.
async fn tampering_relay(to: SocketAddr) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        // Responses come back to the relay (the INVITE's source): send them to the caller.
        let mut caller = None;
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let mut msg = buf[..n].to_vec();
            let dest = if from == to {
                match caller {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                caller = Some(from);
                let text = String::from_utf8_lossy(&msg).into_owned();
                if let Some(i) = text.find("a=fingerprint:sha-256 ") {
                    let at = i + "a=fingerprint:sha-256 ".len();
                    msg[at] = if msg[at] == b'0' { b'1' } else { b'0' };
                }
                to
            };
            let _ = sock.send_to(&msg, dest).await;
        }
    });
    addr
}

async fn ended(events: &mut Events) -> (EndReason, Box<peerline_ua::MediaReport>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Incoming { .. } => {}
                Event::Ended { reason, media, .. } => return (reason, media),
                _ => {}
            }
        }
        panic!("phone stopped")
    })
    .await
    .expect("the call did not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_mismatch_ends_the_call_and_no_media_leaves() {
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let relay = tampering_relay(bob.sip_addr()).await;
    alice
        .call(
            &format!("sip:bob@{relay}"),
            MediaOptions {
                source: AudioSource::Tone(440.0),
                record: None,
            },
        )
        .await
        .unwrap();
    let call = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = be.recv().await {
            if let Event::Incoming { call, .. } = ev {
                return call;
            }
        }
        panic!("bob's phone stopped")
    })
    .await
    .expect("no INVITE through the relay");
    bob.answer(
        call,
        MediaOptions {
            source: AudioSource::Tone(1000.0),
            record: None,
        },
    )
    .await
    .unwrap();
    let (bob_reason, bob_media) = ended(&mut be).await;
    let (alice_reason, alice_media) = ended(&mut ae).await;
    // Bob detects the mismatch; his alert may make Alice's DTLS fail and hang up first,
    // so either side may be the one whose reason explains it — but one must, clearly.
    eprintln!("bob: {bob_reason:?}; alice: {alice_reason:?}");
    let explained = [&bob_reason, &alice_reason].into_iter().any(|r| {
        matches!(r, EndReason::Media(why) if why.contains("fingerprint mismatch")
            || why.contains("certificate"))
    });
    assert!(explained, "bob: {bob_reason:?}; alice: {alice_reason:?}");
    for (who, m) in [("alice", &alice_media), ("bob", &bob_media)] {
        let sent = m.ledger.total(TrafficClass::Media, Direction::Sent);
        assert_eq!(
            sent.packets, 0,
            "{who} sent media without keys: {:?}",
            m.ledger
        );
        assert!(m.srtp.is_none(), "{who}: {:?}", m.srtp);
    }
    alice.shutdown().await;
    bob.shutdown().await;
}
