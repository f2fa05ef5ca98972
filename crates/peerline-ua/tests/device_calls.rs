//! A call through the sound card (`AudioSource::Device`) on REAL ALSA devices this test
//! defines in its own ALSA configuration (no sound card needed; see
//! `peerline-audio/tests/alsa_devices.rs` for the plugins): Alice talks into
//! `peerline_in` (a `file` plugin whose `infile` holds a 440 Hz tone) and listens on
//! `peerline_out` (a `file` plugin writing what is played to a raw file); Bob plays
//! 1000 Hz and records. Bob must hear Alice's microphone and Alice's speaker must play
//! Bob. ALSA reads `ALSA_CONFIG_PATH` once per process, so this is a test binary of its
//! own with one test.
//!
//! The `null` slave under the plugins has no clock: capture runs as fast as the device
//! thread reads (the infile is consumed in bursts, the ring overruns) and playback is
//! consumed at once (silence between our frames). So the checks are about content, not
//! timing: the tone Bob hears, and the frequency of what reached the speaker file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{config, tone, wait_for};
use peerline_media::{dominant_frequency, sine};
use peerline_ua::{AudioSource, Event, MediaOptions, Phone};

/// `samples` without the gaps of silence (runs of 16 or more zero samples) that the
/// clockless devices put between frames; single zero samples of a waveform stay.
fn without_gaps(samples: &[i16]) -> Vec<i16> {
    let mut out = Vec::with_capacity(samples.len());
    let mut zeros = 0usize;
    for &s in samples {
        if s == 0 {
            zeros += 1;
            continue;
        }
        if zeros > 0 && zeros < 16 {
            out.extend(std::iter::repeat_n(0, zeros));
        }
        zeros = 0;
        out.push(s);
    }
    out
}

fn system_alsa_conf() -> Option<PathBuf> {
    ["/usr/share/alsa/alsa.conf", "/etc/alsa/alsa.conf"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_talks_and_listens_through_the_sound_card() {
    let system = system_alsa_conf().expect("alsa.conf (libasound2-data) is installed");
    let dir = std::env::temp_dir().join(format!("peerline-device-call-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let speaker = dir.join("speaker.raw");
    let mic = dir.join("mic.raw");
    // 60 s of 440 Hz, 16-bit little-endian mono at 8 kHz (the PCMU call's rate).
    let talk = sine(440.0, 0.5, 8000, 8000 * 60);
    std::fs::write(
        &mic,
        talk.iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let conf = dir.join("asoundrc");
    std::fs::write(
        &conf,
        format!(
            "pcm.peerline_out {{\n type file\n slave.pcm \"null\"\n file \"{}\"\n format \"raw\"\n}}\n\
             pcm.peerline_in {{\n type file\n slave.pcm \"null\"\n file \"/dev/null\"\n infile \"{}\"\n format \"raw\"\n}}\n",
            speaker.display(),
            mic.display()
        ),
    )
    .unwrap();
    std::env::set_var(
        "ALSA_CONFIG_PATH",
        format!("{}:{}", system.display(), conf.display()),
    );

    let mut alice_config = config("alice");
    alice_config.media.codecs = vec![peerline_ua::CodecName::Pcmu];
    alice_config.audio.output = Some("peerline_out".into());
    let (alice, mut ae) = Phone::start(alice_config).await.unwrap();
    let (bob, mut be) = Phone::start(config("bob")).await.unwrap();
    let rec = dir.join("bob-heard.wav");
    let a = alice
        .call(
            &bob.uri("bob"),
            MediaOptions {
                // The input named here, the output from `[audio]`.
                source: AudioSource::Device {
                    input: Some("peerline_in".into()),
                    output: None,
                },
                record: None,
            },
        )
        .await
        .unwrap();
    let b = wait_for(&mut be, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, tone(1000.0, Some(rec.clone())))
        .await
        .unwrap();
    wait_for(&mut ae, "answered", |e| match e {
        Event::Answered { call } if *call == a => Some(()),
        Event::Ended { reason, media, .. } => panic!("ended: {reason} {:?}", media.error),
        _ => None,
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    alice.hangup(a).await.unwrap();
    let alice_report = wait_for(&mut ae, "alice's end", |e| match e {
        Event::Ended { media, .. } => Some(media.clone()),
        _ => None,
    })
    .await;
    wait_for(&mut be, "bob's end", |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    })
    .await;
    assert_eq!(alice_report.error, None, "{alice_report:?}");

    // Bob heard Alice's microphone.
    let heard = peerline_audio::read_wav(&rec).unwrap();
    let loud = without_gaps(&heard.samples);
    eprintln!(
        "bob heard {} non-zero samples of {}",
        loud.len(),
        heard.samples.len()
    );
    assert!(
        loud.len() >= 1600,
        "bob heard {} samples from the microphone",
        loud.len()
    );
    let f = dominant_frequency(&loud[..1600], heard.sample_rate);
    assert!(
        (f - 440.0).abs() < 10.0,
        "bob heard {f} Hz from alice's microphone"
    );

    // Alice's speaker played Bob.
    let raw = std::fs::read(&speaker).unwrap();
    let played = without_gaps(
        &raw.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<i16>>(),
    );
    eprintln!("the speaker file holds {} non-zero samples", played.len());
    assert!(
        played.len() >= 8000,
        "{} samples reached the speaker",
        played.len()
    );
    let f = dominant_frequency(&played[..8000], 8000);
    assert!((f - 1000.0).abs() < 10.0, "the speaker played {f} Hz");
    alice.shutdown().await;
    bob.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
