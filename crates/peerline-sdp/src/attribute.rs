//! Typed SDP attributes (`a=` lines).
//!
//! Attributes that Peerline understands are parsed into typed values; every other
//! attribute is kept verbatim as [`Attribute::Other`] so it is re-serialized unchanged
//! and in its original position.

use std::fmt;
use std::net::IpAddr;

use crate::error::{snippet, Problem};
use crate::model::AddrType;

/// One `a=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`
    Rtpmap(Rtpmap),
    /// `a=fmtp:<format> <parameters>`
    Fmtp(Fmtp),
    /// `a=ptime:<ms>`
    Ptime(u32),
    /// `a=maxptime:<ms>`
    MaxPtime(u32),
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive`
    Direction(Direction),
    /// `a=rtcp:<port> [IN <addrtype> <addr>]` (RFC 3605)
    Rtcp(Rtcp),
    /// `a=rtcp-mux` (RFC 5761)
    RtcpMux,
    /// `a=crypto:...` (RFC 4568 SDES)
    Crypto(Crypto),
    /// `a=fingerprint:<hash> <hex>` (RFC 8122)
    Fingerprint(Fingerprint),
    /// `a=setup:<role>` (RFC 4145)
    Setup(Setup),
    /// `a=ice-ufrag:<ufrag>` (RFC 8839)
    IceUfrag(String),
    /// `a=ice-pwd:<pwd>` (RFC 8839)
    IcePwd(String),
    /// `a=ice-options:<option> ...` (RFC 8839)
    IceOptions(Vec<String>),
    /// `a=ice-lite` (RFC 8839)
    IceLite,
    /// `a=candidate:...` (RFC 8839)
    Candidate(Candidate),
    /// `a=remote-candidates:...` (RFC 8839)
    RemoteCandidates(Vec<RemoteCandidate>),
    /// `a=end-of-candidates` (RFC 8840)
    EndOfCandidates,
    /// Any other attribute, kept verbatim.
    Other {
        /// Attribute name (text before the first `:`).
        name: String,
        /// Value (text after the first `:`), `None` for a property attribute.
        value: Option<String>,
    },
}

impl Attribute {
    /// Parse the text after `a=` (without the line ending).
    pub fn parse(text: &str) -> Result<Self, Problem> {
        Self::parse_parts(text).map_err(|(attribute, reason)| Problem::Attribute {
            attribute: snippet(&attribute),
            reason,
        })
    }

    fn parse_parts(text: &str) -> Result<Self, (String, String)> {
        let (name, value) = match text.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err((String::new(), "empty attribute name".into()));
        }
        let err = |reason: String| (name.to_owned(), reason);
        let attr = match (name, value) {
            ("rtpmap", Some(v)) => Attribute::Rtpmap(Rtpmap::parse(v).map_err(err)?),
            ("fmtp", Some(v)) => Attribute::Fmtp(Fmtp::parse(v).map_err(err)?),
            ("ptime", Some(v)) => Attribute::Ptime(parse_ms(v).map_err(err)?),
            ("maxptime", Some(v)) => Attribute::MaxPtime(parse_ms(v).map_err(err)?),
            ("sendrecv", None) => Attribute::Direction(Direction::SendRecv),
            ("sendonly", None) => Attribute::Direction(Direction::SendOnly),
            ("recvonly", None) => Attribute::Direction(Direction::RecvOnly),
            ("inactive", None) => Attribute::Direction(Direction::Inactive),
            ("rtcp", Some(v)) => Attribute::Rtcp(Rtcp::parse(v).map_err(err)?),
            ("rtcp-mux", None) => Attribute::RtcpMux,
            ("crypto", Some(v)) => Attribute::Crypto(Crypto::parse(v).map_err(err)?),
            ("fingerprint", Some(v)) => Attribute::Fingerprint(Fingerprint::parse(v).map_err(err)?),
            ("setup", Some(v)) => Attribute::Setup(Setup::parse(v).map_err(err)?),
            ("ice-ufrag", Some(v)) => Attribute::IceUfrag(ice_token(v).map_err(err)?),
            ("ice-pwd", Some(v)) => Attribute::IcePwd(ice_token(v).map_err(err)?),
            ("ice-options", Some(v)) => {
                let opts: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
                if opts.is_empty() {
                    return Err(err("no options".into()));
                }
                Attribute::IceOptions(opts)
            }
            ("ice-lite", None) => Attribute::IceLite,
            ("candidate", Some(v)) => Attribute::Candidate(Candidate::parse(v).map_err(err)?),
            ("remote-candidates", Some(v)) => {
                Attribute::RemoteCandidates(RemoteCandidate::parse_list(v).map_err(err)?)
            }
            ("end-of-candidates", None) => Attribute::EndOfCandidates,
            _ => Attribute::Other {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            },
        };
        Ok(attr)
    }

    /// The attribute name as it appears on the wire.
    pub fn name(&self) -> &str {
        match self {
            Attribute::Rtpmap(_) => "rtpmap",
            Attribute::Fmtp(_) => "fmtp",
            Attribute::Ptime(_) => "ptime",
            Attribute::MaxPtime(_) => "maxptime",
            Attribute::Direction(d) => d.as_str(),
            Attribute::Rtcp(_) => "rtcp",
            Attribute::RtcpMux => "rtcp-mux",
            Attribute::Crypto(_) => "crypto",
            Attribute::Fingerprint(_) => "fingerprint",
            Attribute::Setup(_) => "setup",
            Attribute::IceUfrag(_) => "ice-ufrag",
            Attribute::IcePwd(_) => "ice-pwd",
            Attribute::IceOptions(_) => "ice-options",
            Attribute::IceLite => "ice-lite",
            Attribute::Candidate(_) => "candidate",
            Attribute::RemoteCandidates(_) => "remote-candidates",
            Attribute::EndOfCandidates => "end-of-candidates",
            Attribute::Other { name, .. } => name,
        }
    }
}

/// Writes the attribute without the `a=` prefix and without a line ending.
impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Rtpmap(r) => write!(f, "rtpmap:{r}"),
            Attribute::Fmtp(x) => write!(f, "fmtp:{} {}", x.format, x.params),
            Attribute::Ptime(p) => write!(f, "ptime:{p}"),
            Attribute::MaxPtime(p) => write!(f, "maxptime:{p}"),
            Attribute::Direction(d) => f.write_str(d.as_str()),
            Attribute::Rtcp(r) => write!(f, "rtcp:{r}"),
            Attribute::RtcpMux => f.write_str("rtcp-mux"),
            Attribute::Crypto(c) => write!(f, "crypto:{c}"),
            Attribute::Fingerprint(x) => write!(f, "fingerprint:{x}"),
            Attribute::Setup(s) => write!(f, "setup:{}", s.as_str()),
            Attribute::IceUfrag(u) => write!(f, "ice-ufrag:{u}"),
            Attribute::IcePwd(p) => write!(f, "ice-pwd:{p}"),
            Attribute::IceOptions(o) => write!(f, "ice-options:{}", o.join(" ")),
            Attribute::IceLite => f.write_str("ice-lite"),
            Attribute::Candidate(c) => write!(f, "candidate:{c}"),
            Attribute::RemoteCandidates(list) => {
                f.write_str("remote-candidates:")?;
                for (i, c) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{} {} {}", c.component, c.address, c.port)?;
                }
                Ok(())
            }
            Attribute::EndOfCandidates => f.write_str("end-of-candidates"),
            Attribute::Other { name, value: None } => f.write_str(name),
            Attribute::Other {
                name,
                value: Some(v),
            } => write!(f, "{name}:{v}"),
        }
    }
}

fn parse_ms(v: &str) -> Result<u32, String> {
    let v = v.trim();
    // Some stacks write "20.0"; accept an all-zero fraction.
    let int = match v.split_once('.') {
        Some((i, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => i,
        _ => v,
    };
    parse_num(int).ok_or_else(|| format!("`{}` is not a number of milliseconds", snippet(v)))
}

/// Strict unsigned decimal (no sign, no spaces).
pub(crate) fn parse_num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_pt(s: &str) -> Result<u8, String> {
    match parse_num::<u8>(s) {
        Some(pt) if pt <= 127 => Ok(pt),
        _ => Err(format!("payload type `{}` not in 0-127", snippet(s))),
    }
}

fn ice_token(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return Err(format!("`{}` is not an ICE token", snippet(v)));
    }
    Ok(v.to_owned())
}

/// Media direction (RFC 8866 §6.7, RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Send and receive (the default when no direction attribute is present).
    #[default]
    SendRecv,
    /// Only send.
    SendOnly,
    /// Only receive.
    RecvOnly,
    /// Neither send nor receive.
    Inactive,
}

impl Direction {
    /// Build from "may send" and "may receive" flags.
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    /// Whether this side receives.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
    /// The same direction seen from the other party (sendonly <-> recvonly).
    pub fn reversed(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// `a=rtpmap` (RFC 8866 §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtpmap {
    /// RTP payload type, 0-127.
    pub payload_type: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters: the channel count for audio.
    pub channels: Option<u32>,
}

impl Rtpmap {
    fn parse(v: &str) -> Result<Self, String> {
        let v = v.trim();
        let (pt, rest) = v
            .split_once(' ')
            .ok_or_else(|| "expected `<pt> <encoding>/<clock rate>`".to_string())?;
        let payload_type = parse_pt(pt)?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().unwrap_or_default();
        if encoding.is_empty() || encoding.contains(char::is_whitespace) {
            return Err(format!("bad encoding name `{}`", snippet(encoding)));
        }
        let clock = parts.next().unwrap_or_default();
        let clock_rate = parse_num::<u32>(clock)
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("bad clock rate `{}`", snippet(clock)))?;
        let channels = match parts.next() {
            None => None,
            Some(c) => Some(
                parse_num::<u32>(c).ok_or_else(|| format!("bad channel count `{}`", snippet(c)))?,
            ),
        };
        if parts.next().is_some() {
            return Err("too many `/` fields".into());
        }
        Ok(Rtpmap {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }
}

impl fmt::Display for Rtpmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// `a=fmtp` (RFC 8866 §6.15). Parameters are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The format (payload type for RTP) the parameters apply to.
    pub format: String,
    /// Format-specific parameters, verbatim.
    pub params: String,
}

impl Fmtp {
    fn parse(v: &str) -> Result<Self, String> {
        let v = v.trim_start();
        let (format, params) = match v.split_once([' ', '\t']) {
            Some((f, p)) => (f, p.trim()),
            None => (v, ""),
        };
        if format.is_empty() {
            return Err("missing format".into());
        }
        Ok(Fmtp {
            format: format.to_owned(),
            params: params.to_owned(),
        })
    }

    /// The payload type, if the format is a number 0-127.
    pub fn payload_type(&self) -> Option<u8> {
        parse_num::<u8>(&self.format).filter(|pt| *pt <= 127)
    }

    /// `key=value` pairs split on `;` (whitespace trimmed). A parameter without `=`
    /// (e.g. telephone-event's `0-16`) has the value `None`.
    pub fn param_list(&self) -> Vec<(&str, Option<&str>)> {
        self.params
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p, None),
            })
            .collect()
    }

    /// Value of parameter `key` (case-insensitive key match).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.param_list()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v)
    }
}

/// `a=rtcp` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// Optional address (`IN IP4 a.b.c.d`).
    pub address: Option<(AddrType, String)>,
}

impl Rtcp {
    fn parse(v: &str) -> Result<Self, String> {
        let mut it = v.split_whitespace();
        let port_s = it.next().unwrap_or_default();
        let port =
            parse_num::<u16>(port_s).ok_or_else(|| format!("bad port `{}`", snippet(port_s)))?;
        let address = match (it.next(), it.next(), it.next()) {
            (None, _, _) => None,
            (Some("IN"), Some(at), Some(addr)) => {
                let at = AddrType::parse(at)
                    .ok_or_else(|| format!("bad address type `{}`", snippet(at)))?;
                Some((at, addr.to_owned()))
            }
            _ => return Err("expected `<port> IN <addrtype> <address>`".into()),
        };
        if it.next().is_some() {
            return Err("trailing text".into());
        }
        Ok(Rtcp { port, address })
    }

    /// The address as an IP, when present and literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.as_ref().and_then(|(_, a)| a.parse().ok())
    }
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        if let Some((at, addr)) = &self.address {
            write!(f, " IN {} {addr}", at.as_str())?;
        }
        Ok(())
    }
}

/// `a=crypto` (RFC 4568): `<tag> <crypto-suite> <key-params> [<session-params>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Tag (1-999999999) identifying this crypto line in offer/answer.
    pub tag: u32,
    /// Crypto suite, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// One or more key parameters.
    pub keys: Vec<KeyParam>,
    /// Session parameters (e.g. `UNENCRYPTED_SRTCP`, `KDR=1`), verbatim.
    pub session_params: Vec<String>,
}

