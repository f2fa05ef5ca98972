//! Call quality estimate: the ITU-T G.107 E-model in the simplified form VoIP monitors
//! use (RTCP XR VoIP metrics, RFC 3611 §4.7.5; Cole & Rosenbluth 2001).
//!
//! R = R0 − Is − Id − Ie,eff + A with the G.107 default values for everything not
//! measured on the network (R0 − Is = 93.2 for the default room noise, loudness
//! ratings and sidetone; A = 0), so an ideal narrowband call scores R = 93.2, MOS 4.41.
//!
//! * Delay: Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3), d = one-way mouth-to-ear
//!   delay in ms (network + jitter buffer + packetization + codec), H the step function
//!   (Cole & Rosenbluth's fit of G.107's Idd/Idte with default echo values).
//! * Equipment and loss: Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)
//!   (G.107 §7.4), Ppl = packet loss in percent, BurstR = burst ratio (1 = random
//!   loss, > 1 bursty), Ie and Bpl per codec from G.113 Appendix I where it has them.
//! * R → MOS (G.107 Annex B): 1 for R < 0, 4.5 for R > 100, else
//!   1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶.
//!
//! This is the narrowband E-model (its top is 4.41): wideband codecs (G.722, Opus) are
//! not rated higher than G.711 here, only by how they resist loss.

use crate::codec::Codec;

/// Default R0 − Is of G.107 with all its default parameters.
pub const R_DEFAULT: f32 = 93.2;

/// Codec-specific E-model parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor Ie (0 = no coding distortion).
    pub ie: f32,
    /// Packet-loss robustness factor Bpl (higher = degrades more slowly with loss).
    pub bpl: f32,
}

/// E-model parameters for `codec` as this crate's decoders behave.
///
/// * G.711 (PCMU/PCMA): Ie = 0; G.113 Appendix I gives Bpl = 4.3 without and 25.1
///   with packet loss concealment (G.711 Appendix I PLC). Our decoder conceals every
///   lost frame (repeat and fade, [`crate::RepeatPlc`]), so Bpl = 25.1.
/// * G.722 64 kbit/s: Ie = 0 on the narrowband scale (G.113 rates it Ie,wb = 13 on the
///   wideband scale whose top is R = 129, i.e. well above any narrowband codec, which
///   the narrowband model caps at G.711's Ie = 0). It is concealed by the same repeat
///   and fade PLC as G.711, so it gets G.711-with-PLC's Bpl = 25.1.
/// * Opus (our default 32 kbit/s, VoIP mode, in-band FEC on): not in G.113. Ie = 0 for
///   the same reason as G.722 (at ≥ 20 kbit/s it is rated at least as good as G.711 in
///   listening tests). Bpl = 30: its decoder PLC is better than G.711's repeat-fade, and
///   in-band FEC restores most isolated single losses (our FEC simulation test), so it
///   must degrade more slowly than G.711 + PLC (25.1); we do not go further than 30
///   because FEC does not help bursts, which BurstR accounts for separately. This is an
///   engineering estimate, to be replaced by a G.113 value when one exists.
pub fn impairment(codec: Codec) -> CodecImpairment {
    match codec {
        Codec::Pcmu | Codec::Pcma | Codec::G722 => CodecImpairment { ie: 0.0, bpl: 25.1 },
        Codec::Opus => CodecImpairment { ie: 0.0, bpl: 30.0 },
    }
}

/// Delay impairment Id for a one-way mouth-to-ear delay in ms.
pub fn delay_impairment(one_way_delay_ms: f32) -> f32 {
    let d = finite_non_negative(one_way_delay_ms);
    let mut id = 0.024 * d;
    if d > 177.3 {
        id += 0.11 * (d - 177.3);
    }
    id
}

/// Effective equipment impairment Ie,eff for `loss_percent` (0..100) and
/// `burst_ratio` (≥ 1; values below 1 are treated as 1).
pub fn effective_ie(imp: CodecImpairment, loss_percent: f32, burst_ratio: f32) -> f32 {
    let ppl = finite_non_negative(loss_percent).min(100.0);
    let burst = if burst_ratio.is_finite() {
        burst_ratio.max(1.0)
    } else {
        1.0
    };
    let denom = ppl / burst + imp.bpl;
    if denom <= 0.0 {
        return imp.ie;
    }
    imp.ie + (95.0 - imp.ie) * ppl / denom
}

/// The transmission rating R for a call with `codec`.
pub fn r_factor(codec: Codec, one_way_delay_ms: f32, loss_percent: f32, burst_ratio: f32) -> f32 {
    R_DEFAULT
        - delay_impairment(one_way_delay_ms)
        - effective_ie(impairment(codec), loss_percent, burst_ratio)
}

