//! Corpus replay shared by the crates' `tests/fuzz_corpus_*.rs` (each includes this file
//! with `#[path]`): every corpus and crash-artifact file of a target goes through the
//! target's harness, then every seed truncated at each length and with each byte flipped.

use std::path::PathBuf;

/// The files in `fuzz/<dir>`, sorted; none when the folder does not exist.
pub fn files(dir: &str) -> Vec<PathBuf> {
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

fn read(path: &PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `harness` on every file of `corpus/<target>` (at least `min_seeds` of them) and
/// of `artifacts/<target>`.
pub fn replay(target: &str, min_seeds: usize, harness: impl Fn(&[u8])) {
    let corpus = files(&format!("corpus/{target}"));
    assert!(
        corpus.len() >= min_seeds,
        "seed corpus of {target} missing: {corpus:?}"
    );
    for path in corpus
        .iter()
        .chain(files(&format!("artifacts/{target}")).iter())
    {
        harness(&read(path));
    }
}

/// Runs `harness` on the first 64 seeds of `target`, each truncated at every length up to
/// 96 bytes and with each of those bytes flipped.
pub fn truncate_and_flip(target: &str, harness: impl Fn(&[u8])) {
    for path in files(&format!("corpus/{target}")).iter().take(64) {
        let data = read(path);
        for n in 0..data.len().min(96) {
            harness(&data[..n]);
            let mut m = data.clone();
            m[n] ^= 0xFF;
            harness(&m);
        }
    }
}
