//! RTP packet parsing (strict, panic-free), sending and receiving.
//!
//! Parsing validates the whole datagram before handing it to the `rtp` crate's
//! `Unmarshal`, so malformed input (wrong version, CSRC list or header extension past
//! the end, bad padding, malformed RFC 8285 extension elements) is rejected with an
//! [`RtpError`] and never reaches code that could panic.

use std::time::Instant;

use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_util::marshal::{Marshal, MarshalSize, Unmarshal};

use crate::jitter::{JitterBuffer, JitterConfig, Playout, PushOutcome};
use crate::seq::SequenceTracker;

/// Why an RTP datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("datagram shorter than the RTP fixed header")]
    TooShort,
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    #[error("CSRC list runs past the end of the datagram")]
    CsrcPastEnd,
    #[error("header extension runs past the end of the datagram")]
    ExtensionPastEnd,
    #[error("malformed RFC 8285 header extension element")]
    BadExtensionElement,
    #[error("invalid padding length")]
    BadPadding,
    #[error("looks like RTCP (payload type {0}), not RTP")]
    LooksLikeRtcp(u8),
    #[error("payload type {0} not negotiated")]
    UnknownPayloadType(u8),
    #[error("packet from unexpected SSRC {0:#010x}")]
    UnexpectedSsrc(u32),
    #[error("rtp crate rejected the packet: {0}")]
    Unmarshal(String),
    #[error("could not serialize packet: {0}")]
    Marshal(String),
}

/// True when the datagram looks like RTCP rather than RTP (RFC 5761 section 4: the
/// second byte, read as a packet type, is in 192..=223).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1])
}

fn validate(buf: &[u8]) -> Result<(), RtpError> {
    if buf.len() < 12 {
        return Err(RtpError::TooShort);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    if (192..=223).contains(&buf[1]) {
        return Err(RtpError::LooksLikeRtcp(buf[1]));
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let cc = usize::from(buf[0] & 0x0F);
    let mut offset = 12 + 4 * cc;
    if buf.len() < offset {
        return Err(RtpError::CsrcPastEnd);
    }
    if extension {
        if buf.len() < offset + 4 {
            return Err(RtpError::ExtensionPastEnd);
        }
        let profile = u16::from_be_bytes([buf[offset], buf[offset + 1]]);
        let words = usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
        let start = offset + 4;
        let end = start + 4 * words;
        if buf.len() < end {
            return Err(RtpError::ExtensionPastEnd);
        }
        let ext = &buf[start..end];
        match profile {
            0xBEDE => {
                let mut i = 0;
                while i < ext.len() {
                    let b = ext[i];
                    i += 1;
                    if b == 0 {
                        continue;
                    }
                    if b >> 4 == 0x0F {
                        // Reserved id 15: the `rtp` crate would stop here and leave the
                        // rest of the extension in the payload, so reject.
                        return Err(RtpError::BadExtensionElement);
                    }
                    let len = usize::from(b & 0x0F) + 1;
                    if i + len > ext.len() {
                        return Err(RtpError::BadExtensionElement);
                    }
                    i += len;
                }
            }
            0x1000 => {
                let mut i = 0;
                while i < ext.len() {
                    let b = ext[i];
                    i += 1;
                    if b == 0 {
                        continue;
                    }
                    let Some(&len) = ext.get(i) else {
                        return Err(RtpError::BadExtensionElement);
                    };
                    i += 1;
                    if i + usize::from(len) > ext.len() {
                        return Err(RtpError::BadExtensionElement);
                    }
                    i += usize::from(len);
                }
            }
            _ => {}
        }
        offset = end;
    }
    if padding {
        let payload_len = buf.len() - offset;
        let pad = usize::from(buf[buf.len() - 1]);
        if payload_len == 0 || pad == 0 || pad > payload_len {
            return Err(RtpError::BadPadding);
        }
    }
    Ok(())
}

/// Parses one RTP datagram strictly. Never panics.
pub fn parse_rtp(datagram: &[u8]) -> Result<Packet, RtpError> {
    validate(datagram)?;
    let mut buf = datagram;
    Packet::unmarshal(&mut buf).map_err(|e| RtpError::Unmarshal(e.to_string()))
}

/// Serializes a packet.
pub fn serialize_rtp(packet: &Packet) -> Result<Bytes, RtpError> {
    let mut out = vec![0u8; packet.marshal_size()];
    let n = packet
        .marshal_to(&mut out)
        .map_err(|e| RtpError::Marshal(e.to_string()))?;
    out.truncate(n);
    Ok(Bytes::from(out))
}

/// Counters kept by an [`RtpSender`] (also what an RTCP SR reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub packets_sent: u64,
    pub octets_sent: u64,
}

/// Stamps encoded frames into RTP packets: SSRC, sequence number and timestamp (both
/// wrapping), marker bit on the first packet of a talkspurt.
///
/// SSRC, initial sequence number and initial timestamp come from the caller (random
/// in production, fixed in tests).
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    clock_rate: u32,
    next_seq: u16,
    next_timestamp: u32,
    last_timestamp: u32,
    talkspurt_start: bool,
    stats: SenderStats,
}

