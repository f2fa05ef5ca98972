//! Audio codecs behind one interface: G.711 µ-law/A-law (8 kHz), G.722 (16 kHz PCM,
//! 8 kHz RTP clock) and Opus (48 kHz mono, in-band FEC). [`AudioDecoder::play`] turns jitter-buffer output into PCM, with
//! concealment for missing frames (repeat-and-fade for G.711, Opus PLC or FEC).

use crate::g711;
use crate::g722::{G722Decoder, G722Encoder};
use crate::jitter::Playout;
use crate::plc::RepeatPlc;

/// Codec errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(String),
    #[error("frame of {got} samples, codec expects a multiple of 2.5 ms ({rate} Hz)")]
    BadFrameSize { got: usize, rate: u32 },
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// A negotiated audio codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
    /// G.722 64 kbit/s: 16 kHz PCM, but an 8000 Hz RTP clock (RFC 3551).
    G722,
}

impl Codec {
    /// From an SDP `a=rtpmap` encoding name and clock rate (case-insensitive).
    pub fn from_rtpmap(encoding: &str, clock_rate: u32) -> Option<Self> {
        match (encoding.to_ascii_uppercase().as_str(), clock_rate) {
            ("PCMU", 8000) => Some(Self::Pcmu),
            ("PCMA", 8000) => Some(Self::Pcma),
            ("OPUS", 48000) => Some(Self::Opus),
            ("G722", 8000) => Some(Self::G722),
            _ => None,
        }
    }
    /// Static payload type (RFC 3551), if any; Opus is dynamic.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Self::Pcmu => Some(0),
            Self::Pcma => Some(8),
            Self::G722 => Some(9),
            Self::Opus => None,
        }
    }
    /// RTP clock rate: the unit of RTP timestamps, of the jitter buffer
    /// ([`crate::JitterConfig::new`]), of [`crate::RtpSender`] and of RFC 4733 DTMF
    /// durations. Equal to [`Codec::pcm_rate`] except for G.722 (8000 vs 16000).
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8000,
            Self::Opus => 48000,
        }
    }
    /// Sample rate of the PCM that [`AudioEncoder::encode`] takes and
    /// [`AudioDecoder`] returns: what WAV files, tone generators and devices are
    /// resampled to.
    pub fn pcm_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::G722 => 16000,
            Self::Opus => 48000,
        }
    }
    /// RTP timestamp increment for one frame of `ptime_ms` (the `samples` argument of
    /// [`crate::RtpSender::send_frame`]): 160 for 20 ms of G.711 or G.722, 960 for Opus.
    pub fn rtp_ticks_per_frame(self, ptime_ms: u32) -> u32 {
        self.clock_rate() / 1000 * ptime_ms
    }
    /// SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
            Self::G722 => "G722",
        }
    }
    /// PCM samples (at [`Codec::pcm_rate`]) in one frame of `ptime_ms`: 160 for 20 ms
    /// of G.711, 320 for G.722, 960 for Opus.
    pub fn samples_per_frame(self, ptime_ms: u32) -> usize {
        (self.pcm_rate() as usize) * ptime_ms as usize / 1000
    }
}

/// Opus encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    pub bitrate: i32,
    /// 0..=10.
    pub complexity: i32,
    pub inband_fec: bool,
    /// Expected loss in percent (drives how much FEC the encoder adds).
    pub expected_loss_percent: i32,
    pub dtx: bool,
}

impl Default for OpusSettings {
    fn default() -> Self {
        Self {
            bitrate: 32_000,
            complexity: 5,
            inband_fec: true,
            expected_loss_percent: 10,
            dtx: false,
        }
    }
}

/// Opus encoder, 48 kHz mono, VoIP application.
pub struct OpusEncoder {
    inner: opus::Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusEncoder")
    }
}

