//! WAV helpers and tone detection (Goertzel), for asserting what a peer received.

use std::path::Path;

use crate::error::{Error, Result};

/// A WAV file downmixed to mono, samples in -1.0..=1.0.
#[derive(Debug, Clone)]
pub struct WavMono {
    pub rate: u32,
    /// Channels in the file before downmixing (stereo recordings are averaged to mono —
    /// sox's "Rough frequency" on a stereo file is off by √2, this is not).
    pub channels: u16,
    pub samples: Vec<f32>,
}

impl WavMono {
    pub fn duration_secs(&self) -> f64 {
        if self.rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.rate)
    }

    pub fn rms(&self) -> f64 {
        rms(&self.samples)
    }
}

fn wav_err(path: &Path, reason: impl ToString) -> Error {
    Error::Wav {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Read a 16-bit (or 8/24/32-bit int, or float) WAV and downmix it to mono.
pub fn read_wav_mono(path: &Path) -> Result<WavMono> {
    let mut r = hound::WavReader::open(path).map_err(|e| wav_err(path, e))?;
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| wav_err(path, e))?,
        hound::SampleFormat::Int => {
            let scale = 2f32.powi(i32::from(spec.bits_per_sample.max(1)) - 1);
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| wav_err(path, e))?
        }
    };
    let samples = interleaved
        .chunks(ch)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    Ok(WavMono {
        rate: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

/// Write a 16-bit PCM sine tone WAV (`channels` identical channels), amplitude 0..1.
pub fn write_tone_wav(
    path: &Path,
    freq: f64,
    rate: u32,
    channels: u16,
    secs: f64,
    amplitude: f64,
) -> Result<()> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| wav_err(path, e))?;
    let n = (secs * f64::from(rate)).round() as u64;
    let amp = amplitude.clamp(0.0, 1.0) * f64::from(i16::MAX);
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let v = (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16;
        for _ in 0..channels {
            w.write_sample(v).map_err(|e| wav_err(path, e))?;
        }
    }
    w.finalize().map_err(|e| wav_err(path, e))
}

fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Fraction of the block's energy at `freq` (Goertzel at the exact frequency):
/// ≈1.0 for a pure tone at `freq`, ≈0 for silence-free signals elsewhere, 0 for silence.
pub fn goertzel_ratio(block: &[f32], rate: u32, freq: f64) -> f64 {
    let n = block.len();
    if n == 0 || rate == 0 {
        return 0.0;
    }
    let energy: f64 = block.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    if energy <= f64::EPSILON {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in block {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A sine of amplitude A over n samples gives power ≈ (A n / 2)², energy ≈ A² n / 2.
    (2.0 * power / (n as f64 * energy)).min(1.0)
}

/// Per-block tone detection over a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneReport {
    pub freq: f64,
    /// 100 ms blocks analysed.
    pub blocks: usize,
    /// Blocks that are not silent (RMS above 0.01).
    pub loud_blocks: usize,
    /// Loud blocks whose energy is mostly (> 50 %) at `freq`.
    pub tone_blocks: usize,
    pub rms: f64,
    pub duration_secs: f64,
}

impl ToneReport {
    /// Seconds of audio in which the tone was found.
    pub fn tone_secs(&self) -> f64 {
        self.tone_blocks as f64 * 0.1
    }
    /// Fraction of all blocks that carry the tone.
    pub fn tone_fraction(&self) -> f64 {
        if self.blocks == 0 {
            0.0
        } else {
            self.tone_blocks as f64 / self.blocks as f64
        }
    }
}

/// Split into 100 ms blocks and count those dominated by `freq`.
pub fn detect_tone(wav: &WavMono, freq: f64) -> ToneReport {
    let block = (wav.rate as usize / 10).max(1);
    let mut report = ToneReport {
        freq,
        blocks: 0,
        loud_blocks: 0,
        tone_blocks: 0,
        rms: wav.rms(),
        duration_secs: wav.duration_secs(),
    };
    for b in wav.samples.chunks_exact(block) {
        report.blocks += 1;
        if rms(b) > 0.01 {
            report.loud_blocks += 1;
            if goertzel_ratio(b, wav.rate, freq) > 0.5 {
                report.tone_blocks += 1;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_its_tone_and_not_others() {
        let rate = 8000;
        let tone: Vec<f32> = (0..800)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as f32)
            .collect();
        assert!(goertzel_ratio(&tone, rate, 440.0) > 0.9);
        assert!(goertzel_ratio(&tone, rate, 1000.0) < 0.05);
        assert_eq!(goertzel_ratio(&[0.0; 800], rate, 440.0), 0.0);
    }

    #[test]
    fn wav_roundtrip_stereo_downmix() {
        let dir = std::env::temp_dir().join(format!("peerline-interop-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.wav");
        write_tone_wav(&p, 1000.0, 16000, 2, 1.0, 0.5).unwrap();
        let w = read_wav_mono(&p).unwrap();
        assert_eq!((w.rate, w.channels, w.samples.len()), (16000, 2, 16000));
        let r = detect_tone(&w, 1000.0);
        assert_eq!(r.tone_blocks, 10);
        assert_eq!(detect_tone(&w, 440.0).tone_blocks, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
