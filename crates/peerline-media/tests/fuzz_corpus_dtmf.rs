//! Replays the `dtmf` fuzz corpus and any crash artifacts (RFC 4733 telephone events) through the
//! fuzz harness itself (`fuzz/harness/dtmf.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/dtmf.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_dtmf_corpus_and_artifacts() {
    replay::replay("dtmf", 8, harness::run);
}

#[test]
fn truncated_and_flipped_dtmf_seeds_do_not_panic() {
    replay::truncate_and_flip("dtmf", harness::run);
}
