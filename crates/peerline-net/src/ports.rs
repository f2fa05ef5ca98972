//! The configured RTP port range: Peerline never uses a media port outside it, so an admin
//! can allow or block it with one firewall rule.

use std::fmt;

/// Why a port range is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// The text was not `LOW-HIGH`.
    #[error("port range {0:?} is not of the form LOW-HIGH")]
    Syntax(String),
    /// LOW > HIGH, a zero port, or no even port inside (e.g. `65535-65535`).
    #[error("port range {low}-{high} is empty, starts at 0 or holds no even port")]
    Empty {
        /// First port.
        low: u16,
        /// Last port.
        high: u16,
    },
}

/// An inclusive range of UDP ports for RTP. RTP uses even ports (RFC 3550 §11), so a call
/// takes one even port (and the odd one above it for peers that want RTCP apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    low: u16,
    high: u16,
    next: u16,
}

impl PortRange {
    /// The default range, 16384-32767 (the range many phones and PBXes use).
    pub const DEFAULT: PortRange = PortRange {
        low: 16384,
        high: 32767,
        next: 16384,
    };

    /// A range `low..=high`.
    pub fn new(low: u16, high: u16) -> Result<Self, PortRangeError> {
        // RTP needs an even port: `low` odd and `high == low` (e.g. 65535-65535) has none,
        // and `low + 1` would overflow for 65535 (found by the `config` fuzz target).
        let first = match low.checked_add(low % 2) {
            Some(f) if low != 0 && f <= high => f,
            _ => return Err(PortRangeError::Empty { low, high }),
        };
        Ok(Self {
            low,
            high,
            next: first,
        })
    }

    /// Parses `"16384-32767"`.
    pub fn parse(s: &str) -> Result<Self, PortRangeError> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| PortRangeError::Syntax(s.into()))?;
        let low = a
            .trim()
            .parse()
            .map_err(|_| PortRangeError::Syntax(s.into()))?;
        let high = b
            .trim()
            .parse()
            .map_err(|_| PortRangeError::Syntax(s.into()))?;
        Self::new(low, high)
    }

    /// First port.
    pub fn low(&self) -> u16 {
        self.low
    }

    /// Last port.
    pub fn high(&self) -> u16 {
        self.high
    }

    /// Whether `port` is inside the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }

    /// The even ports to try for the next call, starting after the last one handed out
    /// and wrapping around once; every port returned lies inside the range.
    pub fn candidates(&mut self) -> Vec<u16> {
        let first_even = self.low.saturating_add(self.low % 2);
        let evens: Vec<u16> = (first_even..=self.high).step_by(2).collect();
        if evens.is_empty() {
            return evens;
        }
        let start = evens.iter().position(|&p| p >= self.next).unwrap_or(0);
        let mut out = Vec::with_capacity(evens.len());
        out.extend_from_slice(&evens[start..]);
        out.extend_from_slice(&evens[..start]);
        self.next = match out.get(1) {
            Some(&p) => p,
            None => first_even,
        };
        out
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let r = PortRange::parse("16384-16390").unwrap();
        assert_eq!((r.low(), r.high()), (16384, 16390));
        assert!(PortRange::parse("16384").is_err());
        assert!(PortRange::parse("20-10").is_err());
        assert!(PortRange::parse("0-10").is_err());
        assert!(PortRange::parse("a-b").is_err());
        // No even port inside: refused, not an overflow (fuzz corpus `config/odd_range.toml`).
        assert!(PortRange::parse("65535-65535").is_err());
        assert!(PortRange::parse("5001-5001").is_err());
        let mut top = PortRange::parse("65534-65535").unwrap();
        assert_eq!(top.candidates(), vec![65534]);
    }

    #[test]
    fn candidates_are_even_inside_and_rotate() {
        let mut r = PortRange::parse("10001-10008").unwrap();
        let first = r.candidates();
        assert_eq!(first, vec![10002, 10004, 10006, 10008]);
        let second = r.candidates();
        assert_eq!(second, vec![10004, 10006, 10008, 10002]);
        assert!(second.iter().all(|p| r.contains(*p) && p % 2 == 0));
    }
}
