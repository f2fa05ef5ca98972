//! Call transfer (RFC 3515 REFER, RFC 5589 call flows): the pieces that do not touch
//! sockets. The transferor sends REFER with `Refer-To` in the call's dialog and learns the
//! outcome from the NOTIFYs (`Event: refer`, a `message/sipfrag` body holding the status
//! line of the transferee's new INVITE); the transferee answers 202, calls the `Refer-To`
//! target and reports each status that way. In an attended transfer the `Refer-To` URI
//! carries a `Replaces` header (RFC 3891) naming the transferor's call with the target,
//! which the transferee copies into its INVITE so the target swaps the calls.

use rsip::Request;

use peerline_sip::message::{header_value, make_header};
use peerline_sip::replaces::{split_uri_headers, Replaces};

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

/// Why a `Refer-To` cannot be followed (400 with the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReferError {
    /// No `Refer-To`, or not a SIP URI.
    Missing,
    /// Its URI headers are badly escaped, or its `Replaces` is malformed.
    BadReplaces(String),
}

impl ReferError {
    /// The 400's reason phrase.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Missing => "Missing or Bad Refer-To".into(),
            Self::BadReplaces(why) => format!("Bad Refer-To: {why}"),
        }
    }
}

/// Where a REFER asks us to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReferTarget {
    /// The `Refer-To` name-addr's URI, without URI headers.
    pub uri: String,
    /// Attended transfer: the `Replaces` our INVITE must carry.
    pub replaces: Option<Replaces>,
}

/// The `Refer-To` of a REFER: its URI and, for an attended transfer, its `Replaces`.
pub(crate) fn refer_target(request: &Request) -> Result<ReferTarget, ReferError> {
    let value = header_value(request, "Refer-To")
        .or_else(|| header_value(request, "r"))
        .ok_or(ReferError::Missing)?
        .trim();
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value),
    };
    let (uri, headers) = split_uri_headers(uri)
        .ok_or_else(|| ReferError::BadReplaces("bad escape in its URI headers".into()))?;
    let mut replaces = None;
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("replaces") {
            continue; // other URI headers are not copied into our INVITE
        }
        if replaces.is_some() {
            return Err(ReferError::BadReplaces("more than one Replaces".into()));
        }
        replaces =
            Some(Replaces::parse(&value).map_err(|e| ReferError::BadReplaces(e.to_string()))?);
    }
    let uri = uri.trim();
    if rsip::Uri::try_from(uri).is_err() || !(uri.starts_with("sip:") || uri.starts_with("sips:")) {
        return Err(ReferError::Missing);
    }
    Ok(ReferTarget {
        uri: uri.to_string(),
        replaces,
    })
}

/// The `Refer-To` value of an attended transfer: the target's URI (its Contact in our
/// call with it) with that call's `Replaces`, seen from the target (RFC 5589 §7).
pub(crate) fn attended_refer_to(target_uri: &str, replaces: &Replaces) -> String {
    let base = target_uri.split_once('?').map_or(target_uri, |(b, _)| b);
    format!("<{base}?{}>", replaces.to_uri_header())
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

    fn uri_of(refer_to: &str) -> Result<String, ReferError> {
        refer_target(&refer(refer_to)).map(|t| {
            assert_eq!(t.replaces, None);
            t.uri
        })
    }

    #[test]
    fn refer_to_forms() {
        assert_eq!(
            uri_of("<sip:carol@192.0.2.3:5070>"),
            Ok("sip:carol@192.0.2.3:5070".into())
        );
        assert_eq!(
            uri_of("\"Carol\" <sip:carol@example.com;transport=tcp>;x=1"),
            Ok("sip:carol@example.com;transport=tcp".into())
        );
        assert_eq!(
            uri_of("sip:carol@example.com"),
            Ok("sip:carol@example.com".into())
        );
        assert_eq!(
            uri_of("<sip:carol@example.com?Subject=hi>"),
            Ok("sip:carol@example.com".into())
        );
        assert_eq!(
            uri_of("<mailto:carol@example.com>"),
            Err(ReferError::Missing)
        );
    }

    #[test]
    fn attended_refer_to_round_trips_its_replaces() {
        let rep = Replaces::parse("c1@192.0.2.2;to-tag=t9;from-tag=f3").unwrap();
        let value = attended_refer_to("sip:carol@192.0.2.3:5070;transport=tcp", &rep);
        let t = refer_target(&refer(&value)).unwrap();
        assert_eq!(t.uri, "sip:carol@192.0.2.3:5070;transport=tcp");
        assert_eq!(t.replaces, Some(rep));
        assert!(matches!(
            refer_target(&refer("<sip:carol@example.com?Replaces=abc%3Bto-tag%3D1>")),
            Err(ReferError::BadReplaces(why)) if why.contains("from-tag")
        ));
        assert!(matches!(
            refer_target(&refer("<sip:carol@example.com?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2&replaces=b%3Bto-tag%3D1%3Bfrom-tag%3D2>")),
            Err(ReferError::BadReplaces(why)) if why.contains("more than one")
        ));
        assert!(matches!(
            refer_target(&refer("<sip:carol@example.com?Replaces=%ZZ>")),
            Err(ReferError::BadReplaces(_))
        ));
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
