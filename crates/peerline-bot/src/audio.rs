//! `expect_audio`: what a window of received audio is judged by. Audio is cut into
//! 100 ms blocks; a check passes when enough blocks match (80 % of `for` for tones and
//! silence, which leaves room for the jitter buffer filling and the window's edges).

use std::path::Path;
use std::time::Duration;

use peerline_media::{detect_tone, dominant_frequency, rms_dbfs};

use crate::scenario::AudioCheck;

/// The share of `for` that must match.
pub const MATCH_RATIO: f64 = 0.8;
/// Blocks below this level are silent.
pub const SILENCE_DBFS: f32 = -45.0;
/// Blocks above this level are active (speech-like test).
pub const ACTIVE_DBFS: f32 = -40.0;
/// The share of `for` that must be speech-like (speech pauses between syllables).
pub const SPEECH_RATIO: f64 = 0.3;
/// A block is a tone when this share of its power sits at the frequency.
pub const TONE_SHARE: f32 = 0.5;

/// A verdict: passed, and what was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the check holds.
    pub passed: bool,
    /// What the audio showed, in words and numbers.
    pub observed: String,
}

fn blocks(samples: &[i16], rate: u32) -> std::slice::ChunksExact<'_, i16> {
    samples.chunks_exact((rate / 10).max(1) as usize)
}

fn level(block: &[i16]) -> f32 {
    rms_dbfs(block).max(-96.0)
}

/// Judges `samples` (the window, at `rate`) against `check`, needing `need` of matching audio.
pub fn judge(check: &AudioCheck, samples: &[i16], rate: u32, need: Duration) -> Verdict {
    let have = samples.len() as f64 / f64::from(rate.max(1));
    if have < 0.1 {
        return Verdict {
            passed: false,
            observed: format!("only {have:.2} s of received audio in the window"),
        };
    }
    let need_s = need.as_secs_f64();
    match check {
        AudioCheck::Tone(hz) => {
            let hits = blocks(samples, rate)
                .filter(|b| level(b) > SILENCE_DBFS && detect_tone(b, rate, *hz) > TONE_SHARE)
                .count();
            let secs = hits as f64 / 10.0;
            let dominant = dominant_frequency(samples, rate);
            Verdict {
                passed: secs >= need_s * MATCH_RATIO,
                observed: format!(
                    "{hz} Hz present {secs:.1} s of {have:.1} s; dominant {dominant:.0} Hz at {:.0} dBFS",
                    level(samples)
                ),
            }
        }
        AudioCheck::Silence => {
            let quiet = blocks(samples, rate)
                .filter(|b| level(b) < SILENCE_DBFS)
                .count();
            let secs = quiet as f64 / 10.0;
            Verdict {
                passed: secs >= need_s * MATCH_RATIO,
                observed: format!(
                    "silent {secs:.1} s of {have:.1} s; level {:.0} dBFS, dominant {:.0} Hz",
                    level(samples),
                    dominant_frequency(samples, rate)
                ),
            }
        }
        AudioCheck::SpeechLike => {
            let levels: Vec<f32> = blocks(samples, rate).map(level).collect();
            let speechy = blocks(samples, rate)
                .filter(|b| {
                    level(b) > ACTIVE_DBFS && {
                        let f = dominant_frequency(b, rate);
                        f <= 0.0 || detect_tone(b, rate, f) < TONE_SHARE
                    }
                })
                .count();
            let secs = speechy as f64 / 10.0;
            let n = levels.len().max(1) as f32;
            let mean = levels.iter().sum::<f32>() / n;
            let sd = (levels.iter().map(|l| (l - mean).powi(2)).sum::<f32>() / n).sqrt();
            Verdict {
                passed: secs >= need_s * SPEECH_RATIO && sd >= 3.0,
                observed: format!(
                    "speech-like (active, not a steady tone) {secs:.1} s of {have:.1} s; level varies by {sd:.1} dB (needs ≥ {:.1} s and ≥ 3 dB)",
                    need_s * SPEECH_RATIO
                ),
            }
        }
        AudioCheck::CorrelatesWith { wav, threshold } => match correlate(wav, samples, rate) {
            Ok(c) => Verdict {
                passed: c >= *threshold,
                observed: format!("correlation {c:.2} with {}", wav.display()),
            },
            Err(e) => Verdict {
                passed: false,
                observed: e,
            },
        },
    }
}