impl RtpSender {
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        clock_rate: u32,
        initial_seq: u16,
        initial_timestamp: u32,
    ) -> Self {
        Self {
            ssrc,
            payload_type: payload_type & 0x7F,
            clock_rate,
            next_seq: initial_seq,
            next_timestamp: initial_timestamp,
            last_timestamp: initial_timestamp,
            talkspurt_start: true,
            stats: SenderStats::default(),
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
    pub fn stats(&self) -> SenderStats {
        self.stats
    }
    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next_seq
    }
    /// RTP timestamp the next audio frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }
    /// RTP timestamp of the last audio frame sent (for RTCP SR).
    pub fn last_timestamp(&self) -> u32 {
        self.last_timestamp
    }

    /// Changes the payload type for subsequent frames (e.g. after a re-INVITE).
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.payload_type = payload_type & 0x7F;
    }

    /// Marks the next frame as the start of a talkspurt (marker bit set).
    pub fn start_talkspurt(&mut self) {
        self.talkspurt_start = true;
    }

    /// Advances the timestamp over `samples` of untransmitted audio (silence
    /// suppression); the next frame starts a new talkspurt.
    pub fn skip(&mut self, samples: u32) {
        self.next_timestamp = self.next_timestamp.wrapping_add(samples);
        self.talkspurt_start = true;
    }

    /// Packs one encoded frame that covers `samples` clock ticks and returns the
    /// serialized datagram.
    pub fn send_frame(&mut self, payload: &[u8], samples: u32) -> Result<Bytes, RtpError> {
        let ts = self.next_timestamp;
        let marker = self.talkspurt_start;
        let pt = self.payload_type;
        let out = self.send_raw(pt, ts, marker, payload)?;
        self.talkspurt_start = false;
        self.last_timestamp = ts;
        self.next_timestamp = ts.wrapping_add(samples);
        Ok(out)
    }

    /// Sends a packet with an explicit payload type, timestamp and marker in this
    /// stream's sequence space (used for RFC 4733 telephone events, whose timestamp
    /// is the event start). Does not advance the audio timestamp.
    pub fn send_raw(
        &mut self,
        payload_type: u8,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<Bytes, RtpError> {
        let packet = Packet {
            header: Header {
                version: 2,
                marker,
                payload_type: payload_type & 0x7F,
                sequence_number: self.next_seq,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        let out = serialize_rtp(&packet)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.stats.packets_sent += 1;
        self.stats.octets_sent += payload.len() as u64;
        Ok(out)
    }
}

/// Receiver configuration.
#[derive(Debug, Clone)]
pub struct RtpReceiverConfig {
    /// RTP clock rate of the audio payload (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Payload types accepted as audio and fed to the jitter buffer.
    pub audio_payload_types: Vec<u8>,
    /// Payload type of RFC 4733 telephone-event, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// Consecutive in-order packets a new SSRC needs before it replaces the current one.
    pub ssrc_probation: u32,
    pub jitter: JitterConfig,
}

impl RtpReceiverConfig {
    /// PCMU (PT 0) at 8 kHz with 20 ms frames and telephone-event on `dtmf_pt`.
    pub fn pcmu(dtmf_pt: Option<u8>) -> Self {
        Self {
            clock_rate: 8000,
            audio_payload_types: vec![0],
            telephone_event_pt: dtmf_pt,
            ssrc_probation: 3,
            jitter: JitterConfig::new(8000, 20),
        }
    }
}

/// Receive statistics (also what an RTCP RR block reports).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReceiverStats {
    /// Valid packets from the current source (duplicates excluded).
    pub packets_received: u64,
    pub octets_received: u64,
    /// Expected minus received, from extended sequence numbers (never negative).
    pub packets_lost: u64,
    pub duplicates: u64,
    /// Packets that arrived with a lower sequence number than one already seen.
    pub reordered: u64,
    /// Datagrams dropped because they did not parse.
    pub malformed: u64,
    /// Packets dropped for an unknown payload type.
    pub unknown_payload_type: u64,
    /// Packets dropped because they came from an SSRC other than the current one.
    pub foreign_ssrc: u64,
    pub ssrc_changes: u64,
    /// RFC 3550 interarrival jitter in RTP timestamp units.
    pub jitter: f64,
    /// Highest extended sequence number received.
    pub extended_max_seq: u64,
    pub telephone_events: u64,
}

impl ReceiverStats {
    /// Jitter in milliseconds at `clock_rate`.
    pub fn jitter_ms(&self, clock_rate: u32) -> f64 {
        if clock_rate == 0 {
            0.0
        } else {
            self.jitter * 1000.0 / f64::from(clock_rate)
        }
    }
}

/// What a successfully received packet was.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Audio, handed to the jitter buffer with this outcome.
    Audio {
        seq: u16,
        timestamp: u32,
        outcome: PushOutcome,
    },
    /// RFC 4733 telephone-event packet (not buffered; feed it to a `DtmfReceiver`).
    TelephoneEvent {
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    },
}

