//! ITU-T G.722 wideband codec, 64 kbit/s mode (sub-band ADPCM), written from the
//! algorithm of the Recommendation (blocks named as in G.722 §3–§4: QUANTL, INVQAL,
//! LOGSCL, SCALEL, UPPOL1/2, UPZERO, FILTEP/FILTEZ, PREDIC, and the 24-tap QMF).
//!
//! Audio is 16 kHz mono 16-bit PCM. Each pair of input samples becomes one octet:
//! 6 bits of lower sub-band ADPCM and 2 bits of upper sub-band ADPCM (`ih << 6 | il`).
//! So a 20 ms frame is 320 samples in and 160 octets out. The RTP clock rate is
//! nevertheless 8000 (RFC 3551 §4.5.2, an error kept for compatibility): RTP timestamps
//! advance by 160 per 20 ms frame.
//!
//! The integer arithmetic follows the Recommendation's fixed-point description (with
//! 15-bit input: the 16-bit PCM is shifted right by one on the way in and left by one
//! on the way out), so the codec is interoperable with other G.722 implementations.

/// QMF coefficients h0..h23 (G.722 Table 11), symmetric.
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower sub-band decision levels (Table 6, scaled): the 6-bit quantizer searches
/// these multiplied by the scale factor.
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// 6-bit codes for negative / positive differences by quantizer interval (Table 6).
const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Inverse quantizer outputs, 6-bit (used for the decoder's output), Table 6.
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Inverse quantizer outputs, 4-bit (the embedded core used by the predictor), Table 7.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Lower sub-band log scale factor multipliers (Table 8) and the 4-bit code mapping.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse log table for the scale factors (Table 10, 2048..4008).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// Upper sub-band: inverse quantizer (Table 9), log scale multipliers, code maps.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const WH: [i32; 3] = [0, -214, 798];
const RH2: [usize; 4] = [2, 1, 2, 1];
const IHN: [u8; 3] = [0, 1, 0];
const IHP: [u8; 3] = [0, 3, 2];

fn sat16(v: i32) -> i32 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

fn sat15(v: i32) -> i32 {
    v.clamp(-16384, 16383)
}

fn negative(v: i32) -> bool {
    v < 0
}

/// State of one sub-band's adaptive predictor and quantizer scale.
#[derive(Debug, Clone, Copy)]
struct Band {
    /// Signal estimate s(n) = sp + sz.
    s: i32,
    /// Zero-section estimate sz.
    sz: i32,
    /// Previous reconstructed signal r(n-1).
    r1: i32,
    /// Pole coefficients a1, a2.
    a: [i32; 2],
    /// Partial reconstructions p(n-1), p(n-2).
    p: [i32; 2],
    /// Zero coefficients b1..b6.
    b: [i32; 6],
    /// Quantized differences d(n)..d(n-6).
    d: [i32; 7],
    /// Log scale factor nabla.
    nb: i32,
    /// Scale factor (delta).
    det: i32,
}

impl Band {
    fn new(det: i32) -> Self {
        Self {
            s: 0,
            sz: 0,
            r1: 0,
            a: [0; 2],
            p: [0; 2],
            b: [0; 6],
            d: [0; 7],
            nb: 0,
            det,
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: adapt the log scale factor by `w` with
    /// leakage 127/128, clamp it to `max_nb`, and convert to the linear scale factor.
    fn adapt_scale(&mut self, w: i32, max_nb: i32, shift_base: i32) {
        self.nb = ((self.nb * 127) >> 7) + w;
        self.nb = self.nb.clamp(0, max_nb);
        let mantissa = ILB[((self.nb >> 6) & 31) as usize];
        let shift = shift_base - (self.nb >> 11);
        let v = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.det = v << 2;
    }

    /// Predictor update with the quantized difference `dx` (RECONS, PARREC, UPPOL2,
    /// UPPOL1, FILTEP, UPZERO, FILTEZ, PREDIC).
    fn update(&mut self, dx: i32) {
        let r = sat16(self.s + dx);
        let p = sat16(self.sz + dx);

        // UPPOL2: second pole coefficient.
        let wd1 = sat16(self.a[0] << 2);
        let wd2 = if negative(p) != negative(self.p[0]) {
            wd1
        } else {
            -wd1
        }
        .min(32767);
        let mut a2 = if negative(p) != negative(self.p[1]) {
            -128
        } else {
            128
        } + (wd2 >> 7)
            + ((self.a[1] * 32512) >> 15);
        a2 = a2.clamp(-12288, 12288);

        // UPPOL1: first pole coefficient, limited by the stability constraint.
        let step = if negative(p) != negative(self.p[0]) {
            -192
        } else {
            192
        };
        let mut a1 = sat16(step + ((self.a[0] * 32640) >> 15));
        let limit = sat16(15360 - a2);
        a1 = a1.clamp(-limit, limit);

        // FILTEP: pole section output from r(n) and r(n-1).
        let sp = sat16(((a1 * sat16(r + r)) >> 15) + ((a2 * sat16(self.r1 + self.r1)) >> 15));
        self.r1 = r;
        self.a = [a1, a2];
        self.p = [p, self.p[0]];

        // UPZERO + FILTEZ: sign-sign update of b1..b6, then the zero section output.
        let gain = if dx == 0 { 0 } else { 128 };
        self.d[0] = dx;
        let mut sz = 0i32;
        for i in (0..6).rev() {
            let g = if negative(self.d[i + 1]) != negative(dx) {
                -gain
            } else {
                gain
            };
            self.b[i] = sat16(g + ((self.b[i] * 32640) >> 15));
            sz += (self.b[i] * sat16(self.d[i] + self.d[i])) >> 15;
            self.d[i + 1] = self.d[i];
        }
        self.sz = sat16(sz);
        // PREDIC.
        self.s = sat16(sp + self.sz);
    }
}

/// G.722 encoder (64 kbit/s), 16 kHz PCM in, one octet per two samples out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    low: Band,
    high: Band,
    /// Transmit QMF delay line, newest first.
    qmf: [i32; 24],
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    pub fn new() -> Self {
        Self {
            low: Band::new(32),
            high: Band::new(8),
            qmf: [0; 24],
        }
    }

    /// Encodes one pair of 16 kHz samples (earlier, later) into one octet.
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF: xA from the even taps (newest first), xB from the odd taps.
        self.qmf.copy_within(0..22, 2);
        self.qmf[1] = i32::from(first);
        self.qmf[0] = i32::from(second);
        let (mut xa, mut xb) = (0i32, 0i32);
        for i in 0..12 {
            xa += QMF[2 * i] * self.qmf[2 * i];
            xb += QMF[2 * i + 1] * self.qmf[2 * i + 1];
        }
        // DC gain of each filter is 4096 (2^12), one more bit for the sum of two, one
        // more for the 15-bit input of the ADPCM.
        let xl = sat16((xa + xb) >> 14);
        let xh = sat16((xa - xb) >> 14);

        // Lower sub-band: QUANTL (6 bits).
        let el = sat16(xl - self.low.s);
        let mag = if el >= 0 { el } else { -el - 1 };
        let mut interval = 30;
        for (i, q) in Q6.iter().enumerate().take(30).skip(1) {
            if mag < (q * self.low.det) >> 12 {
                interval = i;
                break;
            }
        }
        let il = if el < 0 { ILN[interval] } else { ILP[interval] };
        // INVQAL with the 4-bit core, then LOGSCL/SCALEL and the predictor.
        let il4 = usize::from(il >> 2);
        let dl = (self.low.det * QM4[il4]) >> 15;
        self.low.adapt_scale(WL[RL42[il4]], 18432, 8);
        self.low.update(dl);

        // Upper sub-band: QUANTH (2 bits).
        let eh = sat16(xh - self.high.s);
        let mag = if eh >= 0 { eh } else { -eh - 1 };
        let m = if mag >= (564 * self.high.det) >> 12 {
            2
        } else {
            1
        };
        let ih = if eh < 0 { IHN[m] } else { IHP[m] };
        let dh = (self.high.det * QM2[usize::from(ih)]) >> 15;
        self.high.adapt_scale(WH[RH2[usize::from(ih)]], 22528, 10);
        self.high.update(dh);

        (ih << 6) | il
    }

    /// Encodes 16 kHz PCM; appends `pcm.len() / 2` octets to `out` (an odd trailing
    /// sample is paired with silence).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len().div_ceil(2));
        let mut chunks = pcm.chunks_exact(2);
        for pair in &mut chunks {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        if let [last] = chunks.remainder() {
            out.push(self.encode_pair(*last, 0));
        }
    }
}

/// G.722 decoder (64 kbit/s): one octet in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive QMF delay lines (newest first) of xd = rL - rH and xs = rL + rH.
    xd: [i32; 12],
    xs: [i32; 12],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    pub fn new() -> Self {
        Self {
            low: Band::new(32),
            high: Band::new(8),
            xd: [0; 12],
            xs: [0; 12],
        }
    }

    /// Decodes one octet into two 16 kHz samples.
    pub fn decode_octet(&mut self, code: u8) -> [i16; 2] {
        let il = usize::from(code & 0x3F);
        let ih = usize::from(code >> 6);

        // Lower sub-band: the output uses the full 6-bit inverse quantizer, the
        // predictor only the 4-bit core (so it tracks the encoder exactly).
        let rl = sat15(self.low.s + ((self.low.det * QM6[il]) >> 15));
        let il4 = il >> 2;
        let dl = (self.low.det * QM4[il4]) >> 15;
        self.low.adapt_scale(WL[RL42[il4]], 18432, 8);
        self.low.update(dl);

        // Upper sub-band.
        let dh = (self.high.det * QM2[ih]) >> 15;
        let rh = sat15(dh + self.high.s);
        self.high.adapt_scale(WH[RH2[ih]], 22528, 10);
        self.high.update(dh);

        // Receive QMF.
        self.xd.copy_within(0..11, 1);
        self.xs.copy_within(0..11, 1);
        self.xd[0] = sat16(rl - rh);
        self.xs[0] = sat16(rl + rh);
        let (mut even, mut odd) = (0i32, 0i32);
        for i in 0..12 {
            even += QMF[2 * i] * self.xd[i];
            odd += QMF[2 * i + 1] * self.xs[i];
        }
        // Filter DC gain 4096, less one bit for the 15-bit ADPCM signal.
        [sat16(even >> 11) as i16, sat16(odd >> 11) as i16]
    }

    /// Decodes octets; appends two 16 kHz samples per octet to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &code in payload {
            out.extend_from_slice(&self.decode_octet(code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{dominant_frequency, sine};

    /// SNR of `out` against `reference` after compensating the codec delay (searched
    /// over 0..64 samples), in dB.
    pub(crate) fn snr_db(reference: &[i16], out: &[i16]) -> (f64, usize) {
        let mut best = (f64::MIN, 0);
        for delay in 0..64 {
            let n = reference.len().min(out.len().saturating_sub(delay));
            let (mut sig, mut err) = (0f64, 0f64);
            for i in 0..n {
                let r = f64::from(reference[i]);
                let o = f64::from(out[i + delay]);
                sig += r * r;
                err += (r - o) * (r - o);
            }
            let snr = 10.0 * (sig / err.max(1e-9)).log10();
            if snr > best.0 {
                best = (snr, delay);
            }
        }
        best
    }

    fn round_trip(pcm: &[i16]) -> (Vec<u8>, Vec<i16>) {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let mut bits = Vec::new();
        let mut out = Vec::new();
        for frame in pcm.chunks(320) {
            let start = bits.len();
            enc.encode(frame, &mut bits);
            dec.decode(&bits[start..], &mut out);
        }
        (bits, out)
    }

    #[test]
    fn tone_round_trip_snr_and_frequency() {
        for (freq, amp) in [(1000.0, 0.5), (300.0, 0.3), (3400.0, 0.3), (6000.0, 0.25)] {
            let pcm = sine(freq, amp, 16000, 16000);
            let (bits, out) = round_trip(&pcm);
            assert_eq!(bits.len(), 8000, "64 kbit/s: one octet per two samples");
            assert_eq!(out.len(), 16000);
            // Skip the first 100 ms while the scale factors adapt.
            let (snr, delay) = snr_db(&pcm[1600..15000], &out[1600..]);
            eprintln!("{freq} Hz: SNR {snr:.1} dB (delay {delay})");
            assert!(snr > 20.0, "{freq} Hz: SNR {snr:.1} dB (delay {delay})");
            let f = dominant_frequency(&out[1600..], 16000);
            assert!((f - freq).abs() < freq * 0.005, "{freq} Hz decoded as {f}");
        }
    }

    #[test]
    fn chirp_round_trip_has_the_qmf_delay() {
        // A 200..7000 Hz sweep: not periodic, so the best alignment is unambiguous.
        let n = 16000;
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / 16000.0;
                let phase = 2.0 * std::f64::consts::PI * (200.0 * t + 0.5 * 6800.0 * t * t);
                (8000.0 * phase.sin()) as i16
            })
            .collect();
        let (_, out) = round_trip(&pcm);
        let (snr, delay) = snr_db(&pcm[1600..15000], &out[1600..]);
        eprintln!("chirp: SNR {snr:.1} dB (delay {delay})");
        // The transmit and receive QMFs (24 taps each, decimation by 2) delay the
        // signal by 22 samples (1.375 ms) end to end.
        assert_eq!(delay, 22);
        assert!(snr > 15.0, "chirp SNR {snr:.1} dB");
    }

    #[test]
    fn silence_stays_quiet_and_full_scale_does_not_overflow() {
        let (_, out) = round_trip(&[0i16; 3200]);
        assert!(out.iter().all(|s| s.unsigned_abs() < 16), "idle noise");
        // Full-scale square wave: saturates, never panics or wraps.
        let square: Vec<i16> = (0..3200)
            .map(|i| if (i / 8) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let (_, out) = round_trip(&square);
        assert_eq!(out.len(), 3200);
        // Any octet sequence decodes (network input).
        let mut dec = G722Decoder::new();
        let mut out = Vec::new();
        dec.decode(
            &(0..=255u8).cycle().take(4000).collect::<Vec<_>>(),
            &mut out,
        );
        assert_eq!(out.len(), 8000);
    }

    #[test]
    fn odd_length_input_is_padded() {
        let mut enc = G722Encoder::new();
        let mut bits = Vec::new();
        enc.encode(&[1, 2, 3], &mut bits);
        assert_eq!(bits.len(), 2);
    }
}
