//! A cheap look at a raw SIP datagram before it is parsed, for admission control.
//!
//! Under a flood the per-source rate limit ([`crate::rate_limit`]) must cost less than
//! the work it saves: parsing every request just to learn that it is a new request from
//! a source over its limit would make the limiter itself the bottleneck. [`prescan`]
//! reads only the start line and the header names (one pass over the header section;
//! only the To header is copied, to unfold it) and tells which messages the limiter must count:
//!
//! - responses ([`Prescan::Response`]) go to the transaction layer, which matches them to
//!   our own client transactions or drops them;
//! - ACK and CANCEL, and requests whose To header carries a tag (in-dialog requests), are
//!   never limited ([`Prescan::Exempt`]): refusing them would break calls in progress;
//! - every other request is a new request ([`Prescan::NewRequest`]) and takes a token;
//! - bytes that do not start like a SIP message are [`Prescan::Garbage`]; they take a
//!   token too, so a garbage flood is limited like any other.
//!
//! The verdict is a conservative guess, not a parse: anything in doubt is classified so
//! that the full parser sees it (exempt) or the limiter counts it (new request), never
//! dropped on the strength of the prescan alone.

/// What [`prescan`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prescan {
    /// Starts with `SIP/`: a response.
    Response,
    /// ACK, CANCEL, or a request whose To header has a tag parameter.
    Exempt,
    /// A request outside any dialog (no To tag), not ACK or CANCEL.
    NewRequest,
    /// Does not start with a request line or a status line.
    Garbage,
}

/// Classifies `bytes` without parsing it; see the module docs.
pub fn prescan(bytes: &[u8]) -> Prescan {
    // Tolerate the CRLFs RFC 3261 §7.5 lets senders put before a message.
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    if bytes.starts_with(b"SIP/") {
        return Prescan::Response;
    }
    let mut lines = bytes.split(|b| *b == b'\n');
    let Some(first) = lines.next() else {
        return Prescan::Garbage;
    };
    let Some(method) = request_method(first) else {
        return Prescan::Garbage;
    };
    if method == b"ACK" || method == b"CANCEL" {
        return Prescan::Exempt;
    }
    // The To header being read, unfolded (RFC 3261 §7.3.1 continuation lines).
    let mut to: Option<Vec<u8>> = None;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some(to) = to.as_mut() {
                to.push(b' ');
                to.extend_from_slice(line);
            }
            continue;
        }
        if to.take().is_some_and(|t| has_tag_param(&t)) {
            return Prescan::Exempt;
        }
        if line.is_empty() {
            break; // end of the header section
        }
        if is_to_header(line) {
            to = Some(line.to_vec());
        }
    }
    if to.is_some_and(|t| has_tag_param(&t)) {
        return Prescan::Exempt;
    }
    Prescan::NewRequest
}

/// The method of a request line `METHOD SP Request-URI SP SIP/2.0`, if `line` is one.
fn request_method(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sp = line.iter().position(|b| *b == b' ')?;
    let (method, rest) = line.split_at(sp);
    let token_char = |b: &u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(b);
    if method.is_empty() || !method.iter().all(token_char) {
        return None;
    }
    let version = rest.rsplit(|b| *b == b' ').next()?;
    version.starts_with(b"SIP/").then_some(method)
}

/// `To:` or its compact form `t:`, any case, spaces allowed before the colon.
fn is_to_header(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let name = line[..colon].trim_ascii();
    name.eq_ignore_ascii_case(b"to") || name.eq_ignore_ascii_case(b"t")
}

