//! WAV sources decoded and resampled once per process, shared by every call that plays them.
//!
//! A bot running hundreds of calls from one prompt file used to read and resample that file
//! once per call, on the runtime thread: at 50 Opus calls with an 8 kHz clip the resampling
//! alone stalled every other call's media. Here the first call to ask for a (file, rate)
//! pair decodes it on a blocking thread; the calls that ask meanwhile wait for that one
//! result, and later calls get the same samples without copying them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::OnceCell;

/// Decoded samples at one rate, shared between calls.
pub(crate) type Samples = Arc<[i16]>;

/// How many (file, rate) pairs are kept; past this the cache starts over (bots use a
/// handful of prompts, so this only bounds memory against a caller with endless files).
const MAX_ENTRIES: usize = 64;

/// Identifies one version of one file at one rate: a file rewritten in place (new length
/// or modification time) is decoded again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    rate: u32,
    len: u64,
    modified: Option<SystemTime>,
}

type Slot = Arc<OnceCell<Result<Samples, String>>>;

/// The cache. One per process in practice ([`shared`]); tests make their own.
#[derive(Default)]
pub(crate) struct WavCache {
    slots: Mutex<HashMap<Key, Slot>>,
}

impl WavCache {
    /// The samples of `path` at `rate` Hz, decoded at most once per file version and rate.
    /// The error names the file.
    pub(crate) async fn load(&self, path: &Path, rate: u32) -> Result<Samples, String> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let key = Key {
            path: path.to_path_buf(),
            rate,
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() >= MAX_ENTRIES && !slots.contains_key(&key) {
                slots.clear();
            }
            Arc::clone(slots.entry(key).or_default())
        };
        let path = path.to_path_buf();
        slot.get_or_init(|| async move {
            tokio::task::spawn_blocking(move || decode(&path, rate))
                .await
                .unwrap_or_else(|e| Err(format!("decoding the WAV source failed: {e}")))
        })
        .await
        .clone()
    }

    /// How many (file version, rate) pairs are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// The process-wide cache.
pub(crate) fn shared() -> &'static WavCache {
    static CACHE: std::sync::OnceLock<WavCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(WavCache::default)
}

fn decode(path: &Path, rate: u32) -> Result<Samples, String> {
    let audio = peerline_audio::read_wav(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let samples = peerline_audio::resample(&audio.samples, audio.sample_rate, rate)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(samples.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
        peerline_audio::write_wav(path, rate, samples).expect("write wav");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("peerline-wav-cache-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[tokio::test]
    async fn concurrent_calls_share_one_decode_per_file_and_rate() {
        let dir = temp_dir("share");
        let path = dir.join("prompt.wav");
        write_wav(&path, 8000, &[1000; 800]);
        let cache = WavCache::default();
        let (a, b) = tokio::join!(cache.load(&path, 48_000), cache.load(&path, 48_000));
        let (a, b) = (a.expect("a"), b.expect("b"));
        assert!(Arc::ptr_eq(&a, &b), "both calls got the same samples");
        // 100 ms at 8 kHz is about 100 ms at 48 kHz.
        assert!((4700..=4900).contains(&a.len()), "{} samples", a.len());
        let narrow = cache.load(&path, 8000).await.expect("8 kHz");
        assert_eq!(narrow.len(), 800);
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn a_rewritten_file_is_decoded_again() {
        let dir = temp_dir("rewrite");
        let path = dir.join("prompt.wav");
        write_wav(&path, 8000, &[7; 80]);
        let cache = WavCache::default();
        let first = cache.load(&path, 8000).await.expect("first");
        write_wav(&path, 8000, &[9; 160]);
        let second = cache.load(&path, 8000).await.expect("second");
        assert_eq!((first.len(), first[0]), (80, 7));
        assert_eq!((second.len(), second[0]), (160, 9));
    }

    #[tokio::test]
    async fn a_missing_or_bad_file_is_an_error_naming_it() {
        let dir = temp_dir("bad");
        let missing = dir.join("missing.wav");
        let e = WavCache::default().load(&missing, 8000).await.unwrap_err();
        assert!(e.contains("missing.wav"), "{e}");
        let bad = dir.join("bad.wav");
        std::fs::write(&bad, b"RIFF not really").expect("write");
        let e = WavCache::default().load(&bad, 8000).await.unwrap_err();
        assert!(e.contains("bad.wav"), "{e}");
    }
}
