//! ICE in calls (RFC 8445, RFC 8839): two phones on 127.0.0.1 with `[ice] enabled` call
//! each other through a relay that records the SIP. The offer and the answer carry
//! `a=ice-ufrag`, `a=ice-pwd` and host candidates with `c=`/`m=` on one of them; the
//! connectivity checks select a host pair that both phones report; DTLS-SRTP and the
//! tones cross it both ways. A phone with ICE calling one without keeps today's plain RTP.
//! A phone that refuses rtcp-mux gets RTCP on ICE component 2, in both directions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{tone, wait_within};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerline_net::{CandidateKind, Direction, TrafficClass};
use peerline_ua::{Config, EndReason, Event, MediaReport, Phone};
use tokio::net::UdpSocket;

fn config(user: &str, ice: bool) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.ice.enabled = ice;
    c
}

/// Forwards the caller's datagrams to `to` and `to`'s responses back, keeping a copy of
/// every SIP message that passes (the INVITE with the offer, the 200 with the answer).
async fn recording_relay(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut caller = None;
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let dest = if from == to {
                match caller {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                caller = Some(from);
                to
            };
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = sock.send_to(&buf[..n], dest).await;
        }
    });
    (addr, seen)
}

/// The SDP body of the first message starting with `start` (e.g. `INVITE`, `SIP/2.0 200`).
fn sdp_of(messages: &[String], start: &str) -> String {
    let m = messages
        .iter()
        .find(|m| m.starts_with(start))
        .unwrap_or_else(|| panic!("no {start} through the relay"));
    m.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap()
}

/// Checks the ICE attributes of an SDP: credentials, `a=rtcp-mux`, host candidates, no
/// srflx or relay (no STUN/TURN configured), and `c=`/`m=` naming one of the candidates
/// (the default candidate). `components`: the offer carries both (RFC 5761 §5.1.3, for an
/// answerer without rtcp-mux), an answer that muxes only component 1.
fn assert_ice_sdp(sdp: &str, who: &str, components: &[&str]) {
    let lines: Vec<&str> = sdp.lines().collect();
    let value = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{who}: no {prefix} in\n{sdp}"))
            .trim()
            .to_string()
    };
    assert!(value("a=ice-ufrag:").len() >= 4, "{who}:\n{sdp}");
    assert!(value("a=ice-pwd:").len() >= 22, "{who}:\n{sdp}");
    assert!(lines.contains(&"a=rtcp-mux"), "{who}:\n{sdp}");
    let candidates: Vec<Vec<&str>> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| c.split_whitespace().collect())
        .collect();
    assert!(!candidates.is_empty(), "{who}: no a=candidate in\n{sdp}");
    let mut seen: Vec<&str> = candidates.iter().map(|c| c[1]).collect();
    seen.dedup();
    assert_eq!(seen, components, "{who}: components in\n{sdp}");
    for c in &candidates {
        assert_eq!(
            c[7], "host",
            "{who}: only host candidates without STUN/TURN: {c:?}"
        );
        assert_eq!(c[4], "127.0.0.1", "{who}: {c:?}");
    }
    let c_ip = value("c=IN IP4 ");
    let m_port = value("m=audio ");
    let m_port = m_port.split_whitespace().next().unwrap();
    assert!(
        candidates.iter().any(|c| c[4] == c_ip && c[5] == m_port),
        "{who}: c=/m= {c_ip}:{m_port} is not a candidate\n{sdp}"
    );
}

fn heard(rec: &Path, hz: f32) -> f32 {
    let audio = peerline_audio::read_wav(rec).unwrap();
    peerline_media::tone_seconds(&audio.samples, audio.sample_rate, hz, 0.5)
}

/// STUN packets (connectivity checks, consent keep-alives and their answers) of a
/// report's ledger to and from `peer`.
fn stun_with(report: &MediaReport, peer: SocketAddr) -> (u64, u64) {
    let (mut sent, mut received) = (0, 0);
    for e in report.ledger.entries() {
        if e.class == TrafficClass::Stun && e.remote == peer {
            match e.direction {
                Direction::Sent => sent += e.counter.packets,
                Direction::Received => received += e.counter.packets,
            }
        }
    }
    (sent, received)
}

