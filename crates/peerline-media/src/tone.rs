//! Tone generation and analysis: sine generator, Goertzel tone detector, dominant
//! frequency estimator, RMS / silence checks. Used to prove audio flowed end to end
//! (one side sends 440 Hz, the other 1000 Hz, each checks what it recorded).

use std::f64::consts::PI;

/// Continuous-phase sine generator producing i16 PCM.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    frequency: f64,
    amplitude: f64,
    sample_rate: u32,
    phase: f64,
}

impl ToneGenerator {
    /// `amplitude` is relative to full scale (0.0..=1.0; values above are clipped).
    pub fn new(frequency: f32, amplitude: f32, sample_rate: u32) -> Self {
        Self {
            frequency: f64::from(frequency),
            amplitude: f64::from(amplitude).clamp(0.0, 1.0),
            sample_rate: sample_rate.max(1),
            phase: 0.0,
        }
    }

    /// Fills `out` with the next samples; phase continues across calls.
    pub fn fill(&mut self, out: &mut [i16]) {
        let step = 2.0 * PI * self.frequency / f64::from(self.sample_rate);
        for s in out.iter_mut() {
            *s = (self.phase.sin() * self.amplitude * 32767.0).round() as i16;
            self.phase += step;
            if self.phase > 2.0 * PI {
                self.phase -= 2.0 * PI;
            }
        }
    }

