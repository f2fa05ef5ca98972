//! Shared by the cargo-fuzz target `sdp` and the corpus replay test.

use std::net::SocketAddr;

use crate::{create_answer, create_offer, process_answer, LocalCapabilities, SessionDescription};

/// Run arbitrary bytes through parse → serialize → parse, `create_answer` (+ processing
/// that answer) and `process_answer` against a standard offer.
///
/// Never panics by design; returns `Err` when an invariant is broken (our own output
/// does not re-parse to the same description, or our answer is not accepted by our own
/// answer processing).
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) -> Result<(), String> {
    let Ok(sdp) = SessionDescription::parse_bytes(data) else {
        return Ok(());
    };
    let text = sdp.to_string();
    match SessionDescription::parse(&text) {
        Ok(again) if again == sdp => {}
        Ok(again) => return Err(format!("round trip changed:\n{sdp:?}\n{again:?}")),
        Err(e) => return Err(format!("own output does not parse: {e}\n{text}")),
    }
    let addr = SocketAddr::from(([192, 0, 2, 1], 4000));
    let caps = LocalCapabilities {
        srtp: crate::SrtpPolicy::Optional,
        ..LocalCapabilities::default()
    };
    if let Ok((answer, negotiated)) = create_answer(&sdp, &caps, addr, 1, 1) {
        let answer_text = answer.to_string();
        let reparsed = SessionDescription::parse(&answer_text)
            .map_err(|e| format!("own answer does not parse: {e}\n{answer_text}"))?;
        if reparsed != answer {
            return Err(format!("answer round trip changed:\n{answer_text}"));
        }
        if let Ok(n) = process_answer(&sdp, &answer) {
            if n.codec.encoding_name() != negotiated.codec.encoding_name() {
                return Err("offerer and answerer disagree on the codec".into());
            }
        }
    }
    let offer = create_offer(&caps, addr, 1, 1);
    let _ = process_answer(&offer, &sdp);
    Ok(())
}