impl OpusEncoder {
    pub fn new(settings: OpusSettings) -> Result<Self, CodecError> {
        let inner = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip)
            .map_err(opus_err)?;
        let mut this = Self { inner };
        this.apply(settings)?;
        Ok(this)
    }

    /// Changes bitrate, complexity, FEC and loss expectation on the fly.
    pub fn apply(&mut self, s: OpusSettings) -> Result<(), CodecError> {
        self.inner
            .set_bitrate(opus::Bitrate::Bits(s.bitrate.clamp(6000, 510_000)))
            .map_err(opus_err)?;
        self.inner
            .set_complexity(s.complexity.clamp(0, 10))
            .map_err(opus_err)?;
        self.inner.set_inband_fec(s.inband_fec).map_err(opus_err)?;
        self.inner
            .set_packet_loss_perc(s.expected_loss_percent.clamp(0, 100))
            .map_err(opus_err)?;
        self.inner.set_dtx(s.dtx).map_err(opus_err)?;
        Ok(())
    }

    /// Encodes one frame (2.5/5/10/20/40/60 ms of 48 kHz mono PCM).
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, CodecError> {
        if ![120, 240, 480, 960, 1920, 2880].contains(&pcm.len()) {
            return Err(CodecError::BadFrameSize {
                got: pcm.len(),
                rate: 48000,
            });
        }
        self.inner.encode_vec(pcm, 1500).map_err(opus_err)
    }
}

/// Opus decoder, 48 kHz mono.
pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

const OPUS_MAX_FRAME: usize = 5760;

impl OpusDecoder {
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            inner: opus::Decoder::new(48000, opus::Channels::Mono).map_err(opus_err)?,
        })
    }

    /// Decodes one packet (possibly several frames; up to 120 ms).
    pub fn decode(&mut self, payload: &[u8]) -> Result<Vec<i16>, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::Opus("empty packet".into()));
        }
        let mut out = vec![0i16; OPUS_MAX_FRAME];
        let n = self
            .inner
            .decode(payload, &mut out, false)
            .map_err(opus_err)?;
        out.truncate(n);
        Ok(out)
    }

    /// Packet-loss concealment for `samples` samples (decoder PLC).
    pub fn conceal(&mut self, samples: usize) -> Result<Vec<i16>, CodecError> {
        let mut out = vec![0i16; samples.min(OPUS_MAX_FRAME)];
        let n = self.inner.decode(&[], &mut out, false).map_err(opus_err)?;
        out.truncate(n);
        Ok(out)
    }

    /// Recovers the lost frame *before* `next_payload` from its in-band FEC data.
    pub fn recover_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
    ) -> Result<Vec<i16>, CodecError> {
        let mut out = vec![0i16; samples.min(OPUS_MAX_FRAME)];
        let n = self
            .inner
            .decode(next_payload, &mut out, true)
            .map_err(opus_err)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Encoder for any [`Codec`].
#[derive(Debug)]
pub struct AudioEncoder {
    codec: Codec,
    opus: Option<OpusEncoder>,
    g722: G722Encoder,
}

impl AudioEncoder {
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        let opus = match codec {
            Codec::Opus => Some(OpusEncoder::new(OpusSettings::default())?),
            _ => None,
        };
        Ok(Self {
            codec,
            opus,
            g722: G722Encoder::new(),
        })
    }
    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// The Opus encoder, to change its settings.
    pub fn opus_mut(&mut self) -> Option<&mut OpusEncoder> {
        self.opus.as_mut()
    }
    /// Encodes one frame of PCM at the codec's [`Codec::pcm_rate`].
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(pcm.len());
        match (self.codec, self.opus.as_mut()) {
            (Codec::Pcmu, _) => g711::encode_ulaw(pcm, &mut out),
            (Codec::Pcma, _) => g711::encode_alaw(pcm, &mut out),
            (Codec::G722, _) => self.g722.encode(pcm, &mut out),
            (Codec::Opus, Some(enc)) => return enc.encode(pcm),
            (Codec::Opus, None) => return Err(CodecError::Opus("no encoder".into())),
        }
        Ok(out)
    }
}

/// Decoder for any [`Codec`], with concealment.
#[derive(Debug)]
pub struct AudioDecoder {
    codec: Codec,
    frame_samples: usize,
    plc: RepeatPlc,
    opus: Option<OpusDecoder>,
    g722: G722Decoder,
    decode_errors: u64,
    concealed: u64,
}

