//! ITU-T G.711 µ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8).
//!
//! Conversions follow the classic reference implementation (Sun `g711.c`): 16-bit
//! linear PCM in, 8-bit companded code out; one byte per sample at 8 kHz.

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;
const ULAW_SEG_END: [i32; 8] = [0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF];
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, table: &[i32; 8]) -> usize {
    table.iter().position(|&end| value <= end).unwrap_or(8)
}

/// Encodes one 16-bit linear sample to a µ-law code.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let mask: i32 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 3)) & 0xF);
    (uval ^ mask) as u8
}

/// Decodes one µ-law code to a 16-bit linear sample.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (i32::from(u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    let v = if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    v as i16
}

/// Encodes one 16-bit linear sample to an A-law code.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (pcm >> 1) & 0x0F;
    } else {
        aval |= (pcm >> seg) & 0x0F;
    }
    (aval ^ mask) as u8
}

/// Decodes one A-law code to a 16-bit linear sample.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    let v = if a & 0x80 != 0 { t } else { -t };
    v as i16
}

/// Encodes PCM samples to µ-law, appending to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Decodes µ-law codes to PCM, appending to `out`.
pub fn decode_ulaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ulaw_to_linear(c)));
}

/// Encodes PCM samples to A-law, appending to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Decodes A-law codes to PCM, appending to `out`.
pub fn decode_alaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| alaw_to_linear(c)));
}

/// The code for digital silence: µ-law `0xFF`, A-law `0xD5`.
pub const ULAW_SILENCE: u8 = 0xFF;
/// The code for digital silence in A-law.
pub const ALAW_SILENCE: u8 = 0xD5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_points() {
        // Zero and the extremes of the µ-law table.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        // Segment boundaries of the first segment: step 8 in 16-bit units (2 in 14-bit).
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0xF0), 8 * 15);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        // A few mid-scale values from the G.711 table (14-bit 1000 -> code 0xCE region).
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
    }

    #[test]
    fn alaw_known_points() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
        assert_eq!(linear_to_alaw(-1), 0x55);
    }

    #[test]
    fn every_code_round_trips() {
        // decode(encode(decode(c))) == decode(c): codes are fixed points of the quantiser.
        for c in 0..=255u8 {
            let u = ulaw_to_linear(c);
            assert_eq!(ulaw_to_linear(linear_to_ulaw(u)), u, "ulaw code {c:#x}");
            let a = alaw_to_linear(c);
            assert_eq!(alaw_to_linear(linear_to_alaw(a)), a, "alaw code {c:#x}");
            assert_eq!(linear_to_alaw(a), c, "alaw code {c:#x}");
        }
    }

    #[test]
    fn round_trip_error_is_bounded() {
        // Logarithmic quantisation: relative error <= ~1/16 (half a step of 4 mantissa bits)
        // above the first segment, absolute error small near zero.
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let v = i32::from(s);
            let eu = (i32::from(ulaw_to_linear(linear_to_ulaw(s))) - v).abs();
            let ea = (i32::from(alaw_to_linear(linear_to_alaw(s))) - v).abs();
            let rel_bound = v.abs() / 16 + 8;
            assert!(eu <= rel_bound.max(16) + 8, "ulaw s={s} err={eu}");
            assert!(ea <= rel_bound.max(16) + 8, "alaw s={s} err={ea}");
        }
    }

    #[test]
    fn monotonic_decoding() {
        let mut prev = i16::MIN;
        // Positive µ-law codes run 0xFF (0) down to 0x80 (max).
        for c in (0x80..=0xFFu8).rev() {
            let v = ulaw_to_linear(c);
            assert!(v >= prev);
            prev = v;
        }
    }

    #[test]
    fn slices() {
        let pcm = [0i16, 1000, -1000, 32767];
        let mut enc = Vec::new();
        encode_ulaw(&pcm, &mut enc);
        let mut dec = Vec::new();
        decode_ulaw(&enc, &mut dec);
        assert_eq!(dec.len(), 4);
        assert_eq!(dec[0], 0);
        assert!((i32::from(dec[1]) - 1000).abs() < 40);
        let mut enc = Vec::new();
        encode_alaw(&pcm, &mut enc);
        let mut dec = Vec::new();
        decode_alaw(&enc, &mut dec);
        assert!((i32::from(dec[2]) + 1000).abs() < 40);
    }
}
