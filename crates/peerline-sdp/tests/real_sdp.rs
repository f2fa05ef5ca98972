//! Real-world SDP bodies: parse, inspect, round-trip and answer them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;

use peerline_sdp::*;

fn load(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn local() -> SocketAddr {
    "192.0.2.1:40000".parse().unwrap()
}

fn caps(srtp: SrtpPolicy) -> LocalCapabilities {
    LocalCapabilities {
        srtp,
        crypto: vec![Crypto {
            tag: 1,
            suite: "AES_CM_128_HMAC_SHA1_80".into(),
            keys: vec![KeyParam::inline("e3UrXLU+kqXZFvQ+ewncYWxgt0m5XLoN8EwngfoJ")],
            session_params: vec![],
        }],
        ..LocalCapabilities::default()
    }
}

fn assert_round_trip(text: &str) -> SessionDescription {
    let sdp = SessionDescription::parse(text).unwrap();
    let out = sdp.to_string();
    assert!(out.ends_with("\r\n"));
    assert!(!out.replace("\r\n", "").contains('\n'), "bare LF in output");
    let again = SessionDescription::parse(&out).unwrap();
    assert_eq!(sdp, again);
    assert_eq!(out, again.to_string());
    sdp
}

#[test]
fn all_data_files_round_trip_and_keep_every_line() {
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let sdp = assert_round_trip(&text);
        // These files are written in canonical order, so output == input modulo CRLF.
        assert_eq!(
            sdp.to_string(),
            text.replace("\r\n", "\n").replace('\n', "\r\n"),
            "{}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 5);
}

// Origin: baresip 1.0 offer (opus/G722/G711/telephone-event, rtcpxr, ssrc, rtcp-rsize extras).
#[test]
fn baresip_offer() {
    let sdp = assert_round_trip(&load("baresip_offer.sdp"));
    assert_eq!(
        sdp.other("tool").collect::<Vec<_>>(),
        vec![Some("baresip 1.0.0")]
    );
    let m = &sdp.media[0];
    assert_eq!(
        m.payload_types().collect::<Vec<_>>(),
        vec![96, 9, 0, 8, 101]
    );
    assert_eq!(m.bandwidths[0].bwtype, "AS");
    assert_eq!(m.bandwidths[0].value, 117);
    assert_eq!(m.rtpmap(96).unwrap().channels, Some(2));
    assert_eq!(
        m.fmtp(96).unwrap().param("maxaveragebitrate"),
        Some("64000")
    );
    assert!(m.rtcp_mux());
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    // Unknown attributes keep their order relative to the known ones.
    let names: Vec<&str> = m.attributes.iter().map(Attribute::name).collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("fmtp") < pos("rtcpxr") && pos("rtcpxr") < pos("sendrecv"));
    assert!(pos("label") < pos("ssrc") && pos("ssrc") < pos("rtcp-rsize"));
    assert_eq!(
        m.other("rtcpxr").next(),
        Some(Some(
            "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics"
        ))
    );

    let (answer, n) = create_answer(&sdp, &caps(SrtpPolicy::Optional), local(), 7, 7).unwrap();
    assert_eq!(n.codec, Codec::opus());
    assert_eq!((n.send_pt, n.recv_pt), (96, 96));
    assert_eq!(n.remote_rtp, "192.168.1.50:10130".parse().unwrap());
    assert_eq!(n.remote_rtcp, None, "rtcp-mux agreed");
    assert!(n.rtcp_mux);
    assert_eq!(
        n.telephone_event,
        Some(TelephoneEvent {
            send_pt: 101,
            recv_pt: 101,
            clock_rate: 8000
        })
    );
    assert_eq!(n.security, Security::None);
    assert_eq!(n.remote_fmtp.unwrap().param("stereo"), Some("1"));
    assert_eq!(answer.media[0].formats, vec!["96", "101"]);
    assert_eq!(answer.media[0].proto, "RTP/AVP");
}

// Origin: SIPp built-in `uac` scenario body (LF line endings as in the XML).
#[test]
fn sipp_uac() {
    let text = load("sipp_uac.sdp");
    assert!(!text.contains('\r'));
    let sdp = assert_round_trip(&text);
    assert_eq!(sdp.origin.username, "user1");
    assert_eq!(sdp.origin.session_version, 2353687637);
    let (answer, n) = create_answer(&sdp, &caps(SrtpPolicy::Optional), local(), 1, 1).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
    assert_eq!(n.remote_rtp, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(n.remote_rtcp, Some("127.0.0.1:6001".parse().unwrap()));
    assert_eq!(n.telephone_event, None);
    assert_eq!(answer.media[0].formats, vec!["0"]);
    // Mandatory SRTP cannot talk to plain SIPp.
    assert!(matches!(
        create_answer(&sdp, &caps(SrtpPolicy::Mandatory), local(), 1, 1),
        Err(NegotiationError::Security(_))
    ));
}

// Origin: Asterisk chan_sip style offer (s=Asterisk PBX, GSM, maxptime:150).
#[test]
fn asterisk_offer() {
    let sdp = assert_round_trip(&load("asterisk_offer.sdp"));
    let m = &sdp.media[0];
    assert_eq!(m.maxptime(), Some(150));
    let (_, n) = create_answer(&sdp, &caps(SrtpPolicy::Off), local(), 1, 1).unwrap();
    assert_eq!(
        n.codec,
        Codec::Pcmu,
        "G.722/opus not offered; PCMU before PCMA locally"
    );
    assert_eq!(n.maxptime, Some(150));
    assert_eq!(n.telephone_event.unwrap().send_pt, 101);
}

// Origin: Asterisk res_pjsip offer with media_encryption=sdes.
#[test]
fn asterisk_sdes_offer() {
    let sdp = assert_round_trip(&load("asterisk_pjsip_srtp_offer.sdp"));
    let m = &sdp.media[0];
    let cryptos: Vec<&Crypto> = m.crypto().collect();
    assert_eq!(cryptos.len(), 2);
    assert_eq!(cryptos[0].tag, 1);
    assert_eq!(cryptos[1].suite, "AES_CM_128_HMAC_SHA1_32");
    assert_eq!(cryptos[1].keys[0].lifetime, Some(Lifetime::PowerOfTwo(31)));
    assert_eq!(
        cryptos[1].keys[0].mki,
        Some(Mki {
            value: 1,
            length: 1
        })
    );
    assert_eq!(cryptos[1].session_params, vec!["UNENCRYPTED_SRTCP"]);

    let (answer, n) = create_answer(&sdp, &caps(SrtpPolicy::Mandatory), local(), 1, 1).unwrap();
    assert_eq!(n.codec, Codec::G722);
    assert_eq!(answer.media[0].proto, "RTP/SAVP");
    match &n.security {
        Security::Sdes { local, remote } => {
            assert_eq!(remote.tag, 1);
            assert_eq!(local.tag, 1);
            assert_eq!(local.suite, "AES_CM_128_HMAC_SHA1_80");
        }
        other => panic!("expected SDES, got {other:?}"),
    }
    assert_eq!(answer.media[0].crypto().count(), 1);
    // Without keys we cannot accept RTP/SAVP.
    let mut no_keys = caps(SrtpPolicy::Optional);
    no_keys.crypto.clear();
    assert!(create_answer(&sdp, &no_keys, local(), 1, 1).is_err());
}

// Origin: FreeSWITCH offer (opus with FreeSWITCH's fmtp, CN, a=rtcp with address).
#[test]
fn freeswitch_offer() {
    let sdp = assert_round_trip(&load("freeswitch_offer.sdp"));
    let m = &sdp.media[0];
    let rtcp = m.rtcp().unwrap();
    assert_eq!(rtcp.port, 27563);
    assert_eq!(rtcp.ip(), Some("192.168.1.10".parse().unwrap()));
    let mut c = caps(SrtpPolicy::Off);
    c.preference = CodecPreference::Remote;
    let (_, n) = create_answer(&sdp, &c, local(), 1, 1).unwrap();
    assert_eq!(n.send_pt, 102);
    match n.codec {
        Codec::Opus(_) => {}
        other => panic!("expected opus, got {other:?}"),
    }
    let remote = OpusParams::from_fmtp(n.remote_fmtp.as_ref().unwrap());
    assert!(remote.useinbandfec);
    assert_eq!(remote.maxaveragebitrate, Some(30000));
    assert_eq!(remote.ptime, Some(20));
    assert_eq!(n.remote_rtcp, Some("192.168.1.10:27563".parse().unwrap()));
}

// Origin: FreeSWITCH mod_verto / WebRTC-style offer (DTLS-SRTP, ICE, disabled video).
#[test]
fn freeswitch_webrtc_offer() {
    let sdp = assert_round_trip(&load("freeswitch_webrtc_offer.sdp"));
    let m = &sdp.media[0];
    assert!(m.is_dtls());
    assert_eq!(m.setup(), Some(Setup::ActPass));
    assert_eq!(m.fingerprints().next().unwrap().bytes.len(), 32);
    assert_eq!(m.ice_ufrag(), Some("Hf7yHJSeGnV2wwUj"));
    assert_eq!(m.ice_options(), vec!["trickle"]);
    let cands: Vec<&Candidate> = m.candidates().collect();
    assert_eq!(cands.len(), 3);
    assert_eq!(cands[2].typ, CandidateType::Srflx);
    assert_eq!(cands[2].raddr.as_deref(), Some("198.51.100.20"));
    assert_eq!(cands[2].rport, Some(24550));
    assert_eq!(
        cands[0].extensions,
        vec![("generation".to_string(), "0".to_string())]
    );
    assert!(m.end_of_candidates());
    assert_eq!(sdp.media[1].port, 0);

    let mut c = caps(SrtpPolicy::Mandatory);
    c.fingerprint = Some(Fingerprint {
        hash: "sha-256".into(),
        bytes: vec![0xAB; 32],
    });
    c.ice = Some(IceParams {
        ufrag: "abcd".into(),
        pwd: "0123456789abcdefghijkl".into(),
        ..IceParams::default()
    });
    let (answer, n) = create_answer(&sdp, &c, local(), 1, 1).unwrap();
    assert_eq!(answer.media.len(), 2);
    assert_eq!(answer.media[1].port, 0, "disabled video stays disabled");
    assert_eq!(answer.media[0].proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(answer.media[0].setup(), Some(Setup::Active));
    assert_eq!(answer.media[0].ice_ufrag(), Some("abcd"));
    assert!(matches!(
        n.security,
        Security::Dtls {
            local_setup: Setup::Active,
            ..
        }
    ));
    let ice = n.remote_ice.unwrap();
    assert_eq!(ice.pwd, "p1Ggz3wPmRUTbOiIMaWrJjDd");
    assert_eq!(ice.candidates.len(), 3);
    assert!(ice.end_of_candidates);
    // telephone-event/48000 follows opus' clock.
    assert_eq!(n.telephone_event.unwrap().clock_rate, 48000);
}
