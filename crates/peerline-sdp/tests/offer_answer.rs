//! RFC 3264 offer/answer between two Peerline instances and against hand-written peers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use peerline_sdp::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn key(suite: &str, k: &str) -> Crypto {
    Crypto {
        tag: 9,
        suite: suite.into(),
        keys: vec![KeyParam::inline(k)],
        session_params: vec![],
    }
}

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(s).unwrap()
}

#[test]
fn offer_layout() {
    let caps = LocalCapabilities {
        codecs: vec![Codec::opus(), Codec::G722, Codec::Pcmu, Codec::Pcma],
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&caps, addr("192.0.2.10:4000"), 42, 1);
    let text = offer.to_string();
    assert_eq!(
        text,
        "v=0\r\no=peerline 42 1 IN IP4 192.0.2.10\r\ns=peerline\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 96 9 0 8 101\r\n\
         a=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
         a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
         a=ptime:20\r\na=rtcp-mux\r\na=sendrecv\r\n"
    );
    assert_eq!(parse(&text), offer);
}

#[test]
fn ipv6_offer_and_answer() {
    let caps = LocalCapabilities {
        codecs: vec![Codec::opus(), Codec::Pcmu],
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&caps, addr("[2001:db8::5]:5000"), 1, 1);
    assert_eq!(offer.origin.addr_type, AddrType::Ip6);
    assert_eq!(offer.connection.as_ref().unwrap().address, "2001:db8::5");
    let (_, n) = create_answer(&offer, &caps, addr("[2001:db8::6]:6000"), 2, 1).unwrap();
    assert_eq!(n.remote_rtp, addr("[2001:db8::5]:5000"));
}

