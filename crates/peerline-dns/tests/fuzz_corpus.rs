//! Replays the cargo-fuzz seed corpus and any crash artifacts (fuzz/corpus/dns_uri,
//! fuzz/artifacts/dns_uri) plus truncations and byte flips of the seeds through `fuzz_check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn files(sub: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(sub);
    let Ok(entries) = std::fs::read_dir(dir) else {
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

fn check(what: &str, data: &[u8]) {
    match std::panic::catch_unwind(|| peerline_dns::fuzz_check(data)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what}: invariant broken: {e}"),
        Err(_) => panic!("{what}: panicked"),
    }
}

#[test]
fn replay_corpus_and_artifacts() {
    let corpus = files("corpus/dns_uri");
    assert!(corpus.len() >= 8, "seed corpus missing: {}", corpus.len());
    for (path, data) in corpus.iter().chain(files("artifacts/dns_uri").iter()) {
        check(&path.display().to_string(), data);
    }
}

#[test]
fn truncations_and_byte_flips_of_seeds() {
    for (path, data) in files("corpus/dns_uri") {
        for cut in 0..=data.len() {
            check(&format!("{} cut {cut}", path.display()), &data[..cut]);
        }
        for i in 0..data.len() {
            for x in [0x01u8, 0x20, 0x5a, 0x80, 0xff] {
                let mut m = data.clone();
                m[i] ^= x;
                check(&format!("{} flip {i}^{x:#x}", path.display()), &m);
            }
        }
    }
}
