//! Sans-IO adaptive jitter buffer.
//!
//! `push(now, packet)` on arrival, `pop(now)` once per frame period (20 ms by default).
//! Packets are ordered by (extended) RTP timestamp; duplicates and packets that arrive
//! after their playout time are dropped and counted. The target delay follows the
//! measured interarrival jitter (3 × RFC 3550 jitter plus a bump for every late packet,
//! decaying over time), clamped to `[min_delay, max_delay]`; the buffer converges on it
//! by dropping a frame (delay more than two frames above target) or inserting a
//! concealed one (more than one frame below), at most one adjustment per 5 frames.
//! Before any jitter is measured the target is the floor (two frames): a path with
//! jitter grows it within the first second, a calm one never had a reason to wait
//! longer (the mouth-to-ear delay, docs/benchmarks.md figure 5).
//! SSRC changes and timestamp jumps reset the buffer; a silence of more than
//! `max_delay` (DTX, hold) returns it to buffering, so the next talkspurt re-buffers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtp::packet::Packet;

/// Jitter buffer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    pub clock_rate: u32,
    /// Nominal frame duration (packetization time) in milliseconds.
    pub frame_ms: u32,
    pub min_delay_ms: u32,
    pub max_delay_ms: u32,
    /// Delay used before any jitter has been measured.
    pub initial_delay_ms: u32,
    /// Hard cap on buffered packets (memory bound against floods).
    pub max_packets: usize,
}

impl JitterConfig {
    pub fn new(clock_rate: u32, frame_ms: u32) -> Self {
        Self {
            clock_rate,
            frame_ms: frame_ms.max(1),
            min_delay_ms: frame_ms.max(1),
            max_delay_ms: 300,
            initial_delay_ms: frame_ms.max(1),
            max_packets: 200,
        }
    }
}

/// A frame handed to the decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub timestamp: u32,
    pub seq: u16,
    pub payload_type: u8,
    pub marker: bool,
    pub payload: Bytes,
}

/// What to play for one frame period.
#[derive(Debug, Clone, PartialEq)]
pub enum Playout {
    /// A received frame: decode it.
    Frame(Frame),
    /// The frame at this timestamp is missing (lost, late, or inserted to grow the
    /// delay): conceal it (PLC), do not play silence.
    Missing { timestamp: u32 },
    /// Not playing yet (start, after a reset, or after a long silence): play silence.
    Buffering,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Accepted after resetting the buffer (new SSRC or timestamp jump).
    AcceptedAfterReset,
    Duplicate,
    /// Its playout time has passed.
    TooLate,
}

/// Jitter buffer counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub pushed: u64,
    pub played: u64,
    /// Frames reported as [`Playout::Missing`] (lost or late).
    pub missing: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Oldest packets dropped because the buffer was full.
    pub overflow: u64,
    /// Frames dropped to shrink the delay.
    pub dropped_to_shrink: u64,
    /// Concealed frames inserted to grow the delay.
    pub inserted_to_grow: u64,
    pub resets: u64,
    pub ssrc_resets: u64,
    /// Jumps of the playout point to a new talkspurt.
    pub resyncs: u64,
    /// Periods concealed with the buffer empty, keeping the playout point (the frame
    /// was late, or is lost and shows as a gap later).
    pub underflows: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    frame: Frame,
    arrival: Instant,
}

