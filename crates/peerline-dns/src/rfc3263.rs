//! RFC 3263 §4 server location as a sans-IO state machine.
//!
//! [`Resolution`] says which DNS queries it needs ([`Resolution::poll_query`]), is fed the
//! answers ([`Resolution::handle_answer`]) and, once nothing is outstanding, turns them into
//! the ordered target list ([`Resolution::finish`], with an injected RNG for the RFC 2782
//! weighted choice). No sockets, no clock: every branch of the RFC is unit-tested over
//! canned records ([`resolve_with`] drives it from a closure).
//!
//! Steps (RFC 3263 §4.1, §4.2):
//! 1. Numeric host → that address; port from the URI or the transport's default; transport
//!    from `;transport=`, else UDP (`sip:`) / TLS (`sips:`). No DNS.
//! 2. Name with explicit port → A/AAAA of the name, same transport rule. No NAPTR/SRV.
//! 3. Name with `;transport=` → SRV for that transport, then A/AAAA.
//! 4. Otherwise NAPTR: keep flag `s`, empty regexp, services `SIP+D2U`/`SIP+D2T`/`SIPS+D2T`
//!    that the [`Policy`] enables (only `SIPS+D2T` for `sips:`); only the lowest ORDER that
//!    has a usable record (RFC 3403 §4.1), sorted by PREFERENCE; each gives an SRV name.
//! 5. No usable NAPTR → SRV for each enabled transport in [`Policy::srv_order`] (default
//!    `_sips._tcp`, `_sip._tcp`, `_sip._udp`; only `_sips._tcp` for `sips:`).
//! 6. SRV records are ordered by priority, then RFC 2782 weighted random selection; a target
//!    of `.` means "not here"; each target's A/AAAA give the addresses.
//! 7. No SRV at all → A/AAAA of the name with the transport chosen so far (explicit, NAPTR),
//!    else UDP (`sip:`) / TLS (`sips:`), and its default port (5060/5061).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::Rng;

use crate::error::DnsError;
use crate::records::{normalize_name, Answer, AnswerData, Naptr, Query, QueryKind, Srv};
use crate::uri::{Destination, Host, Transport};

/// Which address families to use and in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpOrder {
    V4Only,
    V6Only,
    V4ThenV6,
    V6ThenV4,
}

impl IpOrder {
    fn kinds(self) -> &'static [QueryKind] {
        match self {
            IpOrder::V4Only => &[QueryKind::A],
            IpOrder::V6Only => &[QueryKind::Aaaa],
            IpOrder::V4ThenV6 => &[QueryKind::A, QueryKind::Aaaa],
            IpOrder::V6ThenV4 => &[QueryKind::Aaaa, QueryKind::A],
        }
    }
}

/// What this client supports and prefers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Transports we can use. NAPTR/SRV records for others are skipped; an explicit
    /// `;transport=` for a disabled one is an error.
    pub transports: Vec<Transport>,
    /// SRV queries when there is no usable NAPTR, in this order (RFC 3263 leaves the order to
    /// the client). Only enabled transports are queried.
    pub srv_order: Vec<Transport>,
    pub ip_order: IpOrder,
}

impl Default for Policy {
    /// UDP, TCP and TLS; SRV order TLS, TCP, UDP; IPv4 before IPv6.
    fn default() -> Self {
        Self {
            transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
            srv_order: vec![Transport::Tls, Transport::Tcp, Transport::Udp],
            ip_order: IpOrder::V4ThenV6,
        }
    }
}

impl Policy {
    fn supports(&self, t: Transport) -> bool {
        self.transports.contains(&t)
    }
}

/// The NAPTR record a target came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRef {
    pub order: u16,
    pub preference: u16,
    pub service: String,
}

/// Which records produced a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The URI's host was a numeric address: no DNS at all.
    Numeric,
    /// A/AAAA of the URI's host (explicit port, or no SRV records).
    Address { name: String },
    /// An SRV record (`srv_name` = `_sip._tcp.example.com`), reached through a NAPTR record
    /// or directly.
    Srv {
        naptr: Option<NaptrRef>,
        srv_name: String,
        target: String,
        priority: u16,
        weight: u16,
    },
}