/// Parses incoming RTP datagrams for one remote source, keeps RFC 3550 statistics and
/// feeds audio into a jitter buffer. Sans-IO: `now` is passed in.
#[derive(Debug)]
pub struct RtpReceiver {
    config: RtpReceiverConfig,
    ssrc: Option<u32>,
    candidate: Option<(u32, u16, u32)>,
    seq: SequenceTracker,
    stats: ReceiverStats,
    base_time: Option<Instant>,
    last_transit: Option<f64>,
    jitter_buffer: JitterBuffer,
    last_sr_interval: (u64, u64),
}

impl RtpReceiver {
    pub fn new(config: RtpReceiverConfig) -> Self {
        let jitter_buffer = JitterBuffer::new(config.jitter.clone());
        Self {
            config,
            ssrc: None,
            candidate: None,
            seq: SequenceTracker::default(),
            stats: ReceiverStats::default(),
            base_time: None,
            last_transit: None,
            jitter_buffer,
            last_sr_interval: (0, 0),
        }
    }

    /// The remote SSRC currently accepted, once known.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Pins the remote SSRC (e.g. from SDP `a=ssrc`).
    pub fn set_remote_ssrc(&mut self, ssrc: u32) {
        if self.ssrc != Some(ssrc) {
            self.ssrc = Some(ssrc);
            self.restart_source();
        }
    }

    pub fn stats(&self) -> ReceiverStats {
        let mut s = self.stats;
        s.extended_max_seq = self.seq.extended_max();
        let expected = self.seq.expected();
        s.packets_lost = expected.saturating_sub(s.packets_received);
        s
    }

    pub fn jitter_buffer(&self) -> &JitterBuffer {
        &self.jitter_buffer
    }

