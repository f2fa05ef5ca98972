//! `lint`: judge one SIP message the way an interop engineer wants it judged —
//! valid or not per RFC 3261 (with our [`crate::parse_message`] rules), why, and on
//! which line. Backs `peerline sip lint FILE|-`.
//!
//! ```
//! let r = peerline_sip::lint::lint(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
//! assert!(!r.valid);
//! assert_eq!(r.reason.as_deref(), Some("missing From header"));
//! ```

use crate::error::ParseError;
use crate::message::{canonical_header_name, MessageExt};
use rsip::SipMessage;

/// Request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A request (start line `METHOD URI SIP/2.0`).
    Request,
    /// A response (start line `SIP/2.0 code reason`).
    Response,
}

/// The verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport {
    /// Valid per RFC 3261 (as enforced by our parser).
    pub valid: bool,
    /// Why not (the reason phrase a UAS would answer with).
    pub reason: Option<String>,
    /// 1-based line of the offending start line or header, when it can be named.
    pub line: Option<usize>,
    /// Request or response (from the start line, even when invalid), if recognisable.
    pub kind: Option<MessageKind>,
    /// The status a UAS would answer an invalid request with (400/501/505/513).
    pub status_code: Option<u16>,
    /// One line describing the message (valid) or the failure.
    pub summary: String,
}

/// Physical lines of the header section: (1-based line number, canonical header
/// name) for every header start (continuation lines are skipped).
fn header_lines(bytes: &[u8]) -> (usize, Vec<(usize, String, usize)>) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    // Skip leading empty lines (keep-alive CRLFs).
    let mut start_line = 1;
    for (n, l) in lines.by_ref() {
        if !l.is_empty() {
            start_line = n;
            break;
        }
    }
    let mut out = Vec::new();
    for (n, l) in lines {
        if l.is_empty() {
            break;
        }
        if l.starts_with([' ', '\t']) {
            continue;
        }
        let name = l.split(':').next().unwrap_or("").trim();
        out.push((n, canonical_header_name(name), l.len()));
    }
    (start_line, out)
}

fn locate(bytes: &[u8], err: &ParseError) -> Option<usize> {
    let (start, headers) = header_lines(bytes);
    let find = |name: &str, nth: usize| {
        headers
            .iter()
            .filter(|(_, n, _)| n.eq_ignore_ascii_case(name))
            .nth(nth)
            .map(|(l, _, _)| *l)
    };
    match err {
        ParseError::StartLine(_)
        | ParseError::UnsupportedVersion(_)
        | ParseError::UnknownMethod(_)
        | ParseError::RequestUri(_)
        | ParseError::StatusCode(_) => Some(start),
        ParseError::InvalidHeader { name, .. } => find(name, 0),
        ParseError::DuplicateHeader(name) => find(name, 1),
        ParseError::CSeqMethodMismatch { .. } => find("CSeq", 0),
        ParseError::ContentLengthMismatch { .. } => find("Content-Length", 0),
        ParseError::HeaderLine => {
            let text = String::from_utf8_lossy(bytes);
            text.split('\n')
                .enumerate()
                .skip(start)
                .take_while(|(_, l)| !l.trim_end_matches('\r').is_empty())
                .find(|(_, l)| {
                    !l.starts_with([' ', '\t'])
                        && l.split_once(':').is_none_or(|(n, _)| {
                            let n = n.trim_end();
                            n.is_empty() || !n.chars().all(crate::syntax::is_token_char)
                        })
                })
                .map(|(i, _)| i + 1)
        }
        ParseError::HeaderLineTooLong { max } => headers
            .iter()
            .find(|(_, _, len)| len > max)
            .map(|(l, _, _)| *l),
        ParseError::TooManyHeaders { max } => headers.get(*max).map(|(l, _, _)| *l),
        _ => None,
    }
}

fn kind_of(bytes: &[u8]) -> Option<MessageKind> {
    let text = String::from_utf8_lossy(bytes);
    let first = text
        .trim_start_matches(['\r', '\n'])
        .split('\n')
        .next()?
        .trim_end();
    if first.is_empty() {
        None
    } else if first.starts_with("SIP/") {
        Some(MessageKind::Response)
    } else if first.split(' ').count() >= 3 {
        Some(MessageKind::Request)
    } else {
        None
    }
}

