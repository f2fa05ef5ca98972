//! Minimal RTCP (RFC 3550): SR, RR, SDES (CNAME), BYE; compound build/parse; RTT from
//! LSR/DLSR. Parsing is bounds-checked and never panics; unknown packet types are
//! kept as [`RtcpPacket::Other`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::rtp_io::{RtpReceiver, RtpSender};

/// RTCP parse errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("RTCP packet shorter than its header or length field")]
    Truncated,
    #[error("RTCP version {0} is not 2")]
    BadVersion(u8),
    #[error("RTCP packet body too short for its report count")]
    BadCount,
    #[error("compound RTCP must start with SR or RR")]
    NotReportFirst,
}

/// 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTime(pub u64);

const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl NtpTime {
    /// Converts a wall-clock time (the caller reads the clock).
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }
    /// The middle 32 bits (16.16), as used for LSR and RTT.
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed cumulative loss.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    /// Delay since last SR, 1/65536 s.
    pub delay_since_last_sr: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

/// One SDES chunk; only CNAME is interpreted, other items are skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub cname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    pub sources: Vec<u32>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    Sdes(Vec<SdesChunk>),
    Bye(Bye),
    Other { packet_type: u8 },
}

fn be32(b: &[u8], i: usize) -> u32 {
    match b.get(i..i + 4) {
        Some(&[a, b2, c, d]) => u32::from_be_bytes([a, b2, c, d]),
        _ => 0,
    }
}

fn parse_blocks(body: &[u8], count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    if body.len() < count * 24 {
        return Err(RtcpError::BadCount);
    }
    Ok((0..count)
        .map(|i| {
            let b = &body[i * 24..i * 24 + 24];
            let lost_word = be32(b, 4);
            let mut cumulative = (lost_word & 0x00FF_FFFF) as i32;
            if cumulative & 0x0080_0000 != 0 {
                cumulative -= 1 << 24;
            }
            ReportBlock {
                ssrc: be32(b, 0),
                fraction_lost: (lost_word >> 24) as u8,
                cumulative_lost: cumulative,
                extended_highest_seq: be32(b, 8),
                jitter: be32(b, 12),
                last_sr: be32(b, 16),
                delay_since_last_sr: be32(b, 20),
            }
        })
        .collect())
}

/// Parses a compound RTCP datagram.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = rest[0] >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion(version));
        }
        let padding = rest[0] & 0x20 != 0;
        let count = usize::from(rest[0] & 0x1F);
        let pt = rest[1];
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        if rest.len() < len {
            return Err(RtcpError::Truncated);
        }
        let mut body = &rest[4..len];
        if padding {
            let pad = usize::from(*body.last().ok_or(RtcpError::Truncated)?);
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::Truncated);
            }
            body = &body[..body.len() - pad];
        }
        rest = &rest[len..];
        if out.is_empty() && pt != 200 && pt != 201 {
            return Err(RtcpError::NotReportFirst);
        }
        let packet = match pt {
            200 => {
                if body.len() < 24 {
                    return Err(RtcpError::Truncated);
                }
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: be32(body, 0),
                    ntp: NtpTime((u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8))),
                    rtp_timestamp: be32(body, 12),
                    packet_count: be32(body, 16),
                    octet_count: be32(body, 20),
                    reports: parse_blocks(&body[24..], count)?,
                })
            }
            201 => {
                if body.len() < 4 {
                    return Err(RtcpError::Truncated);
                }
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: be32(body, 0),
                    reports: parse_blocks(&body[4..], count)?,
                })
            }
            202 => RtcpPacket::Sdes(parse_sdes(body, count)?),
            203 => {
                if body.len() < count * 4 {
                    return Err(RtcpError::BadCount);
                }
                let sources = (0..count).map(|i| be32(body, i * 4)).collect();
                let reason = body.get(count * 4).and_then(|&n| {
                    body.get(count * 4 + 1..count * 4 + 1 + usize::from(n))
                        .map(|r| String::from_utf8_lossy(r).into_owned())
                });
                RtcpPacket::Bye(Bye { sources, reason })
            }
            other => RtcpPacket::Other { packet_type: other },
        };
        out.push(packet);
    }
    Ok(out)
}

