//! Editing a request we sent before, to send it again as a new transaction: a retry with
//! credentials (RFC 3261 §22.2), to the next target (RFC 3263 §4.3), or over TCP because
//! of its size (§18.1.1).

use rsip::Request;

use peerline_sip::message::{make_header, MessageExt};

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
    use peerline_sip::message::{header_value, RequestBuilder};

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
    fn replace_header_replaces_the_first_or_adds() {
        let mut m = message();
        replace_header(&mut m, "Contact", "<sip:alice@192.0.2.2;transport=tcp>");
        assert_eq!(
            header_value(&m, "Contact"),
            Some("<sip:alice@192.0.2.2;transport=tcp>")
        );
        replace_header(&mut m, "Contact", "<sip:alice@192.0.2.9>");
        assert_eq!(
            peerline_sip::message::header_values(&m, "Contact"),
            vec!["<sip:alice@192.0.2.9>"]
        );
    }
}
