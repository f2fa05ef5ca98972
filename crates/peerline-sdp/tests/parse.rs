//! Parser behaviour: line endings, errors with line numbers, limits, typed attributes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use peerline_sdp::*;

const MIN: &str = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n";

fn err(text: &str) -> ParseError {
    SessionDescription::parse(text).unwrap_err()
}

#[test]
fn lf_and_crlf_parse_the_same_and_output_is_crlf() {
    let lf = format!("{MIN}m=audio 4000 RTP/AVP 0\na=sendonly\n");
    let crlf = lf.replace('\n', "\r\n");
    let a = SessionDescription::parse(&lf).unwrap();
    let b = SessionDescription::parse(&crlf).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), crlf);
}

#[test]
fn tolerates_trailing_whitespace_blank_lines_and_missing_final_newline() {
    let text = "v=0\r\no=- 1 2 IN IP4 10.0.0.1 \r\ns=-\r\n\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv";
    let sdp = SessionDescription::parse(text).unwrap();
    assert_eq!(sdp.media[0].direction(), Some(Direction::SendRecv));
}

#[test]
fn errors_name_line_and_problem() {
    let e = err("v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 70000 RTP/AVP 0\n");
    assert_eq!(e.line, 5);
    assert!(matches!(
        e.problem,
        Problem::Invalid {
            field: "m= port",
            ..
        }
    ));
    assert_eq!(e.to_string(), "SDP line 5: invalid m= port `70000`");

    let e = err(&format!(
        "{MIN}m=audio 4000 RTP/AVP 0\na=rtpmap:300 PCMU/8000\n"
    ));
    assert_eq!(e.line, 7);
    assert_eq!(
        e.problem,
        Problem::Attribute {
            attribute: "rtpmap".into(),
            reason: "payload type `300` not in 0-127".into()
        }
    );
    assert_eq!(e.sip_status(), 400);

    assert_eq!(err("o=- 1 2 IN IP4 1.2.3.4\n").problem, Problem::NoVersion);
    assert_eq!(err("v=1\n").problem, Problem::BadVersion("1".into()));
    let e = err("v=0\ns=-\n");
    assert_eq!((e.line, e.problem), (3, Problem::Missing('o')));
    let e = err(&format!(
        "{MIN}m=audio 4000 RTP/AVP 0\no=- 1 2 IN IP4 1.2.3.4\n"
    ));
    assert_eq!((e.line, e.problem), (7, Problem::Misplaced('o')));
    let e = err(&format!("{MIN}x=1\n"));
    assert_eq!((e.line, e.problem), (6, Problem::UnknownType('x')));
    let e = err(&format!("{MIN}c=IN IP4 10.0.0.2\n"));
    assert_eq!((e.line, e.problem), (6, Problem::Duplicate('c')));
    let e = err(&format!("{MIN}garbage\n"));
    assert_eq!(e.line, 6);
    assert!(matches!(e.problem, Problem::NotTypeValue(_)));
    let e = err(&format!("{MIN}m=audio 4000 RTP/AVP PCMU\n"));
    assert!(matches!(
        e.problem,
        Problem::Invalid {
            field: "RTP payload type on m= line",
            ..
        }
    ));
    let e = err(&format!(
        "{MIN}a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^99\n"
    ));
    assert!(matches!(e.problem, Problem::Attribute { ref attribute, .. } if attribute == "crypto"));
    let e = err(&format!("{MIN}a=fingerprint:sha-256 AB:CD:E\n"));
    assert!(
        matches!(e.problem, Problem::Attribute { ref attribute, .. } if attribute == "fingerprint")
    );
    let e = err(&format!("{MIN}a=setup:sideways\n"));
    assert!(matches!(e.problem, Problem::Attribute { ref attribute, .. } if attribute == "setup"));
    let e = err(&format!(
        "{MIN}a=candidate:1 1 UDP 5 1.2.3.4 99999 typ host\n"
    ));
    assert!(
        matches!(e.problem, Problem::Attribute { ref attribute, .. } if attribute == "candidate")
    );
    let e = err(&format!("{MIN}s=x\0y\n"));
    assert_eq!(e.problem, Problem::ControlCharacter);
}

#[test]
fn bytes_must_be_utf8() {
    let mut body = MIN.as_bytes().to_vec();
    body.extend_from_slice(b"a=tool:\xff\n");
    let e = SessionDescription::parse_bytes(&body).unwrap_err();
    assert_eq!((e.line, e.problem), (6, Problem::NotUtf8));
    assert!(SessionDescription::parse_bytes(MIN.as_bytes()).is_ok());
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_lines: 6,
        ..Limits::default()
    };
    let text = format!("{MIN}a=x\na=y\n");
    let e = SessionDescription::parse_with_limits(&text, &limits).unwrap_err();
    assert_eq!((e.line, e.problem), (7, Problem::TooManyLines { limit: 6 }));

    let fmts: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let e = err(&format!("{MIN}m=audio 4000 RTP/AVP {}\n", fmts.join(" ")));
    assert_eq!(e.problem, Problem::TooManyFormats { limit: 64 });

    let many = "m=audio 0 RTP/AVP 0\n".repeat(33);
    assert_eq!(
        err(&format!("{MIN}{many}")).problem,
        Problem::TooManyMedia { limit: 32 }
    );

    let long = format!("{MIN}a=x:{}\n", "y".repeat(5000));
    assert_eq!(err(&long).problem, Problem::LineTooLong { limit: 4096 });

    let huge = "a".repeat(70_000);
    assert_eq!(err(&huge).problem, Problem::TooLarge { limit: 65536 });
}

