//! Replays the `rtp` fuzz corpus and any crash artifacts through the receive path.

use std::path::PathBuf;
use std::time::Instant;

fn files(dir: &str) -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir);
    match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn replay_rtp_corpus_and_artifacts() {
    let corpus = files("corpus/rtp");
    assert!(corpus.len() >= 5, "seed corpus missing: {corpus:?}");
    let base = Instant::now();
    for path in corpus.iter().chain(files("artifacts/rtp").iter()) {
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        peerline_media::fuzz::rtp_input(base, &data);
    }
}

#[test]
fn replay_survives_mutations_of_the_corpus() {
    // A cheap in-tree stand-in for fuzzing: every seed truncated at every length and
    // with every byte flipped.
    let base = Instant::now();
    for path in files("corpus/rtp") {
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        for n in 0..data.len().min(64) {
            peerline_media::fuzz::rtp_input(base, &data[..n]);
            let mut m = data.clone();
            m[n] ^= 0xFF;
            peerline_media::fuzz::rtp_input(base, &m);
        }
    }
}
