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

fn write(path: &Path, text: &str) -> Result<(), BotError> {
    std::fs::write(path, text).map_err(|source| BotError::Write {
        path: path.to_path_buf(),
        source,
    })
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