/// Peak normalised cross-correlation of a few 200 ms probes of the window against the
/// reference (looped), at 8 kHz; the median of the probes.
pub fn correlate(reference: &Path, samples: &[i16], rate: u32) -> Result<f32, String> {
    const RATE: u32 = 8000;
    let r =
        peerline_audio::read_wav(reference).map_err(|e| format!("{}: {e}", reference.display()))?;
    let mut refs = peerline_audio::resample(&r.samples, r.sample_rate, RATE)
        .map_err(|e| format!("{}: {e}", reference.display()))?;
    refs.truncate(RATE as usize * 10);
    let got = peerline_audio::resample(samples, rate, RATE).map_err(|e| e.to_string())?;
    let probe = (RATE / 5) as usize;
    if refs.len() < probe || got.len() < probe {
        return Err(format!(
            "too short to correlate: reference {} ms, window {} ms (each needs 200 ms)",
            refs.len() * 1000 / RATE as usize,
            got.len() * 1000 / RATE as usize
        ));
    }
    // Loop the reference once so probes that straddle its end still match.
    let n = refs.len();
    refs.extend_from_within(..probe.min(n));
    let mut peaks: Vec<f32> = [1usize, 2, 3]
        .iter()
        .map(|q| {
            let start = ((got.len() - probe) * q / 4).min(got.len() - probe);
            peak(&got[start..start + probe], &refs)
        })
        .collect();
    peaks.sort_by(f32::total_cmp);
    Ok(peaks[1])
}

fn peak(probe: &[i16], reference: &[i16]) -> f32 {
    let p: Vec<f64> = probe.iter().map(|&x| f64::from(x)).collect();
    let pe = p.iter().map(|x| x * x).sum::<f64>();
    if pe <= 0.0 {
        return 0.0;
    }
    let r: Vec<f64> = reference.iter().map(|&x| f64::from(x)).collect();
    let m = p.len();
    let mut best = 0.0f64;
    // Energy of the sliding reference window, updated incrementally.
    let mut re: f64 = r[..m].iter().map(|x| x * x).sum();
    for lag in 0..=r.len() - m {
        if lag > 0 {
            re += r[lag + m - 1] * r[lag + m - 1] - r[lag - 1] * r[lag - 1];
        }
        if re > 1e-9 {
            let dot: f64 = p.iter().zip(&r[lag..lag + m]).map(|(a, b)| a * b).sum();
            best = best.max(dot / (pe * re.max(0.0)).sqrt());
        }
    }
    best as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_media::sine;

    #[test]
    fn tone_and_other_tone() {
        let s = sine(440.0, 0.5, 8000, 8000);
        let v = judge(&AudioCheck::Tone(440.0), &s, 8000, Duration::from_secs(1));
        assert!(v.passed, "{v:?}");
        let v = judge(&AudioCheck::Tone(1000.0), &s, 8000, Duration::from_secs(1));
        assert!(!v.passed, "{v:?}");
        assert!(v.observed.contains("dominant 440 Hz"), "{v:?}");
    }

    #[test]
    fn silence() {
        let s = vec![0i16; 8000];
        assert!(judge(&AudioCheck::Silence, &s, 8000, Duration::from_secs(1)).passed);
        let t = sine(440.0, 0.5, 8000, 8000);
        assert!(!judge(&AudioCheck::Silence, &t, 8000, Duration::from_secs(1)).passed);
        let v = judge(
            &AudioCheck::Silence,
            &s[..100],
            8000,
            Duration::from_secs(1),
        );
        assert!(!v.passed && v.observed.contains("only"), "{v:?}");
    }

    #[test]
    fn speech_like_is_not_a_tone_nor_silence() {
        let speech = crate::testing::speech_like(8000, 2.0);
        let v = judge(
            &AudioCheck::SpeechLike,
            &speech,
            8000,
            Duration::from_secs(2),
        );
        assert!(v.passed, "{v:?}");
        let t = sine(440.0, 0.5, 8000, 16000);
        assert!(!judge(&AudioCheck::SpeechLike, &t, 8000, Duration::from_secs(2)).passed);
        let z = vec![0i16; 16000];
        assert!(!judge(&AudioCheck::SpeechLike, &z, 8000, Duration::from_secs(2)).passed);
    }

    #[test]
    fn correlation_finds_a_shifted_copy() {
        let dir = std::env::temp_dir().join(format!("peerline-bot-corr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ref.wav");
        let speech = crate::testing::speech_like(8000, 1.0);
        peerline_audio::write_wav(&path, 8000, &speech).unwrap();
        // The window starts 0.3 s into the (looped) reference.
        let mut window: Vec<i16> = speech[2400..].to_vec();
        window.extend_from_slice(&speech[..4000]);
        assert!(correlate(&path, &window, 8000).unwrap() > 0.95);
        let other = sine(700.0, 0.5, 8000, 8000);
        assert!(correlate(&path, &other, 8000).unwrap() < 0.6);
        std::fs::remove_dir_all(&dir).ok();
    }
}
