//! RFC 4733 telephone-events (DTMF over RTP).
//!
//! Sending: [`DtmfSender`] turns one key press into the packet sequence of RFC 4733
//! section 2.5: all packets carry the event's start timestamp, the first has the marker
//! bit, the duration grows each packet interval, and the final packet (end bit set) is
//! sent three times. Send them through `RtpSender::send_raw` with the telephone-event
//! payload type, one per packet interval, and hold back audio meanwhile.
//!
//! Receiving: [`DtmfReceiver`] deduplicates the packet stream (repeats, the triple
//! end packet, reordering, lost start packets) into one `Began` and one `Ended` per key.

/// Errors from telephone-event payloads and key names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("telephone-event payload shorter than 4 bytes ({0})")]
    TooShort(usize),
    #[error("not a DTMF key: {0:?}")]
    UnknownKey(char),
}

/// Event code (0-15) for a DTMF key `0-9 * # A-D` (case-insensitive).
pub fn event_code(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (key as u8 - b'A')),
        'a'..='d' => Some(12 + (key as u8 - b'a')),
        _ => None,
    }
}

/// DTMF key for an event code 0-15.
pub fn event_key(code: u8) -> Option<char> {
    match code {
        0..=9 => Some((b'0' + code) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + code - 12) as char),
        _ => None,
    }
}

/// One RFC 4733 event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// Parses the first event of a payload (extra bytes are ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }
}

/// One packet to send for a key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub marker: bool,
    pub event: TelephoneEvent,
    pub payload: [u8; 4],
}

/// Builds the packets for one key press.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    packets: Vec<DtmfPacket>,
}

impl DtmfSender {
    /// `duration_ms` of tone (clamped so it fits the 16-bit duration field),
    /// `volume` in -dBm0 (10 is typical), one update every `interval_ms` (20 or 50).
    pub fn new(
        key: char,
        duration_ms: u32,
        volume: u8,
        clock_rate: u32,
        interval_ms: u32,
    ) -> Result<Self, DtmfError> {
        let code = event_code(key).ok_or(DtmfError::UnknownKey(key))?;
        let ticks = |ms: u32| u64::from(ms) * u64::from(clock_rate) / 1000;
        let total = ticks(duration_ms).clamp(1, u64::from(u16::MAX));
        let step = ticks(interval_ms.max(1)).max(1);
        let mut packets = Vec::new();
        let mut make = |duration: u64, end: bool, marker: bool| {
            let event = TelephoneEvent {
                event: code,
                end,
                volume: volume.min(63),
                duration: u16::try_from(duration).unwrap_or(u16::MAX),
            };
            packets.push(DtmfPacket {
                marker,
                event,
                payload: event.to_bytes(),
            });
        };
        let mut d = step.min(total);
        let mut first = true;
        while d < total {
            make(d, false, first);
            first = false;
            d += step;
        }
        for _ in 0..3 {
            make(total, true, first);
            first = false;
        }
        Ok(Self { packets })
    }

    /// The packets in sending order.
    pub fn packets(&self) -> &[DtmfPacket] {
        &self.packets
    }
}

/// A deduplicated DTMF notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfUpdate {
    /// First packet of a new key press seen.
    Began { key: char, timestamp: u32 },
    /// The key press ended; `duration` in RTP timestamp units.
    Ended {
        key: char,
        timestamp: u32,
        duration: u16,
    },
}

