//! RFC 3550 appendix A.1 style sequence number tracking: extended sequence numbers
//! across wraparound, duplicate and reorder detection, expected-packet count.

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const WINDOW: u64 = 1024;

/// Result of feeding one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqUpdate {
    /// Extended (wraparound-free) sequence number.
    pub extended: u64,
    pub duplicate: bool,
    /// Arrived after a packet with a higher sequence number.
    pub reordered: bool,
    /// The sequence number jumped far and the tracker re-synchronised on it.
    pub resynced: bool,
}

/// Tracks extended sequence numbers of one source.
#[derive(Debug, Clone, Default)]
pub struct SequenceTracker {
    initialized: bool,
    max_seq: u16,
    cycles: u64,
    base_ext: u64,
    expected_before_resync: u64,
    bad_seq: Option<u16>,
    seen: [u64; (WINDOW / 64) as usize],
}

impl SequenceTracker {
    /// Highest extended sequence number seen (0 before the first packet).
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// Packets expected so far (RFC 3550 A.3).
    pub fn expected(&self) -> u64 {
        if !self.initialized {
            return 0;
        }
        self.expected_before_resync + (self.extended_max() + 1).saturating_sub(self.base_ext)
    }

    fn bit(&self, ext: u64) -> bool {
        let i = (ext % WINDOW) as usize;
        self.seen[i / 64] & (1 << (i % 64)) != 0
    }
    fn set_bit(&mut self, ext: u64, on: bool) {
        let i = (ext % WINDOW) as usize;
        if on {
            self.seen[i / 64] |= 1 << (i % 64);
        } else {
            self.seen[i / 64] &= !(1 << (i % 64));
        }
    }

    fn init(&mut self, seq: u16) {
        if self.initialized {
            self.expected_before_resync = self.expected();
        }
        self.initialized = true;
        self.max_seq = seq;
        // Start one cycle up so that slightly older packets still have a valid
        // extended number.
        self.cycles = 1 << 16;
        self.base_ext = self.extended_max();
        self.bad_seq = None;
        self.seen = [0; (WINDOW / 64) as usize];
        let ext = self.extended_max();
        self.set_bit(ext, true);
    }

    /// Feeds one received sequence number.
    pub fn update(&mut self, seq: u16) -> SeqUpdate {
        if !self.initialized {
            self.init(seq);
            return SeqUpdate {
                extended: self.extended_max(),
                duplicate: false,
                reordered: false,
                resynced: false,
            };
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        let old_max = self.extended_max();
        if udelta == 0 {
            return SeqUpdate {
                extended: old_max,
                duplicate: true,
                reordered: false,
                resynced: false,
            };
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
            let new_max = self.extended_max();
            if new_max - old_max >= WINDOW {
                self.seen = [0; (WINDOW / 64) as usize];
            } else {
                for e in old_max + 1..new_max {
                    self.set_bit(e, false);
                }
            }
            self.set_bit(new_max, true);
            self.bad_seq = None;
            return SeqUpdate {
                extended: new_max,
                duplicate: false,
                reordered: false,
                resynced: false,
            };
        }
        if udelta <= u16::MAX - MAX_MISORDER {
            // A large jump: accept only if the next packet continues from it.
            if self.bad_seq == Some(seq) {
                self.init(seq);
                return SeqUpdate {
                    extended: self.extended_max(),
                    duplicate: false,
                    reordered: false,
                    resynced: true,
                };
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            return SeqUpdate {
                extended: old_max,
                duplicate: false,
                reordered: true,
                resynced: false,
            };
        }
        // Older packet (reordered or duplicate).
        let back = u64::from(self.max_seq.wrapping_sub(seq));
        let Some(ext) = old_max.checked_sub(back) else {
            return SeqUpdate {
                extended: 0,
                duplicate: false,
                reordered: true,
                resynced: false,
            };
        };
        if ext < self.base_ext {
            // Before the first packet we saw: extend the base.
            self.base_ext = ext;
        }
        let duplicate = back < WINDOW && self.bit(ext);
        if back < WINDOW {
            self.set_bit(ext, true);
        }
        SeqUpdate {
            extended: ext,
            duplicate,
            reordered: !duplicate,
            resynced: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around() {
        let mut t = SequenceTracker::default();
        let mut last = 0;
        for i in 0..200u32 {
            let seq = (65500u32 + i) as u16;
            let u = t.update(seq);
            assert!(!u.duplicate && !u.reordered);
            if i > 0 {
                assert_eq!(u.extended, last + 1);
            }
            last = u.extended;
        }
        assert_eq!(t.expected(), 200);
    }

    #[test]
    fn loss_reorder_duplicates() {
        let mut t = SequenceTracker::default();
        for s in [10u16, 11, 13, 12, 12, 14, 17] {
            t.update(s);
        }
        // 10..=17 expected = 8; received distinct = 10,11,12,13,14,17 = 6.
        assert_eq!(t.expected(), 8);
        let mut t = SequenceTracker::default();
        assert!(!t.update(5).duplicate);
        assert!(t.update(5).duplicate);
        assert!(!t.update(7).duplicate);
        let u = t.update(6);
        assert!(u.reordered && !u.duplicate);
        assert!(t.update(6).duplicate);
    }

    #[test]
    fn reordered_across_wrap() {
        let mut t = SequenceTracker::default();
        t.update(65534);
        t.update(0);
        let u = t.update(65535);
        assert!(u.reordered);
        assert_eq!(u.extended + 1, t.extended_max());
        assert_eq!(t.expected(), 3);
    }

    #[test]
    fn big_jump_resyncs_after_two() {
        let mut t = SequenceTracker::default();
        t.update(100);
        t.update(101);
        let u = t.update(30000);
        assert!(!u.resynced);
        let u = t.update(30001);
        assert!(u.resynced);
        t.update(30002);
        // 2 before + 2 after resync (30000 was not counted as part of the new run).
        assert_eq!(t.expected(), 4);
    }

    #[test]
    fn packet_before_first_extends_base() {
        let mut t = SequenceTracker::default();
        t.update(10);
        t.update(9);
        assert_eq!(t.expected(), 2);
    }
}
