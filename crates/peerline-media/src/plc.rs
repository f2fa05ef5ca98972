//! Simple packet loss concealment for PCM codecs (G.711): repeat the last good frame
//! with a fade, never plain silence. The first concealed frame is a full-level repeat
//! that fades towards the end; each further consecutive loss continues the fade, and
//! after `fade_frames` losses the output is silent.

/// Repeat-and-fade concealer.
#[derive(Debug, Clone, Default)]
pub struct RepeatPlc {
    last: Vec<i16>,
    consecutive: u32,
    fade_frames: u32,
}

impl RepeatPlc {
    /// `fade_frames`: consecutive lost frames over which the repeat fades out (3 → 60 ms
    /// at 20 ms frames).
    pub fn new(fade_frames: u32) -> Self {
        Self {
            last: Vec::new(),
            consecutive: 0,
            fade_frames: fade_frames.max(1),
        }
    }

    /// Records a correctly decoded frame. When it follows concealed frames, its start
    /// is cross-faded from the concealment to avoid a click.
    pub fn good_frame(&mut self, pcm: &mut [i16]) {
        if self.consecutive > 0 && !self.last.is_empty() {
            let n = pcm.len().min(self.last.len()).min(32);
            let gain = self.gain_at(self.consecutive, 0.0);
            for (i, s) in pcm.iter_mut().take(n).enumerate() {
                let w = (i + 1) as f32 / (n + 1) as f32;
                let prev = f32::from(self.last[i]) * gain;
                *s = (prev * (1.0 - w) + f32::from(*s) * w) as i16;
            }
        }
        self.last.clear();
        self.last.extend_from_slice(pcm);
        self.consecutive = 0;
    }

    fn gain_at(&self, lost_index: u32, frac: f32) -> f32 {
        // lost_index: 0-based index of the concealed frame; linear fade across frames.
        let pos = (lost_index as f32 + frac) / self.fade_frames as f32;
        (1.0 - pos).clamp(0.0, 1.0)
    }

    /// Fills `out` with a concealment frame of `out.len()` samples.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.last.is_empty() {
            out.fill(0);
            self.consecutive = self.consecutive.saturating_add(1);
            return;
        }
        let n = out.len();
        for (i, s) in out.iter_mut().enumerate() {
            let src = self.last[i % self.last.len()];
            let g = self.gain_at(self.consecutive, i as f32 / n.max(1) as f32);
            *s = (f32::from(src) * g) as i16;
        }
        self.consecutive = self.consecutive.saturating_add(1);
    }

    /// Consecutive frames concealed so far.
    pub fn consecutive_losses(&self) -> u32 {
        self.consecutive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_then_fades_to_silence() {
        let mut plc = RepeatPlc::new(3);
        let mut good = vec![1000i16; 160];
        plc.good_frame(&mut good);
        let mut out = vec![0i16; 160];
        plc.conceal(&mut out);
        // Not silence: starts at full level of the last frame and decreases.
        assert_eq!(out[0], 1000);
        assert!(out[159] < 1000 && out[159] > 600);
        assert!(out.windows(2).all(|w| w[1] <= w[0]));
        plc.conceal(&mut out);
        assert!(out[0] < 700 && out[0] > 0);
        plc.conceal(&mut out);
        plc.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0), "silent after fade_frames");
        assert_eq!(plc.consecutive_losses(), 4);
        // Recovery resets the fade.
        let mut good = vec![-500i16; 160];
        plc.good_frame(&mut good);
        assert_eq!(good[100], -500);
        assert!(
            good[0] > -500 && good[0] < 0,
            "start cross-faded from the faded repeat"
        );
        plc.conceal(&mut out);
        assert_eq!(out[0], good[0]);
        assert_eq!(out[100], (-500.0 * (1.0 - 100.0 / 160.0 / 3.0)) as i16);
    }

    #[test]
    fn without_history_conceals_with_silence() {
        let mut plc = RepeatPlc::new(3);
        let mut out = vec![7i16; 80];
        plc.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }
}
