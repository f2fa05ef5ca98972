//! Blind call transfer (RFC 3515 REFER, RFC 5589 call flows): the pieces that do not
//! touch sockets. The transferor sends REFER with `Refer-To` in the call's dialog and
//! learns the outcome from the NOTIFYs (`Event: refer`, a `message/sipfrag` body holding
//! the status line of the transferee's new INVITE); the transferee answers 202, calls the
//! `Refer-To` target and reports each status that way.

use rsip::Request;

use peerline_sip::message::{header_value, make_header};

use crate::phone::EndReason;

/// The `message/sipfrag` body reporting `code` (RFC 3420): a bare status line.
pub(crate) fn sipfrag(code: u16, reason: &str) -> Vec<u8> {
    format!("SIP/2.0 {code} {reason}\r\n").into_bytes()
}

/// The status code in a sipfrag body, if it starts with a SIP status line.
pub(crate) fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code: u16 = rest.get(..3)?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

/// Why a `Refer-To` cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReferError {
    /// No `Refer-To`, or not a SIP URI (400).
    Missing,
    /// `Replaces` (attended transfer) is not supported as transferee yet (501).
    Attended,
}

/// The URI a REFER asks us to call: the `Refer-To` name-addr's URI, without URI headers.
pub(crate) fn refer_target(request: &Request) -> Result<String, ReferError> {
    let value = header_value(request, "Refer-To")
        .or_else(|| header_value(request, "r"))
        .ok_or(ReferError::Missing)?
        .trim();
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    };
    let (uri, headers) = match uri.split_once('?') {
        Some((u, h)) => (u, Some(h)),
        None => (uri, None),
    };
    if headers.is_some_and(|h| h.to_ascii_lowercase().contains("replaces")) {
        return Err(ReferError::Attended);
    }
    let uri = uri.trim();
    if rsip::Uri::try_from(uri).is_err() || !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
        return Err(ReferError::Missing);
    }
    Ok(uri.to_string())
}

/// The NOTIFY headers for the implicit `refer` subscription: active while the new call
/// is in progress, terminated with its final status (RFC 3515 §2.4.5).
pub(crate) fn notify_headers(final_status: bool) -> Vec<rsip::Header> {
    let state = if final_status {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    };
    vec![
        make_header("Event", "refer"),
        make_header("Subscription-State", state),
    ]
}

/// The status line the transferee reports for its new call that ended with `reason`
/// before being answered.
pub(crate) fn status_of(reason: &EndReason) -> (u16, String) {
    match reason {
        EndReason::Rejected(code, phrase) => (*code, phrase.clone()),
        EndReason::Timeout => (408, "Request Timeout".into()),
        EndReason::Unreachable(_) => (503, "Service Unavailable".into()),
        EndReason::Cancelled => (487, "Request Terminated".into()),
        _ => (500, "Server Internal Error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_sip::message::RequestBuilder;

    fn refer(refer_to: &str) -> Request {
        RequestBuilder::new(rsip::Method::Refer, "sip:bob@192.0.2.1")
            .via("UDP", "192.0.2.2:5060", "z9hG4bKr1")
            .from("sip:alice@192.0.2.2", None, "a1")
            .to("sip:bob@192.0.2.1", None)
            .call_id("r1@192.0.2.2")
            .cseq(2)
            .header(make_header("Refer-To", refer_to))
            .build()
            .unwrap()
    }

    #[test]
    fn refer_to_forms() {
        assert_eq!(
            refer_target(&refer("<sip:carol@192.0.2.3:5070>")),
            Ok("sip:carol@192.0.2.3:5070".into())
        );
        assert_eq!(
            refer_target(&refer(
                "\"Carol\" <sip:carol@example.com;transport=tcp>;x=1"
            )),
            Ok("sip:carol@example.com;transport=tcp".into())
        );
        assert_eq!(
            refer_target(&refer("sip:carol@example.com")),
            Ok("sip:carol@example.com".into())
        );
        assert_eq!(
            refer_target(&refer("<sip:carol@example.com?Replaces=abc%3Bto-tag%3D1>")),
            Err(ReferError::Attended)
        );
        assert_eq!(
            refer_target(&refer("<mailto:carol@example.com>")),
            Err(ReferError::Missing)
        );
    }

    #[test]
    fn sipfrag_round_trip_and_garbage() {
        assert_eq!(sipfrag_status(&sipfrag(200, "OK")), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying\r\n"), Some(100));
        assert_eq!(
            sipfrag_status(b"SIP/2.0 486 Busy Here\r\nContact: x\r\n"),
            Some(486)
        );
        for bad in [
            &b""[..],
            b"200 OK",
            b"SIP/2.0 abc",
            b"SIP/2.0 999 No",
            b"\xff\xfe",
        ] {
            assert_eq!(sipfrag_status(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_of_end_reasons() {
        assert_eq!(
            status_of(&EndReason::Rejected(486, "Busy Here".into())),
            (486, "Busy Here".into())
        );
        assert_eq!(status_of(&EndReason::Timeout).0, 408);
    }
}