impl Crypto {
    fn parse(v: &str) -> Result<Self, String> {
        let mut it = v.split_whitespace();
        let tag_s = it.next().unwrap_or_default();
        let tag = parse_num::<u32>(tag_s)
            .filter(|t| tag_s.len() <= 9 && *t > 0)
            .ok_or_else(|| format!("bad tag `{}`", snippet(tag_s)))?;
        let suite = it
            .next()
            .ok_or_else(|| "missing crypto suite".to_string())?
            .to_owned();
        let key_s = it
            .next()
            .ok_or_else(|| "missing key parameters".to_string())?;
        let keys = key_s
            .split(';')
            .map(KeyParam::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let session_params = it.map(str::to_owned).collect();
        Ok(Crypto {
            tag,
            suite,
            keys,
            session_params,
        })
    }
}

impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.tag, self.suite)?;
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{}:{}", k.method, k.key_salt)?;
            if let Some(l) = &k.lifetime {
                match l {
                    Lifetime::PowerOfTwo(e) => write!(f, "|2^{e}")?,
                    Lifetime::Packets(n) => write!(f, "|{n}")?,
                }
            }
            if let Some(m) = &k.mki {
                write!(f, "|{}:{}", m.value, m.length)?;
            }
        }
        for p in &self.session_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// One key parameter of an `a=crypto` line: `inline:<key||salt>[|lifetime][|MKI:length]`.
