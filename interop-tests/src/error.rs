use std::path::PathBuf;
use std::time::Duration;

/// Harness errors. Messages are meant to be read in a failed test's panic output.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("no free port block of {len} found")]
    NoFreePort { len: u16 },
    #[error("bad WAV file {path}: {reason}")]
    Wav { path: PathBuf, reason: String },
    #[error("{peer}: {reason}")]
    Peer { peer: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
