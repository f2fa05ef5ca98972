//! Replays the `dtmf` fuzz corpus and any crash artifacts (RFC 4733 telephone events) through the
//! fuzz harness itself (`fuzz/harness/dtmf.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[path = "../../../fuzz/harness/dtmf.rs"]
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
fn replay_dtmf_corpus_and_artifacts() {
    let corpus = files("corpus/dtmf");
    assert!(corpus.len() >= 8, "seed corpus missing: {corpus:?}");
    for path in corpus.iter().chain(files("artifacts/dtmf").iter()) {
        let data = std::fs::read(path).unwrap();
        harness::run(&data);
    }
}

#[test]
fn truncated_and_flipped_dtmf_seeds_do_not_panic() {
    for path in files("corpus/dtmf").iter().take(64) {
        let data = std::fs::read(path).unwrap();
        for n in 0..data.len().min(96) {
            harness::run(&data[..n]);
            let mut m = data.clone();
            m[n] ^= 0xFF;
            harness::run(&m);
        }
    }
}
