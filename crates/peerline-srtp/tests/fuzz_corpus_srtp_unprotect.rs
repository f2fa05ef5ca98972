//! Replays the `srtp_unprotect` fuzz corpus and any crash artifacts (SRTP/SRTCP unprotect with a fixed key, protect round trip) through the
//! fuzz harness itself (`fuzz/harness/srtp_unprotect.rs`), plus every seed truncated and bit-flipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[path = "../../../fuzz/harness/srtp_unprotect.rs"]
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
fn replay_srtp_unprotect_corpus_and_artifacts() {
    let corpus = files("corpus/srtp_unprotect");
    assert!(corpus.len() >= 10, "seed corpus missing: {corpus:?}");
    for path in corpus
        .iter()
        .chain(files("artifacts/srtp_unprotect").iter())
    {
        let data = std::fs::read(path).unwrap();
        harness::run(&data);
    }
}

#[test]
fn truncated_and_flipped_srtp_unprotect_seeds_do_not_panic() {
    for path in files("corpus/srtp_unprotect").iter().take(64) {
        let data = std::fs::read(path).unwrap();
        for n in 0..data.len().min(96) {
            harness::run(&data[..n]);
            let mut m = data.clone();
            m[n] ^= 0xFF;
            harness::run(&m);
        }
    }
}

#[test]
fn rtp_seeds_reach_the_protect_unprotect_round_trip() {
    use peerline_srtp::{Direction, SrtpContext, SrtpSuite};
    // The harness protects valid RTP and unprotects it again; make sure the seeds are
    // valid enough for libsrtp to get that far with every suite.
    for (i, suite) in SrtpSuite::ALL.iter().enumerate() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../fuzz/corpus/srtp_unprotect/rtp_suite{i}"));
        let data = std::fs::read(path).unwrap();
        assert_eq!(usize::from(data[0]) % SrtpSuite::ALL.len(), i);
        let key = &harness::KEY[..suite.key_salt_len()];
        let mut tx = SrtpContext::new(*suite, key, Direction::Outbound).unwrap();
        let mut rx = SrtpContext::new(*suite, key, Direction::Inbound).unwrap();
        let protected = tx.protect_rtp(&data[1..]).unwrap();
        assert_eq!(rx.unprotect_rtp(&protected).unwrap(), &data[1..]);
    }
}