/// Lint one message. Never panics.
pub fn lint(bytes: &[u8]) -> LintReport {
    match crate::parse_message(bytes) {
        Ok(msg) => {
            let (kind, head) = match &msg {
                SipMessage::Request(r) => (MessageKind::Request, format!("{} {}", r.method, r.uri)),
                SipMessage::Response(r) => {
                    (MessageKind::Response, format!("SIP/2.0 {}", r.status_code))
                }
            };
            let cseq = msg
                .cseq()
                .map(|c| format!("{} {}", c.seq, c.method))
                .unwrap_or_default();
            let (headers, body) = match &msg {
                SipMessage::Request(r) => (r.headers.iter().count(), r.body.len()),
                SipMessage::Response(r) => (r.headers.iter().count(), r.body.len()),
            };
            LintReport {
                valid: true,
                reason: None,
                line: None,
                kind: Some(kind),
                status_code: None,
                summary: format!(
                    "valid {}: {head} (CSeq {cseq}, Call-ID {}, {headers} header fields, {body}-byte body)",
                    match kind {
                        MessageKind::Request => "request",
                        MessageKind::Response => "response",
                    },
                    msg.call_id().unwrap_or("-"),
                ),
            }
        }
        Err(e) => {
            let line = locate(bytes, &e);
            let reason = e.to_string();
            let summary = match line {
                Some(l) => format!("invalid: {reason} (line {l})"),
                None => format!("invalid: {reason}"),
            };
            LintReport {
                valid: false,
                reason: Some(reason),
                line,
                kind: kind_of(bytes),
                status_code: Some(e.status_code()),
                summary,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: abc\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn valid_request_and_response() {
        let r = lint(OK.as_bytes());
        assert!(r.valid, "{r:?}");
        assert_eq!(r.kind, Some(MessageKind::Request));
        assert!(
            r.summary.contains("INVITE sip:bob@example.com"),
            "{}",
            r.summary
        );
        let resp = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let r = lint(resp.as_bytes());
        assert!(r.valid);
        assert_eq!(r.kind, Some(MessageKind::Response));
    }

    #[test]
    fn names_the_offending_line() {
        let cases: [(String, usize, &str); 5] = [
            (OK.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), 7, "CSeq"),
            (
                OK.replace("Max-Forwards: 70", "Max-Forwards: 999"),
                3,
                "Max-Forwards",
            ),
            (OK.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"), 1, "version"),
            (
                OK.replace("Call-ID: abc\r\n", "Call-ID: abc\r\ni: def\r\n"),
                7,
                "Call-ID",
            ),
            (
                format!(
                    "\r\n\r\n{}",
                    OK.replace("Content-Length: 0", "Content-Length: 40")
                ),
                10,
                "Content-Length",
            ),
        ];
        for (msg, line, word) in cases {
            let r = lint(msg.as_bytes());
            assert!(!r.valid, "{msg}");
            assert_eq!(r.line, Some(line), "{r:?}");
            assert!(r.reason.as_deref().unwrap_or("").contains(word), "{r:?}");
            assert_eq!(r.kind, Some(MessageKind::Request));
        }
        let r = lint(
            OK.replace("From: <sip:alice@example.com>;tag=1\r\n", "")
                .as_bytes(),
        );
        assert_eq!((r.valid, r.line), (false, None));
        assert_eq!(r.status_code, Some(400));
        let r = lint(OK.replace("Call-ID: abc", "Call ID abc").as_bytes());
        assert_eq!(r.line, Some(6), "{r:?}");
    }

    #[test]
    fn rfc4475_invalid_messages_all_lint_invalid_without_panics() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc4475");
        let verdicts = std::fs::read_to_string(format!("{dir}/verdicts.txt")).unwrap();
        let mut checked = 0;
        for line in verdicts
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(_section), Some(verdict)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(bytes) = std::fs::read(format!("{dir}/{name}.sip")) else {
                continue;
            };
            let r = lint(&bytes);
            if verdict == "invalid" {
                assert!(!r.valid, "{name}");
                assert!(r.reason.is_some());
            }
            checked += 1;
        }
        assert!(checked >= 30, "{checked}");
        for junk in [&b""[..], b"\r\n", b"\xff\xfe", b"SIP/2.0", b"A B C\r\n\r\n"] {
            assert!(!lint(junk).valid);
        }
    }
}
