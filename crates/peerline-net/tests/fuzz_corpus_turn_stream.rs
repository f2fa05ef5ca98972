//! Replays the `turn_stream` fuzz corpus and any crash artifacts (TURN over TCP/TLS byte
//! streams and client datagrams, through the loopback bridge's framer) through the fuzz
//! harness itself (`fuzz/harness/turn_stream.rs`), plus every seed truncated and
//! bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/harness/turn_stream.rs"]
mod harness;
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn replay_turn_stream_corpus_and_artifacts() {
    replay::replay("turn_stream", 8, harness::run);
}

#[test]
fn truncated_and_flipped_turn_stream_seeds_do_not_panic() {
    replay::truncate_and_flip("turn_stream", harness::run);
}
