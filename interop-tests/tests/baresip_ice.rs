//! Peerline with ICE against a real baresip 1.0.0 with `medianat=ice` on loopback: the
//! offer/answer carries both sides' candidates, the connectivity checks select a pair
//! (our host candidate; baresip's checks come from 127.0.0.1 while its candidates name
//! its eth0 address, so its side is peer-reflexive), both ICE agents report it, and each
//! side hears the other's tone over it. Calls both ways, each with baresip's default
//! `rtcp_mux no` and with `rtcp_mux yes`.
//!
//! With `rtcp_mux no` baresip wants a component-2 (RTCP) candidate matching our `a=rtcp`
//! (its "ICE not supported by peer" check): our offer carries both components and
//! `a=rtcp`, and our answer to its offer without `a=rtcp-mux` too; RTCP then crosses
//! component 2's pair both ways and Peerline's report counts baresip's RTCP on it. (Before
//! component 2 existed, baresip stopped answering checks and the call ended after ≈ 2.7 s
//! with "ICE: no direct path and no TURN server configured".)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use peerline_interop::{
    alloc_port_block, tails, write_tone_wav, Baresip, BaresipOptions, MatrixEntry, TestDir,
};
use peerline_net::{CandidateKind, PathReport};
use peerline_ua::{
    AudioSource, CodecName, Config, EndReason, Event, Events, MediaOptions, MediaReport, Phone,
    SrtpMode,
};
use sipp_support::{next_event, runtime};

fn config(ports: u16) -> Config {
    let mut c = Config::default();
    c.identity.user = "peerline".into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.network.rtp_ports = peerline_net::PortRange::new(ports, ports + 19).unwrap();
    c.media.codecs = vec![CodecName::Pcmu];
    c.media.srtp = SrtpMode::Off;
    c.ice.enabled = true;
    c
}

fn tone_secs(path: &Path, freq: f32) -> f32 {
    let audio = peerline_audio::read_wav(path).unwrap();
    peerline_media::tone_seconds(&audio.samples, audio.sample_rate, freq, 0.5)
}

async fn media_up(events: &mut Events, logs: impl Fn() -> String) -> PathReport {
    let up = next_event(events, Duration::from_secs(10), |ev| match ev {
        Event::MediaUp { path, .. } => Some(Ok(path)),
        Event::Ended { reason, media, .. } => Some(Err(format!("{reason:?} {:?}", media.error))),
        _ => None,
    })
    .await;
    match up {
        Some(Ok(Some(p))) => p,
        other => panic!("no ICE path: {other:?}\n{}", logs()),
    }
}

async fn ended(events: &mut Events) -> Option<(EndReason, MediaReport)> {
    next_event(events, Duration::from_secs(16), |ev| match ev {
        Event::Ended { reason, media, .. } => Some((reason, *media)),
        _ => None,
    })
    .await
}

/// The checks after each call: a host pair on loopback, media both ways, each side heard
/// the other's tone.
fn check(b: &Baresip, path: &PathReport, media: &MediaReport, rec: &Path, heard: f32) {
    let logs = tails(&[b.process()], 40);
    eprintln!("path: {path}");
    assert_eq!(path.local_type, CandidateKind::Host, "{path}\n{logs}");
    assert!(path.is_direct(), "{path}");
    assert!(path.remote_addr.ip().is_loopback(), "{path}");
    // baresip's own verdict: its checks completed and it took the pair.
    assert!(
        b.process().log_contains("mnat 'ice' connected"),
        "baresip did not complete ICE\n{logs}"
    );
    assert!(media.error.is_none(), "{:?}\n{logs}", media.error);
    eprintln!(
        "RTCP: received {} ({} on component 2), sent {}; component 2: {:?}",
        media.rtcp_received, media.rtcp_received_apart, media.rtcp_sent, media.rtcp_path
    );
    assert!(media.received.packets_received >= 100, "{media:?}\n{logs}");
    let secs = tone_secs(rec, heard);
    assert!(
        secs >= 2.5,
        "Peerline heard {heard} Hz for {secs} s\n{logs}"
    );
    let rx = b.recordings(true);
    assert!(!rx.is_empty(), "baresip recorded nothing\n{logs}");
    let theirs = tone_secs(&rx[0], if heard == 600.0 { 1000.0 } else { 440.0 });
    assert!(
        theirs >= 2.0,
        "baresip heard Peerline for {theirs} s\n{logs}"
    );
}

/// Checks on RTCP after a call: with `rtcp_mux no` component 2 connected and baresip's
/// RTCP came over it; with `rtcp_mux yes` no component 2 (RTCP multiplexed on component 1).
fn check_rtcp(b: &Baresip, rtcp_mux: bool, media: &MediaReport) {
    let logs = tails(&[b.process()], 60);
    if rtcp_mux {
        assert!(media.rtcp_path.is_none(), "{:?}", media.rtcp_path);
        assert_eq!(media.rtcp_received_apart, 0);
        return;
    }
    let rtcp = media
        .rtcp_path
        .as_ref()
        .unwrap_or_else(|| panic!("component 2 did not connect\n{logs}"));
    assert!(rtcp.is_direct(), "{rtcp}");
    assert!(
        media.rtcp_received_apart > 0,
        "no RTCP from baresip on component 2 ({} in all)\n{logs}",
        media.rtcp_received
    );
    assert!(
        !b.process().log_contains("ICE not supported by peer"),
        "baresip refused our ICE\n{logs}"
    );
}

