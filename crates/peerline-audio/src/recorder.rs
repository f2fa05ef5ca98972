//! A WAV recording streamed to disk while a call runs, so nothing is lost and nothing is
//! silently truncated:
//!
//! * samples go to `<path>.partial` as they come (memory stays flat however long the call);
//! * every second of audio the WAV header is brought up to date (hound's `flush`), so the
//!   `.partial` file of a process killed mid-call is a valid WAV up to its last second;
//! * [`Recorder::finish`] finalizes the file and renames it to `<path>`: a file at `<path>`
//!   is always complete;
//! * a write error (a full disk) stops the recording, keeps what was written under the
//!   `.partial` name and is returned by `finish`, naming that file.
//!
//! Two recordings of the same path at once (a call and the call that takes its place) get
//! `<path>.partial`, `<path>.partial2`, …: they never write into each other.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::AudioError;

/// How many `.partialN` names are tried before giving up.
const MAX_PARTIALS: u32 = 100;

/// A recording in progress; see the module docs.
pub struct Recorder {
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: PathBuf,
    partial: PathBuf,
    samples: usize,
    since_flush: usize,
    flush_every: usize,
    error: Option<String>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("partial", &self.partial)
            .field("samples", &self.samples)
            .field("error", &self.error)
            .finish()
    }
}

/// Why a recording is incomplete: what failed, and the file holding what was written.
#[derive(Debug, thiserror::Error)]
#[error("recording incomplete, kept as {}: {reason}", partial.display())]
pub struct RecordError {
    /// The `.partial` file left on disk.
    pub partial: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl Recorder {
    /// Starts recording mono 16-bit PCM at `sample_rate` for `path`.
    pub fn create(path: impl AsRef<Path>, sample_rate: u32) -> Result<Self, AudioError> {
        if sample_rate == 0 {
            return Err(AudioError::BadRate(0));
        }
        let path = path.as_ref().to_path_buf();
        let (partial, file) = open_partial(&path)?;
        Self::from_parts(path, partial, file, sample_rate)
    }

    /// Records into `file` (opened as `partial`) for `path`.
    fn from_parts(
        path: PathBuf,
        partial: PathBuf,
        file: File,
        sample_rate: u32,
    ) -> Result<Self, AudioError> {
        let writer =
            hound::WavWriter::new(BufWriter::new(file), crate::wav::mono_spec(sample_rate))?;
        Ok(Self {
            writer: Some(writer),
            path,
            partial,
            samples: 0,
            since_flush: 0,
            flush_every: sample_rate as usize,
            error: None,
        })
    }

    /// Appends samples; after a write error they are dropped (the error is kept for
    /// [`Recorder::finish`]).
    pub fn push(&mut self, samples: &[i16]) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let mut result = samples.iter().try_for_each(|&s| w.write_sample(s));
        if result.is_ok() {
            self.samples += samples.len();
            self.since_flush += samples.len();
            if self.since_flush >= self.flush_every {
                self.since_flush = 0;
                result = w.flush();
            }
        }
        if let Err(e) = result {
            self.fail(e.to_string());
        }
    }

    /// Samples written so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The file being written.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Finalizes the WAV and renames it to its path; `Err` when the recording is
    /// incomplete, naming the `.partial` file that holds what was written.
    pub fn finish(mut self) -> Result<PathBuf, RecordError> {
        if let Some(w) = self.writer.take() {
            let done = w.finalize().map_err(|e| e.to_string()).and_then(|()| {
                std::fs::rename(&self.partial, &self.path).map_err(|e| e.to_string())
            });
            if let Err(e) = done {
                self.error = Some(e);
            }
        }
        match self.error.take() {
            None => Ok(self.path.clone()),
            Some(reason) => Err(RecordError {
                partial: self.partial.clone(),
                reason,
            }),
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::warn!(file = %self.partial.display(), "recording stopped: {reason}");
        self.error = Some(reason);
        // Dropping the writer tries to finalize; what it manages is kept in `.partial`.
        self.writer = None;
    }
}

/// Opens the first free `<path>.partial[N]`.
fn open_partial(path: &Path) -> Result<(PathBuf, File), AudioError> {
    let mut last = None;
    for n in 1..=MAX_PARTIALS {
        let suffix = if n == 1 { String::new() } else { n.to_string() };
        let mut name = path.as_os_str().to_os_string();
        name.push(format!(".partial{suffix}"));
        let partial = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
        {
            Ok(f) => return Ok((partial, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(partial),
            Err(e) => return Err(AudioError::Wav(hound::Error::IoError(e))),
        }
    }
    Err(AudioError::Unsupported(format!(
        "{MAX_PARTIALS} partial recordings already exist beside {} (last {:?})",
        path.display(),
        last
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("peerline-recorder-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_finished_recording_is_renamed_complete() {
        let d = dir("done");
        let path = d.join("call.wav");
        let mut r = Recorder::create(&path, 8000).unwrap();
        for _ in 0..25 {
            r.push(&[1000i16; 320]);
        }
        assert_eq!(r.samples(), 8000);
        assert!(!path.exists(), "not at its name before it is complete");
        assert_eq!(r.finish().unwrap(), path);
        let a = crate::read_wav(&path).unwrap();
        assert_eq!((a.sample_rate, a.samples.len()), (8000, 8000));
        assert!(!d.join("call.wav.partial").exists());
    }

    #[test]
    fn a_killed_recording_is_a_valid_partial_file_up_to_its_last_second() {
        let d = dir("killed");
        let path = d.join("call.wav");
        let mut r = Recorder::create(&path, 8000).unwrap();
        for _ in 0..30 {
            r.push(&[500i16; 320]); // 9,600 samples: flushed at 8,000
        }
        // A killed process runs no destructor: forget the recorder.
        std::mem::forget(r);
        assert!(!path.exists());
        let partial = d.join("call.wav.partial");
        let a = crate::read_wav(&partial).unwrap();
        assert!(a.samples.len() >= 8000, "{} samples", a.samples.len());
    }

    #[test]
    fn a_full_disk_stops_the_recording_and_names_the_partial_file() {
        let d = dir("full");
        let path = d.join("call.wav");
        // Writes to /dev/full fail with ENOSPC, as on a full disk.
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let partial = d.join("call.wav.partial");
        let mut r = Recorder::from_parts(path.clone(), partial.clone(), full, 8000).unwrap();
        for _ in 0..100 {
            r.push(&[700i16; 320]);
        }
        assert!(
            r.samples() < 32_000,
            "samples kept after the error: {}",
            r.samples()
        );
        let e = r.finish().unwrap_err();
        assert_eq!(e.partial, partial);
        assert!(e.to_string().contains("call.wav.partial"), "{e}");
        assert!(e.reason.contains("No space left"), "{e}");
        assert!(
            !path.exists(),
            "an incomplete recording never takes the final name"
        );
    }

    #[test]
    fn a_stale_partial_file_is_never_overwritten() {
        let d = dir("stale");
        let path = d.join("call.wav");
        std::fs::write(d.join("call.wav.partial"), b"from a killed run").unwrap();
        let mut r = Recorder::create(&path, 8000).unwrap();
        assert_eq!(r.partial_path(), d.join("call.wav.partial2"));
        // A second recording of the same path at once gets a third name.
        let r2 = Recorder::create(&path, 8000).unwrap();
        assert_eq!(r2.partial_path(), d.join("call.wav.partial3"));
        r.push(&[1i16; 160]);
        r.finish().unwrap();
        assert_eq!(
            std::fs::read(d.join("call.wav.partial")).unwrap(),
            b"from a killed run"
        );
        assert!(r2.finish().is_ok());
    }
}
