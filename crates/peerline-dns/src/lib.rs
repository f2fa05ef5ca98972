//! RFC 3263 SIP server location: from a `sip:`/`sips:` URI to an ordered list of
//! (transport, address) targets through NAPTR, SRV (RFC 2782) and A/AAAA records, with a
//! TTL cache and failover.
//!
//! - [`Destination`]: what of the URI matters (scheme, host, port, `transport`).
//! - [`Resolution`]: the RFC as a sans-IO state machine over records ([`resolve_with`] for
//!   a synchronous lookup function); [`order_srv`] is the RFC 2782 weighted order.
//! - [`Locator`]: the same over a real resolver ([`HickorySource`], system config or one
//!   server), with a TTL cache and a time limit.
//! - [`Failover`]: which target new transactions use after timeouts and 503s, and when to
//!   fail back.
//!
//! See docs/dns.md.

mod error;
mod failover;
mod fuzzing;
mod locator;
mod records;
mod rfc3263;
mod uri;

pub use error::DnsError;
pub use failover::{FailReason, Failover, FailoverConfig};
pub use fuzzing::fuzz_check;
pub use locator::{DnsSource, HickorySource, Locator};
pub use records::{normalize_name, Answer, AnswerData, Failure, Naptr, Query, QueryKind, Srv};
pub use rfc3263::{
    order_srv, resolve_with, usable_naptrs, IpOrder, NaptrRef, Origin, Policy, Resolution,
    Resolved, Target,
};
pub use uri::{Destination, Host, Transport};
