//! Two phones on loopback through the public API: DTMF, hold and resume, reject, cancel.
//! Real UDP sockets on 127.0.0.1, real timers; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

mod common;

use common::{config, tone, wait_for};
use peerline_ua::{EndReason, Event, Events, Phone};

/// Alice calls Bob, Bob answers; returns both call ids.
async fn connect(
    alice: &Phone,
    ae: &mut Events,
    bob: &Phone,
    be: &mut Events,
    bob_record: Option<PathBuf>,
) -> (u64, u64) {
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_for(be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, bob_record)).await.unwrap();
    wait_for(ae, "answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_digits_arrive_in_order() {
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let (a, _) = connect(&alice, &mut ae, &bob, &mut be, None).await;
    assert!(matches!(
        alice.send_dtmf(a, "12x").await,
        Err(peerline_ua::PhoneError::BadDigit('x'))
    ));
    alice.send_dtmf(a, "0123456789*#").await.unwrap();
    let mut got = String::new();
    while got.len() < 12 {
        let d = wait_for(&mut be, "dtmf", |e| match e {
            Event::Dtmf { digit, .. } => Some(*digit),
            _ => None,
        })
        .await;
        got.push(d);
    }
    assert_eq!(got, "0123456789*#");
    alice.hangup(a).await.unwrap();
    let (reason, dtmf) = wait_for(&mut be, "bob's end", |e| match e {
        Event::Ended { reason, media, .. } => Some((reason.clone(), media.dtmf.clone())),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::RemoteHangup);
    assert_eq!(dtmf, "0123456789*#");
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_by_reinvite() {
    let dir = std::env::temp_dir().join(format!("peerline-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("bob.wav");
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let (a, _) = connect(&alice, &mut ae, &bob, &mut be, Some(rec.clone())).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    alice.hold(a).await.unwrap();
    let held = wait_for(&mut ae, "hold", |e| match e {
        Event::Hold { held, .. } => Some(*held),
        _ => None,
    })
    .await;
    assert!(held);
    // Alice offered sendonly: Bob answers recvonly, so Bob stops sending and keeps hearing.
    let (send, receive) = wait_for(&mut be, "remote update", |e| match e {
        Event::RemoteUpdate { send, receive, .. } => Some((*send, *receive)),
        _ => None,
    })
    .await;
    assert_eq!((send, receive), (false, true));
    tokio::time::sleep(Duration::from_millis(600)).await;
    alice.resume(a).await.unwrap();
    let held = wait_for(&mut ae, "resume", |e| match e {
        Event::Hold { held, .. } => Some(*held),
        _ => None,
    })
    .await;
    assert!(!held);
    let (send, receive) = wait_for(&mut be, "remote update", |e| match e {
        Event::RemoteUpdate { send, receive, .. } => Some((*send, *receive)),
        _ => None,
    })
    .await;
    assert_eq!((send, receive), (true, true));
    tokio::time::sleep(Duration::from_millis(600)).await;
    alice.hangup(a).await.unwrap();
    let lost = wait_for(&mut be, "bob's end", |e| match e {
        Event::Ended { media, .. } => Some(media.received.packets_lost),
        _ => None,
    })
    .await;
    assert_eq!(
        lost, 0,
        "alice kept sending through her own hold (sendonly)"
    );
    // Bob heard Alice's 440 Hz throughout: a sendonly hold still sends (RFC 6337).
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let secs = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 440.0, 0.5);
    assert!(secs >= 1.2, "bob heard alice for {secs} s");
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_cancel_end_both_sides() {
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    // Bob rejects with 486.
    alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_for(&mut be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.reject(b, 486).await.unwrap();
    let reason = wait_for(&mut ae, "alice's end", |e| match e {
        Event::Ended { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Rejected(486, "Busy Here".into()));
    let reason = wait_for(&mut be, "bob's end", |e| match e {
        Event::Ended { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::RejectedLocally(486));
    // Alice cancels while Bob's phone rings.
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    wait_for(&mut ae, "ringing", |e| {
        matches!(e, Event::Ringing { .. }).then_some(())
    })
    .await;
    alice.hangup(a).await.unwrap();
    let reason = wait_for(&mut be, "bob's cancelled call", |e| match e {
        Event::Ended { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Cancelled);
    let reason = wait_for(&mut ae, "alice's cancelled call", |e| match e {
        Event::Ended { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Cancelled);
    alice.shutdown().await;
    bob.shutdown().await;
}

/// A call over TCP to a port where nothing listens ends at once with the transport's
/// reason (not after Timer B's 32 s as a "timeout"): the refused connect fails the
/// INVITE transaction queued for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call_to_a_closed_port_ends_at_once_naming_the_failure() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    // `wait_for` gives up after 5 s; Timer B would end the call only after 32 s.
    let call = alice
        .call(
            &format!("sip:bob@{closed};transport=tcp"),
            tone(440.0, None),
        )
        .await
        .unwrap();
    let reason = wait_for(&mut ae, "ended", |e| match e {
        Event::Ended {
            call: c, reason, ..
        } if *c == call => Some(reason.clone()),
        _ => None,
    })
    .await;
    let EndReason::Unreachable(why) = &reason else {
        panic!("ended with {reason:?}, want Unreachable");
    };
    assert!(why.contains(&closed.to_string()), "{why}");
    assert!(why.to_lowercase().contains("refused"), "{why}");
    alice.shutdown().await;
}

/// RFC 3428 MESSAGE straight between two phones (no account): 200 back to the sender,
/// an `Event::Message` with the text at the recipient; to a closed TCP port the send
/// fails at once with the transport's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_between_two_phones_and_to_a_closed_port() {
    let (alice, _ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let status = alice.send_message(&bob.uri("bob"), "ping ✓").await.unwrap();
    assert_eq!(status, 200);
    let (from, body) = wait_for(&mut be, "message", |e| match e {
        Event::Message { from, body, .. } => Some((from.clone(), body.clone())),
        _ => None,
    })
    .await;
    assert!(from.contains("alice"), "{from}");
    assert_eq!(body, "ping ✓");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        alice.send_message(&format!("sip:bob@{closed};transport=tcp"), "anyone?"),
    )
    .await
    .expect("no outcome within 5 s");
    match r {
        Err(peerline_ua::PhoneError::NoAnswer(why)) => {
            assert!(why.to_lowercase().contains("refused"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Blind transfer (RFC 3515): Alice calls Bob, then refers him to Carol. Bob answers the
/// REFER with 202, calls Carol with the call's media, and NOTIFYs Alice (100, then 200);
/// Alice's call then ends as transferred, and Carol hears Bob's tone. A second transfer
/// to someone who refuses (486) is reported to Alice and her call stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_connects_the_transferee_to_the_target() {
    let dir = std::env::temp_dir().join(format!("peerline-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let (carol, mut ce) = Phone::start(config("carol")).await.unwrap();
    let (a, b) = connect(&alice, &mut ae, &bob, &mut be, None).await;

    // First a target that refuses: reported, and the call stays up.
    let (dave, mut de) = Phone::start(config("dave")).await.unwrap();
    alice.transfer(a, &dave.uri("dave")).await.unwrap();
    let d = wait_for(&mut de, "dave incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    dave.reject(d, 486).await.unwrap();
    wait_for(&mut ae, "486 reported to alice", |e| match e {
        Event::Transfer { call, status, .. } if *call == a && *status == 486 => Some(()),
        Event::Ended { call, reason, .. } if *call == a => panic!("call ended: {reason}"),
        _ => None,
    })
    .await;
    dave.shutdown().await;

    // Then Carol, who answers.
    alice.transfer(a, &carol.uri("carol")).await.unwrap();
    let (target, new_call) = wait_for(&mut be, "bob referred", |e| match e {
        Event::Transfer {
            call,
            target: Some(t),
            new_call: Some(n),
            ..
        } if *call == b && t.contains("carol") => Some((t.clone(), *n)),
        _ => None,
    })
    .await;
    assert_eq!(target, carol.uri("carol"));
    let c = wait_for(&mut ce, "carol incoming", |e| match e {
        Event::Incoming { call, from, .. } => {
            assert!(from.contains("bob"), "{from}");
            Some(*call)
        }
        _ => None,
    })
    .await;
    let rec = dir.join("carol.wav");
    carol
        .answer(c, tone(500.0, Some(rec.clone())))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    let reason = wait_for(&mut ae, "alice's call ends", |e| match e {
        Event::Transfer { call, status, .. } if *call == a => {
            statuses.push(*status);
            None
        }
        Event::Ended { call, reason, .. } if *call == a => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Transferred, "statuses {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    // Bob's old call ends (Alice's BYE); his new one with Carol is up.
    wait_for(&mut be, "bob's old call ends", |e| match e {
        Event::Ended { call, .. } if *call == b => Some(()),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    carol.hangup(c).await.unwrap();
    wait_for(&mut ce, "carol's call ends", |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    wait_for(&mut be, "bob's new call ends", |e| match e {
        Event::Ended { call, .. } if *call == new_call => Some(()),
        _ => None,
    })
    .await;
    // Carol heard Bob's tone (1,000 Hz, the media of the transferred call).
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 1000.0, 0.5);
    assert!(heard >= 1.0, "carol heard bob for {heard} s");
    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
}

/// Attended transfer (RFC 5589 §7): Alice talks to Bob, calls Carol (consultation), then
/// transfers Bob to Carol with `Replaces` naming her call with Carol. Bob calls Carol, whose
/// phone swaps the calls at once; Alice's two calls end; Bob and Carol hear each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attended_transfer_replaces_the_consultation_call() {
    let dir = std::env::temp_dir().join(format!("peerline-attended-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let (carol, mut ce) = Phone::start(config("carol")).await.unwrap();
    let (a, b) = connect(&alice, &mut ae, &bob, &mut be, None).await;

    // The consultation call: Alice → Carol, who records.
    let a2 = alice
        .call(&carol.uri("carol"), tone(440.0, None))
        .await
        .unwrap();
    let c1 = wait_for(&mut ce, "carol incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    let rec = dir.join("carol.wav");
    carol
        .answer(c1, tone(500.0, Some(rec.clone())))
        .await
        .unwrap();
    wait_for(&mut ae, "consultation answered", |e| match e {
        Event::Answered { call } if *call == a2 => Some(()),
        _ => None,
    })
    .await;

    // A call cannot be its own consultation; an unanswered or unknown one is refused.
    assert!(alice.transfer_attended(a, a).await.is_err());
    assert!(alice.transfer_attended(a, 999).await.is_err());

    tokio::time::sleep(Duration::from_millis(1500)).await; // Alice and Carol talk
    alice.transfer_attended(a, a2).await.unwrap();
    let new_call = wait_for(&mut be, "bob referred", |e| match e {
        Event::Transfer {
            call,
            target: Some(t),
            new_call: Some(n),
            ..
        } if *call == b => {
            assert!(t.contains("carol"), "{t}");
            Some(*n)
        }
        _ => None,
    })
    .await;
    let c2 = wait_for(&mut ce, "carol's call replaced", |e| match e {
        Event::Replaced {
            call,
            replaced,
            from,
        } => {
            assert_eq!(*replaced, c1);
            assert!(from.contains("bob"), "{from}");
            Some(*call)
        }
        Event::Incoming { .. } => panic!("the replacing INVITE rang as a new call"),
        _ => None,
    })
    .await;
    let reason = wait_for(&mut ce, "carol's first call ends", |e| match e {
        Event::Ended { call, reason, .. } if *call == c1 => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::Replaced);

    // Alice: the transferred call ends when Bob reports 200; Carol hangs up on her.
    let mut ended = std::collections::HashMap::new();
    wait_for(&mut ae, "both of alice's calls end", |e| {
        if let Event::Ended { call, reason, .. } = e {
            ended.insert(*call, reason.clone());
        }
        (ended.len() == 2).then_some(())
    })
    .await;
    assert_eq!(ended[&a], EndReason::Transferred);
    assert_eq!(ended[&a2], EndReason::RemoteHangup);
    wait_for(&mut be, "bob's old call ends", |e| match e {
        Event::Ended { call, .. } if *call == b => Some(()),
        _ => None,
    })
    .await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.hangup(new_call).await.unwrap();
    let media = wait_for(&mut ce, "carol's new call ends", |e| match e {
        Event::Ended {
            call,
            media,
            reason,
        } if *call == c2 => {
            assert_eq!(*reason, EndReason::RemoteHangup);
            Some(media.clone())
        }
        _ => None,
    })
    .await;
    assert!(media.received.packets_received > 50, "{:?}", media.received);
    // Carol's new call recorded beside the first one: it heard Bob (1,000 Hz).
    let rec2 = dir.join(format!("carol.call{c2}.wav"));
    let audio = peerline_audio::read_wav(&rec2).unwrap();
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 1000.0, 0.5);
    assert!(heard >= 1.0, "carol heard bob for {heard} s");
    // The consultation recording holds Alice (440 Hz), not Bob.
    let first = peerline_audio::read_wav(&rec).unwrap();
    let alice_heard = peerline_media::tone_seconds(&first.samples, first.sample_rate, 440.0, 0.5);
    assert!(
        alice_heard > 0.0,
        "consultation recording: {alice_heard} s of alice"
    );
    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
}

/// SDES keys change on re-INVITE (RFC 4568 §7.1.4): each answer carries fresh keys, and
/// both phones switch to the negotiated ones, so audio keeps flowing both ways after a
/// hold and a resume with no SRTP packet failing authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdes_keys_renegotiated_on_reinvite_keep_audio_flowing() {
    let dir = std::env::temp_dir().join(format!("peerline-rekey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sdes = |user: &str| {
        let mut c = config(user);
        c.media.srtp_keying = peerline_ua::SrtpKeying::Sdes;
        c.media.allow_sdes_without_tls = true; // UDP signaling in this test
        c
    };
    let (alice, mut ae) = Phone::start(sdes("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(sdes("bob")).await.unwrap();
    let (a_rec, b_rec) = (dir.join("alice.wav"), dir.join("bob.wav"));
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, Some(a_rec.clone())))
        .await
        .unwrap();
    let b = wait_for(&mut be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(b_rec.clone())))
        .await
        .unwrap();
    wait_for(&mut ae, "answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    for hold in [true, false] {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if hold {
            alice.hold(a).await.unwrap();
        } else {
            alice.resume(a).await.unwrap();
        }
        let held = wait_for(&mut ae, "hold/resume", |e| match e {
            Event::Hold { held, .. } => Some(*held),
            _ => None,
        })
        .await;
        assert_eq!(held, hold);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice.hangup(a).await.unwrap();
    let a_media = wait_for(&mut ae, "alice's end", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    let b_media = wait_for(&mut be, "bob's end", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    assert!(
        a_media
            .srtp
            .as_deref()
            .is_some_and(|s| s.starts_with("SDES")),
        "{:?}",
        a_media.srtp
    );
    // Each answer carried fresh keys: both sides switched (hold, then resume).
    assert_eq!(a_media.srtp_rekeys, 2, "alice: {a_media:?}");
    assert_eq!(b_media.srtp_rekeys, 2, "bob: {b_media:?}");
    assert_eq!(a_media.srtp_auth_failures, 0, "alice: {a_media:?}");
    assert_eq!(b_media.srtp_auth_failures, 0, "bob: {b_media:?}");
    // After the resume (the last 2 s) each heard the other.
    for (who, rec, hz) in [("alice", &a_rec, 1000.0), ("bob", &b_rec, 440.0)] {
        let audio = peerline_audio::read_wav(rec).unwrap();
        let tail = &audio.samples[audio
            .samples
            .len()
            .saturating_sub(audio.sample_rate as usize * 2)..];
        let secs = peerline_media::tone_seconds(tail, audio.sample_rate, hz, 0.5);
        assert!(secs >= 1.2, "{who} heard {secs} s of the last 2 s");
    }
    alice.shutdown().await;
    bob.shutdown().await;
}

/// SDES keys only travel in SDP over TLS unless `allow_sdes_without_tls` says otherwise:
/// over UDP, a mandatory-SDES call is refused before anything is sent, an optional one
/// offers plain RTP, and an SDES-only offer is refused with 488 by a mandatory callee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdes_stays_off_unencrypted_signaling_by_default() {
    let with = |user: &str, srtp: peerline_ua::SrtpMode| {
        let mut c = config(user);
        c.media.srtp = srtp;
        c.media.srtp_keying = peerline_ua::SrtpKeying::Sdes;
        c
    };
    let (alice, mut ae) = Phone::start(with("alice", peerline_ua::SrtpMode::Mandatory))
        .await
        .unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    match alice.call(&bob.uri("bob"), tone(440.0, None)).await {
        Err(e) => assert!(e.to_string().contains("allow_sdes_without_tls"), "{e}"),
        Ok(c) => panic!("mandatory SDES over UDP placed call {c}"),
    }
    // Optional SDES over UDP: a plain offer, the call goes through unencrypted.
    let (carol, mut ce) = Phone::start(with("carol", peerline_ua::SrtpMode::Optional))
        .await
        .unwrap();
    let (dave, mut de) = Phone::start(with("dave", peerline_ua::SrtpMode::Optional))
        .await
        .unwrap();
    let c = carol
        .call(&dave.uri("dave"), tone(440.0, None))
        .await
        .unwrap();
    let d = wait_for(&mut de, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    dave.answer(d, tone(1000.0, None)).await.unwrap();
    wait_for(&mut ce, "answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    carol.hangup(c).await.unwrap();
    let srtp = wait_for(&mut ce, "ended", |e| match e {
        Event::Ended { media, .. } => Some(media.srtp.clone()),
        _ => None,
    })
    .await;
    assert_eq!(srtp, None, "SDES keys went over UDP");
    // Bob (mandatory, default DTLS keying) refuses an SDES-only offer over UDP: 488
    // before ringing.
    let mut allowed = with("erin", peerline_ua::SrtpMode::Mandatory);
    allowed.media.allow_sdes_without_tls = true;
    let (erin, mut ee) = Phone::start(allowed).await.unwrap();
    let e = erin.call(&bob.uri("bob"), tone(440.0, None)).await.unwrap();
    let reason = wait_for(&mut ee, "refused", |ev| match ev {
        Event::Ended { call, reason, .. } if *call == e => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(reason, EndReason::Rejected(488, _)), "{reason:?}");
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), be.recv()).await {
        assert!(
            !matches!(ev, Event::Incoming { .. }),
            "bob rang for SDES keys over UDP: {ev:?}"
        );
    }
    let _ = &mut ae;
    for p in [alice, bob, carol, dave, erin] {
        p.shutdown().await;
    }
}

/// Call waiting: while Alice talks to Bob, Carol calls Alice. Alice gets the second call
/// as a new `Incoming`, puts Bob on hold, answers Carol, and later hangs up on Carol and
/// resumes Bob; each call keeps its own media (Carol hears Alice, Bob hears her again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_waiting_second_call_while_the_first_is_up() {
    let dir = std::env::temp_dir().join(format!("peerline-waiting-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let (carol, mut ce) = Phone::start(config("carol")).await.unwrap();
    // Bob calls Alice.
    let b1 = bob
        .call(&alice.uri("alice"), tone(1000.0, None))
        .await
        .unwrap();
    let a1 = wait_for(&mut ae, "first incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    alice.answer(a1, tone(440.0, None)).await.unwrap();
    wait_for(&mut be, "bob answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    // Carol calls while that call is up.
    let rec = dir.join("carol.wav");
    let c1 = carol
        .call(&alice.uri("alice"), tone(500.0, Some(rec.clone())))
        .await
        .unwrap();
    let (a2, from) = wait_for(&mut ae, "second incoming", |e| match e {
        Event::Incoming { call, from, .. } => Some((*call, from.clone())),
        _ => None,
    })
    .await;
    assert_ne!(a1, a2);
    assert!(from.contains("carol"), "{from}");
    alice.hold(a1).await.unwrap();
    wait_for(&mut ae, "bob held", |e| match e {
        Event::Hold { call, held: true } if *call == a1 => Some(()),
        _ => None,
    })
    .await;
    alice.answer(a2, tone(700.0, None)).await.unwrap();
    wait_for(&mut ce, "carol answered", |e| match e {
        Event::Answered { call } if *call == c1 => Some(()),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alice.hangup(a2).await.unwrap();
    wait_for(&mut ce, "carol's end", |e| match e {
        Event::Ended { call, .. } if *call == c1 => Some(()),
        _ => None,
    })
    .await;
    alice.resume(a1).await.unwrap();
    wait_for(&mut ae, "bob resumed", |e| match e {
        Event::Hold { call, held: false } if *call == a1 => Some(()),
        _ => None,
    })
    .await;
    // The first call is still up: Bob hangs up and both sides end normally.
    bob.hangup(b1).await.unwrap();
    let reason = wait_for(&mut ae, "first call ends", |e| match e {
        Event::Ended { call, reason, .. } if *call == a1 => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, EndReason::RemoteHangup);
    let audio = peerline_audio::read_wav(&rec).unwrap();
    let secs = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 700.0, 0.5);
    assert!(
        secs >= 1.0,
        "carol heard alice's second-call tone for {secs} s"
    );
    for p in [alice, bob, carol] {
        p.shutdown().await;
    }
}

/// `[auth]`: Bob challenges incoming calls and messages (digest, RFC 3261 §22): Alice, with
/// the right password in her account, gets through after the 401; Mallory without
/// credentials and Eve with a wrong password are refused with 401 and never ring Bob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticating_uas_challenges_calls_and_messages() {
    let mut bob_cfg = config("bob");
    bob_cfg.auth.users = vec![toml::from_str("user = \"alice\"\npassword = \"s3cret\"\n").unwrap()];
    let (bob, mut be) = Phone::start(bob_cfg).await.unwrap();
    let caller = |user: &str, password: Option<&str>| {
        let mut c = config(user);
        if let Some(p) = password {
            c.accounts = vec![toml::from_str(&format!(
                "aor = \"sip:{user}@127.0.0.1\"\npassword = \"{p}\"\nregister = false\n"
            ))
            .unwrap()];
        }
        c
    };
    let (alice, mut ae) = Phone::start(caller("alice", Some("s3cret"))).await.unwrap();
    let a = alice
        .call(&bob.uri("bob"), tone(440.0, None))
        .await
        .unwrap();
    let b = wait_for(&mut be, "incoming after the challenge", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, None)).await.unwrap();
    wait_for(&mut ae, "answered", |e| match e {
        Event::Answered { call } if *call == a => Some(()),
        Event::Ended { reason, .. } => panic!("ended: {reason}"),
        _ => None,
    })
    .await;
    assert_eq!(
        alice.send_message(&bob.uri("bob"), "hi").await.unwrap(),
        200
    );
    alice.hangup(a).await.unwrap();
    for (name, password) in [("mallory", None), ("eve", Some("guess"))] {
        let (p, mut pe) = Phone::start(caller(name, password)).await.unwrap();
        let c = p.call(&bob.uri("bob"), tone(440.0, None)).await.unwrap();
        let reason = wait_for(&mut pe, "refused", |e| match e {
            Event::Ended { call, reason, .. } if *call == c => Some(reason.clone()),
            _ => None,
        })
        .await;
        assert!(
            matches!(reason, EndReason::Rejected(401, _)),
            "{name}: {reason:?}"
        );
        match p.send_message(&bob.uri("bob"), "let me in").await {
            Err(peerline_ua::PhoneError::Refused(401, _)) => {}
            other => panic!("{name}'s MESSAGE: {other:?}"),
        }
        p.shutdown().await;
    }
    // Only Alice's call and message reached Bob.
    let mut incoming = 0;
    let mut messages = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(300), be.recv()).await {
        match ev {
            Event::Incoming { .. } => incoming += 1,
            Event::Message { from, .. } => messages.push(from),
            _ => {}
        }
    }
    assert_eq!(incoming, 0, "a refused caller rang bob");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("alice"), "{messages:?}");
    alice.shutdown().await;
    bob.shutdown().await;
}

/// Live quality for a display (`Phone::call_stats`): while a call runs, its codec,
/// packet counts, loss, MOS and SRTP are readable, mute shows, and a call without media
/// (ended) says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_call_stats_while_the_call_runs() {
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let (a, _b) = connect(&alice, &mut ae, &bob, &mut be, None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = alice.call_stats(a).await.unwrap();
    assert_eq!(s.codec, "PCMU");
    assert!(s.packets_sent > 30 && s.packets_received > 30, "{s:?}");
    assert_eq!(s.loss_percent, 0.0, "{s:?}");
    assert!(s.mos.is_some_and(|m| m > 4.0), "{s:?}");
    assert!(s.srtp.is_some(), "default DTLS-SRTP: {s:?}");
    assert!(!s.muted);
    alice.mute(a, true).await.unwrap();
    assert!(alice.call_stats(a).await.unwrap().muted);
    let later = alice.call_stats(a).await.unwrap();
    assert!(later.packets_received >= s.packets_received);
    alice.hangup(a).await.unwrap();
    wait_for(&mut ae, "ended", |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    assert!(
        alice.call_stats(a).await.is_err(),
        "no stats for an ended call"
    );
    alice.shutdown().await;
    bob.shutdown().await;
}

/// `AudioSource::NoRtp` (load tests at scale): the call is set up as any other, but its
/// side sends no RTP and no RTCP at all; the other side's packets still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rtp_source_sends_nothing() {
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let quiet = peerline_ua::MediaOptions {
        source: peerline_ua::AudioSource::NoRtp,
        record: None,
    };
    let a = alice.call(&bob.uri("bob"), quiet).await.unwrap();
    let b = wait_for(&mut be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, None)).await.unwrap();
    wait_for(&mut ae, "answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alice.hangup(a).await.unwrap();
    let alice_media = wait_for(&mut ae, "alice's end", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    let bob_media = wait_for(&mut be, "bob's end", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    assert_eq!(alice_media.sent.packets_sent, 0, "{alice_media:?}");
    assert_eq!(alice_media.rtcp_sent, 0, "{alice_media:?}");
    assert_eq!(bob_media.received.packets_received, 0, "{bob_media:?}");
    assert!(bob_media.sent.packets_sent > 0, "{bob_media:?}");
    alice.shutdown().await;
    bob.shutdown().await;
}
