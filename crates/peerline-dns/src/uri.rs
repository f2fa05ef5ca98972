//! The parts of a SIP/SIPS URI that RFC 3263 location uses: scheme, host (name or numeric),
//! explicit port and the `transport` parameter. `maddr` and every other parameter, the user
//! part and headers are ignored (RFC 3263 §4 leaves `maddr` to the UA's own policy; we do
//! not honour it).
//!
//! The parser is our own, small and total: any input gives `Ok` or [`DnsError::InvalidUri`],
//! never a panic (fuzz target `dns_uri`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::DnsError;

/// The transports Peerline speaks for SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// RFC 3261 §19.1.2 default port: 5060, or 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }
    /// SRV service and protocol labels (RFC 3263 §4.1): `_sip._udp`, `_sip._tcp`, `_sips._tcp`.
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        }
    }
    /// NAPTR service field (RFC 3263 §4.1): `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`.
    pub fn naptr_service(self) -> &'static str {
        match self {
            Transport::Udp => "SIP+D2U",
            Transport::Tcp => "SIP+D2T",
            Transport::Tls => "SIPS+D2T",
        }
    }
    /// The transport a NAPTR service field stands for, if we support it.
    pub fn from_naptr_service(service: &str) -> Option<Self> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.naptr_service().eq_ignore_ascii_case(service))
    }
    /// The Via/`transport=` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Host part: a domain name (lower case, no trailing dot) or a numeric address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// What RFC 3263 needs to know about the URI to contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// `sips:` scheme: only TLS may be used.
    pub secure: bool,
    pub host: Host,
    pub port: Option<u16>,
    /// From `;transport=` (TCP under `sips:` means TLS).
    pub transport: Option<Transport>,
}

impl Destination {
    /// Parse `sip:`/`sips:` URIs (optionally in `<…>`), e.g.
    /// `sip:alice@example.com`, `sips:[2001:db8::1]:5071;transport=tcp`.
    pub fn parse(uri: &str) -> Result<Self, DnsError> {
        let bad = |reason: &str| DnsError::InvalidUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        let mut s = uri.trim();
        if let Some(inner) = s.strip_prefix('<') {
            s = inner.strip_suffix('>').ok_or_else(|| bad("unclosed '<'"))?;
        }
        let (scheme, rest) = s.split_once(':').ok_or_else(|| bad("no scheme"))?;
        let secure = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            return Err(bad("scheme is not sip or sips"));
        };
        // Headers (`?…`) come last; '@' cannot appear unescaped in params or headers.
        let rest = rest.split_once('?').map_or(rest, |(a, _)| a);
        let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let (hostport, params) = hostpart.split_once(';').unwrap_or((hostpart, ""));
        let (host, port) = split_host_port(hostport).map_err(bad)?;

        let mut transport_token: Option<&str> = None;
        for p in params.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            if name.trim().eq_ignore_ascii_case("transport") {
                if transport_token.is_some() {
                    return Err(bad("transport parameter given twice"));
                }
                transport_token = Some(value.trim());
            }
        }
        let transport =
            match transport_token {
                None => None,
                Some(t) => Some(transport_for(secure, t).ok_or_else(|| {
                    DnsError::UnsupportedTransport {
                        uri: uri.to_string(),
                        transport: t.to_string(),
                    }
                })?),
            };
        Ok(Destination {
            secure,
            host,
            port,
            transport,
        })
    }

    /// From an already parsed [`rsip::Uri`] (what the phone holds).
    pub fn from_rsip(uri: &rsip::Uri) -> Result<Self, DnsError> {
        Self::parse(&uri.to_string())
    }

    /// The host as a domain name, if it is not numeric.
    pub fn domain(&self) -> Option<&str> {
        match &self.host {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        match (self.transport, self.secure) {
            (None, _) => Ok(()),
            // `sips:…;transport=tcp` is TLS; it still skips NAPTR, so it is kept.
            (Some(Transport::Tls), true) => f.write_str(";transport=tcp"),
            (Some(t), false) => write!(f, ";transport={}", t.as_str().to_ascii_lowercase()),
            (Some(_), true) => Ok(()), // unreachable by construction: sips is TLS only
        }
    }
}

