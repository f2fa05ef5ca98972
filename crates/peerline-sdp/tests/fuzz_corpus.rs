//! Replays the cargo-fuzz corpus and any crash artifacts (fuzz/corpus/sdp,
//! fuzz/artifacts/sdp) through `fuzz_check`, plus truncations and byte flips of the
//! first seeds (`fuzz/replay.rs`: bounded, so a grown corpus stays cheap to replay).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../fuzz/replay.rs"]
mod replay;

use std::path::PathBuf;

fn check(data: &[u8]) {
    if let Err(e) = peerline_sdp::fuzz_check(data) {
        panic!(
            "invariant broken: {e}\ninput: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn replay_corpus_and_artifacts() {
    replay::replay("sdp", 6, check);
}

#[test]
fn seed_corpus_matches_test_data() {
    let data_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sdp");
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let path = entry.unwrap().path();
        let seed = corpus.join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&seed).unwrap(),
            "{}",
            seed.display()
        );
    }
}

#[test]
fn truncations_and_byte_flips_of_seeds() {
    replay::truncate_and_flip("sdp", check);
}
