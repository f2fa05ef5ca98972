//! Replays the `config` fuzz corpus and any crash artifacts (the phone's TOML config) through the
//! fuzz harness itself (`fuzz/harness/config.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/config.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_config_corpus_and_artifacts() {
    replay::replay("config", 10, harness::run);
}

#[test]
fn truncated_and_flipped_config_seeds_do_not_panic() {
    replay::truncate_and_flip("config", harness::run);
}
