//! How the phone finds SIP servers: one RFC 3263 [`Locator`] per phone, limited to the
//! transports the phone speaks. `peerline doctor` uses the same, so what it shows is what
//! the phone does.

use peerline_dns::{DnsError, Locator, Policy, Transport};

use crate::config::NetworkConfig;

/// The transports the phone can use for SIP, in the SRV order used when a domain has no
/// NAPTR records.
pub fn policy() -> Policy {
    // SIP over UDP only so far: location considers UDP targets alone.
    Policy {
        transports: vec![Transport::Udp],
        srv_order: vec![Transport::Udp],
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
