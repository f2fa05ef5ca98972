//! Band-limited resampling (windowed sinc, Blackman window, 16 zero crossings) between
//! any two rates, e.g. 8/16/48 kHz. Streaming ([`Resampler`]) or one-shot
//! ([`resample`]). The cutoff sits at 95% of the lower Nyquist frequency, so
//! downsampling does not alias.

use std::f64::consts::PI;

use crate::AudioError;

const ZERO_CROSSINGS: f64 = 16.0;

/// Streaming resampler for mono i16.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    step: f64,
    fc: f64,
    half: f64,
    buf: Vec<f64>,
    pos: f64,
    pad: usize,
    total_in: u64,
    total_out: u64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        if from == 0 {
            return Err(AudioError::BadRate(from));
        }
        if to == 0 {
            return Err(AudioError::BadRate(to));
        }
        let ratio = f64::from(to) / f64::from(from);
        let fc = 0.5 * ratio.min(1.0) * 0.95;
        let half = ZERO_CROSSINGS / (2.0 * fc);
        let pad = half.ceil() as usize;
        Ok(Self {
            from,
            to,
            step: 1.0 / ratio,
            fc,
            half,
            buf: vec![0.0; pad],
            pos: pad as f64,
            pad,
            total_in: 0,
            total_out: 0,
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.from
    }
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    fn kernel(&self, t: f64) -> f64 {
        if t.abs() >= self.half {
            return 0.0;
        }
        let x = 2.0 * self.fc * t;
        let sinc = if x.abs() < 1e-12 {
            1.0
        } else {
            (PI * x).sin() / (PI * x)
        };
        // Blackman window over [-half, half].
        let u = (t / self.half + 1.0) / 2.0;
        let w = 0.42 - 0.5 * (2.0 * PI * u).cos() + 0.08 * (4.0 * PI * u).cos();
        2.0 * self.fc * sinc * w
    }

    fn run(&mut self, limit: Option<u64>, out: &mut Vec<i16>) {
        while self.pos + self.half < self.buf.len() as f64 {
            if limit.is_some_and(|l| self.total_out >= l) {
                break;
            }
            let lo = (self.pos - self.half).ceil().max(0.0) as usize;
            let hi = ((self.pos + self.half).floor() as usize).min(self.buf.len() - 1);
            let mut acc = 0.0;
            for (k, &x) in self.buf.iter().enumerate().take(hi + 1).skip(lo) {
                acc += x * self.kernel(self.pos - k as f64);
            }
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.total_out += 1;
            self.pos += self.step;
        }
        // Drop input no longer needed.
        let keep_from = (self.pos - self.half).floor() - 1.0;
        if keep_from > 0.0 {
            let n = (keep_from as usize).min(self.buf.len());
            self.buf.drain(..n);
            self.pos -= n as f64;
        }
    }

    /// Feeds input and returns the output that is ready (latency: 16 zero crossings).
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        if self.from == self.to {
            self.total_in += input.len() as u64;
            self.total_out += input.len() as u64;
            return input.to_vec();
        }
        self.buf.extend(input.iter().map(|&s| f64::from(s)));
        self.total_in += input.len() as u64;
        let mut out = Vec::with_capacity(input.len() * self.to as usize / self.from as usize + 1);
        self.run(None, &mut out);
        out
    }

    /// Flushes the remaining output, so that in total `ceil(in × to / from)` samples
    /// come out.
    pub fn flush(&mut self) -> Vec<i16> {
        let mut out = Vec::new();
        if self.from == self.to {
            return out;
        }
        let expected = (self.total_in * u64::from(self.to)).div_ceil(u64::from(self.from));
        self.buf.extend(std::iter::repeat_n(0.0, self.pad + 1));
        self.run(Some(expected), &mut out);
        out
    }
}

/// Resamples a whole buffer.
pub fn resample(samples: &[i16], from: u32, to: u32) -> Result<Vec<i16>, AudioError> {
    let mut r = Resampler::new(from, to)?;
    let mut out = r.process(samples);
    out.extend(r.flush());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_media::{detect_tone, dominant_frequency, rms, sine};

    #[test]
    fn lengths_and_identity() {
        let x = sine(440.0, 0.5, 8000, 8000);
        assert_eq!(resample(&x, 8000, 48000).unwrap().len(), 48000);
        assert_eq!(resample(&x, 8000, 16000).unwrap().len(), 16000);
        let y = sine(440.0, 0.5, 48000, 48000);
        assert_eq!(resample(&y, 48000, 8000).unwrap().len(), 8000);
        assert_eq!(resample(&x, 8000, 8000).unwrap(), x);
        assert!(Resampler::new(0, 8000).is_err());
        assert!(resample(&[], 8000, 48000).unwrap().is_empty());
    }

    #[test]
    fn tone_survives_up_and_down() {
        for (from, to) in [
            (8000u32, 48000u32),
            (48000, 8000),
            (16000, 8000),
            (8000, 16000),
        ] {
            let x = sine(1000.0, 0.5, from, from as usize);
            let y = resample(&x, from, to).unwrap();
            // Ignore the filter's edges.
            let mid = &y[to as usize / 10..to as usize * 9 / 10];
            let f = dominant_frequency(mid, to);
            assert!((f - 1000.0).abs() < 1.0, "{from}->{to}: {f}");
            let gain_db = 20.0 * (rms(mid) / rms(&x)).log10();
            assert!(gain_db.abs() < 0.2, "{from}->{to}: gain {gain_db} dB");
            assert!(detect_tone(mid, to, 1000.0) > 0.95);
        }
    }

    #[test]
    fn downsampling_removes_content_above_nyquist() {
        // 6 kHz at 48 kHz would alias to 2 kHz at 8 kHz without filtering.
        let x = sine(6000.0, 0.5, 48000, 48000);
        let y = resample(&x, 48000, 8000).unwrap();
        let mid = &y[800..7200];
        assert!(rms(mid) < 0.001 * rms(&x), "residual {}", rms(mid));
    }

    #[test]
    fn streaming_matches_one_shot() {
        let x = sine(700.0, 0.4, 8000, 4000);
        let whole = resample(&x, 8000, 48000).unwrap();
        let mut r = Resampler::new(8000, 48000).unwrap();
        let mut parts = Vec::new();
        for chunk in x.chunks(160) {
            parts.extend(r.process(chunk));
        }
        parts.extend(r.flush());
        assert_eq!(parts, whole);
    }
}
