//! Replays the `srtp_unprotect` fuzz corpus and any crash artifacts (SRTP/SRTCP unprotect with a fixed key, protect round trip) through the
//! fuzz harness itself (`fuzz/harness/srtp_unprotect.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/srtp_unprotect.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_srtp_unprotect_corpus_and_artifacts() {
    replay::replay("srtp_unprotect", 10, harness::run);
}

#[test]
fn truncated_and_flipped_srtp_unprotect_seeds_do_not_panic() {
    replay::truncate_and_flip("srtp_unprotect", harness::run);
}

#[test]
fn rtp_seeds_reach_the_protect_unprotect_round_trip() {
    use peerline_srtp::{Direction, SrtpContext, SrtpSuite};
    // The harness protects valid RTP and unprotects it again; make sure the seeds are
    // valid enough for libsrtp to get that far with every suite.
    for (i, suite) in SrtpSuite::ALL.iter().enumerate() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../fuzz/corpus/srtp_unprotect/rtp_suite{i}"));
        let data = std::fs::read(path).unwrap();
        assert_eq!(usize::from(data[0]) % SrtpSuite::ALL.len(), i);
        let key = &harness::KEY[..suite.key_salt_len()];
        let mut tx = SrtpContext::new(*suite, key, Direction::Outbound).unwrap();
        let mut rx = SrtpContext::new(*suite, key, Direction::Inbound).unwrap();
        let protected = tx.protect_rtp(&data[1..]).unwrap();
        assert_eq!(rx.unprotect_rtp(&protected).unwrap(), &data[1..]);
    }
}
