//! Harness for the `stun_ice` fuzz target, shared with the corpus replay test in
//! `crates/peerline-net/tests/fuzz_corpus_stun_ice.rs` (included there by `#[path]`).
//!
//! Peerline has no STUN parser of its own: STUN arrives at the ICE agent (webrtc-ice on
//! the `stun` crate). This decodes a datagram the way the agent does for a connectivity
//! check (message, USERNAME, PRIORITY, USE-CANDIDATE, ICE-CONTROLLED/-CONTROLLING,
//! MESSAGE-INTEGRITY with a short-term password, FINGERPRINT) and the attributes a STUN
//! or TURN response carries (XOR-MAPPED-ADDRESS, MAPPED-ADDRESS, ERROR-CODE, REALM,
//! NONCE, UNKNOWN-ATTRIBUTES). The same bytes, as text, also go through our SDP
//! `a=candidate` parser and `peerline_net::ice::from_sdp_candidate`, which feeds remote
//! candidates to webrtc-ice's own candidate parser. The ledger's classifier of datagrams on
//! the agent's sockets (`wire_counter::classify`) sees the same bytes, and must call a
//! STUN every datagram the `stun` crate decodes as a whole Binding message (with the leading
//! two zero bits RFC 5389 requires).

use stun::addr::MappedAddress;
use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_SOFTWARE, ATTR_USERNAME};
use stun::error_code::ErrorCodeAttribute;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Getter, Message};
use stun::textattrs::TextAttribute;
use stun::uattrs::UnknownAttributes;
use stun::xoraddr::XorMappedAddress;
use webrtc_ice::control::{AttrControlled, AttrControlling};
use webrtc_ice::priority::PriorityAttr;
use webrtc_ice::use_candidate::UseCandidateAttr;

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    stun_message(data);
    candidate(data);
    classify(data);
}

fn classify(data: &[u8]) {
    let counted = peerline_net::ice::wire_counter::classify(data).is_some();
    let mut m = Message::new();
    // The `stun` crate ignores the two leading bits, which RFC 5389 §6 requires to be zero
    // (0x40-0x7f is ChannelData, RFC 7983): such a datagram is not STUN to the ledger.
    if data.first().is_some_and(|b| b & 0xc0 == 0)
        && m.unmarshal_binary(data).is_ok()
        && m.typ.method == stun::message::METHOD_BINDING
        && m.length as usize + 20 == data.len()
    {
        assert!(
            counted,
            "a Binding message the ledger would not count as STUN: {:02x?}",
            &data[..data.len().min(24)]
        );
    }
}

fn stun_message(data: &[u8]) {
    let mut m = Message::new();
    if m.unmarshal_binary(data).is_err() {
        return;
    }
    let _ = FINGERPRINT.check(&m);
    for attr in [ATTR_USERNAME, ATTR_REALM, ATTR_NONCE, ATTR_SOFTWARE] {
        let _ = TextAttribute::get_from_as(&m, attr);
    }
    let _ = PriorityAttr::default().get_from(&m);
    let _ = UseCandidateAttr::is_set(&m);
    let _ = AttrControlled::default().get_from(&m);
    let _ = AttrControlling::default().get_from(&m);
    let _ = XorMappedAddress::default().get_from(&m);
    let _ = MappedAddress::default().get_from(&m);
    let _ = ErrorCodeAttribute::default().get_from(&m);
    let _ = UnknownAttributes(Vec::new()).get_from(&m);
    let _ = MessageIntegrity::new_short_term_integrity("fuzzpassword".into()).check(&mut m);
    let _ =
        MessageIntegrity::new_long_term_integrity("u".into(), "r".into(), "p".into()).check(&mut m);
    let _ = m.to_string();
}

fn candidate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let line = text.trim_start_matches("a=");
    let line = if line.starts_with("candidate:") {
        line.to_owned()
    } else {
        format!("candidate:{line}")
    };
    if let Ok(peerline_sdp::Attribute::Candidate(c)) = peerline_sdp::Attribute::parse(&line) {
        if let Ok(ic) = peerline_net::ice::from_sdp_candidate(&c) {
            let _ = peerline_net::ice::to_sdp_candidate(ic.as_ref());
        }
    }
}
