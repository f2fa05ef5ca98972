//! Harness for the `rtcp` fuzz target, shared with the corpus replay test in
//! `crates/peerline-media/tests/fuzz_corpus_rtcp.rs` (included there by `#[path]`).
//!
//! Compound RTCP through `parse_compound` and `RtcpState::handle`; what parses must
//! serialize and parse again to the same reports (unknown packet types are dropped).

use std::time::Instant;

use peerline_media::{build_compound, parse_compound, NtpTime, RtcpPacket, RtcpState};

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    let mut state = RtcpState::new("fuzz@peerline");
    let now = Instant::now();
    // Our SSRC from the first bytes so report blocks about "us" are exercised (RTT).
    let our_ssrc = data
        .get(8..12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let _ = state.handle(now, NtpTime(u64::MAX), our_ssrc, data);
    let _ = state.handle(now, NtpTime(0), our_ssrc, data);
    let _ = state.rtt();
    let Ok(packets) = parse_compound(data) else {
        return;
    };
    let kept: Vec<RtcpPacket> = packets
        .into_iter()
        .filter(|p| !matches!(p, RtcpPacket::Other { .. }))
        .collect();
    let bytes = build_compound(&kept);
    let again = match parse_compound(&bytes) {
        Ok(p) => p,
        Err(e) => panic!("re-serialized RTCP does not parse: {e:?}: {kept:?}"),
    };
    assert_eq!(again.len(), kept.len(), "packet count changed");
    for (a, b) in again.iter().zip(&kept) {
        match (a, b) {
            (RtcpPacket::SenderReport(x), RtcpPacket::SenderReport(y)) => {
                assert_eq!(x, y, "SR changed in a round trip")
            }
            (RtcpPacket::ReceiverReport(x), RtcpPacket::ReceiverReport(y)) => {
                assert_eq!(x, y, "RR changed in a round trip")
            }
            (RtcpPacket::Sdes(x), RtcpPacket::Sdes(y)) => assert_eq!(x.len(), y.len()),
            (RtcpPacket::Bye(x), RtcpPacket::Bye(y)) => assert_eq!(x.sources, y.sources),
            _ => panic!("packet kind changed in a round trip: {a:?} vs {b:?}"),
        }
    }
}
