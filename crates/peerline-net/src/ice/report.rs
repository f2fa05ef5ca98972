//! The path report: which candidate pair media took, and through which configured TURN
//! server if any.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::CandidateKind;

/// The selected candidate pair of a call, as shown to the user at the end of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathReport {
    /// Our side of the pair.
    pub local_type: CandidateKind,
    /// Their side of the pair.
    pub remote_type: CandidateKind,
    /// Our address on the pair (for a relay candidate: the address on the TURN server).
    pub local_addr: SocketAddr,
    /// Their address on the pair.
    pub remote_addr: SocketAddr,
    /// The configured TURN server our relay candidate is on (`turn:host:port?transport=udp`),
    /// when `local_type` is relay. (A remote relay is the peer's TURN server, not ours.)
    pub turn_server: Option<String>,
    /// Round-trip time, when measured. webrtc-ice 0.17 does not time its checks, so this is
    /// filled by whoever measures it (RTCP in a call, [`PathReport::with_rtt`]).
    pub rtt: Option<Duration>,
    /// From the start of connectivity checks to the selected pair.
    pub connect_time: Duration,
}

impl PathReport {
    /// Neither side is a relay candidate: media flows end to end.
    pub fn is_direct(&self) -> bool {
        !self.local_type.is_relay() && !self.remote_type.is_relay()
    }

    /// The same report with a measured RTT.
    pub fn with_rtt(mut self, rtt: Duration) -> Self {
        self.rtt = Some(rtt);
        self
    }

    /// The report as one JSON object (no serializer dependency; all values are plain).
    pub fn to_json(&self) -> String {
        let turn = match &self.turn_server {
            Some(t) => format!("\"{}\"", json_escape(t)),
            None => "null".into(),
        };
        let rtt = match self.rtt {
            Some(r) => format!("{:.3}", r.as_secs_f64() * 1000.0),
            None => "null".into(),
        };
        format!(
            "{{\"local_type\":\"{}\",\"remote_type\":\"{}\",\"local_addr\":\"{}\",\"remote_addr\":\"{}\",\"turn_server\":{},\"rtt_ms\":{},\"connect_ms\":{:.3},\"direct\":{}}}",
            self.local_type,
            self.remote_type,
            self.local_addr,
            self.remote_addr,
            turn,
            rtt,
            self.connect_time.as_secs_f64() * 1000.0,
            self.is_direct()
        )
    }
}

impl fmt::Display for PathReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} {}",
            self.local_type, self.local_addr, self.remote_type, self.remote_addr
        )?;
        if let Some(t) = &self.turn_server {
            write!(f, " via {t}")?;
        } else if self.is_direct() {
            f.write_str(" (direct)")?;
        }
        if let Some(r) = self.rtt {
            write!(f, ", rtt {:.1} ms", r.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_text() {
        let r = PathReport {
            local_type: CandidateKind::Relay,
            remote_type: CandidateKind::Srflx,
            local_addr: "203.0.113.1:50000".parse().unwrap(),
            remote_addr: "198.51.100.7:40000".parse().unwrap(),
            turn_server: Some("turn:203.0.113.1:3478?transport=udp".into()),
            rtt: None,
            connect_time: Duration::from_millis(2100),
        };
        assert!(!r.is_direct());
        assert_eq!(
            r.to_json(),
            "{\"local_type\":\"relay\",\"remote_type\":\"srflx\",\"local_addr\":\"203.0.113.1:50000\",\"remote_addr\":\"198.51.100.7:40000\",\"turn_server\":\"turn:203.0.113.1:3478?transport=udp\",\"rtt_ms\":null,\"connect_ms\":2100.000,\"direct\":false}"
        );
        let r = r.with_rtt(Duration::from_micros(1500));
        assert!(r
            .to_string()
            .ends_with("via turn:203.0.113.1:3478?transport=udp, rtt 1.5 ms"));
        assert_eq!(json_escape("a\"b\\\n"), "a\\\"b\\\\\\u000a");
    }
}
