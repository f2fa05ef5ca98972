//! ICE configuration: the STUN and TURN servers the user named, the RTP port range, the
//! role, and which local addresses may be offered. Nothing here is discovered: every server
//! the agent talks to comes from this struct.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::ports::PortRange;

use super::IceError;

/// The default STUN/TURN port (RFC 8489 §18.4, RFC 8656 §17).
pub const DEFAULT_STUN_PORT: u16 = 3478;

/// A STUN server from the config: gives server-reflexive (srflx) candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunServer {
    /// Host name or IP literal.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl StunServer {
    /// `host:port` (or `host`, port 3478), optionally prefixed with `stun:`.
    pub fn parse(s: &str) -> Result<Self, IceError> {
        let rest = s.trim();
        let rest = rest.strip_prefix("stun:").unwrap_or(rest);
        let (host, port) = split_host_port(rest).ok_or_else(|| IceError::BadServer {
            server: s.to_owned(),
            reason: "expected stun:HOST[:PORT]".into(),
        })?;
        Ok(Self { host, port })
    }
}

impl From<SocketAddr> for StunServer {
    fn from(a: SocketAddr) -> Self {
        Self {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl fmt::Display for StunServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stun:{}", host_port(&self.host, self.port))
    }
}

/// How we reach a TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnTransport {
    /// `turn:host:port?transport=udp` (the default).
    Udp,
    /// `turn:host:port?transport=tcp`.
    Tcp,
}

impl TurnTransport {
    /// `udp` / `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// A TURN server from the config, with long-term credentials. The only relay Peerline ever
/// uses. `Debug` and `Display` never show the credential.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// Host name or IP literal.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport to the server.
    pub transport: TurnTransport,
    /// Long-term credential user name.
    pub username: String,
    /// Long-term credential password.
    pub credential: String,
}

impl TurnServer {
    /// A UDP TURN server at `addr`.
    pub fn udp(addr: SocketAddr, username: &str, credential: &str) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            transport: TurnTransport::Udp,
            username: username.to_owned(),
            credential: credential.to_owned(),
        }
    }

    /// Parses `turn:HOST[:PORT][?transport=udp|tcp]` with the given credentials.
    pub fn parse(url: &str, username: &str, credential: &str) -> Result<Self, IceError> {
        let bad = |reason: &str| IceError::BadServer {
            server: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url.trim().strip_prefix("turn:").ok_or_else(|| {
            bad("expected turn:HOST[:PORT][?transport=udp|tcp] (turns: is not supported)")
        })?;
        let (hp, query) = match rest.split_once('?') {
            Some((hp, q)) => (hp, Some(q)),
            None => (rest, None),
        };
        let transport = match query {
            None | Some("transport=udp") => TurnTransport::Udp,
            Some("transport=tcp") => TurnTransport::Tcp,
            Some(_) => return Err(bad("transport must be udp or tcp")),
        };
        let (host, port) = split_host_port(hp).ok_or_else(|| bad("bad HOST[:PORT]"))?;
        if username.is_empty() || credential.is_empty() {
            return Err(bad("TURN needs a username and a credential"));
        }
        Ok(Self {
            host,
            port,
            transport,
            username: username.to_owned(),
            credential: credential.to_owned(),
        })
    }

    /// `host:port`.
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }
}

impl fmt::Display for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "turn:{}?transport={}",
            self.host_port(),
            self.transport.as_str()
        )
    }
}

impl fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnServer")
            .field("url", &self.to_string())
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Everything an [`IceSession`](super::IceSession) needs. Every server comes from here.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// STUN servers for srflx candidates (TURN servers answer STUN too and are also asked).
    pub stun_servers: Vec<StunServer>,
    /// TURN servers for relay candidates. Empty: no relay candidate is ever gathered.
    pub turn_servers: Vec<TurnServer>,
    /// Host and srflx sockets are bound inside this range.
    pub port_range: PortRange,
    /// The controlling agent nominates (RFC 8445 §6.1.1: the offerer, unless lite).
    pub controlling: bool,
    /// Offer host candidates only on these addresses (empty: every non-loopback IPv4
    /// address of the host).
    pub host_ips: Vec<IpAddr>,
    /// Also offer loopback addresses (tests; never useful between two machines).
    pub include_loopback: bool,
    /// Upper bound for gathering (STUN answers, TURN allocations).
    pub gather_timeout: Duration,
    /// Upper bound for connectivity checks until a pair is selected.
    pub connect_timeout: Duration,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            port_range: PortRange::DEFAULT,
            controlling: true,
            host_ips: Vec::new(),
            include_loopback: false,
            gather_timeout: Duration::from_secs(6),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl IceConfig {
    /// Checks what webrtc-ice cannot do, before any socket is opened.
    pub fn validate(&self) -> Result<(), IceError> {
        for t in &self.turn_servers {
            if t.transport != TurnTransport::Udp {
                // webrtc-ice 0.17 only allocates over UDP; refusing is clearer than a
                // silently missing relay candidate.
                return Err(IceError::BadServer {
                    server: t.to_string(),
                    reason:
                        "TURN over TCP is not supported by the ICE agent yet; use transport=udp"
                            .into(),
                });
            }
            if t.username.is_empty() || t.credential.is_empty() {
                return Err(IceError::BadServer {
                    server: t.to_string(),
                    reason: "TURN needs a username and a credential".into(),
                });
            }
        }
        Ok(())
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => DEFAULT_STUN_PORT,
            None => return None,
        };
        return Some((h.to_owned(), port));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Some((s.to_owned(), DEFAULT_STUN_PORT));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') => Some((h.to_owned(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((s.to_owned(), DEFAULT_STUN_PORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stun_and_turn_urls() {
        let s = StunServer::parse("stun:stun.example.org").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("stun.example.org", 3478));
        let s = StunServer::parse("192.0.2.1:19302").unwrap();
        assert_eq!(s.to_string(), "stun:192.0.2.1:19302");
        let s = StunServer::parse("[2001:db8::1]:3479").unwrap();
        assert_eq!(s.to_string(), "stun:[2001:db8::1]:3479");
        assert!(StunServer::parse("").is_err());
        assert!(StunServer::parse("h:notaport").is_err());

        let t = TurnServer::parse("turn:turn.example.org:3478?transport=tcp", "u", "p").unwrap();
        assert_eq!(t.transport, TurnTransport::Tcp);
        assert_eq!(t.to_string(), "turn:turn.example.org:3478?transport=tcp");
        let t = TurnServer::parse("turn:198.51.100.7", "u", "p").unwrap();
        assert_eq!(t.host_port(), "198.51.100.7:3478");
        assert!(TurnServer::parse("turns:x", "u", "p").is_err());
        assert!(TurnServer::parse("turn:x?transport=sctp", "u", "p").is_err());
        assert!(TurnServer::parse("turn:x", "", "p").is_err());
    }

    #[test]
    fn turn_credential_is_never_printed() {
        let t = TurnServer::udp("192.0.2.9:3478".parse().unwrap(), "alice", "s3cret");
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(!t.to_string().contains("s3cret"));
        let cfg = IceConfig {
            turn_servers: vec![t],
            ..IceConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn tcp_turn_is_refused_up_front() {
        let cfg = IceConfig {
            turn_servers: vec![TurnServer::parse("turn:x:3478?transport=tcp", "u", "p").unwrap()],
            ..IceConfig::default()
        };
        let e = cfg.validate().unwrap_err();
        assert!(e.to_string().contains("TCP is not supported"), "{e}");
    }
}