impl std::fmt::Display for Origin {
    /// How a target was found, for people: `numeric host`, `A/AAAA name`, or
    /// `NAPTR 10 50 SIP+D2U → SRV _sip._udp.example.com 0 5 pbx.example.com`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Numeric => f.write_str("numeric host"),
            Origin::Address { name } => write!(f, "A/AAAA {name}"),
            Origin::Srv {
                naptr,
                srv_name,
                target,
                priority,
                weight,
            } => {
                if let Some(n) = naptr {
                    write!(f, "NAPTR {} {} {} → ", n.order, n.preference, n.service)?;
                }
                write!(f, "SRV {srv_name} {priority} {weight} {target}")
            }
        }
    }
}

/// One place to send the request: try them in order (RFC 3263 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub from: Origin,
    /// The smallest TTL of the records that led here (0 for numeric hosts): the target list
    /// is valid that long, and a failed target stays blacklisted at most that long.
    pub ttl: Duration,
    /// The domain of the URI (for TLS, RFC 5922 verifies the certificate against this, not
    /// the SRV target), or the numeric host.
    pub domain: String,
}

impl Target {
    /// (transport, address): what identifies a target for failover.
    pub fn key(&self) -> (Transport, SocketAddr) {
        (self.transport, self.addr)
    }
}

/// The result of a location: targets in order, plus every query and its answer (for
/// diagnostics and `peerline doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub targets: Vec<Target>,
    pub trail: Vec<(Query, Answer)>,
}