#[test]
fn peerline_to_peerline_with_sdes() {
    let a_caps = LocalCapabilities {
        crypto: vec![
            key("AES_256_CM_HMAC_SHA1_80", "AAAA"),
            key("AES_CM_128_HMAC_SHA1_80", "BBBB"),
        ],
        ..LocalCapabilities::default()
    };
    let b_caps = LocalCapabilities {
        codecs: vec![Codec::Pcma, Codec::Pcmu],
        crypto: vec![key("AES_CM_128_HMAC_SHA1_80", "CCCC")],
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&a_caps, addr("192.0.2.1:4000"), 1, 1);
    assert_eq!(offer.media[0].proto, "RTP/SAVP");
    let tags: Vec<u32> = offer.media[0].crypto().map(|c| c.tag).collect();
    assert_eq!(tags, vec![1, 2]);
    // The offer travels as text.
    let offer = parse(&offer.to_string());
    let (answer, b) = create_answer(&offer, &b_caps, addr("192.0.2.2:5000"), 7, 1).unwrap();
    let answer = parse(&answer.to_string());
    let a = process_answer(&offer, &answer).unwrap();

    assert_eq!(a.codec, Codec::Pcma);
    assert_eq!(b.codec, Codec::Pcma);
    assert_eq!((a.send_pt, a.recv_pt, b.send_pt, b.recv_pt), (8, 8, 8, 8));
    assert_eq!(a.remote_rtp, addr("192.0.2.2:5000"));
    assert_eq!(b.remote_rtp, addr("192.0.2.1:4000"));
    assert!(a.rtcp_mux && b.rtcp_mux);
    assert_eq!(a.direction, Direction::SendRecv);
    let te = a.telephone_event.unwrap();
    assert_eq!((te.send_pt, te.recv_pt, te.clock_rate), (101, 101, 8000));
    match (&a.security, &b.security) {
        (
            Security::Sdes {
                local: al,
                remote: ar,
            },
            Security::Sdes {
                local: bl,
                remote: br,
            },
        ) => {
            assert_eq!(al.keys[0].key_salt, "BBBB");
            assert_eq!(ar.keys[0].key_salt, "CCCC");
            assert_eq!(bl.keys[0].key_salt, "CCCC");
            assert_eq!(br.keys[0].key_salt, "BBBB");
            assert_eq!(al.tag, 2);
            assert_eq!(bl.tag, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn answer_uses_offerer_payload_types_and_per_direction_pts_are_kept() {
    // The remote numbers opus 111 and telephone-event 100.
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
         m=audio 7078 RTP/AVP 111 100\r\na=rtpmap:111 OPUS/48000/2\r\na=rtpmap:100 telephone-event/8000\r\n",
    );
    let caps = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let (answer, n) = create_answer(&offer, &caps, addr("192.0.2.1:4000"), 1, 1).unwrap();
    assert_eq!(answer.media[0].formats, vec!["111", "100"]);
    assert_eq!(answer.media[0].rtpmap(111).unwrap().encoding, "opus");
    assert_eq!((n.send_pt, n.recv_pt), (111, 111));

    // As offerer: we offered opus as 96, the answerer replies with 111 (allowed: SHOULD, not MUST).
    let our_offer = create_offer(&caps, addr("192.0.2.1:4000"), 1, 1);
    let their_answer = parse(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
         m=audio 7078 RTP/AVP 111 100\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:100 telephone-event/8000\r\na=ptime:40\r\n",
    );
    let n = process_answer(&our_offer, &their_answer).unwrap();
    assert_eq!((n.send_pt, n.recv_pt), (111, 96));
    let te = n.telephone_event.unwrap();
    assert_eq!((te.send_pt, te.recv_pt), (100, 101));
    assert_eq!(n.ptime, Some(40));
    assert!(!n.rtcp_mux, "answer did not accept rtcp-mux");
    assert_eq!(n.remote_rtcp, Some(addr("198.51.100.1:7079")));
}

#[test]
fn codec_preference_local_vs_remote() {
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 8 0 9\r\n",
    );
    let mut caps = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let (_, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(n.codec, Codec::G722, "local order: opus, G722, PCMU, PCMA");
    caps.preference = CodecPreference::Remote;
    let (_, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(n.codec, Codec::Pcma, "remote order: 8 first");
}

#[test]
fn direction_answered_per_rfc3264() {
    let caps = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    for (offered, answered) in [
        ("sendrecv", Direction::SendRecv),
        ("sendonly", Direction::RecvOnly),
        ("recvonly", Direction::SendOnly),
        ("inactive", Direction::Inactive),
    ] {
        let offer = parse(&format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na={offered}\r\n"
        ));
        let (answer, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
        assert_eq!(answer.media[0].direction(), Some(answered), "{offered}");
        assert_eq!(n.direction, answered);
    }
    // Session-level direction applies too; our own recvonly wish narrows sendrecv.
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=sendonly\r\nm=audio 5000 RTP/AVP 0\r\n",
    );
    let (_, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    let only_recv = LocalCapabilities {
        direction: Direction::RecvOnly,
        ..caps.clone()
    };
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
    );
    let (_, n) = create_answer(&offer, &only_recv, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    // RFC 2543 hold: c=0.0.0.0 means the offerer does not want media.
    let offer = parse(
        "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
    );
    let (_, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
}

#[test]
fn unsupported_streams_get_port_zero_and_failures_are_488() {
    let caps = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
         m=video 5002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 5000 RTP/AVP 18 0\r\n\
         m=audio 5004 RTP/AVP 0\r\n\
         m=image 5006 udptl t38\r\n",
    );
    let (answer, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    let ports: Vec<u16> = answer.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, vec![0, 4000, 0, 0]);
    assert_eq!(answer.media[0].kind, MediaKind::Video);
    assert_eq!(answer.media[3].proto, "udptl");
    assert_eq!(n.media_index, 1);
    assert_eq!(n.codec, Codec::Pcmu, "G729 is not supported");
    assert_eq!(answer.media[1].formats, vec!["0"]);
    // The offerer side agrees.
    assert_eq!(process_answer(&offer, &answer).unwrap().media_index, 1);

    let g729_only = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\n",
    );
    let e = create_answer(&g729_only, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap_err();
    assert_eq!(e, NegotiationError::NoCommonCodec);
    assert_eq!(e.sip_status(), 488);
    let video_only = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n",
    );
    assert_eq!(
        create_answer(&video_only, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap_err(),
        NegotiationError::NoAudioStream
    );
    let no_c =
        parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n");
    assert_eq!(
        create_answer(&no_c, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap_err(),
        NegotiationError::MissingConnection(0)
    );
}

#[test]
fn process_answer_rejects_bad_answers() {
    let caps = LocalCapabilities {
        srtp: SrtpPolicy::Mandatory,
        crypto: vec![key("AES_CM_128_HMAC_SHA1_80", "AAAA")],
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&caps, addr("10.0.0.1:4000"), 1, 1);
    let hdr = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n";
    let check = |body: &str| process_answer(&offer, &parse(&format!("{hdr}{body}")));
    assert_eq!(
        check("m=audio 5000 RTP/SAVP 0\r\n").unwrap_err(),
        NegotiationError::Security("RTP/SAVP answer without a=crypto")
    );
    assert_eq!(
        check("m=audio 5000 RTP/SAVP 0\r\na=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:XX\r\n")
            .unwrap_err(),
        NegotiationError::CryptoTagMismatch(5)
    );
    assert!(matches!(
        check("m=audio 5000 RTP/AVP 0\r\n").unwrap_err(),
        NegotiationError::ProtoMismatch { .. }
    ));
    assert_eq!(
        check("m=audio 5000 RTP/SAVP 18\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:XX\r\n")
            .unwrap_err(),
        NegotiationError::AnswerNotSubset
    );
    assert_eq!(
        check("m=audio 0 RTP/SAVP 0\r\n").unwrap_err(),
        NegotiationError::NoAudioStream
    );
    assert_eq!(
        check("m=audio 5000 RTP/SAVP 0\r\nm=video 0 RTP/AVP 31\r\n").unwrap_err(),
        NegotiationError::MediaCountMismatch {
            offer: 1,
            answer: 2
        }
    );
    let ok = check(
        "m=audio 5000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:XX\r\na=recvonly\r\n",
    )
    .unwrap();
    assert_eq!(ok.direction, Direction::SendOnly);
    assert_eq!(ok.codec, Codec::Pcmu);
}

#[test]
fn dtls_roles() {
    let fp = Fingerprint {
        hash: "sha-256".into(),
        bytes: vec![1; 32],
    };
    let caps = LocalCapabilities {
        fingerprint: Some(fp.clone()),
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&caps, addr("10.0.0.1:4000"), 1, 1);
    assert_eq!(offer.media[0].proto, "UDP/TLS/RTP/SAVP");
    assert_eq!(offer.media[0].setup(), Some(Setup::ActPass));
    let (answer, b) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    let a = process_answer(&offer, &answer).unwrap();
    assert!(matches!(
        b.security,
        Security::Dtls {
            local_setup: Setup::Active,
            ..
        }
    ));
    assert!(matches!(
        a.security,
        Security::Dtls {
            local_setup: Setup::Passive,
            ..
        }
    ));
    // Plain peer with DTLS mandatory fails.
    let plain = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    assert!(matches!(
        create_answer(&offer, &plain, addr("10.0.0.2:4000"), 1, 1),
        Err(NegotiationError::Security(_))
    ));
}

#[test]
fn optional_srtp_offers_keys_on_avp_and_falls_back() {
    let caps = LocalCapabilities {
        srtp: SrtpPolicy::Optional,
        crypto: vec![key("AES_CM_128_HMAC_SHA1_80", "AAAA")],
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&caps, addr("10.0.0.1:4000"), 1, 1);
    assert_eq!(offer.media[0].proto, "RTP/AVP");
    assert_eq!(offer.media[0].crypto().count(), 1);
    let plain = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let (answer, b) = create_answer(&offer, &plain, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(b.security, Security::None);
    assert_eq!(answer.media[0].crypto().count(), 0);
    assert_eq!(
        process_answer(&offer, &answer).unwrap().security,
        Security::None
    );
}

#[test]
fn ice_attributes_flow_both_ways() {
    let cand = |addr: &str, port: u16| Candidate {
        foundation: "1".into(),
        component: 1,
        transport: "UDP".into(),
        priority: 2130706431,
        address: addr.into(),
        port,
        typ: CandidateType::Host,
        raddr: None,
        rport: None,
        extensions: vec![],
    };
    let mk = |ufrag: &str, c: Candidate| LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ice: Some(IceParams {
            ufrag: ufrag.into(),
            pwd: format!("{ufrag}-password-0123456789"),
            options: vec!["trickle".into()],
            candidates: vec![c],
            end_of_candidates: true,
            lite: false,
            rtcp: None,
        }),
        ..LocalCapabilities::default()
    };
    let a = mk("aaaa", cand("10.0.0.1", 4000));
    let b = mk("bbbb", cand("10.0.0.2", 5000));
    let offer = parse(&create_offer(&a, addr("10.0.0.1:4000"), 1, 1).to_string());
    let (answer, nb) = create_answer(&offer, &b, addr("10.0.0.2:5000"), 1, 1).unwrap();
    let na = process_answer(&offer, &parse(&answer.to_string())).unwrap();
    let ia = na.remote_ice.unwrap();
    let ib = nb.remote_ice.unwrap();
    assert_eq!((ia.ufrag.as_str(), ib.ufrag.as_str()), ("bbbb", "aaaa"));
    assert_eq!(ia.pwd, "bbbb-password-0123456789");
    assert_eq!(ia.candidates[0].port, 5000);
    assert_eq!(ib.options, vec!["trickle"]);
    assert!(ia.end_of_candidates && ib.end_of_candidates);
    // A peer without ICE gets no ICE attributes in our answer.
    let no_ice = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let plain_offer = create_offer(&no_ice, addr("10.0.0.1:4000"), 1, 1);
    let (answer, n) = create_answer(&plain_offer, &b, addr("10.0.0.2:5000"), 1, 1).unwrap();
    assert!(n.remote_ice.is_none());
    assert_eq!(answer.media[0].ice_ufrag(), None);
}

#[test]
fn ice_restart_reoffer_has_new_credentials_candidates_and_address() {
    let cand = |addr: &str, port: u16| Candidate {
        foundation: "1".into(),
        component: 1,
        transport: "UDP".into(),
        priority: 2130706431,
        address: addr.into(),
        port,
        typ: CandidateType::Host,
        raddr: None,
        rport: None,
        extensions: vec![],
    };
    let ice = |ufrag: &str, c: Candidate| IceParams {
        ufrag: ufrag.into(),
        pwd: format!("{ufrag}-password-0123456789"),
        options: vec![],
        candidates: vec![c],
        end_of_candidates: true,
        lite: false,
        rtcp: None,
    };
    let a = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ice: Some(ice("aaaa", cand("10.0.0.1", 4000))),
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&a, addr("10.0.0.1:4000"), 9, 1);
    let restart = parse(
        &ice_restart(
            &offer,
            &ice("cccc", cand("10.0.9.9", 4100)),
            addr("10.0.9.9:4100"),
        )
        .to_string(),
    );
    assert_eq!(restart.origin.session_version, 2);
    assert_eq!(restart.origin.session_id, 9);
    let m = &restart.media[0];
    assert_eq!(m.port, 4100);
    assert_eq!(m.formats, offer.media[0].formats);
    assert_eq!(m.ice_ufrag(), Some("cccc"));
    // Only the new candidates; the old ones and credentials are gone (the o= line keeps
    // its address: it is part of the session's identity, RFC 8866 §5.2).
    let text = restart.to_string();
    assert!(!text.contains("aaaa"), "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("o=") || !l.contains("10.0.0.1")),
        "{text}"
    );
    assert_eq!(text.matches("a=ice-ufrag").count(), 1, "{text}");
    // The answerer sees the new credentials and address.
    let b = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ice: Some(ice("bbbb", cand("10.0.0.2", 5000))),
        ..LocalCapabilities::default()
    };
    let (_, n) = create_answer(&restart, &b, addr("10.0.0.2:5000"), 1, 1).unwrap();
    let remote = n.remote_ice.unwrap();
    assert_eq!(remote.ufrag, "cccc");
    assert_eq!(remote.candidates.len(), 1);
    assert_eq!(remote.candidates[0].address, "10.0.9.9");
    assert_eq!(n.remote_rtp, addr("10.0.9.9:4100"));
}

#[test]
fn hold_and_resume() {
    let caps = LocalCapabilities {
        srtp: SrtpPolicy::Off,
        ..LocalCapabilities::default()
    };
    let offer = create_offer(&caps, addr("10.0.0.1:4000"), 77, 3);
    let held = hold(&offer, HoldMode::SendOnly);
    assert_eq!(held.origin.session_version, 4);
    assert_eq!(held.origin.session_id, 77);
    assert_eq!(held.media[0].direction(), Some(Direction::SendOnly));
    assert_eq!(held.media[0].formats, offer.media[0].formats);
    let (answer, n) = create_answer(&held, &caps, addr("10.0.0.2:5000"), 1, 1).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    assert_eq!(
        process_answer(&held, &answer).unwrap().direction,
        Direction::SendOnly
    );

    let inactive = hold(&held, HoldMode::Inactive);
    assert_eq!(inactive.media[0].direction(), Some(Direction::Inactive));
    assert_eq!(inactive.origin.session_version, 5);
    // Holding while we only receive gives inactive.
    let mut recv_only = offer.clone();
    recv_only.media[0].set_direction(Direction::RecvOnly);
    assert_eq!(
        hold(&recv_only, HoldMode::SendOnly).media[0].direction(),
        Some(Direction::Inactive)
    );

    let resumed = resume(&inactive);
    assert_eq!(resumed.media[0].direction(), Some(Direction::SendRecv));
    assert_eq!(resumed.origin.session_version, 6);
    assert_eq!(next_version(&resumed).origin.session_version, 7);
    // Exactly one direction attribute remains.
    let dirs = resumed.media[0]
        .attributes
        .iter()
        .filter(|a| matches!(a, Attribute::Direction(_)))
        .count();
    assert_eq!(dirs, 1);
}

#[test]
fn ice_offer_with_placeholder_address_is_not_hold() {
    // Chrome/JSEP style: c=IN IP4 0.0.0.0, port 9, real addresses in candidates.
    let offer = parse(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
         a=fingerprint:sha-256 01:02\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=candidate:1 1 udp 2122260223 192.0.2.33 56143 typ host generation 0\r\n",
    );
    let caps = LocalCapabilities {
        fingerprint: Some(Fingerprint {
            hash: "sha-256".into(),
            bytes: vec![3; 32],
        }),
        ..LocalCapabilities::default()
    };
    let (answer, n) = create_answer(&offer, &caps, addr("10.0.0.2:4000"), 1, 1).unwrap();
    assert_eq!(n.direction, Direction::SendRecv);
    assert_eq!(n.remote_rtp, addr("0.0.0.0:9"));
    assert_eq!(n.remote_ice.unwrap().candidates[0].port, 56143);
    assert_eq!(
        answer.media[0].other("mid").count(),
        0,
        "unknown offer attributes are not echoed"
    );
}

/// RFC 5761 §5.1.3 / RFC 8839 §5.1.1: an ICE offer carries `a=rtcp-mux`, candidates for
/// both components and `a=rtcp` naming the RTCP default candidate; an answer that accepts
/// rtcp-mux carries component 1 only; an answer to an offer without `a=rtcp-mux` carries
/// both components and `a=rtcp`, and each side's remote ICE keeps the peer's component-2
/// candidates for its second agent.
#[test]
fn second_ice_component_for_rtcp_without_mux() {
    let cand = |component: u32, addr: &str, port: u16| Candidate {
        foundation: "1".into(),
        component,
        transport: "UDP".into(),
        priority: 2130706432 - component,
        address: addr.into(),
        port,
        typ: CandidateType::Host,
        raddr: None,
        rport: None,
        extensions: vec![],
    };
    let caps = |ufrag: &str, ip: &str, port: u16, mux: bool| LocalCapabilities {
        srtp: SrtpPolicy::Off,
        rtcp_mux: mux,
        ice: Some(IceParams {
            ufrag: ufrag.into(),
            pwd: format!("{ufrag}-password-0123456789"),
            candidates: vec![cand(1, ip, port), cand(2, ip, port + 7)],
            end_of_candidates: true,
            rtcp: Some(addr(&format!("{ip}:{}", port + 7))),
            ..IceParams::default()
        }),
        ..LocalCapabilities::default()
    };
    let components = |m: &peerline_sdp::MediaDescription| -> Vec<u32> {
        m.candidates().map(|c| c.component).collect()
    };

    // Our offer (we mux): both components, a=rtcp and a=rtcp-mux.
    let a = caps("aaaa", "10.0.0.1", 4000, true);
    let offer = parse(&create_offer(&a, addr("10.0.0.1:4000"), 1, 1).to_string());
    let om = &offer.media[0];
    assert!(om.rtcp_mux());
    assert_eq!(components(om), vec![1, 2]);
    let rtcp = om.rtcp().expect("a=rtcp in the offer");
    assert_eq!((rtcp.port, rtcp.ip()), (4007, "10.0.0.1".parse().ok()));
    assert!(offer
        .to_string()
        .contains("a=rtcp:4007 IN IP4 10.0.0.1\r\n"));

    // A muxing answerer: component 1 only, no a=rtcp, rtcp-mux agreed on both sides.
    let b = caps("bbbb", "10.0.0.2", 5000, true);
    assert!(answer_multiplexes_rtcp(&offer, true));
    let (answer, nb) = create_answer(&offer, &b, addr("10.0.0.2:5000"), 1, 1).unwrap();
    let answer = parse(&answer.to_string());
    assert!(nb.rtcp_mux);
    assert_eq!(components(&answer.media[0]), vec![1]);
    assert!(answer.media[0].rtcp().is_none());
    assert!(process_answer(&offer, &answer).unwrap().rtcp_mux);

    // An answerer that refuses rtcp-mux: both components and a=rtcp; no mux anywhere.
    let c = caps("cccc", "10.0.0.3", 6000, false);
    assert!(!answer_multiplexes_rtcp(&offer, false));
    let (answer, nc) = create_answer(&offer, &c, addr("10.0.0.3:6000"), 1, 1).unwrap();
    let answer = parse(&answer.to_string());
    assert!(!nc.rtcp_mux && !answer.media[0].rtcp_mux());
    assert_eq!(components(&answer.media[0]), vec![1, 2]);
    assert_eq!(answer.media[0].rtcp().map(|r| r.port), Some(6007));
    let na = process_answer(&offer, &answer).unwrap();
    assert!(!na.rtcp_mux);
    assert_eq!(na.remote_rtcp, Some(addr("10.0.0.3:6007")));
    let remote = na.remote_ice.unwrap();
    assert_eq!(
        remote
            .candidates
            .iter()
            .map(|c| c.component)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(nc.remote_ice.unwrap().candidates.len(), 2);

    // An offer without a=rtcp-mux (a peer that never muxes): our answer has both.
    let d = caps("dddd", "10.0.0.4", 7000, false);
    let no_mux_offer = parse(&create_offer(&d, addr("10.0.0.4:7000"), 1, 1).to_string());
    assert!(!no_mux_offer.media[0].rtcp_mux());
    assert!(!answer_multiplexes_rtcp(&no_mux_offer, true));
    let (answer, n) = create_answer(&no_mux_offer, &b, addr("10.0.0.2:5000"), 1, 1).unwrap();
    assert!(!n.rtcp_mux);
    assert_eq!(components(&answer.media[0]), vec![1, 2]);
    assert_eq!(answer.media[0].rtcp().map(|r| r.port), Some(5007));

    // Parameters without a component-2 candidate never write a=rtcp.
    let one = IceParams {
        rtcp: Some(addr("10.0.0.1:4007")),
        ..a.ice.clone().unwrap().rtp_component_only()
    };
    assert!(!one.has_rtcp_component());
    let lone = LocalCapabilities {
        ice: Some(one),
        ..a.clone()
    };
    let offer = create_offer(&lone, addr("10.0.0.1:4000"), 1, 1);
    assert!(offer.media[0].rtcp().is_none());

    // An ICE restart re-offer replaces a=rtcp with the new RTCP default.
    let mut fresh = a.ice.clone().unwrap();
    fresh.ufrag = "eeee".into();
    fresh.candidates = vec![cand(1, "10.0.9.9", 4100), cand(2, "10.0.9.9", 4200)];
    fresh.rtcp = Some(addr("10.0.9.9:4200"));
    let prev = create_offer(&a, addr("10.0.0.1:4000"), 1, 1);
    let restart = parse(&ice_restart(&prev, &fresh, addr("10.0.9.9:4100")).to_string());
    let rtcps: Vec<_> = restart.media[0]
        .attributes
        .iter()
        .filter(|a| matches!(a, peerline_sdp::Attribute::Rtcp(_)))
        .collect();
    assert_eq!(rtcps.len(), 1);
    assert_eq!(restart.media[0].rtcp().map(|r| r.port), Some(4200));
}
