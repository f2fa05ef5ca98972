//! The interop matrix: one JSON line per (peer, feature, transport) in
//! `target/interop-results/<peer>-<feature>-<transport>.json`, rendered as Markdown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::paths::target_dir;

/// `target/interop-results/`.
pub fn results_dir() -> PathBuf {
    target_dir().join("interop-results")
}

/// One recorded result (the JSON line's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixResult {
    pub peer: String,
    pub feature: String,
    pub transport: String,
    /// `"pass"` or `"fail"`.
    pub result: String,
    pub duration_ms: u64,
    /// Seconds since the Unix epoch when recorded.
    pub unix_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Guard for one matrix cell. Call [`MatrixEntry::pass`] at the end of a successful test;
/// dropped without it (a panic, an early return) it records `fail`.
#[derive(Debug)]
pub struct MatrixEntry {
    peer: String,
    feature: String,
    transport: String,
    note: Option<String>,
    started: Instant,
    dir: PathBuf,
    done: bool,
}

impl MatrixEntry {
    /// e.g. `MatrixEntry::new("baresip", "call-pcmu", "udp")`.
    pub fn new(peer: &str, feature: &str, transport: &str) -> Self {
        Self::in_dir(results_dir(), peer, feature, transport)
    }

    /// Same, writing into another results directory.
    pub fn in_dir(dir: impl Into<PathBuf>, peer: &str, feature: &str, transport: &str) -> Self {
        Self {
            peer: peer.to_string(),
            feature: feature.to_string(),
            transport: transport.to_string(),
            note: None,
            started: Instant::now(),
            dir: dir.into(),
            done: false,
        }
    }

    /// Attach a short note (shown in the matrix), e.g. the negotiated codec.
    pub fn note(&mut self, note: impl Into<String>) {
        self.note = Some(note.into());
    }

    /// Record a pass.
    pub fn pass(mut self) {
        self.record(true);
    }

    /// Record a fail explicitly (same as dropping it).
    pub fn fail(mut self) {
        self.record(false);
    }

    fn file_path(&self) -> PathBuf {
        let name = format!("{}-{}-{}", self.peer, self.feature, self.transport);
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }

    fn record(&mut self, pass: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let r = MatrixResult {
            peer: self.peer.clone(),
            feature: self.feature.clone(),
            transport: self.transport.clone(),
            result: if pass { "pass" } else { "fail" }.to_string(),
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            unix_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            note: self.note.clone(),
        };
        // Best effort: a matrix write failure must not mask the test's own outcome.
        if let Ok(line) = serde_json::to_string(&r) {
            let _ = std::fs::create_dir_all(&self.dir);
            let _ = std::fs::write(self.file_path(), line + "\n");
        }
    }
}

impl Drop for MatrixEntry {
    fn drop(&mut self) {
        self.record(false);
    }
}

/// Read every `*.json` result in `results_dir` (unreadable lines are skipped).
pub fn read_results(results_dir: &Path) -> Vec<MatrixResult> {
    let Ok(rd) = std::fs::read_dir(results_dir) else {
        return Vec::new();
    };
    let mut out: Vec<MatrixResult> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<MatrixResult>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.peer, &a.feature, &a.transport).cmp(&(&b.peer, &b.feature, &b.transport))
    });
    out
}

/// A Markdown table: one row per (peer, feature), one column per transport,
/// cells `pass` / **FAIL** / `–` (not run), plus a summary line.
pub fn render_matrix(results_dir: &Path) -> String {
    let results = read_results(results_dir);
    if results.is_empty() {
        return format!("No interop results in {}.\n", results_dir.display());
    }
    let transports: BTreeSet<&str> = results.iter().map(|r| r.transport.as_str()).collect();
    let mut rows: BTreeMap<(&str, &str), BTreeMap<&str, &MatrixResult>> = BTreeMap::new();
    for r in &results {
        rows.entry((r.peer.as_str(), r.feature.as_str()))
            .or_default()
            .insert(r.transport.as_str(), r);
    }
    let mut s = String::from("| peer | feature |");
    for t in &transports {
        s.push_str(&format!(" {t} |"));
    }
    s.push_str("\n|---|---|");
    for _ in &transports {
        s.push_str("---|");
    }
    s.push('\n');
    for ((peer, feature), cells) in &rows {
        s.push_str(&format!("| {peer} | {feature} |"));
        for t in &transports {
            let cell = match cells.get(t) {
                Some(r) if r.result == "pass" => "pass".to_string(),
                Some(_) => "**FAIL**".to_string(),
                None => "–".to_string(),
            };
            let note = cells
                .get(t)
                .and_then(|r| r.note.as_deref())
                .map(|n| format!(" ({})", n.replace('|', "/")))
                .unwrap_or_default();
            s.push_str(&format!(" {cell}{note} |"));
        }
        s.push('\n');
    }
    let passed = results.iter().filter(|r| r.result == "pass").count();
    s.push_str(&format!(
        "\n{passed} of {} passed, {} failed.\n",
        results.len(),
        results.len() - passed
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_records_pass_and_fail_and_renders() {
        let dir = std::env::temp_dir().join(format!("peerline-matrix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut e = MatrixEntry::in_dir(&dir, "baresip", "call-pcmu", "udp");
        e.note("PCMU");
        e.pass();
        drop(MatrixEntry::in_dir(&dir, "baresip", "call-pcmu", "tcp"));
        let r = std::panic::catch_unwind(|| {
            let _e = MatrixEntry::in_dir(&dir, "sipp", "uas", "udp");
            panic!("boom");
        });
        assert!(r.is_err());
        let results = read_results(&dir);
        assert_eq!(results.len(), 3);
        let md = render_matrix(&dir);
        assert!(md.contains("| peer | feature | tcp | udp |"), "{md}");
        assert!(
            md.contains("| baresip | call-pcmu | **FAIL** | pass (PCMU) |"),
            "{md}"
        );
        assert!(md.contains("| sipp | uas | – | **FAIL** |"), "{md}");
        assert!(md.contains("1 of 3 passed, 2 failed."), "{md}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
