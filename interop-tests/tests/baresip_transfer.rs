//! Blind transfer with a real baresip 1.0 as the transferee (RFC 3515): Peerline (Alice)
//! calls baresip, then REFERs it to a second Peerline phone (Carol). Baresip follows the
//! REFER on its own: it calls Carol and reports the outcome in NOTIFYs; Alice's call ends
//! as transferred once Carol answers, and Carol hears baresip's tone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::net::SocketAddr;
use std::time::Duration;

use peerline_interop::{tails, write_tone_wav, Baresip, BaresipOptions, MatrixEntry, TestDir};
use peerline_ua::{
    AudioSource, CodecName, Config, EndReason, Event, MediaOptions, Phone, SrtpMode,
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

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_transfers_baresip_to_another_phone() {
    let entry = MatrixEntry::new("baresip", "blind-transfer-refer", "udp");
    let dir = TestDir::new("peerline_transfers_baresip_to_another_phone").unwrap();
    let wav = dir.path().join("tone1000.wav");
    write_tone_wav(&wav, 1000.0, 8000, 1, 15.0, 0.5).unwrap();
    let rec = dir.path().join("carol-heard.wav");
    let rt = runtime();
    rt.block_on(async {
        let mut b = Baresip::start(
            BaresipOptions::new("b")
                .audio_source(&wav)
                .audio_format(8000, 1)
                .audio_codecs("PCMU")
                .run_for(Duration::from_secs(25)),
            &dir,
        )
        .unwrap();
        b.wait_ready(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
        let (alice, mut ae) = Phone::start(config("alice")).await.unwrap();
        let (carol, mut ce) = Phone::start(config("carol")).await.unwrap();
        let media = |hz: f32, record: Option<std::path::PathBuf>| MediaOptions {
            source: AudioSource::Tone(hz),
            record,
        };
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