/// A `;tag` parameter after the name-addr (allowing LWS around `;` and `=`). Only the
/// part after `>` counts when there is one, so a `tag` URI parameter does not.
fn has_tag_param(line: &[u8]) -> bool {
    let params = match line.iter().rposition(|b| *b == b'>') {
        Some(gt) => &line[gt..],
        None => line,
    };
    params.split(|b| *b == b';').skip(1).any(|p| {
        let name = p.split(|b| *b == b'=').next().unwrap_or(p).trim_ascii();
        name.eq_ignore_ascii_case(b"tag")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@192.0.2.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\n\
        From: <sip:alice@192.0.2.2>;tag=a1\r\n\
        To: <sip:bob@192.0.2.1>\r\n\
        Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn responses_and_garbage() {
        assert_eq!(prescan(b"SIP/2.0 200 OK\r\n\r\n"), Prescan::Response);
        assert_eq!(
            prescan(b"\r\n\r\nSIP/2.0 180 Ringing\r\n"),
            Prescan::Response
        );
        assert_eq!(prescan(b""), Prescan::Garbage);
        assert_eq!(prescan(b"\x00\x01\x02 hello"), Prescan::Garbage);
        assert_eq!(prescan(b"INVITE sip:bob HTTP/1.1\r\n"), Prescan::Garbage);
        assert_eq!(prescan(b"IN(VITE sip:bob SIP/2.0\r\n"), Prescan::Garbage);
    }

    #[test]
    fn new_request_without_to_tag() {
        assert_eq!(prescan(INVITE.as_bytes()), Prescan::NewRequest);
        let options = INVITE.replace("INVITE sip", "OPTIONS sip");
        assert_eq!(prescan(options.as_bytes()), Prescan::NewRequest);
        // A tag URI parameter inside <> is not a To tag.
        let uri_param = INVITE.replace("To: <sip:bob@192.0.2.1>", "To: <sip:bob@h;tag=x>");
        assert_eq!(prescan(uri_param.as_bytes()), Prescan::NewRequest);
        // The From tag does not count.
        let no_to = INVITE.replace("To: <sip:bob@192.0.2.1>\r\n", "");
        assert_eq!(prescan(no_to.as_bytes()), Prescan::NewRequest);
        // A To tag in the body is not a header.
        let body = INVITE.replace("\r\n\r\n", "\r\n\r\nTo: <sip:x>;tag=1\r\n");
        assert_eq!(prescan(body.as_bytes()), Prescan::NewRequest);
    }

    #[test]
    fn in_dialog_ack_and_cancel_are_exempt() {
        for to in [
            "To: <sip:bob@192.0.2.1>;tag=b2",
            "to: <sip:bob@192.0.2.1> ; TAG = b2",
            "t: sip:bob@192.0.2.1;tag=b2",
            "To: <sip:bob@192.0.2.1>\r\n ;tag=b2",
            "To:\r\n\t<sip:bob@192.0.2.1>\r\n ; tag=b2",
            "To : \"Bob\" <sip:bob@192.0.2.1>;x=1;tag=b2",
        ] {
            let m = INVITE.replace("To: <sip:bob@192.0.2.1>", to);
            assert_eq!(prescan(m.as_bytes()), Prescan::Exempt, "{to}");
        }
        let ack = INVITE.replace("INVITE sip", "ACK sip");
        assert_eq!(prescan(ack.as_bytes()), Prescan::Exempt);
        let cancel = INVITE.replace("INVITE sip", "CANCEL sip");
        assert_eq!(prescan(cancel.as_bytes()), Prescan::Exempt);
    }

    /// Wherever the full parser says "request without To tag, not ACK/CANCEL", the
    /// prescan must not call it exempt for a different reason than a To tag; and every
    /// request the parser accepts is a request for the prescan too.
    #[test]
    fn agrees_with_the_parser_on_the_torture_messages() {
        use crate::message::MessageExt;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("missing {}", dir.display());
        };
        let mut checked = 0;
        for e in entries.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            let Ok(msg) = crate::parse_message(&bytes) else {
                continue;
            };
            let got = prescan(&bytes);
            match msg {
                rsip::SipMessage::Response(_) => assert_eq!(got, Prescan::Response),
                rsip::SipMessage::Request(r) => {
                    let exempt = r.to_tag().is_some()
                        || matches!(r.method, rsip::Method::Ack | rsip::Method::Cancel);
                    let want = if exempt {
                        Prescan::Exempt
                    } else {
                        Prescan::NewRequest
                    };
                    assert_eq!(got, want, "{}", e.path().display());
                }
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} torture messages parsed");
    }
}