/// Deduplicates received telephone-event packets into key presses.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    current: Option<(u32, u8, bool)>,
    keys: String,
    duplicates: u64,
    ignored: u64,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (its RTP timestamp, marker bit and payload).
    /// Returns 0, 1 or 2 updates (2 when an event is first seen on its end packet).
    pub fn handle(
        &mut self,
        timestamp: u32,
        _marker: bool,
        payload: &[u8],
    ) -> Result<Vec<DtmfUpdate>, DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let Some(key) = event_key(ev.event) else {
            // Non-DTMF events (flash, tones): not reported as keys.
            self.ignored += 1;
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        match self.current {
            Some((ts, code, ended)) if ts == timestamp && code == ev.event => {
                if ev.end && !ended {
                    self.current = Some((ts, code, true));
                    out.push(DtmfUpdate::Ended {
                        key,
                        timestamp,
                        duration: ev.duration,
                    });
                } else {
                    self.duplicates += 1;
                }
                return Ok(out);
            }
            Some((ts, _, _)) if (timestamp.wrapping_sub(ts) as i32) < 0 => {
                // A late packet of an earlier event.
                self.duplicates += 1;
                return Ok(out);
            }
            _ => {}
        }
        self.current = Some((timestamp, ev.event, ev.end));
        self.keys.push(key);
        out.push(DtmfUpdate::Began { key, timestamp });
        if ev.end {
            out.push(DtmfUpdate::Ended {
                key,
                timestamp,
                duration: ev.duration,
            });
        }
        Ok(out)
    }

    /// All keys received so far, in order, one per key press.
    pub fn keys(&self) -> &str {
        &self.keys
    }
    /// Repeated packets suppressed.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_keys() {
        assert_eq!(event_code('5'), Some(5));
        assert_eq!(event_code('*'), Some(10));
        assert_eq!(event_code('#'), Some(11));
        assert_eq!(event_code('d'), Some(15));
        assert_eq!(event_code('x'), None);
        for c in 0..16 {
            assert_eq!(event_code(event_key(c).unwrap()), Some(c));
        }
        assert_eq!(event_key(16), None);
    }

    #[test]
    fn payload_layout() {
        // RFC 4733 figure 1: event 9, E=1, volume 10, duration 1600.
        let e = TelephoneEvent {
            event: 9,
            end: true,
            volume: 10,
            duration: 1600,
        };
        assert_eq!(e.to_bytes(), [9, 0x8A, 0x06, 0x40]);
        assert_eq!(
            TelephoneEvent::parse(&[9, 0x8A, 0x06, 0x40, 0xFF]).unwrap(),
            e
        );
        assert_eq!(
            TelephoneEvent::parse(&[9, 0x8A]),
            Err(DtmfError::TooShort(2))
        );
    }

    #[test]
    fn sender_sequence() {
        let s = DtmfSender::new('1', 100, 10, 8000, 20).unwrap();
        let p = s.packets();
        // 100 ms at 8 kHz = 800 ticks: updates at 160..640, then 3 end packets at 800.
        let durations: Vec<u16> = p.iter().map(|p| p.event.duration).collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        assert!(p[0].marker);
        assert!(p[1..].iter().all(|p| !p.marker));
        assert_eq!(p.iter().filter(|p| p.event.end).count(), 3);
        assert!(p[..4].iter().all(|p| !p.event.end));
        assert!(p.iter().all(|p| p.event.event == 1 && p.event.volume == 10));
        assert!(DtmfSender::new('x', 100, 10, 8000, 20).is_err());
        // Very long presses clamp to the 16-bit duration field.
        let long = DtmfSender::new('#', 20_000, 10, 8000, 50).unwrap();
        assert_eq!(long.packets().last().unwrap().event.duration, u16::MAX);
    }

    #[test]
    fn receiver_deduplicates() {
        let mut rx = DtmfReceiver::new();
        let mut updates = Vec::new();
        for (ts, key) in [(1000u32, '1'), (3000, '1'), (5000, '#')] {
            let s = DtmfSender::new(key, 100, 10, 8000, 20).unwrap();
            for p in s.packets() {
                updates.extend(rx.handle(ts, p.marker, &p.payload).unwrap());
                // Network duplicate of every packet.
                updates.extend(rx.handle(ts, p.marker, &p.payload).unwrap());
            }
        }
        assert_eq!(rx.keys(), "11#", "same key twice is two presses");
        let ended = updates
            .iter()
            .filter(|u| matches!(u, DtmfUpdate::Ended { duration: 800, .. }))
            .count();
        assert_eq!(ended, 3);
        assert_eq!(updates.len(), 6);
        // A late retransmission of the first event is not a new press.
        let s = DtmfSender::new('1', 100, 10, 8000, 20).unwrap();
        assert!(rx
            .handle(1000, false, &s.packets()[6].payload)
            .unwrap()
            .is_empty());
        assert_eq!(rx.keys(), "11#");
    }

    #[test]
    fn receiver_handles_lost_start() {
        let mut rx = DtmfReceiver::new();
        let s = DtmfSender::new('7', 60, 10, 8000, 20).unwrap();
        let end = s.packets().last().unwrap();
        let u = rx.handle(42, false, &end.payload).unwrap();
        assert_eq!(
            u,
            vec![
                DtmfUpdate::Began {
                    key: '7',
                    timestamp: 42
                },
                DtmfUpdate::Ended {
                    key: '7',
                    timestamp: 42,
                    duration: 480
                }
            ]
        );
        assert!(rx.handle(42, false, &end.payload).unwrap().is_empty());
        assert!(rx.handle(42, false, &[1]).is_err());
        // Non-DTMF event (16 = flash) is ignored.
        assert!(rx.handle(99, true, &[16, 0, 0, 160]).unwrap().is_empty());
        assert_eq!(rx.keys(), "7");
    }
}
