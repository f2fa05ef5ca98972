//! ICE configuration: the STUN and TURN servers the user named, the RTP port range, the
//! role, and which local addresses may be offered. Nothing here is discovered: every server
//! the agent talks to comes from this struct.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        let (host, port) =
            split_host_port(rest, DEFAULT_STUN_PORT).ok_or_else(|| IceError::BadServer {
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
    /// `turn:host:port?transport=tcp`: TURN over TCP, through Peerline's loopback
    /// bridge (see `turn_bridge`).
    Tcp,
    /// `turns:host:port`: TURN over TLS over TCP (default port 5349), through the bridge.
    Tls,
}

impl TurnTransport {
    /// `udp` / `tcp` / `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// Over a byte stream (TCP or TLS): the agent reaches it through the loopback bridge.
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// The default port of TURN over TLS (RFC 8656 §17).
pub const DEFAULT_TURNS_PORT: u16 = 5349;

/// The default lifetime of TURN REST credentials (one day, as coturn's docs suggest).
pub const DEFAULT_REST_TTL: Duration = Duration::from_secs(86_400);

/// The default user label of TURN REST credentials.
pub const DEFAULT_REST_LABEL: &str = "peerline";

/// How we authenticate to a TURN server. `Debug` never shows a password or a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TurnCredential {
    /// Long-term credentials (RFC 8489 §9.2): a fixed user name and password.
    Static {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// coturn's shared secret (`--use-auth-secret --static-auth-secret=…`, the "TURN REST
    /// API", draft-uberti-behave-turn-rest-00): fresh long-term credentials are derived
    /// for every gathering, see [`rest_credentials`].
    SharedSecret {
        /// The secret shared with the server.
        secret: String,
        /// The user part of the derived user name.
        label: String,
        /// How long derived credentials stay valid.
        ttl: Duration,
    },
}

impl TurnCredential {
    /// The long-term user name and password to use at `now`: the static ones, or REST
    /// credentials derived from the secret that expire at `now + ttl`.
    pub fn resolve(&self, now: SystemTime) -> (String, String) {
        match self {
            Self::Static { username, password } => (username.clone(), password.clone()),
            Self::SharedSecret { secret, label, ttl } => {
                let unix = now
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                rest_credentials(secret, label, *ttl, unix)
            }
        }
    }

    /// The user name (static) or label (shared secret): safe to show.
    pub fn user(&self) -> &str {
        match self {
            Self::Static { username, .. } => username,
            Self::SharedSecret { label, .. } => label,
        }
    }

    fn is_complete(&self) -> bool {
        match self {
            Self::Static { username, password } => !username.is_empty() && !password.is_empty(),
            Self::SharedSecret { secret, label, ttl } => {
                !secret.is_empty() && !label.is_empty() && !ttl.is_zero()
            }
        }
    }
}

impl fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static { username, .. } => f
                .debug_struct("Static")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::SharedSecret { label, ttl, .. } => f
                .debug_struct("SharedSecret")
                .field("secret", &"<redacted>")
                .field("label", label)
                .field("ttl", ttl)
                .finish(),
        }
    }
}

/// TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2, as coturn checks them
/// with `--use-auth-secret`) at unix time `now_unix`: user name `"<expiry>:<label>"` with
/// `expiry = now_unix + ttl`, password `base64(HMAC-SHA1(secret, username))`. Pure: the
/// caller supplies the time.
pub fn rest_credentials(
    secret: &str,
    label: &str,
    ttl: Duration,
    now_unix: u64,
) -> (String, String) {
    use base64::Engine as _;
    let expiry = now_unix.saturating_add(ttl.as_secs());
    let username = format!("{expiry}:{label}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (username, password)
}

/// A TURN server from the config, with its credentials. The only relay Peerline ever
/// uses. `Debug` and `Display` never show a password or a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// Host name or IP literal.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport to the server.
    pub transport: TurnTransport,
    /// Static long-term credentials or a REST shared secret.
    pub credential: TurnCredential,
}

