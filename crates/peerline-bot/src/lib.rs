//! Call bots: scenario files (TOML) with legs of steps, a runner on tokio that gives each
//! leg its own [`peerline_ua::Phone`], media assertions, load generation, and results as
//! JSON, JUnit XML and an SVG/HTML report. See `docs/bots/README.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), peerline_bot::BotError> {
//! use std::collections::BTreeMap;
//! let scenario = peerline_bot::Scenario::load("probe.toml".as_ref(), &BTreeMap::new())?;
//! let result = peerline_bot::run(scenario, &peerline_bot::RunOptions::default()).await?;
//! for failure in result.failures() {
//!     eprintln!("{failure}");
//! }
//! # Ok(()) }
//! ```

pub mod audio;
mod load;
pub mod report;
pub mod results;
mod router;
mod runner;
pub mod scenario;
pub mod testing;
pub mod tree;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use load::{progress_wanted, start_offset};
pub use results::{CallRecord, LoadSummary, Percentiles, RunResult, Status, StepResult};
pub use scenario::{Scenario, ScenarioError};

/// Why a run could not happen (a failed assertion is not an error: see [`RunResult`]).
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// The scenario was refused.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A leg's phone could not start.
    #[error("leg `{leg}`: {message}")]
    Phone {
        /// The leg.
        leg: String,
        /// Why.
        message: String,
    },
    /// A result file could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The report could not be drawn.
    #[error("{0}")]
    Report(String),
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Draw a progress bar on stderr in load mode (see [`progress_wanted`]).
    pub progress: bool,
}

/// Runs a checked scenario: once, or in load mode when it has `[load]`.
pub async fn run(scenario: Scenario, options: &RunOptions) -> Result<RunResult, BotError> {
    let scenario = Arc::new(scenario);
    match scenario.load.clone() {
        Some(load) => load::run_load(scenario, load, options.progress).await,
        None => runner::run_once(scenario).await,
    }
}

/// Writes `text` to `<path>.partial`, syncs it and renames it to `path`: a file at `path`
/// is always complete. When writing fails (a full disk) or the process is killed midway,
/// what was written stays under the `.partial` name and the error names that file.
fn write(path: &Path, text: &str) -> Result<(), BotError> {
    use std::io::Write;
    let mut name = path.as_os_str().to_os_string();
    name.push(".partial");
    let partial = std::path::PathBuf::from(name);
    let written = std::fs::File::create(&partial).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    let err = |source| BotError::Write {
        path: partial.clone(),
        source,
    };
    written.map_err(err)?;
    std::fs::rename(&partial, path).map_err(err)
}

/// Writes the JSON results.
pub fn write_json(result: &RunResult, path: &Path) -> Result<(), BotError> {
    write(path, &result.to_json())
}

/// Writes the JUnit XML results.
pub fn write_junit(result: &RunResult, path: &Path) -> Result<(), BotError> {
    write(path, &result.to_junit())
}

/// Writes the report: HTML when the name ends in `.html`/`.htm`, else SVG.
pub fn write_report(result: &RunResult, path: &Path) -> Result<(), BotError> {
    let html = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    let text = if html {
        report::html(result)
    } else {
        report::svg(result)
    }
    .map_err(BotError::Report)?;
    write(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("peerline-bot-write-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn results_are_written_whole_or_left_marked_partial() {
        let d = dir("ok");
        let path = d.join("r.json");
        write(&path, "{\"passed\": true}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"passed\": true}"
        );
        assert!(!d.join("r.json.partial").exists());

        // A full disk: the partial file is /dev/full, where every write fails (ENOSPC).
        let d = dir("full");
        let path = d.join("r.json");
        std::os::unix::fs::symlink("/dev/full", d.join("r.json.partial")).unwrap();
        let e = write(&path, "{\"passed\": true}").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:", d.join("r.json.partial").display())),
            "{e}"
        );
        assert!(e.contains("No space left"), "{e}");
        assert!(!path.exists(), "no truncated result under the final name");
    }
}