    /// Returns the next `n` samples.
    pub fn samples(&mut self, n: usize) -> Vec<i16> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// `n` samples of a sine tone.
pub fn sine(frequency: f32, amplitude: f32, sample_rate: u32, n: usize) -> Vec<i16> {
    ToneGenerator::new(frequency, amplitude, sample_rate).samples(n)
}

/// Squared magnitude of the DTFT of `samples` at `freq` (Goertzel), optionally
/// Hann-windowed.
fn goertzel(samples: &[i16], rate: u32, freq: f64, hann: bool) -> f64 {
    let n = samples.len();
    if n == 0 || rate == 0 {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let denom = (n.max(2) - 1) as f64;
    for (i, &x) in samples.iter().enumerate() {
        let mut v = f64::from(x);
        if hann {
            v *= 0.5 - 0.5 * (2.0 * PI * i as f64 / denom).cos();
        }
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

fn energy(samples: &[i16]) -> f64 {
    samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// Fraction of the signal's power that lies at `freq` (within the Goertzel bin
/// `rate / len` wide): about 1.0 for a pure tone at `freq`, about 0.5 for each of two
/// equal tones, near 0 for silence, noise or other frequencies.
pub fn detect_tone(samples: &[i16], rate: u32, freq: f32) -> f32 {
    let e = energy(samples);
    if e <= 0.0 {
        return 0.0;
    }
    let p = goertzel(samples, rate, f64::from(freq), false);
    (2.0 * p / (samples.len() as f64 * e)) as f32
}

fn parabolic(ym1: f64, y0: f64, yp1: f64) -> f64 {
    let d = ym1 - 2.0 * y0 + yp1;
    if d.abs() < 1e-12 {
        0.0
    } else {
        (0.5 * (ym1 - yp1) / d).clamp(-0.5, 0.5)
    }
}

/// Frequency (Hz) of the strongest spectral component, accurate to well under 1 Hz
/// for a clean tone of 0.25 s or more at 8 kHz or 48 kHz. Returns 0.0 for empty or
/// silent input.
///
/// A Hann-windowed Goertzel scan over up to 2048 samples finds the peak bin, then a
/// fine scan over up to one second of signal around it and parabolic interpolation
/// refine it.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> f32 {
    if samples.len() < 16 || rate == 0 || rms(samples) < 1.0 {
        return 0.0;
    }
    let coarse = &samples[..samples.len().min(2048)];
    let n = coarse.len();
    let bin = f64::from(rate) / n as f64;
    let mags: Vec<f64> = (0..=n / 2)
        .map(|k| {
            goertzel(coarse, rate, k as f64 * bin, true)
                .sqrt()
                .max(1e-9)
        })
        .collect();
    let Some((k, _)) = mags
        .iter()
        .enumerate()
        .skip(1)
        .max_by(|a, b| a.1.total_cmp(b.1))
    else {
        return 0.0;
    };
    let mut estimate = k as f64 * bin;
    if k + 1 < mags.len() {
        let delta = parabolic(mags[k - 1].ln(), mags[k].ln(), mags[k + 1].ln());
        estimate += delta * bin;
    }

    // Fine scan: main lobe of a Hann window over L samples is ±2·rate/L wide.
    let fine = &samples[..samples.len().min(rate as usize)];
    if fine.len() <= n {
        return estimate.max(0.0) as f32;
    }
    let fine_bin = f64::from(rate) / fine.len() as f64;
    let span = (bin * 0.6).max(2.0 * fine_bin);
    let step = fine_bin / 4.0;
    let steps = (2.0 * span / step).ceil() as usize;
    let freqs: Vec<f64> = (0..=steps)
        .map(|i| estimate - span + i as f64 * step)
        .filter(|f| *f > 0.0)
        .collect();
    let powers: Vec<f64> = freqs
        .iter()
        .map(|&f| goertzel(fine, rate, f, true).sqrt().max(1e-9))
        .collect();
    let Some((i, _)) = powers.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) else {
        return estimate.max(0.0) as f32;
    };
    let mut f = freqs[i];
    if i > 0 && i + 1 < powers.len() {
        f += parabolic(powers[i - 1].ln(), powers[i].ln(), powers[i + 1].ln()) * step;
    }
    f.max(0.0) as f32
}

/// Root mean square of the samples (0.0 for empty input).
pub fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (energy(samples) / samples.len() as f64).sqrt() as f32
}

/// RMS level relative to full scale (a full-scale sine is about -3 dBFS); -inf dB for
/// digital silence.
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    20.0 * (rms(samples) / 32768.0).log10()
}

/// True when the RMS level is below `threshold_dbfs` (e.g. -50.0).
pub fn is_silence(samples: &[i16], threshold_dbfs: f32) -> bool {
    rms_dbfs(samples) < threshold_dbfs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64, amp: f64) -> Vec<i16> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (((x % 65536) as f64 / 32768.0 - 1.0) * amp * 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn generator_is_continuous_and_scaled() {
        let mut g = ToneGenerator::new(1000.0, 0.5, 8000);
        let a = g.samples(4);
        let b = g.samples(4);
        // 1 kHz at 8 kHz: 8 samples per period, peak at sample 2.
        assert_eq!(a[0], 0);
        assert_eq!(a[2], 16384);
        assert_eq!(b[2], -16384);
        assert_eq!(a[1], (0.5f64 * 32767.0 * (PI / 4.0).sin()).round() as i16);
        let full = sine(440.0, 1.0, 48000, 48000);
        assert!((rms(&full) - 32767.0 / 2f32.sqrt()).abs() < 20.0);
        assert!((rms_dbfs(&full) + 3.01).abs() < 0.05);
    }

    #[test]
    fn detects_generated_tones() {
        for rate in [8000u32, 16000, 48000] {
            let x = sine(440.0, 0.3, rate, rate as usize / 2);
            assert!(detect_tone(&x, rate, 440.0) > 0.95, "rate {rate}");
            assert!(detect_tone(&x, rate, 1000.0) < 0.01, "rate {rate}");
            assert!(detect_tone(&x, rate, 460.0) < 0.05, "rate {rate}");
        }
        let mut mix = sine(440.0, 0.3, 8000, 4000);
        for (m, t) in mix.iter_mut().zip(sine(1000.0, 0.3, 8000, 4000)) {
            *m += t;
        }
        let a = detect_tone(&mix, 8000, 440.0);
        let b = detect_tone(&mix, 8000, 1000.0);
        assert!((a - 0.5).abs() < 0.05 && (b - 0.5).abs() < 0.05, "{a} {b}");
    }

    #[test]
    fn rejects_noise_and_silence() {
        let n = noise(8000, 99, 0.5);
        assert!(detect_tone(&n, 8000, 440.0) < 0.01);
        assert!(detect_tone(&n, 8000, 1000.0) < 0.01);
        let silence = vec![0i16; 8000];
        assert_eq!(detect_tone(&silence, 8000, 440.0), 0.0);
        assert_eq!(dominant_frequency(&silence, 8000), 0.0);
        assert!(is_silence(&silence, -50.0));
        assert!(is_silence(&noise(8000, 3, 0.001), -50.0));
        assert!(!is_silence(&sine(440.0, 0.1, 8000, 800), -50.0));
        assert_eq!(rms(&[]), 0.0);
    }

    #[test]
    fn dominant_frequency_is_accurate() {
        for rate in [8000u32, 48000] {
            for f in [300.0f32, 440.0, 1000.0, 1633.0, 3000.0] {
                let x = sine(f, 0.5, rate, rate as usize);
                let got = dominant_frequency(&x, rate);
                assert!((got - f).abs() < 0.5, "rate {rate} f {f} got {got}");
                // Short (100 ms) capture: still within a few Hz.
                let x = sine(f, 0.5, rate, rate as usize / 10);
                let got = dominant_frequency(&x, rate);
                assert!((got - f).abs() < 3.0, "short: rate {rate} f {f} got {got}");
            }
        }
    }

    #[test]
    fn dominant_frequency_with_noise_and_g711() {
        let mut x = sine(1000.0, 0.3, 8000, 8000);
        for (s, n) in x.iter_mut().zip(noise(8000, 5, 0.1)) {
            *s = s.saturating_add(n);
        }
        // Through a µ-law channel too.
        let mut enc = Vec::new();
        crate::g711::encode_ulaw(&x, &mut enc);
        let mut dec = Vec::new();
        crate::g711::decode_ulaw(&enc, &mut dec);
        let got = dominant_frequency(&dec, 8000);
        assert!((got - 1000.0).abs() < 1.0, "got {got}");
        assert!(detect_tone(&dec, 8000, 1000.0) > 0.8);
        // The louder of two tones wins.
        let mut two = sine(440.0, 0.4, 48000, 24000);
        for (s, t) in two.iter_mut().zip(sine(1200.0, 0.1, 48000, 24000)) {
            *s += t;
        }
        assert!((dominant_frequency(&two, 48000) - 440.0).abs() < 1.0);
    }
}

/// Seconds of `samples` in which `freq` carries most of the power: the signal is cut into
/// 100 ms blocks and a block counts when [`detect_tone`] gives more than `threshold`
/// (0.5 is a good default: a clean tone gives about 1.0, two equal tones 0.5 each).
pub fn tone_seconds(samples: &[i16], rate: u32, freq: f32, threshold: f32) -> f32 {
    let block = (rate / 10).max(1) as usize;
    let hits = samples
        .chunks_exact(block)
        .filter(|b| detect_tone(b, rate, freq) > threshold)
        .count();
    hits as f32 / 10.0
}

#[cfg(test)]
mod tone_seconds_tests {
    use super::*;

    #[test]
    fn counts_only_the_blocks_holding_the_tone() {
        let mut s = sine(440.0, 0.5, 8000, 8000 * 2); // 2 s of 440 Hz
        s.extend(std::iter::repeat_n(0, 8000)); // 1 s of silence
        s.extend(sine(1000.0, 0.5, 8000, 4000)); // 0.5 s of 1 kHz
        let t440 = tone_seconds(&s, 8000, 440.0, 0.5);
        let t1000 = tone_seconds(&s, 8000, 1000.0, 0.5);
        assert!((t440 - 2.0).abs() < 0.11, "{t440}");
        assert!((t1000 - 0.5).abs() < 0.11, "{t1000}");
        assert_eq!(tone_seconds(&s[16000..24000], 8000, 440.0, 0.5), 0.0);
    }
}
