//! Replays the cargo-fuzz seed corpus and any crash artifacts (fuzz/corpus/sdp,
//! fuzz/artifacts/sdp) plus cheap mutations of the seeds through `fuzz_check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(sub: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(sub)) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let d = std::fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn replay_corpus_and_artifacts() {
    let corpus = files("corpus/sdp");
    assert!(corpus.len() >= 6, "seed corpus missing: {}", corpus.len());
    for (path, data) in corpus.iter().chain(files("artifacts/sdp").iter()) {
        let r = std::panic::catch_unwind(|| peerline_sdp::fuzz_check(data));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{}: invariant broken: {e}", path.display()),
            Err(_) => panic!("{}: panicked", path.display()),
        }
    }
}

#[test]
fn seed_corpus_matches_test_data() {
    let data_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let seed = fuzz_dir().join("corpus/sdp").join(name);
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
    for (path, data) in files("corpus/sdp") {
        for cut in 0..data.len() {
            let r = peerline_sdp::fuzz_check(&data[..cut]);
            assert!(r.is_ok(), "{} cut at {cut}: {r:?}", path.display());
        }
        for i in (0..data.len()).step_by(3) {
            for x in [0x01u8, 0x20, 0x5a, 0x80] {
                let mut m = data.clone();
                m[i] ^= x;
                let r = peerline_sdp::fuzz_check(&m);
                assert!(r.is_ok(), "{} flip {i}^{x:#x}: {r:?}", path.display());
            }
        }
    }
}
