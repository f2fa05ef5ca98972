//! Tampered and replayed SRTP packets in a real call are dropped and counted in the call's
//! report (RFC 3711 §3.3, §3.3.2). A relay the test places in the media path (by rewriting
//! both SDP `m=` ports, as an attacker on the path could) flips one bit of the
//! authentication tag of one packet and sends another one twice; the audio still arrives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerline_ua::{AudioSource, Config, EndReason, Event, Events, MediaOptions, Phone};
use tokio::net::UdpSocket;

fn config(user: &str) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}

/// Replaces the port of the `m=audio` line (same width) and returns the old one.
fn swap_media_port(msg: &mut [u8], port: u16) -> Option<u16> {
    let text = String::from_utf8_lossy(msg).into_owned();
    let at = text.find("m=audio ")? + "m=audio ".len();
    let end = at + text[at..].find(' ')?;
    let old: u16 = text[at..end].parse().ok()?;
    let new = port.to_string();
    if new.len() != end - at {
        return None;
    }
    msg[at..end].copy_from_slice(new.as_bytes());
    Some(old)
}

#[derive(Default)]
struct Seen {
    alice_media: Option<SocketAddr>,
    bob_media: Option<SocketAddr>,
}

/// SIP relay (caller ⇄ `to`) that points both SDPs at `media`, and the media relay.
async fn relays(to: SocketAddr) -> SocketAddr {
    let sip = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sip_addr = sip.local_addr().unwrap();
    let media = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let media_port = media.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut caller = None;
        while let Ok((n, from)) = sip.recv_from(&mut buf).await {
            let mut msg = buf[..n].to_vec();
            let (dest, from_bob) = if from == to {
                match caller {
                    Some(c) => (c, true),
                    None => continue,
                }
            } else {
                caller = Some(from);
                (to, false)
            };
            if let Some(old) = swap_media_port(&mut msg, media_port) {
                let real = SocketAddr::from(([127, 0, 0, 1], old));
                let mut s = s.lock().unwrap();
                if from_bob {
                    s.bob_media = Some(real);
                } else {
                    s.alice_media = Some(real);
                }
            }
            let _ = sip.send_to(&msg, dest).await;
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut rtp_from_alice = 0u32;
        while let Ok((n, from)) = media.recv_from(&mut buf).await {
            let (a, b) = {
                let s = seen.lock().unwrap();
                (s.alice_media, s.bob_media)
            };
            let (Some(a), Some(b)) = (a, b) else { continue };
            let mut pkt = buf[..n].to_vec();
            if from == a {
                // SRTP (not RTCP, not DTLS) from Alice: tamper with one, replay another.
                let is_rtp = n > 12 && pkt[0] >> 6 == 2 && !(200..=204).contains(&pkt[1]);
                if is_rtp {
                    rtp_from_alice += 1;
                    if rtp_from_alice == 60 {
                        pkt[n - 1] ^= 0x01; // one bit of the authentication tag
                    }
                    if rtp_from_alice == 80 {
                        let _ = media.send_to(&pkt, b).await; // the replay follows
                    }
                }
                let _ = media.send_to(&pkt, b).await;
            } else if from == b {
                let _ = media.send_to(&pkt, a).await;
            }
        }
    });
    sip_addr
}

async fn ended(events: &mut Events) -> (EndReason, Box<peerline_ua::MediaReport>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.recv().await {
            if let Event::Ended { reason, media, .. } = ev {
                return (reason, media);
            }
        }
        panic!("phone stopped")
    })
    .await
    .expect("the call did not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_replayed_srtp_are_dropped_and_counted() {
    let dir = std::env::temp_dir().join(format!("peerline-tamper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("bob.wav");
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let relay = relays(bob.sip_addr()).await;
    let call = alice
        .call(
            &format!("sip:bob@{relay}"),
            MediaOptions {
                source: AudioSource::Tone(440.0),
                record: None,
            },
        )
        .await
        .unwrap();
    let incoming = tokio::time::timeout(Duration::from_secs(5), async {
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
        incoming,
        MediaOptions {
            source: AudioSource::Tone(1000.0),
            record: Some(rec.clone()),
        },
    )
    .await
    .unwrap();
    // 5 s, so the DTLS handshake at the start (up to ~1 s or more on a loaded machine)
    // does not eat into the ≥ 2 s of tone judged below.
    tokio::time::sleep(Duration::from_secs(5)).await;
    alice.hangup(call).await.unwrap();
    let (reason, media) = ended(&mut be).await;
    let _ = ended(&mut ae).await;
    assert_eq!(reason, EndReason::RemoteHangup);
    assert!(
        media.srtp.is_some(),
        "the call was not encrypted: {media:?}"
    );
    assert_eq!(media.srtp_auth_failures, 1, "{media:?}");
    assert_eq!(media.srtp_replays, 1, "{media:?}");
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 440.0, 0.5);
    assert!(heard >= 2.0, "bob heard alice for {heard} s");
    alice.shutdown().await;
    bob.shutdown().await;
}
