//! Replays the `nat_behaviour` fuzz corpus and any crash artifacts (Binding answers of the
//! RFC 5780 NAT behaviour tests, through the parser and the `NatProbe` at each test) through
//! the fuzz harness itself (`fuzz/harness/nat_behaviour.rs`), plus every seed truncated and
//! bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/nat_behaviour.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_nat_behaviour_corpus_and_artifacts() {
    replay::replay("nat_behaviour", 8, harness::run);
}

#[test]
fn truncated_and_flipped_nat_behaviour_seeds_do_not_panic() {
    replay::truncate_and_flip("nat_behaviour", harness::run);
}
