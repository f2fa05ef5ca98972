//! Where sound starts after silence, to the sample: how the latency benchmark finds a
//! tone burst's onset in a recording (docs/benchmarks.md, figure 5).

/// Sample indices at which sound starts: the first sample whose magnitude reaches
/// `level` after at least `quiet` samples all below `level / 8`. A burst that starts at
/// its peak (a cosine) is found at its first sample; the decoder's small noise in the
/// silence (G.711 rounding, packet-loss concealment fading out) stays below `level / 8`.
pub fn onsets(samples: &[i16], level: i16, quiet: usize) -> Vec<usize> {
    let level = i32::from(level.max(8));
    let floor = level / 8;
    let mut found = Vec::new();
    let mut quiet_run = 0usize;
    for (i, &s) in samples.iter().enumerate() {
        let m = i32::from(s).abs();
        if m >= level && quiet_run >= quiet {
            found.push(i);
        }
        if m < floor {
            quiet_run += 1;
        } else {
            quiet_run = 0;
        }
    }
    found
}

/// A test signal of `periods` periods, each `silence` samples of digital silence then
/// `burst` samples of a cosine at `freq` Hz and `amplitude` (0..1 of full scale), so the
/// onsets are at `silence + k × (silence + burst)`.
pub fn burst_train(
    rate: u32,
    freq: f32,
    amplitude: f32,
    silence: usize,
    burst: usize,
    periods: usize,
) -> Vec<i16> {
    let peak = f64::from(amplitude.clamp(0.0, 1.0)) * 32767.0;
    let step = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(rate.max(1));
    let mut out = Vec::with_capacity((silence + burst) * periods);
    for _ in 0..periods {
        out.extend(std::iter::repeat_n(0i16, silence));
        out.extend((0..burst).map(|n| (peak * (step * n as f64).cos()) as i16));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_burst_at_its_first_sample() {
        let train = burst_train(8000, 1000.0, 0.5, 4000, 4000, 3);
        assert_eq!(onsets(&train, 4000, 1600), vec![4000, 12000, 20000]);
    }

    #[test]
    fn a_delayed_copy_is_found_delayed() {
        let mut delayed = vec![0i16; 123];
        delayed.extend(burst_train(8000, 1000.0, 0.5, 4000, 4000, 2));
        assert_eq!(onsets(&delayed, 4000, 1600), vec![4123, 12123]);
    }

    #[test]
    fn sound_without_enough_quiet_before_it_is_not_an_onset() {
        // 100 samples of silence is less than the 1600 asked for.
        let train = burst_train(8000, 1000.0, 0.5, 100, 4000, 2);
        assert_eq!(onsets(&train, 4000, 1600), Vec::<usize>::new());
        // Low noise in the gap does not break the quiet run.
        let mut noisy = burst_train(8000, 1000.0, 0.5, 4000, 4000, 2);
        for s in noisy[..4000].iter_mut().step_by(7) {
            *s = 300;
        }
        assert_eq!(onsets(&noisy, 4000, 1600), vec![4000, 12000]);
        assert!(onsets(&[], 4000, 0).is_empty());
    }
}
