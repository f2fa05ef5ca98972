//! RTP/RTCP, jitter buffer, codecs (G.711, G.722, Opus), RFC 4733 DTMF, tone analysis.
//!
//! Everything here is sans-IO: no sockets, no clocks. Time is passed in as
//! [`std::time::Instant`], randomness (SSRC, initial sequence number and timestamp)
//! is chosen by the caller. Malformed network input is rejected with an error and
//! counted in statistics; it never panics.

pub mod codec;
pub mod dtmf;
pub mod emodel;
pub mod fuzz;
pub mod g711;
pub mod g722;
pub mod jitter;
pub mod onset;
pub mod plc;
pub mod rtcp;
pub mod rtp_io;
pub mod seq;
pub mod tone;

pub use jitter::{Frame, JitterBuffer, JitterConfig, JitterStats, Playout, PushOutcome};
pub use plc::RepeatPlc;
pub use rtp_io::{
    is_rtcp, parse_rtp, serialize_rtp, Received, ReceiverStats, RtpError, RtpReceiver,
    RtpReceiverConfig, RtpSender, SenderStats,
};
pub use seq::{SeqUpdate, SequenceTracker};

pub use codec::{
    AudioDecoder, AudioEncoder, Codec, CodecError, OpusDecoder, OpusEncoder, OpusSettings,
};
pub use dtmf::{DtmfError, DtmfPacket, DtmfReceiver, DtmfSender, DtmfUpdate, TelephoneEvent};
pub use emodel::{mos, r_factor, r_to_mos, CodecImpairment};
pub use g722::{G722Decoder, G722Encoder};
pub use rtcp::{
    build_compound, parse_compound, rtt_from_block, Bye, NtpTime, ReceiverReport, ReportBlock,
    RtcpError, RtcpPacket, RtcpState, SdesChunk, SenderReport,
};
/// Re-exported so callers can name packets without depending on `rtp` directly.
pub use rtp::packet::Packet as RtpPacket;
pub use tone::{
    detect_tone, dominant_frequency, is_silence, rms, rms_dbfs, sine, tone_seconds, ToneGenerator,
};