impl AudioDecoder {
    /// `ptime_ms`: frame duration used for concealment and silence (usually 20).
    pub fn new(codec: Codec, ptime_ms: u32) -> Result<Self, CodecError> {
        let opus = match codec {
            Codec::Opus => Some(OpusDecoder::new()?),
            _ => None,
        };
        Ok(Self {
            codec,
            frame_samples: codec.samples_per_frame(ptime_ms.max(1)),
            plc: RepeatPlc::new(3),
            opus,
            g722: G722Decoder::new(),
            decode_errors: 0,
            concealed: 0,
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// Payloads that failed to decode (they are concealed instead).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }
    /// Frames produced by concealment.
    pub fn concealed(&self) -> u64 {
        self.concealed
    }

    /// Decodes one payload. Undecodable payloads are concealed and counted.
    pub fn decode(&mut self, payload: &[u8]) -> Vec<i16> {
        let mut out = Vec::with_capacity(self.frame_samples);
        match (self.codec, self.opus.as_mut()) {
            (Codec::Pcmu, _) => g711::decode_ulaw(payload, &mut out),
            (Codec::Pcma, _) => g711::decode_alaw(payload, &mut out),
            (Codec::G722, _) => self.g722.decode(payload, &mut out),
            (Codec::Opus, Some(dec)) => match dec.decode(payload) {
                Ok(pcm) => out = pcm,
                Err(_) => {
                    self.decode_errors += 1;
                    return self.conceal(None);
                }
            },
            (Codec::Opus, None) => {
                self.decode_errors += 1;
            }
        }
        if out.is_empty() {
            return self.conceal(None);
        }
        self.plc.good_frame(&mut out);
        out
    }

    /// Produces one concealment frame. For Opus, `next_payload` (the packet after the
    /// lost one, if already buffered) is used for FEC recovery.
    pub fn conceal(&mut self, next_payload: Option<&[u8]>) -> Vec<i16> {
        self.concealed += 1;
        let n = self.frame_samples;
        if let Some(dec) = self.opus.as_mut() {
            let r = match next_payload {
                Some(p) if !p.is_empty() => dec.recover_fec(p, n),
                _ => dec.conceal(n),
            };
            if let Ok(pcm) = r {
                if !pcm.is_empty() {
                    return pcm;
                }
            }
            return vec![0; n];
        }
        let mut out = vec![0i16; n];
        self.plc.conceal(&mut out);
        out
    }

    /// PCM for one jitter-buffer result: decoded frame, concealment, or silence while
    /// buffering.
    pub fn play(&mut self, playout: &Playout) -> Vec<i16> {
        match playout {
            Playout::Frame(f) => self.decode(&f.payload),
            Playout::Missing { .. } => self.conceal(None),
            Playout::Buffering => vec![0; self.frame_samples],
        }
    }

    /// Like [`AudioDecoder::play`], but a missing frame is concealed with the help of
    /// `next_payload`, the buffered packet that follows it (Opus in-band FEC); get it
    /// from [`crate::RtpReceiver::peek_next`] or [`crate::JitterBuffer::peek_next`].
    pub fn play_with_next(&mut self, playout: &Playout, next_payload: Option<&[u8]>) -> Vec<i16> {
        match playout {
            Playout::Missing { .. } => self.conceal(next_payload),
            other => self.play(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{detect_tone, dominant_frequency, sine};

    #[test]
    fn rtpmap_names() {
        assert_eq!(Codec::from_rtpmap("pcmu", 8000), Some(Codec::Pcmu));
        assert_eq!(Codec::from_rtpmap("PCMA", 8000), Some(Codec::Pcma));
        assert_eq!(Codec::from_rtpmap("opus", 48000), Some(Codec::Opus));
        assert_eq!(Codec::from_rtpmap("opus", 8000), None);
        assert_eq!(Codec::Pcmu.static_payload_type(), Some(0));
        assert_eq!(Codec::Opus.samples_per_frame(20), 960);
        assert_eq!(Codec::Pcma.samples_per_frame(20), 160);
        assert_eq!(Codec::from_rtpmap("g722", 8000), Some(Codec::G722));
        assert_eq!(Codec::from_rtpmap("G722", 16000), None);
        assert_eq!(Codec::G722.static_payload_type(), Some(9));
        assert_eq!(Codec::G722.clock_rate(), 8000);
        assert_eq!(Codec::G722.pcm_rate(), 16000);
        assert_eq!(Codec::G722.samples_per_frame(20), 320);
        assert_eq!(Codec::G722.rtp_ticks_per_frame(20), 160);
        assert_eq!(Codec::Opus.rtp_ticks_per_frame(20), 960);
        assert_eq!(Codec::Pcmu.rtp_ticks_per_frame(30), 240);
    }

    #[test]
    fn g722_codec_round_trip_and_concealment() {
        let mut enc = AudioEncoder::new(Codec::G722).unwrap();
        let mut dec = AudioDecoder::new(Codec::G722, 20).unwrap();
        let pcm = sine(1000.0, 0.5, 16000, 16000);
        let mut out = Vec::new();
        for (i, frame) in pcm.chunks(320).enumerate() {
            let payload = enc.encode(frame).unwrap();
            assert_eq!(payload.len(), 160);
            if i == 30 {
                // Lost: concealed by repeat-and-fade, 320 samples, not silence.
                let c = dec.play(&Playout::Missing { timestamp: 0 });
                assert_eq!(c.len(), 320);
                assert!(crate::tone::rms(&c) > 3000.0);
                out.extend(c);
            } else {
                out.extend(dec.decode(&payload));
            }
        }
        assert_eq!(out.len(), 16000);
        assert!((dominant_frequency(&out[1600..], 16000) - 1000.0).abs() < 2.0);
        assert!(detect_tone(&out[1600..], 16000, 1000.0) > 0.9);
        assert_eq!(dec.play(&Playout::Buffering).len(), 320);
        assert_eq!(dec.concealed(), 1);
    }

    #[test]
    fn g711_codec_round_trip() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = AudioEncoder::new(codec).unwrap();
            let mut dec = AudioDecoder::new(codec, 20).unwrap();
            let pcm = sine(1000.0, 0.5, 8000, 160);
            let payload = enc.encode(&pcm).unwrap();
            assert_eq!(payload.len(), 160);
            let out = dec.decode(&payload);
            assert_eq!(out.len(), 160);
            let max_err = pcm
                .iter()
                .zip(&out)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap();
            assert!(max_err < 1100, "{codec:?} err {max_err}");
            // Concealment is not silence.
            let c = dec.conceal(None);
            assert_eq!(c.len(), 160);
            assert!(crate::tone::rms(&c) > 1000.0);
        }
    }

    #[test]
    fn opus_round_trip_keeps_the_tone() {
        let mut enc = AudioEncoder::new(Codec::Opus).unwrap();
        let mut dec = AudioDecoder::new(Codec::Opus, 20).unwrap();
        let pcm = sine(440.0, 0.5, 48000, 48000);
        let mut out = Vec::new();
        for frame in pcm.chunks(960) {
            let p = enc.encode(frame).unwrap();
            assert!(!p.is_empty() && p.len() < 400);
            out.extend(dec.decode(&p));
        }
        assert_eq!(out.len(), 48000);
        // Skip codec warm-up.
        let tail = &out[9600..];
        assert!((dominant_frequency(tail, 48000) - 440.0).abs() < 2.0);
        assert!(detect_tone(tail, 48000, 440.0) > 0.8);
        assert!(enc.encode(&pcm[..100]).is_err());
    }

    #[test]
    fn opus_plc_fec_and_garbage() {
        let mut enc = OpusEncoder::new(OpusSettings {
            expected_loss_percent: 30,
            bitrate: 24_000,
            ..OpusSettings::default()
        })
        .unwrap();
        let mut dec = AudioDecoder::new(Codec::Opus, 20).unwrap();
        let pcm = sine(600.0, 0.5, 48000, 960 * 30);
        let packets: Vec<Vec<u8>> = pcm.chunks(960).map(|f| enc.encode(f).unwrap()).collect();
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if i == 15 {
                // Lost: recover from the next packet's FEC.
                out.extend(dec.conceal(Some(&packets[16])));
            } else if i == 20 {
                out.extend(dec.conceal(None));
            } else {
                out.extend(dec.decode(p));
            }
        }
        assert_eq!(out.len(), 960 * 30);
        let recovered = &out[960 * 15..960 * 16];
        assert!(
            crate::tone::rms(recovered) > 3000.0,
            "FEC/PLC frame is not silence"
        );
        assert!(detect_tone(&out[960 * 10..], 48000, 600.0) > 0.7);
        // Garbage payloads are concealed, not a panic.
        let g = dec.decode(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(!g.is_empty());
        let _ = dec.decode(&[]);
        assert!(dec.decode_errors() >= 1);
    }
}
