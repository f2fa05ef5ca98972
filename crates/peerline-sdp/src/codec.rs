//! Audio codecs Peerline can negotiate and how they appear in SDP.

use crate::attribute::{Fmtp, Rtpmap};
use crate::model::MediaDescription;

/// Opus `a=fmtp` parameters (RFC 7587 §6.1) that Peerline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpusParams {
    /// `useinbandfec=1`: the receiver can use in-band FEC.
    pub useinbandfec: bool,
    /// `usedtx=1`: the receiver prefers DTX.
    pub usedtx: bool,
    /// `stereo=1`: the receiver prefers stereo.
    pub stereo: bool,
    /// `maxaveragebitrate` in bit/s.
    pub maxaveragebitrate: Option<u32>,
    /// `maxplaybackrate` in Hz.
    pub maxplaybackrate: Option<u32>,
    /// `ptime` in ms.
    pub ptime: Option<u32>,
}

impl OpusParams {
    /// Read the parameters from an `a=fmtp` value; unknown or malformed parameters are
    /// ignored (RFC 7587: receivers ignore what they do not understand).
    pub fn from_fmtp(fmtp: &Fmtp) -> Self {
        let mut p = OpusParams::default();
        for (k, v) in fmtp.param_list() {
            let v = v.unwrap_or_default();
            match k.to_ascii_lowercase().as_str() {
                "useinbandfec" => p.useinbandfec = v == "1",
                "usedtx" => p.usedtx = v == "1",
                "stereo" => p.stereo = v == "1",
                "maxaveragebitrate" => p.maxaveragebitrate = v.parse().ok(),
                "maxplaybackrate" => p.maxplaybackrate = v.parse().ok(),
                "ptime" => p.ptime = v.parse().ok(),
                _ => {}
            }
        }
        p
    }

    /// The `a=fmtp` parameter string (empty when all defaults).
    pub fn to_fmtp(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.maxplaybackrate {
            parts.push(format!("maxplaybackrate={r}"));
        }
        if self.stereo {
            parts.push("stereo=1".to_owned());
        }
        if let Some(b) = self.maxaveragebitrate {
            parts.push(format!("maxaveragebitrate={b}"));
        }
        if self.useinbandfec {
            parts.push("useinbandfec=1".to_owned());
        }
        if self.usedtx {
            parts.push("usedtx=1".to_owned());
        }
        if let Some(p) = self.ptime {
            parts.push(format!("ptime={p}"));
        }
        parts.join(";")
    }
}

/// An audio codec (or the RFC 4733 telephone-event format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law, static PT 0, 8000 Hz.
    Pcmu,
    /// G.711 A-law, static PT 8, 8000 Hz.
    Pcma,
    /// G.722, static PT 9; RTP clock 8000 Hz (RFC 3551 §4.5.2) though sampled at 16 kHz.
    G722,
    /// Opus, dynamic PT, `opus/48000/2` (RFC 7587), with the parameters we want to receive.
    Opus(OpusParams),
    /// RFC 4733 DTMF events, dynamic PT, `telephone-event/8000`, fmtp `0-16`.
    TelephoneEvent,
}

/// Static payload types of RFC 3551 that may appear without `a=rtpmap`.
fn static_rtpmap(pt: u8) -> Option<(&'static str, u32, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        13 => ("CN", 8000, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    })
}

/// Encoding of payload type `pt` in media section `m`: `(name, clock rate, channels)`,
/// from `a=rtpmap` or, for static types, RFC 3551.
pub fn payload_encoding(m: &MediaDescription, pt: u8) -> Option<(String, u32, u32)> {
    if let Some(r) = m.rtpmap(pt) {
        return Some((r.encoding.clone(), r.clock_rate, r.channels.unwrap_or(1)));
    }
    static_rtpmap(pt).map(|(n, c, ch)| (n.to_owned(), c, ch))
}

impl Codec {
    /// Opus with in-band FEC on, other parameters default.
    pub fn opus() -> Self {
        Codec::Opus(OpusParams {
            useinbandfec: true,
            ..OpusParams::default()
        })
    }

    /// Encoding name in `a=rtpmap`.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus(_) => "opus",
            Codec::TelephoneEvent => "telephone-event",
        }
    }

    /// RTP clock rate (the rate in `a=rtpmap`).
    pub fn clock_rate(&self) -> u32 {
        match self {
            Codec::Opus(_) => 48000,
            _ => 8000,
        }
    }

    /// Audio sampling rate (differs from the RTP clock for G.722).
    pub fn sample_rate(&self) -> u32 {
        match self {
            Codec::G722 => 16000,
            other => other.clock_rate(),
        }
    }

    /// Channel count in `a=rtpmap` (Opus is always `/2`).
    pub fn channels(&self) -> u32 {
        match self {
            Codec::Opus(_) => 2,
            _ => 1,
        }
    }

    /// RFC 3551 static payload type, if any.
    pub fn static_payload_type(&self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus(_) | Codec::TelephoneEvent => None,
        }
    }

    /// The `a=fmtp` parameters we advertise for this codec, if any.
    pub fn fmtp_params(&self) -> Option<String> {
        match self {
            Codec::Opus(p) => Some(p.to_fmtp()).filter(|s| !s.is_empty()),
            Codec::TelephoneEvent => Some("0-16".to_owned()),
            _ => None,
        }
    }

    /// `a=rtpmap` for this codec with payload type `pt`.
    pub fn rtpmap(&self, pt: u8) -> Rtpmap {
        Rtpmap {
            payload_type: pt,
            encoding: self.encoding_name().to_owned(),
            clock_rate: self.clock_rate(),
            channels: matches!(self, Codec::Opus(_)).then_some(2),
        }
    }

    /// Whether an encoding `(name, clock, channels)` is this codec (name case-insensitive).
    /// Opus tolerates a missing or wrong channel count (seen from broken peers; RFC 7587
    /// always uses `/2` and the stream is decodable either way).
    pub fn matches(&self, name: &str, clock_rate: u32, channels: u32) -> bool {
        name.eq_ignore_ascii_case(self.encoding_name())
            && clock_rate == self.clock_rate()
            && (channels == self.channels() || matches!(self, Codec::Opus(_)))
    }

    /// Identify the codec of payload type `pt` in `m`. For Opus the parameters are
    /// read from that section's `a=fmtp`.
    pub fn from_media(m: &MediaDescription, pt: u8) -> Option<Self> {
        let (name, clock, ch) = payload_encoding(m, pt)?;
        let opus = Codec::Opus(m.fmtp(pt).map(OpusParams::from_fmtp).unwrap_or_default());
        [Codec::Pcmu, Codec::Pcma, Codec::G722, opus]
            .into_iter()
            .find(|c| c.matches(&name, clock, ch))
    }

    /// Whether two codecs are the same encoding (ignoring Opus parameters).
    pub fn same_encoding(&self, other: &Codec) -> bool {
        self.encoding_name() == other.encoding_name()
    }
}
