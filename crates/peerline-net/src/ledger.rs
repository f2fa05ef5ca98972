//! The traffic ledger: bytes and packets by remote address, traffic class and direction.
//!
//! A ledger exists per call and per process, so a user or an admin can see exactly where
//! traffic went. It is plain data: the IO driver records each datagram it sends or receives.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

/// Why a datagram was exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficClass {
    /// SIP signaling.
    Sip,
    /// RTP and RTCP media (plain or SRTP).
    Media,
    /// STUN binding requests and ICE connectivity checks and keepalives.
    Stun,
    /// TURN allocations, permissions and relayed data to a configured TURN server.
    Turn,
    /// DTLS handshakes for DTLS-SRTP.
    Dtls,
    /// Received and dropped: malformed, unknown source, or not for us.
    Dropped,
}

impl TrafficClass {
    /// A short lower-case name, as used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::Media => "media",
            Self::Stun => "stun",
            Self::Turn => "turn",
            Self::Dtls => "dtls",
            Self::Dropped => "dropped",
        }
    }
}

/// Whether we sent or received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// From us to the remote address.
    Sent,
    /// From the remote address to us.
    Received,
}

/// Counters for one (remote, class, direction) key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Number of datagrams.
    pub packets: u64,
    /// Number of payload bytes (UDP payload, or bytes of a stream transport).
    pub bytes: u64,
}

/// One row of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The remote address traffic was exchanged with.
    pub remote: SocketAddr,
    /// Why.
    pub class: TrafficClass,
    /// Sent or received.
    pub direction: Direction,
    /// How much.
    pub counter: Counter,
}

/// Bytes and packets by remote address, class and direction.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    rows: BTreeMap<(SocketAddr, TrafficClass, Direction), Counter>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one datagram of `bytes` bytes.
    pub fn record(
        &mut self,
        remote: SocketAddr,
        class: TrafficClass,
        direction: Direction,
        bytes: usize,
    ) {
        let c = self.rows.entry((remote, class, direction)).or_default();
        c.packets += 1;
        c.bytes += bytes as u64;
    }

    /// Adds `counter` (packets and bytes counted elsewhere, e.g. by a TURN bridge) to
    /// one row.
    pub fn add(
        &mut self,
        remote: SocketAddr,
        class: TrafficClass,
        direction: Direction,
        counter: Counter,
    ) {
        let c = self.rows.entry((remote, class, direction)).or_default();
        c.packets += counter.packets;
        c.bytes += counter.bytes;
    }

    /// Adds every row of `other` into this ledger (a call's ledger into the process's).
    pub fn merge(&mut self, other: &Ledger) {
        for (&(remote, class, direction), &v) in &other.rows {
            self.add(remote, class, direction, v);
        }
    }

    /// All rows, ordered by remote address, class and direction.
    pub fn entries(&self) -> impl Iterator<Item = LedgerEntry> + '_ {
        self.rows
            .iter()
            .map(|(&(remote, class, direction), &counter)| LedgerEntry {
                remote,
                class,
                direction,
                counter,
            })
    }

    /// The total for one class and direction over all remotes.
    pub fn total(&self, class: TrafficClass, direction: Direction) -> Counter {
        self.entries()
            .filter(|e| e.class == class && e.direction == direction)
            .fold(Counter::default(), |mut acc, e| {
                acc.packets += e.counter.packets;
                acc.bytes += e.counter.bytes;
                acc
            })
    }

    /// Every remote address we *sent* anything to. The no-relay invariant is checked
    /// against this: it must only hold the call's peer, configured STUN/TURN servers
    /// and the SIP next hop.
    pub fn destinations(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self
            .entries()
            .filter(|e| e.direction == Direction::Sent)
            .map(|e| e.remote)
            .collect();
        v.dedup();
        v
    }

    /// The ledger as JSON (an array of rows), without pulling in a serializer.
    pub fn to_json(&self) -> String {
        let rows: Vec<String> = self
            .entries()
            .map(|e| {
                format!(
                    "{{\"remote\":\"{}\",\"class\":\"{}\",\"direction\":\"{}\",\"packets\":{},\"bytes\":{}}}",
                    e.remote,
                    e.class.name(),
                    match e.direction {
                        Direction::Sent => "sent",
                        Direction::Received => "received",
                    },
                    e.counter.packets,
                    e.counter.bytes
                )
            })
            .collect();
        format!("[{}]", rows.join(","))
    }
}

impl fmt::Display for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:<8} {:<9} {:>8} {:>10}",
            "remote", "class", "direction", "packets", "bytes"
        )?;
        for e in self.entries() {
            writeln!(
                f,
                "{:<24} {:<8} {:<9} {:>8} {:>10}",
                e.remote.to_string(),
                e.class.name(),
                match e.direction {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                },
                e.counter.packets,
                e.counter.bytes
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_by_remote_class_and_direction() {
        let mut l = Ledger::new();
        l.record(a("10.0.0.1:5060"), TrafficClass::Sip, Direction::Sent, 500);
        l.record(a("10.0.0.1:5060"), TrafficClass::Sip, Direction::Sent, 300);
        l.record(
            a("10.0.0.1:5060"),
            TrafficClass::Sip,
            Direction::Received,
            200,
        );
        l.record(
            a("10.0.0.2:4000"),
            TrafficClass::Media,
            Direction::Sent,
            172,
        );
        let sip = l.total(TrafficClass::Sip, Direction::Sent);
        assert_eq!((sip.packets, sip.bytes), (2, 800));
        assert_eq!(l.total(TrafficClass::Media, Direction::Sent).bytes, 172);
        assert_eq!(l.total(TrafficClass::Media, Direction::Received).packets, 0);
        assert_eq!(
            l.destinations(),
            vec![a("10.0.0.1:5060"), a("10.0.0.2:4000")]
        );
        assert_eq!(l.entries().count(), 3);
    }

    #[test]
    fn merge_adds_rows_and_json_lists_them() {
        let mut call = Ledger::new();
        call.record(
            a("127.0.0.1:4000"),
            TrafficClass::Media,
            Direction::Received,
            172,
        );
        let mut process = Ledger::new();
        process.record(
            a("127.0.0.1:4000"),
            TrafficClass::Media,
            Direction::Received,
            100,
        );
        process.merge(&call);
        let m = process.total(TrafficClass::Media, Direction::Received);
        assert_eq!((m.packets, m.bytes), (2, 272));
        assert_eq!(
            process.to_json(),
            "[{\"remote\":\"127.0.0.1:4000\",\"class\":\"media\",\"direction\":\"received\",\"packets\":2,\"bytes\":272}]"
        );
        assert!(process.to_string().contains("127.0.0.1:4000"));
    }

    #[test]
    fn add_counts_packets_and_bytes_counted_elsewhere() {
        let mut l = Ledger::new();
        let turn = a("203.0.113.1:3478");
        l.record(turn, TrafficClass::Turn, Direction::Sent, 100);
        l.add(
            turn,
            TrafficClass::Turn,
            Direction::Sent,
            Counter {
                packets: 3,
                bytes: 300,
            },
        );
        let t = l.total(TrafficClass::Turn, Direction::Sent);
        assert_eq!((t.packets, t.bytes), (4, 400));
        assert_eq!(l.destinations(), vec![turn]);
    }
}