fn transport_for(secure: bool, token: &str) -> Option<Transport> {
    let t = token.to_ascii_lowercase();
    match (secure, t.as_str()) {
        (false, "udp") => Some(Transport::Udp),
        (false, "tcp") => Some(Transport::Tcp),
        (true, "tcp") | (_, "tls") => Some(Transport::Tls),
        _ => None, // sips over UDP, sctp, ws, wss, unknown tokens
    }
}

fn split_host_port(hp: &str) -> Result<(Host, Option<u16>), &'static str> {
    let (host_text, port_text) = if let Some(v6) = hp.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("unclosed '[' in host")?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| "bad IPv6 address")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after IPv6 address")?),
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), port.map(parse_port).transpose()?));
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    let port = port_text.map(parse_port).transpose()?;
    if let Ok(ip) = host_text.parse::<Ipv4Addr>() {
        return Ok((Host::Ip(IpAddr::V4(ip)), port));
    }
    Ok((Host::Name(check_hostname(host_text)?), port))
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad port");
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("bad port"),
        Ok(n) => Ok(n),
    }
}

/// RFC 3261 hostname: dot-separated labels of letters, digits and '-', not starting or
/// ending with '-'; at most 253 characters; a trailing dot is dropped; lower-cased.
fn check_hostname(h: &str) -> Result<String, &'static str> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() {
        return Err("empty host");
    }
    if h.len() > 253 {
        return Err("host name longer than 253 characters");
    }
    for label in h.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("bad label in host name");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("bad character in host name");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("label starts or ends with '-'");
        }
    }
    // A name whose last label is all digits would be a malformed IPv4 address.
    if h.rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("malformed IPv4 address");
    }
    Ok(h.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Destination {
        Destination::parse(s).unwrap()
    }

    #[test]
    fn names_ports_and_transports() {
        let d = p("sip:alice@Example.COM.");
        assert_eq!(d.host, Host::Name("example.com".into()));
        assert_eq!((d.port, d.transport, d.secure), (None, None, false));

        let d = p("<sips:bob:secret@example.com:5071;transport=TCP;maddr=10.0.0.1?Subject=x@y>");
        assert!(d.secure);
        assert_eq!(d.port, Some(5071));
        assert_eq!(d.transport, Some(Transport::Tls));

        assert_eq!(
            p("sip:example.com;transport=udp").transport,
            Some(Transport::Udp)
        );
        assert_eq!(
            p("sip:example.com;lr;transport=tls").transport,
            Some(Transport::Tls)
        );
        assert_eq!(
            p("sip:alice;ext=1@example.com").host,
            Host::Name("example.com".into())
        );
    }

    #[test]
    fn numeric_hosts() {
        assert_eq!(
            p("sip:192.0.2.1:5070").host,
            Host::Ip("192.0.2.1".parse().unwrap())
        );
        let d = p("sips:[2001:db8::1]:5071");
        assert_eq!(d.host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(d.port, Some(5071));
        assert_eq!(p("sip:u@[::1]").port, None);
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "tel:+123",
            "sip:",
            "sip:a@",
            "sip:exa mple.com",
            "sip:example.com:0",
            "sip:example.com:65536",
            "sip:example.com:",
            "sip:[::1",
            "sip:[zz]",
            "sip:[::1]x",
            "sip:1.2.3.999",
            "sip:-a.com",
            "sip:a..com",
            "<sip:a.com",
            "sip:a.com;transport=udp;transport=tcp",
        ] {
            assert!(
                matches!(Destination::parse(s), Err(DnsError::InvalidUri { .. })),
                "{s}"
            );
        }
        for s in [
            "sips:a.com;transport=udp",
            "sip:a.com;transport=ws",
            "sip:a.com;transport=sctp",
        ] {
            assert!(
                matches!(
                    Destination::parse(s),
                    Err(DnsError::UnsupportedTransport { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "sip:a.example",
            "sips:a.example:5071",
            "sip:[::1]:5060;transport=tcp",
            "sip:10.0.0.1;transport=tls",
        ] {
            let d = p(s);
            assert_eq!(p(&d.to_string()), d, "{s}");
        }
    }

    #[test]
    fn from_rsip_uri() {
        let u = rsip::Uri::try_from("sip:bob@example.org:5080;transport=tcp").unwrap();
        let d = Destination::from_rsip(&u).unwrap();
        assert_eq!(d.host, Host::Name("example.org".into()));
        assert_eq!(d.port, Some(5080));
        assert_eq!(d.transport, Some(Transport::Tcp));
    }
}