/// baresip's config for a call: its default `rtcp_mux no`, or `rtcp_mux yes`.
fn with_mux(o: BaresipOptions, rtcp_mux: bool) -> BaresipOptions {
    if rtcp_mux {
        o.config_line("rtcp_mux yes")
    } else {
        o
    }
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_calls_baresip_with_ice() {
    peerline_calls_baresip(true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_calls_baresip_with_ice_without_rtcp_mux() {
    peerline_calls_baresip(false);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_calls_peerline_with_ice() {
    baresip_calls_peerline(true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_calls_peerline_with_ice_without_rtcp_mux() {
    baresip_calls_peerline(false);
}

/// Peerline calls; long enough for baresip's first RTCP report (2.5–7.5 s in).
fn peerline_calls_baresip(rtcp_mux: bool) {
    let (feature, name) = if rtcp_mux {
        ("call-out-ice", "peerline_calls_baresip_with_ice")
    } else {
        (
            "call-out-ice-rtcp-component",
            "peerline_calls_baresip_with_ice_without_rtcp_mux",
        )
    };
    let entry = MatrixEntry::new("baresip", feature, "udp");
    let dir = TestDir::new(name).unwrap();
    let wav = dir.path().join("tone1000.wav");
    write_tone_wav(&wav, 1000.0, 8000, 1, 10.0, 0.5).unwrap();
    let rec = dir.path().join("peerline-heard.wav");
    let ports = alloc_port_block(20).unwrap();
    runtime().block_on(async {
        let mut b = Baresip::start(
            with_mux(
                BaresipOptions::new("b")
                    .audio_source(&wav)
                    .audio_format(8000, 1)
                    .audio_codecs("PCMU")
                    .medianat("ice"),
                rtcp_mux,
            )
            .run_for(Duration::from_secs(25)),
            &dir,
        )
        .unwrap();
        b.wait_ready(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
        let (phone, mut events) = Phone::start(config(ports)).await.unwrap();
        let call = phone
            .call(
                &b.uri(),
                MediaOptions {
                    source: AudioSource::Tone(440.0),
                    record: Some(rec.clone()),
                },
            )
            .await
            .unwrap();
        let path = media_up(&mut events, || tails(&[b.process()], 40)).await;
        tokio::time::sleep(Duration::from_secs(if rtcp_mux { 4 } else { 9 })).await;
        phone.hangup(call).await.unwrap();
        let (reason, media) = ended(&mut events)
            .await
            .unwrap_or_else(|| panic!("BYE not answered\n{}", tails(&[b.process()], 40)));
        b.wait_call_end(Duration::from_secs(5)).ok();
        b.stop();
        phone.shutdown().await;
        assert_eq!(reason, EndReason::LocalHangup);
        check(&b, &path, &media, &rec, 1000.0);
        check_rtcp(&b, rtcp_mux, &media);
        let mut entry = entry;
        entry.note(format!("{path}"));
        entry.pass();
    });
}

/// baresip calls and hangs up when its WAV ends (10 s without rtcp-mux: long enough for
/// its first RTCP report).
fn baresip_calls_peerline(rtcp_mux: bool) {
    let (feature, name) = if rtcp_mux {
        ("call-in-ice", "baresip_calls_peerline_with_ice")
    } else {
        (
            "call-in-ice-rtcp-component",
            "baresip_calls_peerline_with_ice_without_rtcp_mux",
        )
    };
    let entry = MatrixEntry::new("baresip", feature, "udp");
    let dir = TestDir::new(name).unwrap();
    let wav = dir.path().join("tone600.wav");
    let secs = if rtcp_mux { 5.0 } else { 10.0 };
    write_tone_wav(&wav, 600.0, 8000, 1, secs, 0.5).unwrap();
    let rec = dir.path().join("peerline-heard.wav");
    let ports = alloc_port_block(20).unwrap();
    runtime().block_on(async {
        let (phone, mut events) = Phone::start(config(ports)).await.unwrap();
        let mut b = Baresip::start(
            with_mux(
                BaresipOptions::new("b")
                    .audio_source(&wav)
                    .audio_format(8000, 1)
                    .audio_codecs("PCMU")
                    .medianat("ice"),
                rtcp_mux,
            )
            .ctrl_tcp()
            .run_for(Duration::from_secs(25)),
            &dir,
        )
        .unwrap();
        b.wait_ready(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
        let resp = b.command("dial", &phone.uri("peerline")).unwrap();
        assert!(resp.contains("\"ok\":true"), "dial via ctrl_tcp: {resp}");
        let call = next_event(&mut events, Duration::from_secs(5), |ev| match ev {
            Event::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .await
        .unwrap_or_else(|| panic!("no INVITE reached Peerline\n{}", tails(&[b.process()], 40)));
        phone
            .answer(
                call,
                MediaOptions {
                    source: AudioSource::Tone(1000.0),
                    record: Some(rec.clone()),
                },
            )
            .await
            .unwrap();
        let path = media_up(&mut events, || tails(&[b.process()], 40)).await;
        let (reason, media) = ended(&mut events)
            .await
            .unwrap_or_else(|| panic!("call did not end\n{}", tails(&[b.process()], 40)));
        b.wait_call_end(Duration::from_secs(5)).ok();
        b.stop();
        phone.shutdown().await;
        assert_eq!(reason, EndReason::RemoteHangup);
        check(&b, &path, &media, &rec, 600.0);
        check_rtcp(&b, rtcp_mux, &media);
        let mut entry = entry;
        entry.note(format!("{path}"));
        entry.pass();
    });
}
