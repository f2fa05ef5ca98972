//! The SDP data model (RFC 8866) and its serialization.

use std::fmt;
use std::net::IpAddr;

use crate::attribute::{
    Attribute, Candidate, Crypto, Direction, Fingerprint, Fmtp, RemoteCandidate, Rtcp, Rtpmap,
    Setup,
};

/// Address type of `c=` / `o=` lines (network type is always `IN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl AddrType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "IP4" => Some(AddrType::Ip4),
            "IP6" => Some(AddrType::Ip6),
            _ => None,
        }
    }
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }
    /// The address type of an IP address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <unicast-address>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; incremented on every change (RFC 3264 §8).
    pub session_version: u64,
    /// Address type.
    pub addr_type: AddrType,
    /// Address of the originating host (IP or FQDN).
    pub address: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} IN {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.addr_type.as_str(),
            self.address
        )
    }
}

/// `c=IN <addrtype> <address>[/<ttl>][/<count>]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Address type.
    pub addr_type: AddrType,
    /// Address (IP or FQDN), without the multicast suffix.
    pub address: String,
    /// Multicast suffix after the first `/` (`ttl[/count]` or `count`), verbatim.
    pub multicast: Option<String>,
}

impl Connection {
    /// A unicast connection for `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Connection {
            addr_type: AddrType::of(ip),
            address: ip.to_string(),
            multicast: None,
        }
    }
    /// The address as an IP, if literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
    /// `0.0.0.0` / `::` — the RFC 2543 style of putting a call on hold.
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IN {} {}", self.addr_type.as_str(), self.address)?;
        if let Some(m) = &self.multicast {
            write!(f, "/{m}")?;
        }
        Ok(())
    }
}

/// `b=<bwtype>:<bandwidth>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// Type, e.g. `AS`, `TIAS`, `CT`.
    pub bwtype: String,
    /// Value (kbit/s for AS/CT, bit/s for TIAS).
    pub value: u64,
}

/// `t=<start> <stop>` with its `r=` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds, 0 = unbounded).
    pub start: u64,
    /// Stop time (NTP seconds, 0 = unbounded).
    pub stop: u64,
    /// `r=` lines, verbatim.
    pub repeats: Vec<String>,
}

/// Media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`
    Audio,
    /// `video`
    Video,
    /// `text`
    Text,
    /// `application`
    Application,
    /// `message`
    Message,
    /// `image` (T.38)
    Image,
    /// Anything else, verbatim.
    Other(String),
}

impl MediaKind {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            o => MediaKind::Other(o.to_owned()),
        }
    }
    /// Wire name.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Other(o) => o,
        }
    }
}

/// Limits that protect the parser against absurd input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum body size in bytes.
    pub max_bytes: usize,
    /// Maximum number of lines.
    pub max_lines: usize,
    /// Maximum length of one line in bytes.
    pub max_line_len: usize,
    /// Maximum number of `m=` sections.
    pub max_media: usize,
    /// Maximum number of formats on one `m=` line.
    pub max_formats: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024,
            max_lines: 2048,
            max_line_len: 4096,
            max_media: 32,
            max_formats: 64,
        }
    }
}

/// One media section (`m=` line and what follows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port (0 = stream rejected/disabled).
    pub port: u16,
    /// Number of ports (`m=audio 49170/2 ...`).
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`.
    pub proto: String,
    /// Formats (RTP payload types as decimal strings for RTP protocols).
    pub formats: Vec<String>,
    /// `i=` media title.
    pub title: Option<String>,
    /// `c=` lines of this section.
    pub connections: Vec<Connection>,
    /// `b=` lines of this section.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=` line (obsolete), verbatim.
    pub key: Option<String>,
    /// `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

/// A complete session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` line.
    pub origin: Origin,
    /// `s=` line (`-` when the peer sent none).
    pub session_name: String,
    /// `i=` line.
    pub session_info: Option<String>,
    /// `u=` line.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=` line.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines (at least one after parsing).
    pub timings: Vec<Timing>,
    /// `z=` line, verbatim.
    pub time_zones: Option<String>,
    /// `k=` line (obsolete), verbatim.
    pub key: Option<String>,
    /// Session-level `a=` lines in order.
    pub attributes: Vec<Attribute>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

