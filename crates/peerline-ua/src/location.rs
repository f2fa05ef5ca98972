//! How the phone finds SIP servers: one RFC 3263 [`Locator`] per phone, limited to the
//! transports the phone speaks. `peerline doctor` uses the same, so what it shows is what
//! the phone does.

use peerline_dns::{DnsError, Locator, Policy, Transport};

use crate::config::NetworkConfig;

/// The transports the phone can use for SIP (UDP, TCP and TLS: `sips:` URIs,
/// `;transport=tls` and NAPTR `SIPS+D2T` records), and the SRV order used for a `sip:`
/// domain without NAPTR records: TCP, then UDP (RFC 3263 §4.1 leaves it to the client;
/// reliable first, like the default policy).
pub fn policy() -> Policy {
    Policy {
        transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        srv_order: vec![Transport::Tcp, Transport::Udp],
        ..Policy::default()
    }
}

/// The configured DNS server (`[network] dns_server`) or the system's resolver, with
/// [`policy`].
pub fn locator(network: &NetworkConfig) -> Result<Locator, DnsError> {
    Ok(match network.dns_server {
        Some(server) => Locator::with_server(server),
        None => Locator::system()?,
    }
    .policy(policy()))
}
