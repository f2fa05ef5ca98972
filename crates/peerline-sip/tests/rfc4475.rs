//! RFC 4475 §3.1.1 / §3.1.2 torture messages against our parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerline_sip::{error_response, parse_message, MessageExt, ParseError};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475")
}

/// Messages where our outcome differs from the RFC verdict, with the outcome we
/// actually produce. The test fails if the behaviour changes (either way), so this
/// table must be kept in sync with docs/sip.md.
///
/// intmeth / esc02: syntactically valid requests with extension methods. rsip's
/// `Method` is a closed enum, so `parse_message` cannot return them; it returns
/// `UnknownMethod` (status 501, with Allow), which is what RFC 4475 says an
/// endpoint answers to these messages anyway.
const KNOWN_DIVERGENCES: &[(&str, &str)] = &[("intmeth", "err:501"), ("esc02", "err:501")];

fn outcome(bytes: &[u8]) -> String {
    match parse_message(bytes) {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("err:{}", e.status_code()),
    }
}

#[test]
fn torture_messages_match_rfc_verdicts() {
    let verdicts = std::fs::read_to_string(dir().join("verdicts.txt")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in verdicts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (name, verdict) = (cols[0], cols[2]);
        let bytes = std::fs::read(dir().join(format!("{name}.sip"))).unwrap();
        let got = outcome(&bytes);
        let rfc_expected = match verdict {
            "valid" => "ok".to_string(),
            "invalid" => match cols[3] {
                "drop" => "err:400".to_string(), // responses: any error means dropped
                code => format!("err:{code}"),
            },
            other => panic!("bad verdict {other}"),
        };
        let expected = KNOWN_DIVERGENCES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| o.to_string())
            .unwrap_or(rfc_expected);
        if got != expected {
            failures.push(format!(
                "{name}: expected {expected}, got {got} ({:?})",
                parse_message(&bytes).err()
            ));
        }
        // Rejected requests get an error response naming the problem; responses get none.
        if let Err(e) = parse_message(&bytes) {
            let resp = error_response(&bytes, &e);
            let is_response = bytes.starts_with(b"SIP/");
            assert_eq!(resp.is_none(), is_response, "{name}");
            if let Some(resp) = resp {
                let wire = String::from_utf8(peerline_sip::serialize(&resp.into())).unwrap();
                let status_line = format!("SIP/2.0 {} {}\r\n", e.status_code(), e.reason());
                assert!(wire.starts_with(&status_line), "{name}: {wire}");
                assert!(wire.contains("\r\nCall-ID: "), "{name}");
                assert!(wire.contains("\r\nCSeq: "), "{name}");
            }
        }
        checked += 1;
    }
    assert_eq!(
        checked, 32,
        "all 32 RFC 4475 §3.1.1/§3.1.2 messages checked"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.sip"))).unwrap()
}

#[test]
fn wsinv_details() {
    let m = parse_message(&load("wsinv")).unwrap();
    assert_eq!(m.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method.as_str()), (9, "INVITE"));
    assert_eq!(m.to_tag().as_deref(), Some("1918181833n"));
    assert_eq!(m.from_tag().as_deref(), Some("98asjd8"));
    assert_eq!(
        m.from_addr().unwrap().display_name.as_deref(),
        Some(r#"J Rosenberg \""#)
    );
    let vias = peerline_sip::message::header_values(&m, "Via");
    assert_eq!(vias.len(), 3);
    let top = m.top_via().unwrap();
    assert_eq!(
        (top.transport.as_str(), top.host.as_str()),
        ("UDP", "192.0.2.2")
    );
    let second = peerline_sip::syntax::parse_via(vias[1]).unwrap();
    assert_eq!(second.branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(m.body().len(), 150);
    assert_eq!(
        m.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        m.contact().unwrap().display_name.as_deref(),
        Some(r#"Quoted string """#)
    );
}

#[test]
fn dblreq_ignores_trailing_octets() {
    let m = parse_message(&load("dblreq")).unwrap();
    assert_eq!(m.cseq().unwrap().method, "REGISTER");
    assert!(m.body().is_empty());
}

#[test]
fn mpart01_keeps_binary_body() {
    let bytes = load("mpart01");
    let m = parse_message(&bytes).unwrap();
    let cl: usize = m.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(m.body().len(), cl);
    assert!(bytes.ends_with(m.body()));
}

#[test]
fn specific_rejection_reasons() {
    let reason = |n: &str| parse_message(&load(n)).unwrap_err();
    assert!(matches!(
        reason("clerr"),
        ParseError::ContentLengthMismatch { declared: 9999, .. }
    ));
    assert!(matches!(
        reason("mismatch01"),
        ParseError::CSeqMethodMismatch { .. }
    ));
    assert!(matches!(
        reason("badvers"),
        ParseError::UnsupportedVersion(_)
    ));
    assert!(matches!(reason("mismatch02"), ParseError::UnknownMethod(_)));
    assert!(matches!(reason("bigcode"), ParseError::StatusCode(_)));
    let r = error_response(&load("mismatch02"), &reason("mismatch02")).unwrap();
    assert_eq!(r.status_code.code(), 501);
    assert!(r.header("Allow").is_some());
    assert_eq!(r.call_id(), Some("mismatch02.dj0234sxdfl3"));
}
