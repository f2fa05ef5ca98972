//! Replays the `stun_ice` fuzz corpus and any crash artifacts (STUN as the ICE agent decodes it, a=candidate conversion) through the
//! fuzz harness itself (`fuzz/harness/stun_ice.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/stun_ice.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_stun_ice_corpus_and_artifacts() {
    replay::replay("stun_ice", 10, harness::run);
}

#[test]
fn truncated_and_flipped_stun_ice_seeds_do_not_panic() {
    replay::truncate_and_flip("stun_ice", harness::run);
}