///
/// `Debug` does not print the key material.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// Key method, `inline` for SDES.
    pub method: String,
    /// Base64 master key and salt, as written.
    pub key_salt: String,
    /// Master key lifetime.
    pub lifetime: Option<Lifetime>,
    /// Master key identifier.
    pub mki: Option<Mki>,
}

impl fmt::Debug for KeyParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyParam")
            .field("method", &self.method)
            .field("key_salt", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

impl KeyParam {
    fn parse(s: &str) -> Result<Self, String> {
        let (method, info) = s
            .split_once(':')
            .ok_or_else(|| "key parameter must be `<method>:<info>`".to_string())?;
        if method.is_empty() {
            return Err("empty key method".into());
        }
        let mut parts = info.split('|');
        let key_salt = parts.next().unwrap_or_default();
        if key_salt.is_empty() {
            return Err("empty key".into());
        }
        let mut lifetime = None;
        let mut mki = None;
        for p in parts {
            if let Some((v, len)) = p.split_once(':') {
                if mki.is_some() {
                    return Err("MKI given twice".into());
                }
                let value =
                    parse_num::<u64>(v).ok_or_else(|| format!("bad MKI `{}`", snippet(v)))?;
                let length = parse_num::<u8>(len)
                    .filter(|l| (1..=128).contains(l))
                    .ok_or_else(|| format!("bad MKI length `{}`", snippet(len)))?;
                mki = Some(Mki { value, length });
            } else {
                if lifetime.is_some() || mki.is_some() {
                    return Err(format!("unexpected key field `{}`", snippet(p)));
                }
                lifetime = Some(if let Some(e) = p.strip_prefix("2^") {
                    Lifetime::PowerOfTwo(
                        parse_num::<u8>(e)
                            .filter(|e| *e <= 64)
                            .ok_or_else(|| format!("bad lifetime `{}`", snippet(p)))?,
                    )
                } else {
                    Lifetime::Packets(
                        parse_num::<u64>(p)
                            .ok_or_else(|| format!("bad lifetime `{}`", snippet(p)))?,
                    )
                });
            }
        }
        Ok(KeyParam {
            method: method.to_owned(),
            key_salt: key_salt.to_owned(),
            lifetime,
            mki,
        })
    }

    /// An `inline:` key without lifetime or MKI.
    pub fn inline(key_salt_base64: impl Into<String>) -> Self {
        KeyParam {
            method: "inline".into(),
            key_salt: key_salt_base64.into(),
            lifetime: None,
            mki: None,
        }
    }
}

/// SRTP master key lifetime (in packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// `2^n` packets.
    PowerOfTwo(u8),
    /// A literal packet count.
    Packets(u64),
}

