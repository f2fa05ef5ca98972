//! DNS queries the location logic asks for and the answers it is given: plain data, no IO.

use std::fmt;
use std::net::IpAddr;

/// Record type of a [`Query`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryKind {
    Naptr,
    Srv,
    A,
    Aaaa,
}

impl fmt::Display for QueryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryKind::Naptr => "NAPTR",
            QueryKind::Srv => "SRV",
            QueryKind::A => "A",
            QueryKind::Aaaa => "AAAA",
        })
    }
}

/// One DNS question. `name` is absolute, lower case, without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    pub name: String,
    pub kind: QueryKind,
}

impl Query {
    pub fn new(name: &str, kind: QueryKind) -> Self {
        Self {
            name: normalize_name(name),
            kind,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Lower case, no trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A NAPTR record (RFC 3403), as far as RFC 3263 uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub regexp: String,
    /// The SRV name to query next (flag `s`); `"."` or empty means none.
    pub replacement: String,
}

/// An SRV record (RFC 2782). A `target` of `"."` means "decidedly not available here".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// Why a query gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the resolver's timeout and attempts.
    Timeout,
    /// Anything else: SERVFAIL, REFUSED, a CNAME loop, a bad name, a socket error.
    Other(String),
}

/// What a [`Query`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerData {
    Naptr(Vec<Naptr>),
    Srv(Vec<Srv>),
    /// A or AAAA.
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN or NODATA.
    Empty,
    Failed(Failure),
}

/// An answer and how long it may be used (seconds; for `Empty` the negative TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub ttl: u32,
    pub data: AnswerData,
}

impl Answer {
    pub fn new(ttl: u32, data: AnswerData) -> Self {
        Self { ttl, data }
    }
    pub fn empty(ttl: u32) -> Self {
        Self::new(ttl, AnswerData::Empty)
    }
    pub fn failed(f: Failure) -> Self {
        Self::new(0, AnswerData::Failed(f))
    }
    /// Nothing usable was returned (empty list, NXDOMAIN/NODATA, failure).
    pub fn is_empty(&self) -> bool {
        match &self.data {
            AnswerData::Naptr(v) => v.is_empty(),
            AnswerData::Srv(v) => v.is_empty(),
            AnswerData::Addrs(v) => v.is_empty(),
            AnswerData::Empty | AnswerData::Failed(_) => true,
        }
    }
    /// One-line summary for errors and `peerline doctor`.
    pub fn summary(&self) -> String {
        match &self.data {
            AnswerData::Naptr(v) if !v.is_empty() => v
                .iter()
                .map(|n| {
                    format!(
                        "{} {} \"{}\" \"{}\" {}",
                        n.order, n.preference, n.flags, n.services, n.replacement
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            AnswerData::Srv(v) if !v.is_empty() => v
                .iter()
                .map(|s| format!("{} {} {} {}", s.priority, s.weight, s.port, s.target))
                .collect::<Vec<_>>()
                .join(", "),
            AnswerData::Addrs(v) if !v.is_empty() => v
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            AnswerData::Failed(Failure::Timeout) => "timed out".into(),
            AnswerData::Failed(Failure::Other(e)) => format!("failed ({e})"),
            _ => "no records".into(),
        }
    }
}