fn parse_sdes(body: &[u8], count: usize) -> Result<Vec<SdesChunk>, RtcpError> {
    let mut chunks = Vec::new();
    let mut i = 0;
    for _ in 0..count {
        if i + 4 > body.len() {
            return Err(RtcpError::BadCount);
        }
        let mut chunk = SdesChunk {
            ssrc: be32(body, i),
            cname: None,
        };
        i += 4;
        loop {
            let Some(&item) = body.get(i) else {
                return Err(RtcpError::Truncated);
            };
            if item == 0 {
                // End of items; skip to the next 32-bit boundary.
                i = (i + 4) & !3;
                break;
            }
            let Some(&n) = body.get(i + 1) else {
                return Err(RtcpError::Truncated);
            };
            let Some(value) = body.get(i + 2..i + 2 + usize::from(n)) else {
                return Err(RtcpError::Truncated);
            };
            if item == 1 {
                chunk.cname = Some(String::from_utf8_lossy(value).into_owned());
            }
            i += 2 + usize::from(n);
        }
        chunks.push(chunk);
    }
    Ok(chunks)
}

fn put_header(out: &mut Vec<u8>, count: usize, pt: u8, body_len: usize) {
    out.push(0x80 | (count.min(31) as u8));
    out.push(pt);
    out.extend_from_slice(&((body_len / 4) as u16).to_be_bytes());
}

fn put_blocks(body: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks.iter().take(31) {
        body.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-(1 << 23), (1 << 23) - 1) as u32) & 0x00FF_FFFF;
        body.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        body.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        body.extend_from_slice(&b.jitter.to_be_bytes());
        body.extend_from_slice(&b.last_sr.to_be_bytes());
        body.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

impl RtcpPacket {
    /// Appends the wire form of this packet.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        let (count, pt) = match self {
            Self::SenderReport(sr) => {
                body.extend_from_slice(&sr.ssrc.to_be_bytes());
                body.extend_from_slice(&sr.ntp.0.to_be_bytes());
                body.extend_from_slice(&sr.rtp_timestamp.to_be_bytes());
                body.extend_from_slice(&sr.packet_count.to_be_bytes());
                body.extend_from_slice(&sr.octet_count.to_be_bytes());
                put_blocks(&mut body, &sr.reports);
                (sr.reports.len().min(31), 200)
            }
            Self::ReceiverReport(rr) => {
                body.extend_from_slice(&rr.ssrc.to_be_bytes());
                put_blocks(&mut body, &rr.reports);
                (rr.reports.len().min(31), 201)
            }
            Self::Sdes(chunks) => {
                for c in chunks.iter().take(31) {
                    body.extend_from_slice(&c.ssrc.to_be_bytes());
                    if let Some(cname) = &c.cname {
                        let v = &cname.as_bytes()[..cname.len().min(255)];
                        body.push(1);
                        body.push(v.len() as u8);
                        body.extend_from_slice(v);
                    }
                    body.push(0);
                    while body.len() % 4 != 0 {
                        body.push(0);
                    }
                }
                (chunks.len().min(31), 202)
            }
            Self::Bye(bye) => {
                for s in bye.sources.iter().take(31) {
                    body.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(r) = &bye.reason {
                    let v = &r.as_bytes()[..r.len().min(255)];
                    body.push(v.len() as u8);
                    body.extend_from_slice(v);
                    while body.len() % 4 != 0 {
                        body.push(0);
                    }
                }
                (bye.sources.len().min(31), 203)
            }
            Self::Other { .. } => return,
        };
        put_header(out, count, pt, body.len());
        out.extend_from_slice(&body);
    }
}

/// Serializes packets into one compound datagram.
pub fn build_compound(packets: &[RtcpPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        p.serialize(&mut out);
    }
    out
}

/// Round-trip time from a report block about our stream (RFC 3550 6.4.1):
/// `arrival - LSR - DLSR`. None when the peer has not seen an SR yet.
pub fn rtt_from_block(block: &ReportBlock, arrival: NtpTime) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = arrival
        .middle32()
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    if rtt > 1 << 31 {
        return None;
    }
    Some(Duration::from_secs_f64(f64::from(rtt) / 65536.0))
}

/// Per-stream RTCP bookkeeping: remembers the peer's last SR for LSR/DLSR, builds our
/// SR/RR + SDES, and measures RTT from the peer's reports.
#[derive(Debug, Clone, Default)]
pub struct RtcpState {
    cname: String,
    last_sr: Option<(u32, Instant)>,
    rtt: Option<Duration>,
    remote_reports: u64,
    byes: u64,
}

impl RtcpState {
    pub fn new(cname: impl Into<String>) -> Self {
        Self {
            cname: cname.into(),
            ..Self::default()
        }
    }

    /// Latest RTT measurement.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }
    pub fn reports_received(&self) -> u64 {
        self.remote_reports
    }
    pub fn byes_received(&self) -> u64 {
        self.byes
    }

