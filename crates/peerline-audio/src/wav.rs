//! WAV reading (any PCM/float format, mixed down to mono i16) and writing (mono i16).

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::AudioError;

/// Mono 16-bit PCM at a sample rate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audio {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

impl Audio {
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.samples.len() as f64 / f64::from(self.sample_rate)
        }
    }
}

/// Reads a WAV file as mono i16 at its own rate; multi-channel input is averaged.
pub fn read_wav(path: impl AsRef<Path>) -> Result<Audio, AudioError> {
    let reader = hound::WavReader::open(path)?;
    decode(reader)
}

/// Like [`read_wav`] from any reader.
pub fn read_wav_from<R: Read>(reader: R) -> Result<Audio, AudioError> {
    decode(hound::WavReader::new(reader)?)
}

fn decode<R: Read>(mut reader: hound::WavReader<R>) -> Result<Audio, AudioError> {
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<i32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let shift = i32::from(bits) - 16;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| if shift >= 0 { v >> shift } else { v << -shift }))
                .collect::<Result<_, _>>()?
        }
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .map(|s| s.map(|v| (v.clamp(-1.0, 1.0) * 32767.0).round() as i32))
            .collect::<Result<_, _>>()?,
        (fmt, bits) => {
            return Err(AudioError::Unsupported(format!("{fmt:?} {bits} bit")));
        }
    };
    let samples = interleaved
        .chunks(channels)
        .map(|frame| {
            let sum: i64 = frame.iter().map(|&v| i64::from(v)).sum();
            (sum / frame.len().max(1) as i64).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
        })
        .collect();
    Ok(Audio {
        sample_rate: spec.sample_rate,
        samples,
    })
}

pub(crate) fn mono_spec(sample_rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Writes mono 16-bit PCM.
pub fn write_wav(
    path: impl AsRef<Path>,
    sample_rate: u32,
    samples: &[i16],
) -> Result<(), AudioError> {
    if sample_rate == 0 {
        return Err(AudioError::BadRate(0));
    }
    let mut w = hound::WavWriter::create(path, mono_spec(sample_rate))?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

/// Like [`write_wav`] to any seekable writer.
pub fn write_wav_to<W: Write + Seek>(
    writer: W,
    sample_rate: u32,
    samples: &[i16],
) -> Result<(), AudioError> {
    if sample_rate == 0 {
        return Err(AudioError::BadRate(0));
    }
    let mut w = hound::WavWriter::new(writer, mono_spec(sample_rate))?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn mono_round_trip_via_file() {
        let dir = std::env::temp_dir().join(format!("peerline-audio-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let samples: Vec<i16> = (0..8000)
            .map(|i| ((i % 100) * 300 - 15000) as i16)
            .collect();
        write_wav(&path, 8000, &samples).unwrap();
        let a = read_wav(&path).unwrap();
        assert_eq!(a.sample_rate, 8000);
        assert_eq!(a.samples, samples);
        assert!((a.duration_secs() - 1.0).abs() < 1e-9);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stereo_is_mixed_down() {
        let mut buf = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for (l, r) in [(1000i16, 3000i16), (-2000, 0), (32767, 32767)] {
            w.write_sample(l).unwrap();
            w.write_sample(r).unwrap();
        }
        w.finalize().unwrap();
        buf.set_position(0);
        let a = read_wav_from(buf).unwrap();
        assert_eq!(a.sample_rate, 48000);
        assert_eq!(a.samples, vec![2000, -1000, 32767]);
    }

    #[test]
    fn other_formats_convert_to_i16() {
        // 24-bit int and 32-bit float.
        let mut buf = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        w.write_sample(0x12_3400i32).unwrap();
        w.write_sample(-0x40_0000i32).unwrap();
        w.finalize().unwrap();
        buf.set_position(0);
        assert_eq!(read_wav_from(buf).unwrap().samples, vec![0x1234, -0x4000]);

        let mut buf = Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for v in [0.5f32, -1.0, 2.0] {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        buf.set_position(0);
        assert_eq!(
            read_wav_from(buf).unwrap().samples,
            vec![16384, -32767, 32767]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_wav_from(Cursor::new(b"RIFF\x04\0\0\0WAVEjunk".to_vec())).is_err());
        assert!(read_wav("/nonexistent/peerline.wav").is_err());
        assert!(write_wav_to(Cursor::new(Vec::new()), 0, &[1]).is_err());
    }
}