impl TurnServer {
    /// A UDP TURN server at `addr` with static long-term credentials.
    pub fn udp(addr: SocketAddr, username: &str, credential: &str) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            transport: TurnTransport::Udp,
            credential: TurnCredential::Static {
                username: username.to_owned(),
                password: credential.to_owned(),
            },
        }
    }

    /// Parses `turn:HOST[:PORT][?transport=udp|tcp]` or `turns:HOST[:PORT][?transport=tcp]`
    /// with static long-term credentials.
    pub fn parse(url: &str, username: &str, credential: &str) -> Result<Self, IceError> {
        Self::parse_with(
            url,
            TurnCredential::Static {
                username: username.to_owned(),
                password: credential.to_owned(),
            },
        )
    }

    /// Parses `turn:HOST[:PORT][?transport=udp|tcp]` (port 3478) or
    /// `turns:HOST[:PORT][?transport=tcp]` (TLS, port 5349) with the given credentials.
    pub fn parse_with(url: &str, credential: TurnCredential) -> Result<Self, IceError> {
        let bad = |reason: &str| IceError::BadServer {
            server: url.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = url.trim();
        let (tls, rest) = match (
            trimmed.strip_prefix("turn:"),
            trimmed.strip_prefix("turns:"),
        ) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => {
                return Err(bad(
                    "expected turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]",
                ))
            }
        };
        let (hp, query) = match rest.split_once('?') {
            Some((hp, q)) => (hp, Some(q)),
            None => (rest, None),
        };
        let transport = match (tls, query) {
            (false, None | Some("transport=udp")) => TurnTransport::Udp,
            (false, Some("transport=tcp")) => TurnTransport::Tcp,
            (false, Some(_)) => return Err(bad("transport must be udp or tcp")),
            (true, None | Some("transport=tcp")) => TurnTransport::Tls,
            (true, Some(_)) => {
                return Err(bad("turns: runs over TLS over TCP (transport=tcp or none)"))
            }
        };
        let default_port = if tls {
            DEFAULT_TURNS_PORT
        } else {
            DEFAULT_STUN_PORT
        };
        let (host, port) =
            split_host_port(hp, default_port).ok_or_else(|| bad("bad HOST[:PORT]"))?;
        if !credential.is_complete() {
            return Err(bad(MISSING_CREDENTIAL));
        }
        Ok(Self {
            host,
            port,
            transport,
            credential,
        })
    }

    /// `host:port`.
    pub fn host_port(&self) -> String {
        host_port(&self.host, self.port)
    }
}

const MISSING_CREDENTIAL: &str =
    "TURN needs a username and a credential, or a non-empty secret, label and ttl";

impl fmt::Display for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            TurnTransport::Tls => write!(f, "turns:{}", self.host_port()),
            t => write!(f, "turn:{}?transport={}", self.host_port(), t.as_str()),
        }
    }
}

impl fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnServer")
            .field("url", &self.to_string())
            .field("credential", &self.credential)
            .finish()
    }
}

/// How `turns:` servers are verified: a rustls client configuration (the UA builds the
/// one SIP over TLS uses).
pub type TurnTlsConfig = rustls::ClientConfig;

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
    /// How `turns:` servers are verified (the same trust anchors and pins as SIP over TLS,
    /// built by the UA). `None`: the system's root certificates.
    pub turn_tls: Option<Arc<TurnTlsConfig>>,
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
            turn_tls: None,
        }
    }
}

