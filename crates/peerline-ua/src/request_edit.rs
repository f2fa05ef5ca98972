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

    /// An INVITE as a call sends it.
    fn message() -> Request {
        RequestBuilder::new(rsip::Method::Invite, "sip:carol@198.51.100.7")
            .via("UDP", "198.51.100.1:5062", "z9hG4bKm1")
            .from("sip:dave@198.51.100.1", None, "d1")
            .to("sip:carol@198.51.100.7", None)
            .call_id("m1@198.51.100.1")
            .cseq(7)
            .build()
            .unwrap()
    }

    #[test]
    fn next_attempt_bumps_cseq_and_branch_only() {
        let m = message();
        let r = next_attempt(&m, "z9hG4bKm2");
        assert_eq!(r.cseq().map(|c| c.seq), Some(8));
        assert_eq!(r.branch().as_deref(), Some("z9hG4bKm2"));
        assert_eq!(header_value(&r, "CSeq"), Some("8 INVITE"));
        assert_eq!(r.call_id(), m.call_id());
        assert_eq!(r.from_tag(), m.from_tag());
        assert_eq!(r.body, m.body);
    }

    #[test]
    fn replace_top_via_keeps_the_rest() {
        let mut m = message();
        replace_top_via(
            &mut m,
            "SIP/2.0/TCP 198.51.100.1:5062;rport;branch=z9hG4bKm9",
        );
        assert_eq!(m.branch().as_deref(), Some("z9hG4bKm9"));
        assert!(header_value(&m, "Via").is_some_and(|v| v.contains("SIP/2.0/TCP")));
        assert_eq!(m.cseq().map(|c| c.seq), Some(7));
    }

    #[test]
    fn replace_header_replaces_the_first_or_adds() {
        let mut m = message();
        assert_eq!(header_value(&m, "Contact"), None);
        replace_header(&mut m, "Contact", "<sip:dave@198.51.100.1;transport=tcp>");
        assert_eq!(
            header_value(&m, "Contact"),
            Some("<sip:dave@198.51.100.1;transport=tcp>")
        );
        replace_header(&mut m, "Contact", "<sip:dave@198.51.100.9>");
        assert_eq!(
            peerline_sip::message::header_values(&m, "Contact"),
            vec!["<sip:dave@198.51.100.9>"]
        );
    }
}