/// Typed read access to an attribute list, shared by session and media level.
macro_rules! attribute_accessors {
    () => {
        /// All `a=rtpmap` values.
        pub fn rtpmaps(&self) -> impl Iterator<Item = &Rtpmap> {
            self.attributes.iter().filter_map(|a| match a {
                Attribute::Rtpmap(r) => Some(r),
                _ => None,
            })
        }
        /// `a=rtpmap` for payload type `pt`.
        pub fn rtpmap(&self, pt: u8) -> Option<&Rtpmap> {
            self.rtpmaps().find(|r| r.payload_type == pt)
        }
        /// All `a=fmtp` values.
        pub fn fmtps(&self) -> impl Iterator<Item = &Fmtp> {
            self.attributes.iter().filter_map(|a| match a {
                Attribute::Fmtp(r) => Some(r),
                _ => None,
            })
        }
        /// `a=fmtp` for payload type `pt`.
        pub fn fmtp(&self, pt: u8) -> Option<&Fmtp> {
            self.fmtps().find(|f| f.payload_type() == Some(pt))
        }
        /// `a=ptime`.
        pub fn ptime(&self) -> Option<u32> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::Ptime(p) => Some(*p),
                _ => None,
            })
        }
        /// `a=maxptime`.
        pub fn maxptime(&self) -> Option<u32> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::MaxPtime(p) => Some(*p),
                _ => None,
            })
        }
        /// Explicit direction attribute at this level (the last one wins).
        pub fn direction(&self) -> Option<Direction> {
            self.attributes.iter().rev().find_map(|a| match a {
                Attribute::Direction(d) => Some(*d),
                _ => None,
            })
        }
        /// `a=rtcp`.
        pub fn rtcp(&self) -> Option<&Rtcp> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::Rtcp(r) => Some(r),
                _ => None,
            })
        }
        /// Whether `a=rtcp-mux` is present.
        pub fn rtcp_mux(&self) -> bool {
            self.attributes
                .iter()
                .any(|a| matches!(a, Attribute::RtcpMux))
        }
        /// All `a=crypto` lines.
        pub fn crypto(&self) -> impl Iterator<Item = &Crypto> {
            self.attributes.iter().filter_map(|a| match a {
                Attribute::Crypto(c) => Some(c),
                _ => None,
            })
        }
        /// All `a=fingerprint` lines.
        pub fn fingerprints(&self) -> impl Iterator<Item = &Fingerprint> {
            self.attributes.iter().filter_map(|a| match a {
                Attribute::Fingerprint(c) => Some(c),
                _ => None,
            })
        }
        /// `a=setup`.
        pub fn setup(&self) -> Option<Setup> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::Setup(s) => Some(*s),
                _ => None,
            })
        }
        /// `a=ice-ufrag`.
        pub fn ice_ufrag(&self) -> Option<&str> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::IceUfrag(s) => Some(s.as_str()),
                _ => None,
            })
        }
        /// `a=ice-pwd`.
        pub fn ice_pwd(&self) -> Option<&str> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::IcePwd(s) => Some(s.as_str()),
                _ => None,
            })
        }
        /// `a=ice-options` tokens (all lines combined).
        pub fn ice_options(&self) -> Vec<&str> {
            self.attributes
                .iter()
                .filter_map(|a| match a {
                    Attribute::IceOptions(o) => Some(o.iter().map(String::as_str)),
                    _ => None,
                })
                .flatten()
                .collect()
        }
        /// Whether `a=ice-lite` is present.
        pub fn ice_lite(&self) -> bool {
            self.attributes
                .iter()
                .any(|a| matches!(a, Attribute::IceLite))
        }
        /// All `a=candidate` lines.
        pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
            self.attributes.iter().filter_map(|a| match a {
                Attribute::Candidate(c) => Some(c),
                _ => None,
            })
        }
        /// `a=remote-candidates`.
        pub fn remote_candidates(&self) -> Option<&[RemoteCandidate]> {
            self.attributes.iter().find_map(|a| match a {
                Attribute::RemoteCandidates(c) => Some(c.as_slice()),
                _ => None,
            })
        }
        /// Whether `a=end-of-candidates` is present.
        pub fn end_of_candidates(&self) -> bool {
            self.attributes
                .iter()
                .any(|a| matches!(a, Attribute::EndOfCandidates))
        }
        /// Values of other (untyped) attributes named `name`.
        pub fn other(&self, name: &str) -> impl Iterator<Item = Option<&str>> + '_ {
            let name = name.to_owned();
            self.attributes.iter().filter_map(move |a| match a {
                Attribute::Other { name: n, value } if *n == name => Some(value.as_deref()),
                _ => None,
            })
        }
        /// Replace every direction attribute with `dir` (added at the end if none).
        pub fn set_direction(&mut self, dir: Direction) {
            let mut found = false;
            self.attributes.retain_mut(|a| {
                if let Attribute::Direction(d) = a {
                    if found {
                        return false;
                    }
                    found = true;
                    *d = dir;
                }
                true
            });
            if !found {
                self.attributes.push(Attribute::Direction(dir));
            }
        }
    };
}

impl MediaDescription {
    attribute_accessors!();

    /// RTP payload types of the `m=` line, in order (formats that are not 0-127 are skipped).
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| crate::attribute::parse_num::<u8>(f).filter(|pt| *pt <= 127))
    }

    /// Whether the transport is RTP-based.
    pub fn is_rtp(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
    }

    /// Whether the profile is secure (`SAVP`/`SAVPF`).
    pub fn is_secure_profile(&self) -> bool {
        self.proto
            .split('/')
            .any(|p| p.eq_ignore_ascii_case("SAVP") || p.eq_ignore_ascii_case("SAVPF"))
    }

    /// Whether the transport is DTLS-SRTP (`UDP/TLS/RTP/SAVP[F]`).
    pub fn is_dtls(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("TLS")) && self.is_rtp()
    }
}

impl SessionDescription {
    attribute_accessors!();

    /// The connection that applies to media section `m`: its own first `c=`, else the
    /// session-level one.
    pub fn connection_for<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a Connection> {
        m.connections.first().or(self.connection.as_ref())
    }

    /// Effective direction of media section `m`: media level, else session level, else
    /// `sendrecv` (RFC 3264 §5.1).
    pub fn media_direction(&self, m: &MediaDescription) -> Direction {
        m.direction().or(self.direction()).unwrap_or_default()
    }

    /// Serialize with CRLF line endings (same as `to_string()`).
    pub fn to_sdp(&self) -> String {
        self.to_string()
    }
}

/// Serializes with CRLF line endings in RFC 8866 order.
impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=0\r\n")?;
        write!(f, "o={}\r\n", self.origin)?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(i) = &self.session_info {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}:{}\r\n", b.bwtype, b.value)?;
        }
        if self.timings.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.time_zones {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// Serializes the section (`m=` line first) with CRLF line endings.
impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind.as_str(), self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt_ in &self.formats {
            write!(f, " {fmt_}")?;
        }
        f.write_str("\r\n")?;
        if let Some(i) = &self.title {
            write!(f, "i={i}\r\n")?;
        }
        for c in &self.connections {
            write!(f, "c={c}\r\n")?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}:{}\r\n", b.bwtype, b.value)?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}