impl IceConfig {
    /// Checks the servers before any socket is opened.
    pub fn validate(&self) -> Result<(), IceError> {
        for t in &self.turn_servers {
            if !t.credential.is_complete() {
                return Err(IceError::BadServer {
                    server: t.to_string(),
                    reason: MISSING_CREDENTIAL.into(),
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

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal (no port: `default`).
fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        return Some((h.to_owned(), port));
    }
    if s.parse::<IpAddr>().is_ok() {
        return Some((s.to_owned(), default));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(':') => Some((h.to_owned(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((s.to_owned(), default)),
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
        assert!(TurnServer::parse("turnx:x", "u", "p").is_err());
        assert!(TurnServer::parse("turn:x?transport=sctp", "u", "p").is_err());
        assert!(TurnServer::parse("turns:x?transport=udp", "u", "p").is_err());
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
        let r = TurnServer::parse_with(
            "turn:192.0.2.9",
            TurnCredential::SharedSecret {
                secret: "north-wind".into(),
                label: "bob".into(),
                ttl: DEFAULT_REST_TTL,
            },
        )
        .unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("north-wind") && dbg.contains("bob"), "{dbg}");
    }

    /// Expected values computed independently with Python:
    /// `base64.b64encode(hmac.new(b"north-wind", b"1700086400:peerline", hashlib.sha1).digest())`.
    #[test]
    fn rest_credentials_match_an_independent_hmac_sha1() {
        let (u, p) = rest_credentials("north-wind", "peerline", DEFAULT_REST_TTL, 1_700_000_000);
        assert_eq!(u, "1700086400:peerline");
        assert_eq!(p, "c4OGtP9yy64n5em+GdyETMelE7c=");
        // The time is injected: the same instant through `resolve` gives the same pair,
        // a later one a later expiry (every gathering gets fresh credentials).
        let c = TurnCredential::SharedSecret {
            secret: "north-wind".into(),
            label: "peerline".into(),
            ttl: DEFAULT_REST_TTL,
        };
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(c.resolve(at), (u, p));
        let (later, _) = c.resolve(at + Duration::from_secs(60));
        assert_eq!(later, "1700086460:peerline");
        let s = TurnCredential::Static {
            username: "alice".into(),
            password: "pw".into(),
        };
        assert_eq!(s.resolve(at), ("alice".into(), "pw".into()));
    }

    #[test]
    fn incomplete_shared_secrets_are_refused() {
        for (secret, label, ttl) in [("", "l", 60), ("s", "", 60), ("s", "l", 0)] {
            let c = TurnCredential::SharedSecret {
                secret: secret.into(),
                label: label.into(),
                ttl: Duration::from_secs(ttl),
            };
            assert!(TurnServer::parse_with("turn:192.0.2.9", c).is_err());
        }
    }

    #[test]
    fn tcp_and_tls_turn_are_accepted() {
        let t = TurnServer::parse("turn:192.0.2.7?transport=tcp", "u", "p").unwrap();
        assert_eq!(
            (t.transport, t.port, t.transport.is_stream()),
            (TurnTransport::Tcp, 3478, true)
        );
        assert_eq!(t.to_string(), "turn:192.0.2.7:3478?transport=tcp");
        let t = TurnServer::parse("turns:turn.example.org", "u", "p").unwrap();
        assert_eq!(
            (t.transport, t.port),
            (TurnTransport::Tls, DEFAULT_TURNS_PORT)
        );
        assert_eq!(t.to_string(), "turns:turn.example.org:5349");
        let t = TurnServer::parse("turns:[2001:db8::9]:443?transport=tcp", "u", "p").unwrap();
        assert_eq!(t.to_string(), "turns:[2001:db8::9]:443");
        let rest = TurnServer::parse_with(
            "turns:192.0.2.7:5350",
            TurnCredential::SharedSecret {
                secret: "s".into(),
                label: "l".into(),
                ttl: DEFAULT_REST_TTL,
            },
        )
        .unwrap();
        let cfg = IceConfig {
            turn_servers: vec![
                TurnServer::parse("turn:x:3478?transport=tcp", "u", "p").unwrap(),
                rest,
            ],
            ..IceConfig::default()
        };
        assert_eq!(cfg.validate(), Ok(()));
        assert!(!TurnTransport::Udp.is_stream());
    }
}
