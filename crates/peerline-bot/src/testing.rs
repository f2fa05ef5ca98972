//! Test audio that scenarios and tests can use: a synthetic speech-like signal.

use std::f64::consts::PI;

/// A voiced, syllabic signal: harmonics of a gliding 100–140 Hz fundamental under a
/// 3 Hz on/off envelope. Not a tone (no single frequency holds most of the power) and its
/// level comes and goes like speech.
pub fn speech_like(rate: u32, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let f0 = 120.0 + 20.0 * (2.0 * PI * 0.7 * t).sin();
            phase += 2.0 * PI * f0 / f64::from(rate);
            let voiced: f64 = (1..=8).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            let envelope = (2.0 * PI * 3.0 * t).sin().max(0.0);
            (voiced * envelope * 0.25 * 32767.0 / 2.0) as i16
        })
        .collect()
}
