//! Errors of server location. Each names the domain and what was missing or failed, so a
//! phone can end the request with a clear reason (and `peerline doctor` can print it).

use std::time::Duration;

/// Why a SIP URI could not be turned into targets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The text is not a `sip:`/`sips:` URI we can locate.
    #[error("invalid SIP URI {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    /// The URI asks for a transport we do not support (or that the policy disabled), or a
    /// combination RFC 3261 forbids (`sips:` over UDP).
    #[error("transport {transport} is not usable for {uri}")]
    UnsupportedTransport { uri: String, transport: String },
    /// DNS answered, but nothing usable: no SRV/A/AAAA, SRV targets without addresses, or
    /// only records for transports we do not support. `detail` lists each query and answer.
    #[error("no SIP server found for {domain}: {detail}")]
    NotFound { domain: String, detail: String },
    /// Queries failed (timeout, SERVFAIL, refused, CNAME loop …) and nothing usable was found.
    #[error("DNS lookup failed for {domain}: {detail}")]
    LookupFailed { domain: String, detail: String },
    /// The whole location did not finish within the configured limit.
    #[error("DNS location of {domain} did not finish within {after:?}")]
    Timeout { domain: String, after: Duration },
    /// The resolver could not be set up (e.g. unreadable /etc/resolv.conf).
    #[error("DNS resolver setup failed: {0}")]
    Setup(String),
}