    /// Handles an incoming compound RTCP datagram. `our_ssrc` picks the report blocks
    /// about our stream. Returns the parsed packets.
    pub fn handle(
        &mut self,
        now: Instant,
        arrival: NtpTime,
        our_ssrc: u32,
        datagram: &[u8],
    ) -> Result<Vec<RtcpPacket>, RtcpError> {
        let packets = parse_compound(datagram)?;
        for p in &packets {
            let blocks = match p {
                RtcpPacket::SenderReport(sr) => {
                    self.last_sr = Some((sr.ntp.middle32(), now));
                    &sr.reports[..]
                }
                RtcpPacket::ReceiverReport(rr) => &rr.reports[..],
                RtcpPacket::Bye(_) => {
                    self.byes += 1;
                    continue;
                }
                _ => continue,
            };
            self.remote_reports += 1;
            for b in blocks.iter().filter(|b| b.ssrc == our_ssrc) {
                if let Some(rtt) = rtt_from_block(b, arrival) {
                    self.rtt = Some(rtt);
                }
            }
        }
        Ok(packets)
    }

    /// Builds our compound report: SR when we send media (else RR), with a report
    /// block for the remote source when we receive, followed by SDES CNAME.
    pub fn build_report(
        &mut self,
        now: Instant,
        ntp_now: NtpTime,
        our_ssrc: u32,
        sender: Option<&RtpSender>,
        receiver: Option<&mut RtpReceiver>,
    ) -> Vec<u8> {
        let mut blocks = Vec::new();
        if let Some(rx) = receiver {
            if let Some(remote) = rx.remote_ssrc() {
                let (fraction, cumulative) = rx.take_report_interval();
                let stats = rx.stats();
                let (lsr, dlsr) = match self.last_sr {
                    Some((lsr, at)) => {
                        let d = now.saturating_duration_since(at).as_secs_f64() * 65536.0;
                        (lsr, d.min(f64::from(u32::MAX)) as u32)
                    }
                    None => (0, 0),
                };
                blocks.push(ReportBlock {
                    ssrc: remote,
                    fraction_lost: fraction,
                    cumulative_lost: i32::try_from(cumulative).unwrap_or(i32::MAX),
                    extended_highest_seq: stats.extended_max_seq as u32,
                    jitter: stats.jitter.round() as u32,
                    last_sr: lsr,
                    delay_since_last_sr: dlsr,
                });
            }
        }
        let report = match sender.filter(|s| s.stats().packets_sent > 0) {
            Some(tx) => RtcpPacket::SenderReport(SenderReport {
                ssrc: our_ssrc,
                ntp: ntp_now,
                rtp_timestamp: tx.last_timestamp(),
                packet_count: tx.stats().packets_sent as u32,
                octet_count: tx.stats().octets_sent as u32,
                reports: blocks,
            }),
            None => RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: our_ssrc,
                reports: blocks,
            }),
        };
        let sdes = RtcpPacket::Sdes(vec![SdesChunk {
            ssrc: our_ssrc,
            cname: Some(self.cname.clone()),
        }]);
        build_compound(&[report, sdes])
    }

    /// A compound RR + SDES + BYE for leaving the session.
    pub fn build_bye(&self, our_ssrc: u32, reason: Option<&str>) -> Vec<u8> {
        build_compound(&[
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: our_ssrc,
                reports: Vec::new(),
            }),
            RtcpPacket::Sdes(vec![SdesChunk {
                ssrc: our_ssrc,
                cname: Some(self.cname.clone()),
            }]),
            RtcpPacket::Bye(Bye {
                sources: vec![our_ssrc],
                reason: reason.map(str::to_string),
            }),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp_io::RtpReceiverConfig;

    #[test]
    fn ntp_conversion() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        let n = NtpTime::from_system_time(t);
        assert_eq!(n.0 >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(n.0 & 0xFFFF_FFFF, 1 << 31);
        assert_eq!(
            n.middle32(),
            (((NTP_UNIX_OFFSET + 1) as u32) << 16) | 0x8000
        );
    }

    #[test]
    fn sr_sdes_bye_round_trip() {
        let block = ReportBlock {
            ssrc: 0xAABB_CCDD,
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 70_000,
            jitter: 42,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        };
        let packets = vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: 1,
                ntp: NtpTime(0x0102_0304_0506_0708),
                rtp_timestamp: 160,
                packet_count: 10,
                octet_count: 1600,
                reports: vec![block],
            }),
            RtcpPacket::Sdes(vec![SdesChunk {
                ssrc: 1,
                cname: Some("peerline@example".into()),
            }]),
            RtcpPacket::Bye(Bye {
                sources: vec![1],
                reason: Some("done".into()),
            }),
        ];
        let wire = build_compound(&packets);
        assert_eq!(wire.len() % 4, 0);
        // SR header: V=2, RC=1, PT=200, length = 12 words.
        assert_eq!(&wire[..4], &[0x81, 200, 0, 12]);
        assert_eq!(parse_compound(&wire).unwrap(), packets);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_compound(&[0x80, 200, 0]), Err(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&[0x40, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BadVersion(1))
        );
        // Length field larger than the datagram.
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 9, 0, 0, 0, 1]),
            Err(RtcpError::Truncated)
        );
        // RC=2 but no blocks.
        assert_eq!(
            parse_compound(&[0x82, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::BadCount)
        );
        // SDES first.
        assert_eq!(
            parse_compound(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0]),
            Err(RtcpError::NotReportFirst)
        );
        // SDES item running past the end.
        let mut w = vec![0x80, 201, 0, 1, 0, 0, 0, 1];
        w.extend_from_slice(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 200, b'x', 0]);
        assert_eq!(parse_compound(&w), Err(RtcpError::Truncated));
    }

    #[test]
    fn rtt_from_lsr_dlsr() {
        // RFC 3550 figure 2: A=0xb710:8000 (46864.500), LSR=0xb705:2000 (46853.125),
        // DLSR=0x0005:4000 (5.250) -> RTT 6.125 s.
        let block = ReportBlock {
            last_sr: 0xB705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..ReportBlock::default()
        };
        let arrival = NtpTime(0xB710_8000u64 << 16);
        assert_eq!(
            rtt_from_block(&block, arrival),
            Some(Duration::from_secs_f64(6.125))
        );
        assert_eq!(rtt_from_block(&ReportBlock::default(), arrival), None);
    }

    #[test]
    fn two_parties_measure_rtt() {
        // A sends media and SR at t=0; B receives it 50 ms later, replies with an RR
        // 100 ms after that; the RR reaches A 50 ms later: RTT = 100 ms.
        let t0 = Instant::now();
        let ntp0 = NtpTime::from_system_time(
            UNIX_EPOCH + Duration::from_secs(3_900_000_000 - NTP_UNIX_OFFSET),
        );
        let at = |ms: u64| NtpTime(ntp0.0 + ((ms << 32) / 1000));
        let mut a = RtcpState::new("a@peerline");
        let mut b = RtcpState::new("b@peerline");
        let mut tx = RtpSender::new(0xA, 0, 8000, 0, 0);
        let mut rx = RtpReceiver::new(RtpReceiverConfig::pcmu(None));
        for i in 0..10u64 {
            let pkt = tx.send_frame(&[0xFF; 160], 160).unwrap();
            rx.receive(t0 + Duration::from_millis(20 * i), &pkt)
                .unwrap();
        }
        let sr = a.build_report(t0, at(0), 0xA, Some(&tx), None);
        let parsed = b
            .handle(t0 + Duration::from_millis(50), at(50), 0xB, &sr)
            .unwrap();
        assert!(
            matches!(&parsed[0], RtcpPacket::SenderReport(s) if s.packet_count == 10 && s.octet_count == 1600)
        );
        assert!(
            matches!(&parsed[1], RtcpPacket::Sdes(c) if c[0].cname.as_deref() == Some("a@peerline"))
        );
        let rr = b.build_report(
            t0 + Duration::from_millis(150),
            at(150),
            0xB,
            None,
            Some(&mut rx),
        );
        let parsed = a
            .handle(t0 + Duration::from_millis(200), at(200), 0xA, &rr)
            .unwrap();
        let RtcpPacket::ReceiverReport(r) = &parsed[0] else {
            panic!("expected RR, got {parsed:?}");
        };
        assert_eq!(r.reports[0].ssrc, 0xA);
        assert_eq!(r.reports[0].cumulative_lost, 0);
        assert_eq!(r.reports[0].extended_highest_seq & 0xFFFF, 9);
        let rtt = a.rtt().unwrap();
        assert!((rtt.as_secs_f64() - 0.100).abs() < 0.001, "rtt {rtt:?}");
        let bye = b.build_bye(0xB, Some("bye"));
        a.handle(t0, at(300), 0xA, &bye).unwrap();
        assert_eq!(a.byes_received(), 1);
    }
}
