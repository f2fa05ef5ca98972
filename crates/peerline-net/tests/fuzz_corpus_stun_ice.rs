//! Replays the `stun_ice` fuzz corpus and any crash artifacts (STUN as the ICE agent decodes it, a=candidate conversion) through the
//! fuzz harness itself (`fuzz/harness/stun_ice.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[path = "../../../fuzz/harness/stun_ice.rs"]
mod harness;

fn files(dir: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir);
    let mut out: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

#[test]
fn replay_stun_ice_corpus_and_artifacts() {
    let corpus = files("corpus/stun_ice");
    assert!(corpus.len() >= 10, "seed corpus missing: {corpus:?}");
    for path in corpus.iter().chain(files("artifacts/stun_ice").iter()) {
        let data = std::fs::read(path).unwrap();
        harness::run(&data);
    }
}

#[test]
fn truncated_and_flipped_stun_ice_seeds_do_not_panic() {
    for path in files("corpus/stun_ice").iter().take(64) {
        let data = std::fs::read(path).unwrap();
        for n in 0..data.len().min(96) {
            harness::run(&data[..n]);
            let mut m = data.clone();
            m[n] ^= 0xFF;
            harness::run(&m);
        }
    }
}