impl Resolved {
    /// Human-readable lines for `peerline doctor`: each query with its answer, then the
    /// targets in order with the record they came from.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .trail
            .iter()
            .map(|(q, a)| format!("{q}: {}", a.summary()))
            .collect();
        for (i, t) in self.targets.iter().enumerate() {
            let from = t.from.to_string();
            out.push(format!(
                "target {}: {} {} (from {from}, ttl {} s)",
                i + 1,
                t.transport,
                t.addr,
                t.ttl.as_secs()
            ));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SrvPlan {
    name: String,
    transport: Transport,
    naptr: Option<(NaptrRef, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Naptr,
    Srv,
    Addr,
    Done,
}

/// RFC 3263 location of one [`Destination`], without IO.
#[derive(Debug, Clone)]
pub struct Resolution {
    dest: Destination,
    policy: Policy,
    stage: Stage,
    to_send: VecDeque<Query>,
    outstanding: Vec<Query>,
    answers: HashMap<Query, Answer>,
    trail: Vec<(Query, Answer)>,
    naptr_ttl: u32,
    srv_plans: Vec<SrvPlan>,
    /// A/AAAA of the URI host: transport, port, origin.
    host_plan: Option<(Transport, u16)>,
    numeric: Option<Target>,
}

impl Resolution {
    /// Start locating `dest`. Fails at once for a transport the policy does not support.
    pub fn new(dest: Destination, policy: Policy) -> Result<Self, DnsError> {
        if let Some(t) = dest.transport {
            if !policy.supports(t) {
                return Err(DnsError::UnsupportedTransport {
                    uri: dest.to_string(),
                    transport: t.to_string(),
                });
            }
        }
        if dest.secure && !policy.supports(Transport::Tls) {
            return Err(unsupported(&dest, Transport::Tls));
        }
        let default_t = if dest.secure {
            Transport::Tls
        } else {
            Transport::Udp
        };
        let mut r = Resolution {
            dest,
            policy,
            stage: Stage::Done,
            to_send: VecDeque::new(),
            outstanding: Vec::new(),
            answers: HashMap::new(),
            trail: Vec::new(),
            naptr_ttl: u32::MAX,
            srv_plans: Vec::new(),
            host_plan: None,
            numeric: None,
        };
        let explicit = r.dest.transport;
        match (&r.dest.host, r.dest.port, explicit) {
            (Host::Ip(ip), port, t) => {
                let t = t.unwrap_or(default_t);
                if !r.policy.supports(t) {
                    return Err(unsupported(&r.dest, t));
                }
                r.numeric = Some(Target {
                    transport: t,
                    addr: SocketAddr::new(*ip, port.unwrap_or(t.default_port())),
                    from: Origin::Numeric,
                    ttl: Duration::ZERO,
                    domain: ip.to_string(),
                });
            }
            (Host::Name(_), Some(port), t) => {
                let t = t.unwrap_or(default_t);
                if !r.policy.supports(t) {
                    return Err(unsupported(&r.dest, t));
                }
                r.host_plan = Some((t, port));
                r.start_host_addr();
            }
            (Host::Name(name), None, Some(t)) => {
                r.srv_plans = vec![SrvPlan {
                    name: format!("{}.{}", t.srv_prefix(), name),
                    transport: t,
                    naptr: None,
                }];
                r.start_srv();
            }
            (Host::Name(name), None, None) => {
                let q = Query::new(name, QueryKind::Naptr);
                r.stage = Stage::Naptr;
                r.send(q);
            }
        }
        Ok(r)
    }

    /// The next query to make, if any. All queries of one step are handed out before any
    /// answer is needed, so a driver may run them concurrently.
    pub fn poll_query(&mut self) -> Option<Query> {
        self.to_send.pop_front()
    }

    /// True once every query is answered and [`Resolution::finish`] can be called.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Feed the answer to a query handed out by [`Resolution::poll_query`]. Answers to
    /// queries that are not outstanding are ignored.
    pub fn handle_answer(&mut self, query: &Query, answer: Answer) {
        let Some(i) = self.outstanding.iter().position(|q| q == query) else {
            return;
        };
        self.outstanding.swap_remove(i);
        self.trail.push((query.clone(), answer.clone()));
        self.answers.insert(query.clone(), answer);
        if self.outstanding.is_empty() {
            self.advance();
        }
    }

    fn send(&mut self, q: Query) {
        if self.answers.contains_key(&q) || self.outstanding.contains(&q) {
            return;
        }
        self.outstanding.push(q.clone());
        self.to_send.push_back(q);
    }

    fn advance(&mut self) {
        match self.stage {
            Stage::Naptr => self.after_naptr(),
            Stage::Srv => self.after_srv(),
            Stage::Addr | Stage::Done => self.stage = Stage::Done,
        }
        // A step whose queries were all answered already (shared names) moves on at once.
        if self.stage != Stage::Done && self.outstanding.is_empty() {
            self.advance();
        }
    }

    fn after_naptr(&mut self) {
        let Some(name) = self.dest.domain().map(str::to_string) else {
            self.stage = Stage::Done;
            return;
        };
        let answer = self.answers.get(&Query::new(&name, QueryKind::Naptr));
        let (records, ttl) = match answer {
            Some(Answer {
                ttl,
                data: AnswerData::Naptr(v),
            }) => (v.as_slice(), *ttl),
            _ => (&[][..], 0),
        };
        let usable = usable_naptrs(records, self.dest.secure, &self.policy);
        if usable.is_empty() {
            let order: Vec<Transport> = if self.dest.secure {
                vec![Transport::Tls]
            } else {
                self.policy.srv_order.clone()
            };
            self.srv_plans = order
                .into_iter()
                .filter(|t| self.policy.supports(*t))
                .map(|t| SrvPlan {
                    name: format!("{}.{}", t.srv_prefix(), name),
                    transport: t,
                    naptr: None,
                })
                .collect();
        } else {
            self.naptr_ttl = ttl;
            self.srv_plans = usable
                .into_iter()
                .map(|(n, t)| SrvPlan {
                    name: normalize_name(&n.replacement),
                    transport: t,
                    naptr: Some((
                        NaptrRef {
                            order: n.order,
                            preference: n.preference,
                            service: t.naptr_service().to_string(),
                        },
                        ttl,
                    )),
                })
                .collect();
        }
        self.start_srv();
    }

    fn start_srv(&mut self) {
        self.stage = Stage::Srv;
        let qs: Vec<Query> = self
            .srv_plans
            .iter()
            .map(|p| Query::new(&p.name, QueryKind::Srv))
            .collect();
        for q in qs {
            self.send(q);
        }
        if self.srv_plans.is_empty() {
            self.after_srv();
        }
    }

    fn srv_records(&self, plan: &SrvPlan) -> (Vec<Srv>, u32) {
        match self.answers.get(&Query::new(&plan.name, QueryKind::Srv)) {
            Some(Answer {
                ttl,
                data: AnswerData::Srv(v),
            }) => (
                v.iter()
                    .filter(|s| !is_root(&s.target) && s.port != 0)
                    .cloned()
                    .collect(),
                *ttl,
            ),
            _ => (Vec::new(), 0),
        }
    }

    fn after_srv(&mut self) {
        let mut names = Vec::new();
        for plan in &self.srv_plans {
            for s in self.srv_records(plan).0 {
                let n = normalize_name(&s.target);
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        if names.is_empty() {
            // RFC 3263 §4.2: no SRV → A/AAAA of the name, transport chosen so far.
            let t = self
                .dest
                .transport
                .or_else(|| {
                    self.srv_plans
                        .iter()
                        .find(|p| p.naptr.is_some())
                        .map(|p| p.transport)
                })
                .unwrap_or(if self.dest.secure {
                    Transport::Tls
                } else {
                    Transport::Udp
                });
            if !self.policy.supports(t) {
                self.stage = Stage::Done;
                return;
            }
            self.host_plan = Some((t, t.default_port()));
            self.start_host_addr();
            return;
        }
        self.stage = Stage::Addr;
        for n in names {
            for k in self.policy.ip_order.kinds() {
                self.send(Query::new(&n, *k));
            }
        }
    }

    fn start_host_addr(&mut self) {
        self.stage = Stage::Addr;
        let Some(name) = self.dest.domain().map(str::to_string) else {
            self.stage = Stage::Done;
            return;
        };
        for k in self.policy.ip_order.kinds() {
            self.send(Query::new(&name, *k));
        }
    }

    fn addrs_of(&self, name: &str) -> (Vec<IpAddr>, u32) {
        let mut out = Vec::new();
        let mut ttl = u32::MAX;
        for k in self.policy.ip_order.kinds() {
            if let Some(Answer {
                ttl: t,
                data: AnswerData::Addrs(v),
            }) = self.answers.get(&Query::new(name, *k))
            {
                let want_v4 = *k == QueryKind::A;
                let before = out.len();
                out.extend(v.iter().filter(|ip| ip.is_ipv4() == want_v4).copied());
                if out.len() > before {
                    ttl = ttl.min(*t);
                }
            }
        }
        (out, ttl)
    }

    /// The ordered targets (RFC 2782 weighted order drawn from `rng`), or an error naming
    /// the domain and what was missing. Call when [`Resolution::is_done`]; before that it
    /// reports the location as failed with the queries still outstanding.
    pub fn finish(self, rng: &mut impl Rng) -> Result<Resolved, DnsError> {
        if let Some(t) = self.numeric {
            return Ok(Resolved {
                targets: vec![t],
                trail: self.trail,
            });
        }
        let domain = self.dest.domain().unwrap_or_default().to_string();
        if self.stage != Stage::Done {
            let pending: Vec<String> = self.outstanding.iter().map(Query::to_string).collect();
            return Err(DnsError::LookupFailed {
                domain,
                detail: format!("unanswered: {}", pending.join(", ")),
            });
        }
        let mut targets: Vec<Target> = Vec::new();
        let mut addressless = Vec::new();
        if let Some((transport, port)) = self.host_plan {
            let (ips, ttl) = self.addrs_of(&domain);
            for ip in ips {
                push(
                    Target {
                        transport,
                        addr: SocketAddr::new(ip, port),
                        from: Origin::Address {
                            name: domain.clone(),
                        },
                        ttl: secs(ttl.min(self.naptr_ttl)),
                        domain: domain.clone(),
                    },
                    &mut targets,
                );
            }
        } else {
            for plan in &self.srv_plans {
                let (records, srv_ttl) = self.srv_records(plan);
                for s in order_srv(records, rng) {
                    let tname = normalize_name(&s.target);
                    let (ips, addr_ttl) = self.addrs_of(&tname);
                    if ips.is_empty() {
                        addressless.push(tname.clone());
                    }
                    let naptr_ttl = plan.naptr.as_ref().map_or(u32::MAX, |(_, t)| *t);
                    for ip in ips {
                        push(
                            Target {
                                transport: plan.transport,
                                addr: SocketAddr::new(ip, s.port),
                                from: Origin::Srv {
                                    naptr: plan.naptr.as_ref().map(|(n, _)| n.clone()),
                                    srv_name: plan.name.clone(),
                                    target: tname.clone(),
                                    priority: s.priority,
                                    weight: s.weight,
                                },
                                ttl: secs(naptr_ttl.min(srv_ttl).min(addr_ttl)),
                                domain: domain.clone(),
                            },
                            &mut targets,
                        );
                    }
                }
            }
        }
        if !targets.is_empty() {
            return Ok(Resolved {
                targets,
                trail: self.trail,
            });
        }
        let mut detail: Vec<String> = self
            .trail
            .iter()
            .map(|(q, a)| format!("{q}: {}", a.summary()))
            .collect();
        if !addressless.is_empty() {
            addressless.dedup();
            detail.push(format!(
                "SRV targets without an address: {}",
                addressless.join(", ")
            ));
        }
        if self.srv_plans.is_empty() && self.host_plan.is_none() {
            detail.push("no transport usable under the policy".into());
        }
        let detail = detail.join("; ");
        let failed = self
            .trail
            .iter()
            .any(|(_, a)| matches!(a.data, AnswerData::Failed(_)));
        Err(if failed {
            DnsError::LookupFailed { domain, detail }
        } else {
            DnsError::NotFound { domain, detail }
        })
    }
}

/// Append unless the same (transport, address) is already listed.
fn push(t: Target, targets: &mut Vec<Target>) {
    if !targets.iter().any(|o| o.key() == t.key()) {
        targets.push(t);
    }
}

fn unsupported(dest: &Destination, t: Transport) -> DnsError {
    DnsError::UnsupportedTransport {
        uri: dest.to_string(),
        transport: t.to_string(),
    }
}

fn secs(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(if ttl == u32::MAX { 0 } else { ttl }))
}

fn is_root(name: &str) -> bool {
    name.is_empty() || name == "."
}

/// NAPTR records RFC 3263 lets us use, with their transport: flag `s`, empty regexp, a
/// supported service (only SIPS for `sips:`), a replacement; only the lowest ORDER that has
/// a usable record (RFC 3403 §4.1: once a match is found, other ORDERs are not considered);
/// sorted by PREFERENCE (stable).
pub fn usable_naptrs<'a>(
    records: &'a [Naptr],
    secure: bool,
    policy: &Policy,
) -> Vec<(&'a Naptr, Transport)> {
    let mut usable: Vec<(&Naptr, Transport)> = records
        .iter()
        .filter(|n| n.flags.eq_ignore_ascii_case("s") && n.regexp.is_empty())
        .filter(|n| !is_root(&n.replacement))
        .filter_map(|n| Transport::from_naptr_service(&n.services).map(|t| (n, t)))
        .filter(|(_, t)| policy.supports(*t) && (!secure || *t == Transport::Tls))
        .collect();
    let Some(min_order) = usable.iter().map(|(n, _)| n.order).min() else {
        return Vec::new();
    };
    usable.retain(|(n, _)| n.order == min_order);
    usable.sort_by_key(|(n, _)| n.preference);
    usable
}

/// RFC 2782 ordering: ascending priority; within a priority, repeatedly pick by weight:
/// zero-weight records first in the list, a uniform number in `0..=sum`, the first record
/// whose running sum reaches it.
pub fn order_srv(mut records: Vec<Srv>, rng: &mut impl Rng) -> Vec<Srv> {
    records.sort_by_key(|s| s.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut i = 0;
    while i < records.len() {
        let prio = records[i].priority;
        let end = records[i..]
            .iter()
            .position(|s| s.priority != prio)
            .map_or(records.len(), |p| i + p);
        let mut group: Vec<Srv> = records[i..end].to_vec();
        // Stable: zero weights first, others in received order.
        group.sort_by_key(|s| s.weight != 0);
        while !group.is_empty() {
            let sum: u32 = group.iter().map(|s| u32::from(s.weight)).sum();
            let pick = rng.gen_range(0..=sum);
            let mut running = 0u32;
            let mut chosen = group.len() - 1;
            for (j, s) in group.iter().enumerate() {
                running += u32::from(s.weight);
                if running >= pick {
                    chosen = j;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
        i = end;
    }
    out
}

/// Drive a [`Resolution`] to its end with a synchronous lookup function (tests, tools).
pub fn resolve_with(
    dest: Destination,
    policy: Policy,
    mut lookup: impl FnMut(&Query) -> Answer,
    rng: &mut impl Rng,
) -> Result<Resolved, DnsError> {
    let mut r = Resolution::new(dest, policy)?;
    // Bounded: each step issues finitely many distinct queries and there are three steps.
    for _ in 0..10_000 {
        let Some(q) = r.poll_query() else { break };
        let a = lookup(&q);
        r.handle_answer(&q, a);
    }
    r.finish(rng)
}
