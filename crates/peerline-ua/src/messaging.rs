//! Instant messages (RFC 3428 MESSAGE) outside any dialog: what the driver keeps for one
//! we sent until its final response, and how it reads one it received.

use rsip::{Request, Response};
use tokio::sync::oneshot;

use peerline_sip::message::{header_value, MessageExt};

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