/// Master key identifier and its length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mki {
    /// MKI value.
    pub value: u64,
    /// MKI length in bytes (1-128).
    pub length: u8,
}

/// `a=fingerprint` (RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function name, e.g. `sha-256` (compare case-insensitively).
    pub hash: String,
    /// Fingerprint bytes.
    pub bytes: Vec<u8>,
}

impl Fingerprint {
    fn parse(v: &str) -> Result<Self, String> {
        let (hash, hex) = v
            .trim()
            .split_once(' ')
            .ok_or_else(|| "expected `<hash-func> <fingerprint>`".to_string())?;
        let hex = hex.trim();
        if hash.is_empty() || hex.is_empty() {
            return Err("expected `<hash-func> <fingerprint>`".into());
        }
        let bytes = hex
            .split(':')
            .map(|b| {
                if b.len() == 2 {
                    u8::from_str_radix(b, 16).ok()
                } else {
                    None
                }
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("bad fingerprint `{}`", snippet(hex)))?;
        Ok(Fingerprint {
            hash: hash.to_owned(),
            bytes,
        })
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.hash)?;
        for (i, b) in self.bytes.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// `a=setup` (RFC 4145 / RFC 5763).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Will initiate the connection (DTLS client).
    Active,
    /// Will accept the connection (DTLS server).
    Passive,
    /// Either (only valid in an offer).
    ActPass,
    /// Do not connect now.
    HoldConn,
}

impl Setup {
    fn parse(v: &str) -> Result<Self, String> {
        Ok(match v.trim() {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            other => return Err(format!("unknown role `{}`", snippet(other))),
        })
    }
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

/// ICE candidate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateType {
    /// `host`
    Host,
    /// `srflx`
    Srflx,
    /// `prflx`
    Prflx,
    /// `relay`
    Relay,
    /// Anything else, verbatim.
    Other(String),
}

impl CandidateType {
    fn parse(s: &str) -> Self {
        match s {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::Srflx,
            "prflx" => CandidateType::Prflx,
            "relay" => CandidateType::Relay,
            o => CandidateType::Other(o.to_owned()),
        }
    }
    /// Wire name.
    pub fn as_str(&self) -> &str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
            CandidateType::Other(o) => o,
        }
    }
}