    /// Fraction lost since the previous call, as the 8-bit fixed-point value of an RTCP
    /// report block (RFC 3550 A.3), and cumulative lost.
    pub fn take_report_interval(&mut self) -> (u8, u64) {
        let expected = self.seq.expected();
        let received = self.stats.packets_received;
        let (prev_expected, prev_received) = self.last_sr_interval;
        self.last_sr_interval = (expected, received);
        let expected_interval = expected.saturating_sub(prev_expected);
        let received_interval = received.saturating_sub(prev_received);
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        (fraction, expected.saturating_sub(received))
    }

    fn restart_source(&mut self) {
        self.seq = SequenceTracker::default();
        self.last_transit = None;
        self.stats.jitter = 0.0;
        self.last_sr_interval = (0, 0);
        self.jitter_buffer.reset();
    }

    /// Handles one datagram. Bad packets are counted in [`ReceiverStats`] and returned
    /// as an error; they never panic and never disturb the current stream.
    pub fn receive(&mut self, now: Instant, datagram: &[u8]) -> Result<Received, RtpError> {
        let packet = match parse_rtp(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        let h = &packet.header;
        let pt = h.payload_type;
        let is_event = self.config.telephone_event_pt == Some(pt);
        if !is_event && !self.config.audio_payload_types.contains(&pt) {
            self.stats.unknown_payload_type += 1;
            return Err(RtpError::UnknownPayloadType(pt));
        }
        match self.ssrc {
            None => {
                self.ssrc = Some(h.ssrc);
            }
            Some(current) if current == h.ssrc => {
                self.candidate = None;
            }
            Some(_) => {
                // A new source must prove itself with consecutive packets.
                let count = match self.candidate {
                    Some((ssrc, last_seq, count))
                        if ssrc == h.ssrc && h.sequence_number == last_seq.wrapping_add(1) =>
                    {
                        count + 1
                    }
                    _ => 1,
                };
                if count >= self.config.ssrc_probation.max(1) {
                    self.ssrc = Some(h.ssrc);
                    self.candidate = None;
                    self.stats.ssrc_changes += 1;
                    self.restart_source();
                } else {
                    self.candidate = Some((h.ssrc, h.sequence_number, count));
                    self.stats.foreign_ssrc += 1;
                    return Err(RtpError::UnexpectedSsrc(h.ssrc));
                }
            }
        }

        let seq_update = self.seq.update(h.sequence_number);
        if seq_update.duplicate {
            self.stats.duplicates += 1;
        } else {
            self.stats.packets_received += 1;
            self.stats.octets_received += packet.payload.len() as u64;
            if seq_update.reordered {
                self.stats.reordered += 1;
            }
        }

        if is_event {
            self.stats.telephone_events += 1;
            return Ok(Received::TelephoneEvent {
                timestamp: h.timestamp,
                marker: h.marker,
                payload: packet.payload,
            });
        }

        if !seq_update.duplicate {
            self.update_jitter(now, h.timestamp);
        }
        let seq = h.sequence_number;
        let timestamp = h.timestamp;
        let outcome = self.jitter_buffer.push(now, &packet);
        Ok(Received::Audio {
            seq,
            timestamp,
            outcome,
        })
    }

    /// RFC 3550 A.8 interarrival jitter.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let base = *self.base_time.get_or_insert(now);
        let arrival =
            now.saturating_duration_since(base).as_secs_f64() * f64::from(self.config.clock_rate);
        // Work modulo 2^32 so timestamp wraparound does not produce a huge jump.
        let transit = arrival - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let mut d = transit - last;
            let wrap = 4_294_967_296.0;
            d = d.rem_euclid(wrap);
            if d > wrap / 2.0 {
                d -= wrap;
            }
            self.stats.jitter += (d.abs() - self.stats.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Takes the next 20 ms (configured) frame out of the jitter buffer.
    pub fn pop(&mut self, now: Instant) -> Playout {
        self.jitter_buffer.pop(now)
    }

    /// Payload of the buffered packet after the missing frame at `timestamp` (for
    /// Opus FEC): see [`JitterBuffer::peek_next`].
    pub fn peek_next(&self, timestamp: u32) -> Option<&[u8]> {
        self.jitter_buffer
            .peek_next(timestamp)
            .map(|f| f.payload.as_ref())
    }
}
