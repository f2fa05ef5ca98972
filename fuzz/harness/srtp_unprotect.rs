//! Harness for the `srtp_unprotect` fuzz target, shared with the corpus replay test in
//! `crates/peerline-srtp/tests/fuzz_corpus_srtp_unprotect.rs` (included there by `#[path]`).
//!
//! The first byte picks the suite; the rest is an SRTP (and SRTCP) packet unprotected
//! with a fixed key (authentication fails for nearly all inputs, which is the path an
//! attacker reaches). When the input is a valid RTP/RTCP packet, it is also protected
//! and must unprotect to the same bytes. The RFC 7983 demultiplexer sees it too.

use peerline_srtp::{classify_packet, Direction, SrtpContext, SrtpSuite};

/// 46 bytes: enough key||salt for every suite (the first `key_salt_len` are used).
pub const KEY: [u8; 46] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6, 0xc1, 0x73,
    0xc3, 0x17, 0xf2, 0xda, 0xbe, 0x35, 0x77, 0x93, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
];

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    let Some((&first, packet)) = data.split_first() else {
        return;
    };
    let _ = classify_packet(packet);
    let suite = SrtpSuite::ALL[usize::from(first) % SrtpSuite::ALL.len()];
    let key = &KEY[..suite.key_salt_len()];
    let (Ok(mut rx), Ok(mut tx)) = (
        SrtpContext::new(suite, key, Direction::Inbound),
        SrtpContext::new(suite, key, Direction::Outbound),
    ) else {
        panic!("fixed key rejected for {suite:?}");
    };
    let _ = rx.unprotect_rtp(packet);
    let _ = rx.unprotect_rtcp(packet);
    let mut buf = packet.to_vec();
    let _ = rx.unprotect_rtp_in_place(&mut buf);
    let _ = rx.stats();
    // Round trip with fresh contexts (no replay state from the attempts above).
    let (Ok(mut rx), Ok(mut tx2)) = (
        SrtpContext::new(suite, key, Direction::Inbound),
        SrtpContext::new(suite, key, Direction::Outbound),
    ) else {
        return;
    };
    if first & 0x80 == 0 {
        if let Ok(protected) = tx.protect_rtp(packet) {
            match rx.unprotect_rtp(&protected) {
                Ok(plain) => assert_eq!(plain, packet, "SRTP round trip changed the packet"),
                Err(e) => panic!("our own SRTP packet was refused: {e}"),
            }
        }
    } else if let Ok(protected) = tx2.protect_rtcp(packet) {
        match rx.unprotect_rtcp(&protected) {
            Ok(plain) => assert_eq!(plain, packet, "SRTCP round trip changed the packet"),
            Err(e) => panic!("our own SRTCP packet was refused: {e}"),
        }
    }
}