/// Adaptive jitter buffer for one audio stream.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    ssrc: Option<u32>,
    anchor: Option<(u32, i64)>,
    entries: BTreeMap<i64, Entry>,
    next_ts: Option<i64>,
    frame_ticks: i64,
    last_push: Option<(u16, i64)>,
    // Jitter estimate (ms), RFC 3550 style, over arrivals.
    base_time: Option<Instant>,
    last_transit_ms: Option<f64>,
    jitter_ms: f64,
    jitter_samples: u32,
    late_bump_ms: f64,
    smoothed_delay_ms: Option<f64>,
    pops_since_adjust: u32,
    empty_pops: u32,
    /// Periods concealed by underflow since the last frame played: a gap found later
    /// (the frames were lost, not late) is skipped by that many without concealing again.
    owed: i64,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let frame_ticks = i64::from(config.clock_rate) * i64::from(config.frame_ms) / 1000;
        Self {
            frame_ticks: frame_ticks.max(1),
            config,
            ssrc: None,
            anchor: None,
            entries: BTreeMap::new(),
            next_ts: None,
            last_push: None,
            base_time: None,
            last_transit_ms: None,
            jitter_ms: 0.0,
            jitter_samples: 0,
            late_bump_ms: 0.0,
            smoothed_delay_ms: None,
            pops_since_adjust: 0,
            empty_pops: 0,
            owed: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn config(&self) -> &JitterConfig {
        &self.config
    }
    pub fn stats(&self) -> JitterStats {
        self.stats
    }
    /// Number of packets waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Whether playout has started.
    pub fn is_playing(&self) -> bool {
        self.next_ts.is_some()
    }
    /// Frame length in timestamp ticks (learned from the stream; starts at `frame_ms`).
    pub fn frame_ticks(&self) -> u32 {
        u32::try_from(self.frame_ticks).unwrap_or(u32::MAX)
    }

    fn ms_to_ticks(&self, ms: f64) -> i64 {
        (ms * f64::from(self.config.clock_rate) / 1000.0) as i64
    }
    fn ticks_to_ms(&self, ticks: i64) -> f64 {
        if self.config.clock_rate == 0 {
            0.0
        } else {
            ticks as f64 * 1000.0 / f64::from(self.config.clock_rate)
        }
    }
    fn frame_ms(&self) -> f64 {
        self.ticks_to_ms(self.frame_ticks)
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        let measured = self.jitter_samples >= 16 || self.late_bump_ms > 0.0;
        let raw = if measured {
            3.0 * self.jitter_ms + self.late_bump_ms
        } else {
            f64::from(self.config.initial_delay_ms)
        };
        let ms = raw.clamp(
            f64::from(self.config.min_delay_ms),
            f64::from(self.config.max_delay_ms.max(self.config.min_delay_ms)),
        );
        Duration::from_secs_f64(ms / 1000.0)
    }

    /// Measured playout delay: smoothed time between a frame's arrival and its playout
    /// (the last value is kept while buffering).
    pub fn playout_delay(&self) -> Duration {
        Duration::from_secs_f64(self.smoothed_delay_ms.unwrap_or(0.0).max(0.0) / 1000.0)
    }

    /// Interarrival jitter estimated by the buffer, in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// Drops everything and returns to buffering (keeps statistics).
    pub fn reset(&mut self) {
        self.entries.clear();
        self.next_ts = None;
        self.anchor = None;
        self.last_push = None;
        self.base_time = None;
        self.last_transit_ms = None;
        self.smoothed_delay_ms = None;
        self.empty_pops = 0;
        self.owed = 0;
        self.pops_since_adjust = 0;
        self.stats.resets += 1;
    }

    fn unwrap_ts(&self, ts: u32) -> i64 {
        match self.anchor {
            None => i64::from(ts),
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
        }
    }

    /// Inserts one received packet.
    pub fn push(&mut self, now: Instant, packet: &Packet) -> PushOutcome {
        let h = &packet.header;
        let mut reset = false;
        if self.ssrc != Some(h.ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_resets += 1;
                self.reset();
                reset = true;
            }
            self.ssrc = Some(h.ssrc);
        }
        let ext = self.unwrap_ts(h.timestamp);
        let reference = self.next_ts.or_else(|| self.entries.keys().next().copied());
        if let Some(r) = reference {
            let jump_ms = self.ticks_to_ms((ext - r).abs());
            let limit = (2.0 * f64::from(self.config.max_delay_ms)).max(1000.0);
            if jump_ms > limit {
                self.reset();
                reset = true;
            }
        }
        let ext = self.unwrap_ts(h.timestamp);
        self.anchor = Some((h.timestamp, ext));

        if let Some(next) = self.next_ts {
            if ext < next {
                self.stats.late += 1;
                self.late_bump_ms =
                    (self.late_bump_ms + self.frame_ms()).min(f64::from(self.config.max_delay_ms));
                return PushOutcome::TooLate;
            }
        }
        if self.entries.contains_key(&ext) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }

        // Learn the packetization time from consecutive packets.
        if let Some((last_seq, last_ts)) = self.last_push {
            if h.sequence_number == last_seq.wrapping_add(1) {
                let d = ext - last_ts;
                if d > 0 && d <= self.ms_to_ticks(120.0) {
                    self.frame_ticks = d;
                }
            }
        }
        self.last_push = Some((h.sequence_number, ext));
        self.update_jitter(now, ext);

        self.entries.insert(
            ext,
            Entry {
                frame: Frame {
                    timestamp: h.timestamp,
                    seq: h.sequence_number,
                    payload_type: h.payload_type,
                    marker: h.marker,
                    payload: packet.payload.clone(),
                },
                arrival: now,
            },
        );
        self.stats.pushed += 1;
        while self.entries.len() > self.config.max_packets.max(1) {
            if let Some((k, _)) = self.entries.pop_first() {
                self.stats.overflow += 1;
                if let Some(next) = self.next_ts {
                    if k >= next {
                        self.next_ts = Some(k + self.frame_ticks);
                    }
                }
            }
        }
        if reset {
            PushOutcome::AcceptedAfterReset
        } else {
            PushOutcome::Accepted
        }
    }

    fn update_jitter(&mut self, now: Instant, ext_ts: i64) {
        let base = *self.base_time.get_or_insert(now);
        let arrival_ms = now.saturating_duration_since(base).as_secs_f64() * 1000.0;
        let transit = arrival_ms - self.ticks_to_ms(ext_ts);
        if let Some(last) = self.last_transit_ms {
            let d = (transit - last).abs();
            // Ignore gaps that are clearly talkspurt boundaries or clock jumps.
            if d < f64::from(self.config.max_delay_ms) * 2.0 {
                self.jitter_ms += (d - self.jitter_ms) / 16.0;
                self.jitter_samples = self.jitter_samples.saturating_add(1);
            }
        }
        self.last_transit_ms = Some(transit);
    }

    fn take(&mut self, key: i64, now: Instant) -> Option<Frame> {
        let entry = self.entries.remove(&key)?;
        let delay = now.saturating_duration_since(entry.arrival).as_secs_f64() * 1000.0;
        self.smoothed_delay_ms = Some(match self.smoothed_delay_ms {
            None => delay,
            Some(s) => s + (delay - s) / 8.0,
        });
        self.stats.played += 1;
        self.owed = 0;
        self.next_ts = Some(key + self.frame_ticks);
        Some(entry.frame)
    }

    fn missing(&mut self, next: i64) -> Playout {
        self.stats.missing += 1;
        self.next_ts = Some(next + self.frame_ticks);
        Playout::Missing {
            timestamp: next as u32,
        }
    }

    /// The buffered frame that follows the frame at RTP `timestamp` (normally the one
    /// just reported as [`Playout::Missing`]), without removing it: its payload carries
    /// Opus in-band FEC for the missing frame (see
    /// [`crate::AudioDecoder::play_with_next`]).
    pub fn peek_next(&self, timestamp: u32) -> Option<&Frame> {
        let want = timestamp.wrapping_add(self.frame_ticks as u32);
        self.entries
            .values()
            .take(4)
            .map(|e| &e.frame)
            .find(|f| f.timestamp == want)
    }

    /// Returns what to play for the next frame period.
    pub fn pop(&mut self, now: Instant) -> Playout {
        self.late_bump_ms *= 0.998;
        let target_ms = self.target_delay().as_secs_f64() * 1000.0;
        let frame_ms = self.frame_ms();

        let Some(next) = self.next_ts else {
            let Some((&first, entry)) = self.entries.iter().next() else {
                return Playout::Buffering;
            };
            let waited = now.saturating_duration_since(entry.arrival).as_secs_f64() * 1000.0;
            if waited + 0.5 < target_ms {
                return Playout::Buffering;
            }
            self.empty_pops = 0;
            self.pops_since_adjust = 0;
            self.smoothed_delay_ms = None;
            return match self.take(first, now) {
                Some(f) => Playout::Frame(f),
                None => Playout::Buffering,
            };
        };

        // Drop anything whose time has passed (only possible after a skip).
        while let Some((&k, _)) = self.entries.iter().next() {
            if k + self.frame_ticks <= next {
                self.entries.remove(&k);
                self.stats.late += 1;
            } else {
                break;
            }
        }

        let Some((&first, first_entry)) = self.entries.iter().next() else {
            self.empty_pops += 1;
            if f64::from(self.empty_pops) * frame_ms >= f64::from(self.config.max_delay_ms) {
                // Long silence: go back to buffering for the next talkspurt.
                self.next_ts = None;
                self.stats.missing += 1;
                return Playout::Missing {
                    timestamp: next as u32,
                };
            }
            // Nothing is here yet: the frame may be late rather than lost (a sender whose
            // clock runs slow, a burst of jitter). Conceal this period but keep the
            // playout point, so the frame still plays when it comes (advancing would make
            // it, and every frame after it, arrive "too late"); a later frame arriving
            // first shows a loss (the gap case below). The delay grows by one frame,
            // which the shrink rule takes back once the path is calm.
            self.stats.missing += 1;
            self.stats.underflows += 1;
            // The period this stands for: the first missing frame, then the ones after it.
            let timestamp = next + self.owed * self.frame_ticks;
            self.owed += 1;
            return Playout::Missing {
                timestamp: timestamp as u32,
            };
        };
        self.empty_pops = 0;
        let first_marker = first_entry.frame.marker;

        if first >= next + self.frame_ticks {
            // Gap at the playout point.
            if first_marker {
                // New talkspurt after silence: jump to it.
                self.stats.resyncs += 1;
                self.pops_since_adjust = 0;
                return match self.take(first, now) {
                    Some(f) => Playout::Frame(f),
                    None => self.missing(next),
                };
            }
            // The periods already concealed while the buffer was empty stood for these
            // lost frames: skip them rather than conceal them a second time.
            let gap = (first - next) / self.frame_ticks;
            let skip = self.owed.min(gap);
            self.owed = 0;
            if skip > 0 {
                let next = next + skip * self.frame_ticks;
                self.next_ts = Some(next);
                if first < next + self.frame_ticks {
                    return match self.take(first, now) {
                        Some(f) => Playout::Frame(f),
                        None => self.missing(next),
                    };
                }
                return self.missing(next);
            }
            return self.missing(next);
        }

        // The frame due now is present: adapt the delay, then play.
        self.pops_since_adjust += 1;
        if self.pops_since_adjust >= 5 {
            if let Some(current) = self.smoothed_delay_ms {
                let next_key = first + self.frame_ticks;
                if current > target_ms + 2.0 * frame_ms && self.entries.contains_key(&next_key) {
                    self.entries.remove(&first);
                    self.stats.dropped_to_shrink += 1;
                    self.pops_since_adjust = 0;
                    self.smoothed_delay_ms = Some(current - frame_ms);
                    return match self.take(next_key, now) {
                        Some(f) => Playout::Frame(f),
                        None => self.missing(next),
                    };
                }
                if current + frame_ms < target_ms {
                    self.stats.inserted_to_grow += 1;
                    self.stats.missing += 1;
                    self.pops_since_adjust = 0;
                    self.smoothed_delay_ms = Some(current + frame_ms);
                    // Do not advance: the present frame plays next time.
                    return Playout::Missing {
                        timestamp: first.wrapping_sub(self.frame_ticks) as u32,
                    };
                }
            }
        }
        match self.take(first, now) {
            Some(f) => Playout::Frame(f),
            None => self.missing(next),
        }
    }
}