/// Media bytes of a report's ledger to and from `peer`, and whether any went elsewhere.
fn media_with(report: &MediaReport, peer: SocketAddr) -> (u64, u64, bool) {
    let (mut sent, mut received, mut elsewhere) = (0, 0, false);
    for e in report.ledger.entries() {
        if e.class != TrafficClass::Media {
            continue;
        }
        if e.remote != peer {
            elsewhere = true;
        }
        match e.direction {
            Direction::Sent => sent += e.counter.bytes,
            Direction::Received => received += e.counter.bytes,
        }
    }
    (sent, received, elsewhere)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_with_ice_connect_a_host_pair_and_hear_each_other() {
    let dir = std::env::temp_dir().join(format!("peerline-ice-call-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (alice_rec, bob_rec) = (dir.join("alice.wav"), dir.join("bob.wav"));
    let (alice, mut ae) = Phone::start(config("alice", true)).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob", true)).await.unwrap();
    let (relay, sip_log) = recording_relay(bob.sip_addr()).await;

    let a = alice
        .call(
            &format!("sip:bob@{relay}"),
            tone(440.0, Some(alice_rec.clone())),
        )
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(bob_rec.clone())))
        .await
        .unwrap();
    let media_up = |e: &Event| match e {
        Event::MediaUp {
            local,
            remote,
            path,
            ..
        } => Some((*local, *remote, path.clone())),
        _ => None,
    };
    let (a_local, a_remote, a_path) = wait_within(&mut ae, "alice's media up", 10, media_up).await;
    let (b_local, b_remote, b_path) = wait_within(&mut be, "bob's media up", 10, media_up).await;
    let a_path = a_path.expect("alice: MediaUp without an ICE path");
    let b_path = b_path.expect("bob: MediaUp without an ICE path");
    eprintln!("alice: {a_path} ({} ms)", a_path.connect_time.as_millis());
    eprintln!("bob:   {b_path} ({} ms)", b_path.connect_time.as_millis());
    for p in [&a_path, &b_path] {
        assert_eq!(p.local_type, CandidateKind::Host, "{p}");
        assert_eq!(p.remote_type, CandidateKind::Host, "{p}");
        assert!(p.is_direct() && p.turn_server.is_none(), "{p}");
    }
    // Both sides name the same pair, each from its own end.
    assert_eq!((a_local, a_remote), (a_path.local_addr, a_path.remote_addr));
    assert_eq!((b_local, b_remote), (b_path.local_addr, b_path.remote_addr));
    assert_eq!(a_path.local_addr, b_path.remote_addr);
    assert_eq!(a_path.remote_addr, b_path.local_addr);

    let messages = sip_log.lock().unwrap().clone();
    assert_ice_sdp(&sdp_of(&messages, "INVITE "), "offer", &["1", "2"]);
    assert_ice_sdp(&sdp_of(&messages, "SIP/2.0 200"), "answer", &["1"]);
    assert!(!sdp_of(&messages, "SIP/2.0 200").contains("a=rtcp:"));

    tokio::time::sleep(Duration::from_secs(3)).await;
    alice.hangup(a).await.unwrap();
    let (reason, b_report) = wait_within(&mut be, "bob's end", 10, |e| match e {
        Event::Ended { reason, media, .. } => Some((reason.clone(), (**media).clone())),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::RemoteHangup);
    let a_report = wait_within(&mut ae, "alice's end", 10, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;

    for (who, r, peer) in [
        ("alice", &a_report, a_path.remote_addr),
        ("bob", &b_report, b_path.remote_addr),
    ] {
        assert!(r.error.is_none(), "{who}: {:?}", r.error);
        assert!(
            r.srtp
                .as_deref()
                .is_some_and(|s| s.starts_with("DTLS-SRTP")),
            "{who}: DTLS-SRTP over the ICE pair expected, got {:?}",
            r.srtp
        );
        let path = r.path.as_ref().expect("path in the call report");
        assert_eq!(path.local_type, CandidateKind::Host, "{who}: {path}");
        // The ledger keeps media to the selected pair only, and DTLS apart from it.
        let (sent, received, elsewhere) = media_with(r, peer);
        assert!(
            sent > 10_000 && received > 10_000,
            "{who}: media {sent}/{received}"
        );
        assert!(
            !elsewhere,
            "{who}: media to an address off the pair: {:?}",
            r.ledger
        );
        assert!(
            r.ledger
                .entries()
                .any(|e| e.class == TrafficClass::Dtls && e.remote == peer),
            "{who}: no DTLS in the ledger"
        );
        // The ICE checks on the pair, both ways, counted as STUN (not as media).
        let (checks_sent, checks_received) = stun_with(r, peer);
        assert!(
            checks_sent >= 1 && checks_received >= 1,
            "{who}: STUN {checks_sent}/{checks_received} with {peer}: {:?}",
            r.ledger
        );
    }
    let (bob_heard, alice_heard) = (heard(&bob_rec, 440.0), heard(&alice_rec, 1000.0));
    eprintln!("bob heard 440 Hz for {bob_heard:.1} s, alice heard 1000 Hz for {alice_heard:.1} s");
    assert!(
        bob_heard >= 2.0,
        "bob heard alice's tone for {bob_heard} s of 3 s"
    );
    assert!(
        alice_heard >= 2.0,
        "alice heard bob's tone for {alice_heard} s of 3 s"
    );
    // And not the other way round: each recording holds the peer's tone, not its own.
    assert!(heard(&bob_rec, 1000.0) < 0.5);
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Alice offers ICE, Bob has it off and answers without: Alice falls back to plain RTP on
/// her default candidate's address (the `c=`/`m=` Bob sends to), both hear each other,
/// and the call reports no ICE path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_ice_gets_plain_rtp_to_the_default_candidate() {
    let dir = std::env::temp_dir().join(format!("peerline-ice-fallback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (alice_rec, bob_rec) = (dir.join("alice.wav"), dir.join("bob.wav"));
    let (alice, mut ae) = Phone::start(config("alice", true)).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob", false)).await.unwrap();
    let (relay, sip_log) = recording_relay(bob.sip_addr()).await;
    let a = alice
        .call(
            &format!("sip:bob@{relay}"),
            tone(440.0, Some(alice_rec.clone())),
        )
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(bob_rec.clone())))
        .await
        .unwrap();
    let (a_local, path) = wait_within(&mut ae, "alice's media up", 10, |e| match e {
        Event::MediaUp { local, path, .. } => Some((*local, path.clone())),
        _ => None,
    })
    .await;
    assert!(
        path.is_none(),
        "no ICE path with a peer without ICE: {path:?}"
    );
    let messages = sip_log.lock().unwrap().clone();
    assert_ice_sdp(&sdp_of(&messages, "INVITE "), "offer", &["1", "2"]);
    let answer = sdp_of(&messages, "SIP/2.0 200");
    assert!(
        !answer.contains("a=ice-ufrag"),
        "bob has ICE off:\n{answer}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    alice.hangup(a).await.unwrap();
    let a_report = wait_within(&mut ae, "alice's end", 10, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;
    wait_within(&mut be, "bob's end", 10, |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    assert!(a_report.error.is_none(), "{:?}", a_report.error);
    assert!(a_report.path.is_none());
    assert_eq!(
        a_report.local,
        Some(a_local),
        "plain RTP on the advertised address"
    );
    let (bob_heard, alice_heard) = (heard(&bob_rec, 440.0), heard(&alice_rec, 1000.0));
    // Bob's first DTLS ClientHello reaches the port while the ICE agent still holds it
    // and is dropped; his retransmission 1 s later completes the handshake.
    eprintln!("bob heard 440 Hz for {bob_heard:.1} s, alice heard 1000 Hz for {alice_heard:.1} s");
    assert!(bob_heard >= 1.5, "bob heard alice for {bob_heard} s of 3 s");
    assert!(
        alice_heard >= 1.5,
        "alice heard bob for {alice_heard} s of 3 s"
    );
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hold and resume by re-INVITE on an ICE call: the pair stays (re-offers copy the previous
/// SDP, ICE attributes included: no ICE restart), and Bob hears Alice before, during (a
/// sendonly hold still sends) and after. (In-dialog requests go to the Contact, not
/// through the relay, so the re-INVITEs' SDP is not inspected here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_keep_the_ice_pair() {
    let dir = std::env::temp_dir().join(format!("peerline-ice-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("bob.wav");
    let (alice, mut ae) = Phone::start(config("alice", true)).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob", true)).await.unwrap();
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(rec.clone())))
        .await
        .unwrap();
    let path = wait_within(&mut be, "bob's media up", 10, |e| match e {
        Event::MediaUp { path, .. } => path.clone(),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for hold in [true, false] {
        if hold {
            alice.hold(a).await.unwrap();
        } else {
            alice.resume(a).await.unwrap();
        }
        let held = wait_within(&mut ae, "hold/resume", 10, |e| match e {
            Event::Hold { held, .. } => Some(*held),
            _ => None,
        })
        .await;
        assert_eq!(held, hold);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    alice.hangup(a).await.unwrap();
    let report = wait_within(&mut be, "bob's end", 10, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        report.path.as_ref().map(|p| p.remote_addr),
        Some(path.remote_addr)
    );
    assert!(report.error.is_none(), "{:?}", report.error);
    let heard = heard(&rec, 440.0);
    assert!(heard >= 1.5, "bob heard alice for {heard} s of ≈ 2.4 s");
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Post-dial delay with ICE on loopback (host candidates, DTLS-SRTP): from `call()` to the
/// selected pair (`MediaUp`) and to the first audio of the callee's tone in the caller's
/// recording, with a callee that answers at once. Printed for docs/net.md; bounded
/// loosely so a loaded CI machine does not fail it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_dial_delay_with_ice_on_loopback() {
    let dir = std::env::temp_dir().join(format!("peerline-ice-pdd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("alice.wav");
    let (alice, mut ae) = Phone::start(config("alice", true)).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob", true)).await.unwrap();
    let t0 = std::time::Instant::now();
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, Some(rec.clone())))
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, None)).await.unwrap();
    wait_within(&mut ae, "alice's media up", 10, |e| match e {
        Event::MediaUp { path, .. } => path.as_ref().map(|_| ()),
        _ => None,
    })
    .await;
    let to_pair = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice.hangup(a).await.unwrap();
    wait_within(&mut ae, "alice's end", 10, |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    // The recording starts when media starts (after the pair is selected): the first 20 ms
    // block holding the tone marks the first audio played.
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let block = audio.sample_rate as usize / 50;
    let first = audio
        .samples
        .chunks_exact(block)
        .position(|c| peerline_media::detect_tone(c, audio.sample_rate, 1000.0) > 0.5)
        .expect("alice never heard bob's tone");
    let to_audio = to_pair + Duration::from_millis(20 * first as u64);
    eprintln!(
        "post-dial delay with ICE on loopback: pair selected after {} ms, first audio after {} ms",
        to_pair.as_millis(),
        to_audio.as_millis()
    );
    assert!(to_pair < Duration::from_secs(2), "{to_pair:?}");
    assert!(to_audio < Duration::from_secs(3), "{to_audio:?}");
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bob has ICE on, Alice off: Bob answers Alice's ICE-less offer without ICE (no gathering,
/// no candidates in the answer) and they talk over plain RTP as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_ice_is_answered_without_ice() {
    let dir = std::env::temp_dir().join(format!("peerline-ice-noice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("bob.wav");
    let (alice, mut ae) = Phone::start(config("alice", false)).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob", true)).await.unwrap();
    let (relay, sip_log) = recording_relay(bob.sip_addr()).await;
    let a = alice
        .call(&format!("sip:bob@{relay}"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(rec.clone())))
        .await
        .unwrap();
    let path = wait_within(&mut be, "bob's media up", 10, |e| match e {
        Event::MediaUp { path, .. } => Some(path.clone()),
        _ => None,
    })
    .await;
    assert!(path.is_none(), "{path:?}");
    // The 200 has passed the relay once Alice has it.
    wait_within(&mut ae, "answered", 10, |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    let messages = sip_log.lock().unwrap().clone();
    for (start, who) in [("INVITE ", "offer"), ("SIP/2.0 200", "answer")] {
        let sdp = sdp_of(&messages, start);
        assert!(
            !sdp.contains("a=ice-ufrag") && !sdp.contains("a=candidate"),
            "{who}:\n{sdp}"
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    alice.hangup(a).await.unwrap();
    let report = wait_within(&mut be, "bob's end", 10, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;
    wait_within(&mut ae, "alice's end", 10, |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    assert!(
        report.path.is_none() && report.error.is_none(),
        "{report:?}"
    );
    let heard = heard(&rec, 440.0);
    assert!(heard >= 1.5, "bob heard alice for {heard} s of 3 s");
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// One side refuses rtcp-mux (`[media] rtcp_mux = false`), as baresip does by default:
/// RTCP gets ICE component 2 (RFC 8839 §5.1.1). The offer carries both components and
/// `a=rtcp` whoever offers; the answer without `a=rtcp-mux` carries both components too.
/// Both sides connect component 1 (RTP) and component 2 (RTCP), RTCP arrives over
/// component 2's pair (counted apart in the report, and in the ledger against that pair's
/// remote address), and the tones cross both ways. Run with the muxing phone calling and
/// with the non-muxing phone calling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_on_a_second_ice_component_when_one_side_refuses_rtcp_mux() {
    for refuser_calls in [false, true] {
        rtcp_component_call(refuser_calls).await;
    }
}

async fn rtcp_component_call(refuser_calls: bool) {
    let dir = std::env::temp_dir().join(format!(
        "peerline-ice-rtcp-{}-{refuser_calls}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (alice_rec, bob_rec) = (dir.join("alice.wav"), dir.join("bob.wav"));
    let mut alice_config = config("alice", true);
    let mut bob_config = config("bob", true);
    if refuser_calls {
        alice_config.media.rtcp_mux = false;
    } else {
        bob_config.media.rtcp_mux = false;
    }
    let (alice, mut ae) = Phone::start(alice_config).await.unwrap();
    let (bob, mut be) = Phone::start(bob_config).await.unwrap();
    let (relay, sip_log) = recording_relay(bob.sip_addr()).await;
    let who = if refuser_calls {
        "alice (no rtcp-mux) calls"
    } else {
        "alice calls bob (no rtcp-mux)"
    };

    let a = alice
        .call(
            &format!("sip:bob@{relay}"),
            tone(440.0, Some(alice_rec.clone())),
        )
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(bob_rec.clone())))
        .await
        .unwrap();
    let media_up = |e: &Event| match e {
        Event::MediaUp { path, .. } => Some(path.clone()),
        _ => None,
    };
    let a_path = wait_within(&mut ae, "alice's media up", 10, media_up).await;
    let b_path = wait_within(&mut be, "bob's media up", 10, media_up).await;
    assert!(a_path.is_some() && b_path.is_some(), "{who}: no ICE path");

    let messages = sip_log.lock().unwrap().clone();
    let offer = sdp_of(&messages, "INVITE ");
    let answer = sdp_of(&messages, "SIP/2.0 200");
    let components = |sdp: &str| -> Vec<String> {
        let mut v: Vec<String> = sdp
            .lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .filter_map(|c| c.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        v.dedup();
        v
    };
    assert_eq!(components(&offer), ["1", "2"], "{who}: offer\n{offer}");
    assert_eq!(components(&answer), ["1", "2"], "{who}: answer\n{answer}");
    assert_eq!(
        offer.contains("a=rtcp-mux"),
        !refuser_calls,
        "{who}:\n{offer}"
    );
    assert!(!answer.contains("a=rtcp-mux"), "{who}:\n{answer}");
    for (name, sdp) in [("offer", &offer), ("answer", &answer)] {
        // a=rtcp names the RTCP default: one of the component-2 candidates.
        let rtcp = sdp
            .lines()
            .find_map(|l| l.strip_prefix("a=rtcp:"))
            .unwrap_or_else(|| panic!("{who}: no a=rtcp in the {name}\n{sdp}"));
        let f: Vec<&str> = rtcp.split_whitespace().collect();
        let (port, ip) = (f[0], f[3]);
        assert!(
            sdp.lines()
                .filter_map(|l| l.strip_prefix("a=candidate:"))
                .map(|c| c.split_whitespace().collect::<Vec<_>>())
                .any(|c| c[1] == "2" && c[4] == ip && c[5] == port),
            "{who}: a=rtcp:{rtcp} is no component-2 candidate\n{sdp}"
        );
    }

    // Long enough for each side's first RTCP reports (the first after 1.25–3.75 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    alice.hangup(a).await.unwrap();
    let b_report = wait_within(&mut be, "bob's end", 10, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;
    let a_report = wait_within(&mut ae, "alice's end", 10, |e| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    })
    .await;
    for (name, r) in [("alice", &a_report), ("bob", &b_report)] {
        assert!(r.error.is_none(), "{who}: {name}: {:?}", r.error);
        let rtp = r.path.as_ref().expect("component 1's pair");
        let rtcp = r
            .rtcp_path
            .as_ref()
            .unwrap_or_else(|| panic!("{who}: {name}: component 2 did not connect"));
        eprintln!(
            "{who}: {name}: RTP {rtp}, RTCP {rtcp}; RTCP received {} ({} on component 2), sent {}",
            r.rtcp_received, r.rtcp_received_apart, r.rtcp_sent
        );
        assert_eq!(
            rtcp.local_type,
            CandidateKind::Host,
            "{who}: {name}: {rtcp}"
        );
        assert_ne!(
            rtcp.local_addr, rtp.local_addr,
            "{who}: {name}: own sockets"
        );
        assert_ne!(rtcp.remote_addr, rtp.remote_addr, "{who}: {name}");
        assert!(
            r.rtcp_received_apart > 0 && r.rtcp_received_apart == r.rtcp_received,
            "{who}: {name}: RTCP received {} of which on component 2 {}",
            r.rtcp_received,
            r.rtcp_received_apart
        );
        // The ledger has RTCP both ways against component 2's remote address.
        let (sent, received, _) = media_with(r, rtcp.remote_addr);
        assert!(sent > 0 && received > 0, "{who}: {name}: {:?}", r.ledger);
        // Component 2's own connectivity checks are in the ledger too.
        let (checks_sent, checks_received) = stun_with(r, rtcp.remote_addr);
        assert!(
            checks_sent >= 1 && checks_received >= 1,
            "{who}: {name}: component 2 STUN {checks_sent}/{checks_received}: {:?}",
            r.ledger
        );
    }
    let (bob_heard, alice_heard) = (heard(&bob_rec, 440.0), heard(&alice_rec, 1000.0));
    eprintln!(
        "{who}: bob heard 440 Hz for {bob_heard:.1} s, alice heard 1000 Hz for {alice_heard:.1} s"
    );
    assert!(bob_heard >= 4.0, "{who}: bob heard {bob_heard} s of 5 s");
    assert!(
        alice_heard >= 4.0,
        "{who}: alice heard {alice_heard} s of 5 s"
    );
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// ICE restart of a call whose RTCP has its own component restarts both: at the end both
/// sides have component 2 connected on one pair, and not on the caller's first
/// component-2 candidates (the re-INVITE goes to Bob's Contact, past the relay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_restarts_both_components() {
    let alice_config = config("alice", true);
    let mut bob_config = config("bob", true);
    bob_config.media.rtcp_mux = false;
    let (alice, mut ae) = Phone::start(alice_config).await.unwrap();
    let (bob, mut be) = Phone::start(bob_config).await.unwrap();
    let (relay, sip_log) = recording_relay(bob.sip_addr()).await;
    let a = alice
        .call(&format!("sip:bob@{relay}"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_within(&mut be, "incoming", 10, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, None)).await.unwrap();
    let media_up = |e: &Event| match e {
        Event::MediaUp { path, .. } => path.clone(),
        _ => None,
    };
    let first = wait_within(&mut ae, "alice's media up", 10, media_up).await;
    wait_within(&mut be, "bob's media up", 10, media_up).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice.restart_ice(a).await.unwrap();
    let second = wait_within(&mut ae, "alice's media up after the restart", 10, media_up).await;
    assert_ne!(first.local_addr, second.local_addr);
    // Component 2's checks run beside component 1's; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice.hangup(a).await.unwrap();
    let end = |e: &Event| match e {
        Event::Ended { media, .. } => Some((**media).clone()),
        _ => None,
    };
    let b_report = wait_within(&mut be, "bob's end", 10, end).await;
    let a_report = wait_within(&mut ae, "alice's end", 10, end).await;

    let messages = sip_log.lock().unwrap().clone();
    let offer = sdp_of(&messages, "INVITE ");
    let first_rtcp: Vec<SocketAddr> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| c.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c[1] == "2")
        .map(|c| format!("{}:{}", c[4], c[5]).parse().unwrap())
        .collect();
    assert!(
        !first_rtcp.is_empty(),
        "no component 2 in the offer\n{offer}"
    );
    let path = |name: &str, r: &MediaReport| {
        assert_eq!(r.ice_restarts, 1, "{name}");
        r.rtcp_path
            .clone()
            .unwrap_or_else(|| panic!("{name}: component 2 not connected after the restart"))
    };
    let (a_rtcp, b_rtcp) = (path("alice", &a_report), path("bob", &b_report));
    eprintln!("alice: RTCP {a_rtcp}; bob: RTCP {b_rtcp}; first: {first_rtcp:?}");
    assert_eq!(a_rtcp.local_addr, b_rtcp.remote_addr);
    assert_eq!(a_rtcp.remote_addr, b_rtcp.local_addr);
    assert!(
        !first_rtcp.contains(&a_rtcp.local_addr),
        "component 2 still on the first candidates: {a_rtcp}"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}
