//! Which transport, port and TLS name a SIP or SIPS URI asks for (RFC 3261 §19.1,
//! §26.2.2; without DNS: RFC 3263 NAPTR/SRV lookup is `peerline-dns`'s job).
//!
//! * `sips:` → TLS (a `;transport=tcp` on a SIPS URI still means TLS over TCP;
//!   RFC 3261 §26.2.2 deprecates `transport=tls`);
//! * `sip:…;transport=tcp|tls|udp` → that transport (other values, e.g. `sctp`, `ws`:
//!   unsupported);
//! * otherwise UDP;
//! * port: the URI's, else 5061 for TLS and 5060 otherwise (RFC 3261 §19.1.2).

use peerline_sip::Transport;

/// The default port of a transport: 5061 for TLS, 5060 otherwise.
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => 5061,
        Transport::Udp | Transport::Tcp => 5060,
    }
}

/// Where a URI says to send: transport, host (as written, IPv6 without brackets),
/// port, and whether the port was explicit (RFC 3263: no SRV lookup then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTarget {
    /// Transport to use.
    pub transport: Transport,
    /// Host name or IP literal; the TLS server name / SNI when it is a name.
    pub host: String,
    /// Port (explicit, or the transport's default).
    pub port: u16,
    /// `true` when the URI carried the port.
    pub explicit_port: bool,
    /// `true` for `sips:` (every hop must be TLS).
    pub secure: bool,
}

/// A URI asks for a transport we do not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported transport {0:?} in URI")]
pub struct UnsupportedTransport(pub String);

/// The transport a URI asks for.
pub fn transport_of(uri: &rsip::Uri) -> Result<Transport, UnsupportedTransport> {
    let secure = matches!(uri.scheme, Some(rsip::Scheme::Sips));
    let param = uri.params.iter().find_map(|p| match p {
        rsip::Param::Transport(t) => Some(*t),
        _ => None,
    });
    match (secure, param) {
        (true, None | Some(rsip::Transport::Tcp | rsip::Transport::Tls)) => Ok(Transport::Tls),
        (false, None | Some(rsip::Transport::Udp)) => Ok(Transport::Udp),
        (false, Some(rsip::Transport::Tcp)) => Ok(Transport::Tcp),
        (false, Some(rsip::Transport::Tls)) => Ok(Transport::Tls),
        (_, Some(other)) => Err(UnsupportedTransport(other.to_string())),
    }
}

/// Transport, host, port of a URI.
pub fn target_of(uri: &rsip::Uri) -> Result<UriTarget, UnsupportedTransport> {
    let transport = transport_of(uri)?;
    let host = match &uri.host_with_port.host {
        rsip::Host::Domain(d) => d.to_string(),
        rsip::Host::IpAddr(ip) => ip.to_string(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let explicit = uri.host_with_port.port.map(u16::from);
    Ok(UriTarget {
        transport,
        host,
        port: explicit.unwrap_or_else(|| default_port(transport)),
        explicit_port: explicit.is_some(),
        secure: matches!(uri.scheme, Some(rsip::Scheme::Sips)),
    })
}

/// Parses a URI string, then [`target_of`]; `None` for an unparsable URI.
pub fn target_of_str(uri: &str) -> Option<Result<UriTarget, UnsupportedTransport>> {
    rsip::Uri::try_from(uri).ok().map(|u| target_of(&u))
}

/// The `;transport=` value (lower case) a Contact or Route URI of ours should carry
/// for `transport` (`None` for UDP, the default). For TLS prefer a `sips:` URI.
pub fn transport_param(transport: Transport) -> Option<&'static str> {
    match transport {
        Transport::Udp => None,
        Transport::Tcp => Some("tcp"),
        Transport::Tls => Some("tls"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> UriTarget {
        target_of_str(s).unwrap().unwrap()
    }

    #[test]
    fn schemes_and_transport_params() {
        let a = t("sip:alice@pbx.example.com");
        assert_eq!(
            (
                a.transport,
                a.host.as_str(),
                a.port,
                a.explicit_port,
                a.secure
            ),
            (Transport::Udp, "pbx.example.com", 5060, false, false)
        );
        assert_eq!(t("sip:a@h;transport=tcp").transport, Transport::Tcp);
        assert_eq!(t("sip:a@h;transport=TCP").transport, Transport::Tcp);
        assert_eq!(t("sip:a@h;transport=udp").transport, Transport::Udp);
        let tls = t("sip:a@h;transport=tls");
        assert_eq!(
            (tls.transport, tls.port, tls.secure),
            (Transport::Tls, 5061, false)
        );
        let s = t("sips:bob@secure.example.org");
        assert_eq!(
            (s.transport, s.port, s.secure),
            (Transport::Tls, 5061, true)
        );
        assert_eq!(t("sips:bob@h;transport=tcp").transport, Transport::Tls);
        let p = t("sips:bob@10.0.0.1:5081");
        assert_eq!(
            (p.host.as_str(), p.port, p.explicit_port),
            ("10.0.0.1", 5081, true)
        );
        assert_eq!(t("sip:h:5070;transport=tcp").port, 5070);
    }

    #[test]
    fn unsupported_and_unparsable() {
        assert!(target_of_str("sip:a@h;transport=sctp").unwrap().is_err());
        assert!(target_of_str("sips:a@h;transport=udp").unwrap().is_err());
        // Whatever rsip makes of garbage, no panic.
        let _ = target_of_str("not a uri at all <>");
        let _ = target_of_str("");
    }

    #[test]
    fn defaults_and_params() {
        assert_eq!(default_port(Transport::Udp), 5060);
        assert_eq!(default_port(Transport::Tcp), 5060);
        assert_eq!(default_port(Transport::Tls), 5061);
        assert_eq!(transport_param(Transport::Udp), None);
        assert_eq!(transport_param(Transport::Tcp), Some("tcp"));
    }
}
