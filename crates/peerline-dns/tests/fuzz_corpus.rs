//! Replays the cargo-fuzz corpus and any crash artifacts (fuzz/corpus/dns_uri,
//! fuzz/artifacts/dns_uri) through `fuzz_check`, plus truncations and byte flips of the
//! first seeds (`fuzz/replay.rs`: bounded, so a grown corpus stays cheap to replay).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/replay.rs"]
mod replay;

fn check(data: &[u8]) {
    if let Err(e) = peerline_dns::fuzz_check(data) {
        panic!(
            "invariant broken: {e}\ninput: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn replay_corpus_and_artifacts() {
    replay::replay("dns_uri", 8, check);
}

#[test]
fn truncations_and_byte_flips_of_seeds() {
    replay::truncate_and_flip("dns_uri", check);
}