/// `a=candidate` (RFC 8839 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Foundation.
    pub foundation: String,
    /// Component id (1 = RTP, 2 = RTCP).
    pub component: u32,
    /// Transport, e.g. `UDP` (compare case-insensitively).
    pub transport: String,
    /// Priority.
    pub priority: u32,
    /// Connection address (IP, or an mDNS/FQDN name).
    pub address: String,
    /// Port.
    pub port: u16,
    /// Candidate type.
    pub typ: CandidateType,
    /// Related address.
    pub raddr: Option<String>,
    /// Related port.
    pub rport: Option<u16>,
    /// Extension attributes (`generation 0`, `network-id 1`, ...) in order.
    pub extensions: Vec<(String, String)>,
}

impl Candidate {
    fn parse(v: &str) -> Result<Self, String> {
        let t: Vec<&str> = v.split_whitespace().collect();
        if t.len() < 8 {
            return Err("expected `<foundation> <component> <transport> <priority> <address> <port> typ <type>`".into());
        }
        let component = parse_num::<u32>(t[1])
            .ok_or_else(|| format!("bad component id `{}`", snippet(t[1])))?;
        let priority =
            parse_num::<u32>(t[3]).ok_or_else(|| format!("bad priority `{}`", snippet(t[3])))?;
        let port = parse_num::<u16>(t[5]).ok_or_else(|| format!("bad port `{}`", snippet(t[5])))?;
        if t[6] != "typ" {
            return Err(format!("expected `typ`, found `{}`", snippet(t[6])));
        }
        let mut c = Candidate {
            foundation: t[0].to_owned(),
            component,
            transport: t[2].to_owned(),
            priority,
            address: t[4].to_owned(),
            port,
            typ: CandidateType::parse(t[7]),
            raddr: None,
            rport: None,
            extensions: Vec::new(),
        };
        let rest = &t[8..];
        if rest.len() % 2 != 0 {
            return Err("extension name without value".into());
        }
        for pair in rest.chunks_exact(2) {
            match pair[0] {
                "raddr" => c.raddr = Some(pair[1].to_owned()),
                "rport" => {
                    c.rport = Some(
                        parse_num::<u16>(pair[1])
                            .ok_or_else(|| format!("bad rport `{}`", snippet(pair[1])))?,
                    )
                }
                name => c.extensions.push((name.to_owned(), pair[1].to_owned())),
            }
        }
        Ok(c)
    }

    /// The address as an IP, if it is literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            self.transport,
            self.priority,
            self.address,
            self.port,
            self.typ.as_str()
        )?;
        if let Some(a) = &self.raddr {
            write!(f, " raddr {a}")?;
        }
        if let Some(p) = self.rport {
            write!(f, " rport {p}")?;
        }
        for (k, v) in &self.extensions {
            write!(f, " {k} {v}")?;
        }
        Ok(())
    }
}

/// One entry of `a=remote-candidates` (RFC 8839 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// Component id.
    pub component: u32,
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
}

impl RemoteCandidate {
    fn parse_list(v: &str) -> Result<Vec<Self>, String> {
        let t: Vec<&str> = v.split_whitespace().collect();
        if t.is_empty() || t.len() % 3 != 0 {
            return Err("expected `<component> <address> <port>` triples".into());
        }
        t.chunks_exact(3)
            .map(|c| {
                Ok(RemoteCandidate {
                    component: parse_num::<u32>(c[0])
                        .ok_or_else(|| format!("bad component id `{}`", snippet(c[0])))?,
                    address: c[1].to_owned(),
                    port: parse_num::<u16>(c[2])
                        .ok_or_else(|| format!("bad port `{}`", snippet(c[2])))?,
                })
            })
            .collect()
    }
}