#[test]
fn unknown_attributes_preserved_in_order_at_both_levels() {
    let text = format!(
        "{MIN}a=group:BUNDLE 0\na=x-foo\na=msid-semantic: WMS *\nm=audio 4000 RTP/AVP 0\na=mid:0\na=rtpmap:0 PCMU/8000\na=x-bar:1:2\na=sendrecv\n"
    );
    let sdp = SessionDescription::parse(&text).unwrap();
    assert_eq!(
        sdp.attributes,
        vec![
            Attribute::Other {
                name: "group".into(),
                value: Some("BUNDLE 0".into())
            },
            Attribute::Other {
                name: "x-foo".into(),
                value: None
            },
            Attribute::Other {
                name: "msid-semantic".into(),
                value: Some(" WMS *".into())
            },
        ]
    );
    let names: Vec<&str> = sdp.media[0]
        .attributes
        .iter()
        .map(Attribute::name)
        .collect();
    assert_eq!(names, vec!["mid", "rtpmap", "x-bar", "sendrecv"]);
    assert_eq!(sdp.media[0].other("x-bar").next(), Some(Some("1:2")));
    assert_eq!(sdp.to_string(), text.replace('\n', "\r\n"));
}

#[test]
fn session_level_direction_and_connection_fallback() {
    let text = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=recvonly\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\nc=IN IP6 2001:db8::1\na=inactive\n";
    let sdp = SessionDescription::parse(text).unwrap();
    assert_eq!(sdp.media_direction(&sdp.media[0]), Direction::RecvOnly);
    assert_eq!(sdp.media_direction(&sdp.media[1]), Direction::Inactive);
    assert_eq!(
        sdp.connection_for(&sdp.media[0]).unwrap().address,
        "10.0.0.1"
    );
    let c = sdp.connection_for(&sdp.media[1]).unwrap();
    assert_eq!(c.addr_type, AddrType::Ip6);
    assert_eq!(c.ip(), Some("2001:db8::1".parse().unwrap()));
}

#[test]
fn typed_attributes_parse_and_serialize() {
    let cases = [
        "rtpmap:96 opus/48000/2",
        "rtpmap:0 PCMU/8000",
        "fmtp:101 0-16",
        "ptime:20",
        "maxptime:150",
        "rtcp:53020 IN IP6 2001:db8::2",
        "rtcp-mux",
        "crypto:7 AES_256_CM_HMAC_SHA1_80 inline:KEY1|2^20|1:4;inline:KEY2|1048576|2:4 KDR=1 UNENCRYPTED_SRTP",
        "fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB",
        "setup:holdconn",
        "ice-ufrag:8hhY",
        "ice-pwd:asd88fgpdd777uzjYhagZg",
        "ice-options:trickle ice2",
        "ice-lite",
        "candidate:1 1 UDP 2130706431 fd00::1 8998 typ host",
        "candidate:2 1 TCP 1 a.local 9 typ relay raddr 1.2.3.4 rport 5 tcptype active",
        "remote-candidates:1 192.0.2.3 45664 2 192.0.2.3 45665",
        "end-of-candidates",
        "inactive",
    ];
    for c in cases {
        let a = Attribute::parse(c).unwrap();
        assert!(!matches!(a, Attribute::Other { .. }), "{c} parsed as Other");
        assert_eq!(a.to_string(), c);
    }
    match Attribute::parse(cases[7]).unwrap() {
        Attribute::Crypto(cr) => {
            assert_eq!(cr.keys.len(), 2);
            assert_eq!(cr.keys[1].lifetime, Some(Lifetime::Packets(1048576)));
            assert_eq!(
                cr.keys[1].mki,
                Some(Mki {
                    value: 2,
                    length: 4
                })
            );
            assert_eq!(cr.session_params, vec!["KDR=1", "UNENCRYPTED_SRTP"]);
            assert!(
                !format!("{cr:?}").contains("KEY1"),
                "Debug must not print keys"
            );
        }
        other => panic!("{other:?}"),
    }
    // Lower-case hex is accepted and normalized.
    let fp = Attribute::parse("fingerprint:sha-256 ab:01").unwrap();
    assert_eq!(fp.to_string(), "fingerprint:sha-256 AB:01");
    // "20.0" is accepted as 20.
    assert_eq!(
        Attribute::parse("ptime:20.0").unwrap(),
        Attribute::Ptime(20)
    );
    // A direction word with a value is not a direction.
    assert!(matches!(
        Attribute::parse("sendrecv:x").unwrap(),
        Attribute::Other { .. }
    ));
}

#[test]
fn fmtp_params() {
    let Attribute::Fmtp(f) =
        Attribute::parse("fmtp:111 minptime=10; useinbandfec=1;stereo=0").unwrap()
    else {
        panic!()
    };
    assert_eq!(f.payload_type(), Some(111));
    assert_eq!(f.param("USEINBANDFEC"), Some("1"));
    assert_eq!(
        f.param_list(),
        vec![
            ("minptime", Some("10")),
            ("useinbandfec", Some("1")),
            ("stereo", Some("0"))
        ]
    );
}

#[test]
fn set_direction_replaces_all() {
    let mut sdp = SessionDescription::parse(&format!(
        "{MIN}m=audio 4000 RTP/AVP 0\na=sendrecv\na=x\na=recvonly\n"
    ))
    .unwrap();
    sdp.media[0].set_direction(Direction::Inactive);
    assert_eq!(sdp.media[0].direction(), Some(Direction::Inactive));
    assert_eq!(sdp.media[0].attributes.len(), 2);
}
