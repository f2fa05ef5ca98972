//! Transfers with a real baresip 1.0 as the transferee (RFC 3515): Peerline (Alice)
//! calls baresip, then REFERs it to a second Peerline phone (Carol). Baresip follows the
//! REFER on its own: it calls Carol and reports the outcome in NOTIFYs; Alice's call ends
//! as transferred once Carol answers, and Carol hears baresip's tone. An attended transfer
//! (RFC 5589 §7) is beyond baresip 1.0: the test shows it fails cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::net::SocketAddr;
use std::time::Duration;

use peerline_interop::{tails, write_tone_wav, Baresip, BaresipOptions, MatrixEntry, TestDir};
use peerline_ua::{
    AudioSource, CodecName, Config, EndReason, Event, Events, MediaOptions, Phone, SrtpMode,
};
use sipp_support::{next_event, runtime};

fn config(user: &str) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.media.codecs = vec![CodecName::Pcmu];
    c.media.srtp = SrtpMode::Off;
    c
}

fn media(hz: f32, record: Option<std::path::PathBuf>) -> MediaOptions {
    MediaOptions {
        source: AudioSource::Tone(hz),
        record,
    }
}

/// A baresip playing 1,000 Hz, and Alice's answered call to it.
async fn baresip_called_by_alice(dir: &TestDir) -> (Baresip, Phone, Events, u64) {
    let wav = dir.path().join("tone1000.wav");
    write_tone_wav(&wav, 1000.0, 8000, 1, 15.0, 0.5).unwrap();
    let mut b = Baresip::start(
        BaresipOptions::new("b")
            .audio_source(&wav)
            .audio_format(8000, 1)
            .audio_codecs("PCMU")
            .run_for(Duration::from_secs(25)),
        dir,
    )
    .unwrap();
    b.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
    let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
    let a = alice.call(&b.uri(), media(440.0, None)).await.unwrap();
    let answered = next_event(&mut ae, Duration::from_secs(5), |ev| match ev {
        Event::Answered { call } if call == a => Some(Ok(())),
        Event::Ended { reason, .. } => Some(Err(reason)),
        _ => None,
    })
    .await;
    assert!(
        matches!(answered, Some(Ok(()))),
        "{answered:?}\n{}",
        tails(&[b.process()], 40)
    );
    (b, alice, ae, a)
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_transfers_baresip_to_another_phone() {
    let entry = MatrixEntry::new("baresip", "blind-transfer-refer", "udp");
    let dir = TestDir::new("peerline_transfers_baresip_to_another_phone").unwrap();
    let rec = dir.path().join("carol-heard.wav");
    let rt = runtime();
    rt.block_on(async {
        let (mut b, alice, mut ae, a) = baresip_called_by_alice(&dir).await;
        let (carol, mut ce) = Phone::start(config("carol")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        alice.transfer(a, &carol.uri("carol")).await.unwrap();
        let c = next_event(&mut ce, Duration::from_secs(5), |ev| match ev {
            Event::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "baresip did not call carol after the REFER\n{}",
                tails(&[b.process()], 60)
            )
        });
        carol
            .answer(c, media(500.0, Some(rec.clone())))
            .await
            .unwrap();
        let mut statuses = Vec::new();
        let reason = next_event(&mut ae, Duration::from_secs(8), |ev| match ev {
            Event::Transfer { call, status, .. } if call == a => {
                statuses.push(status);
                None
            }
            Event::Ended { call, reason, .. } if call == a => Some(reason),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("alice's call did not end\n{}", tails(&[b.process()], 60)));
        assert_eq!(
            reason,
            EndReason::Transferred,
            "statuses {statuses:?}\n{}",
            tails(&[b.process()], 60)
        );
        assert!(
            statuses.iter().any(|s| (200..300).contains(s)),
            "{statuses:?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        carol.hangup(c).await.unwrap();
        next_event(&mut ce, Duration::from_secs(5), |ev| match ev {
            Event::Ended { .. } => Some(()),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("carol's BYE not answered\n{}", tails(&[b.process()], 40)));
        b.stop();
        alice.shutdown().await;
        carol.shutdown().await;
        let audio = peerline_audio::read_wav(&rec).unwrap();
        let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 1000.0, 0.5);
        assert!(
            heard >= 2.0,
            "carol heard baresip's 1000 Hz for {heard} s\n{}",
            tails(&[b.process()], 40)
        );
    });
    entry.pass();
}

/// Baresip 1.0 does not implement `Replaces` (RFC 3891): asked for an attended transfer,
/// it puts the `Refer-To` URI, `?Replaces=…` included, into its INVITE's Request-URI, which
/// RFC 3261 §19.1.1 forbids. Carol's phone refuses that INVITE with a 400 naming the
/// problem (it neither rings nor replaces anything), baresip reports the failure in its
/// NOTIFY, and Alice keeps both calls. (The attended transfer itself is proven between
/// Peerline phones in crates/peerline-ua/tests/two_phones.rs.)
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn attended_transfer_to_baresip_1_0_fails_cleanly_and_keeps_both_calls() {
    let mut entry = MatrixEntry::new("baresip", "attended-transfer-unsupported-kept-calls", "udp");
    entry.note("baresip 1.0 has no Replaces: its INVITE puts it in the Request-URI, refused 400");
    let dir = TestDir::new("attended_transfer_to_baresip_1_0_fails_cleanly").unwrap();
    let rt = runtime();
    rt.block_on(async {
        let (mut b, alice, mut ae, a) = baresip_called_by_alice(&dir).await;
        let (carol, mut ce) = Phone::start(config("carol")).await.unwrap();
        // The consultation call Alice → Carol.
        let a2 = alice
            .call(&carol.uri("carol"), media(440.0, None))
            .await
            .unwrap();
        let c1 = next_event(&mut ce, Duration::from_secs(5), |ev| match ev {
            Event::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .await
        .unwrap();
        carol.answer(c1, media(500.0, None)).await.unwrap();
        next_event(&mut ae, Duration::from_secs(5), |ev| match ev {
            Event::Answered { call } if call == a2 => Some(()),
            _ => None,
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        alice.transfer_attended(a, a2).await.unwrap();
        let status = next_event(&mut ae, Duration::from_secs(8), |ev| match ev {
            Event::Transfer { call, status, .. } if call == a && status >= 300 => Some(status),
            // 202 is baresip accepting the REFER; 200 would be its new call answered.
            Event::Transfer { call, status, .. } if call == a && status == 200 => {
                panic!("baresip reported the attended transfer as done")
            }
            Event::Ended { call, reason, .. } => panic!("alice's call {call} ended: {reason}"),
            _ => None,
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "baresip reported no failed transfer\n{}",
                tails(&[b.process()], 60)
            )
        });
        assert_eq!(status, 400, "{}", tails(&[b.process()], 40));
        let log = std::fs::read_to_string(dir.path().join("b.stdout.log")).unwrap_or_default();
        assert!(
            log.contains("400 Invalid Request-URI: contains escaped headers"),
            "carol's 400 should name the problem\n{}",
            tails(&[b.process()], 40)
        );
        // Nothing rang or was replaced at Carol; Alice's two calls are still up.
        let at_carol = next_event(&mut ce, Duration::from_secs(1), |ev| match ev {
            Event::Incoming { .. } | Event::Replaced { .. } | Event::Ended { .. } => Some(ev),
            _ => None,
        })
        .await;
        assert!(at_carol.is_none(), "{at_carol:?}");
        alice.hangup(a).await.unwrap();
        alice.hangup(a2).await.unwrap();
        let mut ended = std::collections::HashMap::new();
        next_event(&mut ae, Duration::from_secs(5), |ev| {
            if let Event::Ended { call, reason, .. } = ev {
                ended.insert(call, reason);
            }
            (ended.len() == 2).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("alice's hangups: {ended:?}"));
        assert_eq!(ended[&a], EndReason::LocalHangup);
        assert_eq!(ended[&a2], EndReason::LocalHangup);
        b.stop();
        alice.shutdown().await;
        carol.shutdown().await;
    });
    entry.pass();
}
