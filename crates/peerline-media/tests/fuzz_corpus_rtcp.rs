//! Replays the `rtcp` fuzz corpus and any crash artifacts (compound RTCP: parse, RtcpState, round trip) through the
//! fuzz harness itself (`fuzz/harness/rtcp.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/rtcp.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_rtcp_corpus_and_artifacts() {
    replay::replay("rtcp", 10, harness::run);
}

#[test]
fn truncated_and_flipped_rtcp_seeds_do_not_panic() {
    replay::truncate_and_flip("rtcp", harness::run);
}