/// R → estimated MOS (conversational, 1.0..=4.5), G.107 Annex B.
pub fn r_to_mos(r: f32) -> f32 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        // The cubic dips slightly below 1 for R < 6.5: clamp (G.107 B.4 notes MOS 1
        // is the floor).
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6).max(1.0)
    }
}

/// Estimated MOS for a call: `one_way_delay_ms` mouth-to-ear (e.g. RTT/2 + jitter
/// buffer playout delay + frame length), `loss_percent` of packets lost or discarded
/// late, `burst_ratio` 1 for random loss. Garbage inputs (NaN, negative) are clamped.
pub fn mos(codec: Codec, one_way_delay_ms: f32, loss_percent: f32, burst_ratio: f32) -> f32 {
    r_to_mos(r_factor(codec, one_way_delay_ms, loss_percent, burst_ratio))
}

fn finite_non_negative(v: f32) -> f32 {
    if v.is_finite() {
        v.max(0.0)
    } else if v == f32::INFINITY {
        f32::MAX
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn r_to_mos_known_points() {
        // G.107 Annex B / Figure B.1 reference points.
        assert!(close(r_to_mos(93.2), 4.41, 0.005), "{}", r_to_mos(93.2));
        assert!(close(r_to_mos(90.0), 4.34, 0.005), "{}", r_to_mos(90.0));
        assert!(close(r_to_mos(80.0), 4.02, 0.005), "{}", r_to_mos(80.0));
        assert!(close(r_to_mos(70.0), 3.60, 0.005), "{}", r_to_mos(70.0));
        assert!(close(r_to_mos(60.0), 3.10, 0.005), "{}", r_to_mos(60.0));
        assert!(close(r_to_mos(50.0), 2.58, 0.005), "{}", r_to_mos(50.0));
        assert_eq!(r_to_mos(-5.0), 1.0);
        assert_eq!(r_to_mos(f32::NAN), 1.0);
        assert_eq!(r_to_mos(120.0), 4.5);
        // Never below 1, monotonic over the useful range.
        assert_eq!(r_to_mos(5.0), 1.0);
        let mut prev = 0.0;
        for r in 7..=100 {
            let m = r_to_mos(r as f32);
            assert!(m >= prev, "R {r}");
            prev = m;
        }
    }

    #[test]
    fn ideal_call_and_delay() {
        for c in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            assert!(close(mos(c, 0.0, 0.0, 1.0), 4.41, 0.005));
        }
        // 150 ms one way: Id = 3.6 → R = 89.6.
        assert!(close(r_factor(Codec::Pcmu, 150.0, 0.0, 1.0), 89.6, 0.01));
        // 300 ms: Id = 7.2 + 0.11·122.7 = 20.697 → R = 72.5, MOS ≈ 3.71.
        assert!(close(r_factor(Codec::Pcmu, 300.0, 0.0, 1.0), 72.503, 0.01));
        assert!(close(mos(Codec::Pcmu, 300.0, 0.0, 1.0), 3.71, 0.01));
    }

    #[test]
    fn loss_with_and_without_concealment() {
        // G.711 with PLC, 1 % random loss: Ie,eff = 95·1/(1 + 25.1) = 3.64.
        let imp = impairment(Codec::Pcmu);
        assert!(close(effective_ie(imp, 1.0, 1.0), 3.640, 0.001));
        // Without PLC (Bpl 4.3), 5 % random: 95·5/9.3 = 51.07.
        let no_plc = CodecImpairment { ie: 0.0, bpl: 4.3 };
        assert!(close(effective_ie(no_plc, 5.0, 1.0), 51.075, 0.01));
        // Bursty loss hurts more than random loss at the same rate.
        assert!(mos(Codec::Pcmu, 50.0, 5.0, 2.0) < mos(Codec::Pcmu, 50.0, 5.0, 1.0));
        // Opus (FEC) degrades more slowly than G.711 with PLC.
        assert!(mos(Codec::Opus, 50.0, 5.0, 1.0) > mos(Codec::Pcmu, 50.0, 5.0, 1.0));
        // A typical good call (40 ms, 0.5 %) is "toll quality" (> 4.0), 10 % is not.
        assert!(mos(Codec::Pcmu, 40.0, 0.5, 1.0) > 4.2);
        assert!(mos(Codec::Pcmu, 40.0, 10.0, 1.0) < 3.6);
        // Garbage in, a valid MOS out.
        for (d, l, b) in [
            (f32::NAN, f32::NAN, f32::NAN),
            (-1.0, -5.0, 0.0),
            (f32::INFINITY, 1000.0, f32::INFINITY),
        ] {
            let m = mos(Codec::Opus, d, l, b);
            assert!((1.0..=4.5).contains(&m), "{m}");
        }
    }
}
