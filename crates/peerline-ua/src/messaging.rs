//! Instant messages (RFC 3428 MESSAGE) outside any dialog: what the driver keeps for one
//! we sent until its final response, and how it reads one it received.

use rsip::{Request, Response};
use tokio::sync::oneshot;

use peerline_sip::message::{header_value, make_header, MessageExt};

use crate::phone::PhoneError;

/// A MESSAGE we sent, waiting for its final response.
pub(crate) struct Pending {
    /// The request as last sent (for a retry with credentials).
    pub request: Request,
    /// Where it went.
    pub target: peerline_sip::Target,
    /// Answers 401/407 when the account has credentials; one retry only.
    pub digest: Option<peerline_sip::auth::DigestClient>,
    /// The caller of `Phone::send_message`: the final status, or why there is none.
    pub reply: oneshot::Sender<Result<u16, PhoneError>>,
}

/// What a final response to a MESSAGE means for its sender.
pub(crate) fn outcome(response: &Response) -> Result<u16, PhoneError> {
    let code = response.status_code.code();
    if (200..300).contains(&code) {
        Ok(code)
    } else {
        Err(PhoneError::Refused(code, response.status_code.to_string()))
    }
}

/// An incoming MESSAGE as the phone reports it: sender, recipient, content type, text.
pub(crate) fn incoming(request: &Request) -> (String, String, String, String) {
    let from = request
        .from_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let to = request.to_addr().map(|a| a.to_string()).unwrap_or_default();
    let content_type = header_value(request, "Content-Type")
        .unwrap_or("text/plain")
        .to_string();
    let body = String::from_utf8_lossy(&request.body).into_owned();
    (from, to, content_type, body)
}

/// `request` again as a new transaction: CSeq + 1 and `branch` in the top Via (RFC 3261
/// §22.2 for a retry with credentials: same Call-ID and From tag).
pub(crate) fn next_attempt(request: &Request, branch: &str) -> Request {
    let mut retry = request.clone();
    let seq = retry.cseq().map(|c| c.seq).unwrap_or(1) + 1;
    let method = retry.method.to_string();
    let mut via_done = false;
    for h in retry.headers.iter_mut() {
        match h {
            rsip::Header::CSeq(_) => *h = make_header("CSeq", &format!("{seq} {method}")),
            rsip::Header::Via(v) if !via_done => {
                via_done = true;
                let text = v.to_string();
                let text = text.trim_start_matches("Via:").trim();
                let replaced = match text.split_once(";branch=") {
                    Some((head, rest)) => {
                        let tail = rest.split_once(';').map(|(_, t)| format!(";{t}"));
                        format!("{head};branch={branch}{}", tail.unwrap_or_default())
                    }
                    None => text.to_string(),
                };
                *h = make_header("Via", &replaced);
            }
            _ => {}
        }
    }
    retry
}

/// Replaces the top Via of `request` with `value` (a retry to another target: its
/// transport and our address toward it may differ).
pub(crate) fn replace_top_via(request: &mut Request, value: &str) {
    if let Some(h) = request
        .headers
        .iter_mut()
        .find(|h| matches!(h, rsip::Header::Via(_)))
    {
        *h = make_header("Via", value);
    }
}

/// Replaces the first `name` header of `request` with `value` (added if missing).
pub(crate) fn replace_header(request: &mut Request, name: &str, value: &str) {
    let new = make_header(name, value);
    let canonical = !peerline_sip::message::header_values(request, name).is_empty();
    if canonical {
        if let Some(h) = request.headers.iter_mut().find(|h| {
            let text = h.to_string();
            text.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        }) {
            *h = new;
            return;
        }
    }
    request.headers.push(new);
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_sip::message::{make_response, RequestBuilder};

    fn message() -> Request {
        RequestBuilder::new(rsip::Method::Message, "sip:bob@192.0.2.1")
            .via("UDP", "192.0.2.2:5060", "z9hG4bKm1")
            .from("sip:alice@192.0.2.2", Some("Alice"), "a1")
            .to("sip:bob@192.0.2.1", None)
            .call_id("m1@192.0.2.2")
            .cseq(7)
            .body("text/plain;charset=UTF-8", b"hello Bob".to_vec())
            .build()
            .unwrap()
    }

    #[test]
    fn next_attempt_bumps_cseq_and_branch_only() {
        let m = message();
        let r = next_attempt(&m, "z9hG4bKm2");
        assert_eq!(r.cseq().map(|c| c.seq), Some(8));
        assert_eq!(r.branch().as_deref(), Some("z9hG4bKm2"));
        assert_eq!(header_value(&r, "CSeq"), Some("8 MESSAGE"));
        assert_eq!(r.call_id(), m.call_id());
        assert_eq!(r.from_tag(), m.from_tag());
        assert_eq!(r.body, m.body);
    }

    #[test]
    fn replace_top_via_keeps_the_rest() {
        let mut m = message();
        replace_top_via(&mut m, "SIP/2.0/TCP 192.0.2.2:5060;rport;branch=z9hG4bKm9");
        assert_eq!(m.branch().as_deref(), Some("z9hG4bKm9"));
        assert!(header_value(&m, "Via").is_some_and(|v| v.contains("SIP/2.0/TCP")));
        assert_eq!(m.cseq().map(|c| c.seq), Some(7));
    }

    #[test]
    fn incoming_reads_sender_type_and_text() {
        let (from, to, ct, body) = incoming(&message());
        assert!(from.contains("sip:alice@192.0.2.2"), "{from}");
        assert!(to.contains("sip:bob@192.0.2.1"), "{to}");
        assert_eq!(ct, "text/plain;charset=UTF-8");
        assert_eq!(body, "hello Bob");
    }

    #[test]
    fn outcome_of_final_responses() {
        let m = message();
        assert_eq!(outcome(&make_response(&m, 202, Some("b"))).ok(), Some(202));
        match outcome(&make_response(&m, 404, Some("b"))) {
            Err(PhoneError::Refused(404, reason)) => assert!(reason.contains("404"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
