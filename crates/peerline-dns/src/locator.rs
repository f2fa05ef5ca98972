//! The IO side: a [`DnsSource`] answers [`Query`]s ([`HickorySource`] over
//! `hickory-resolver`), [`Locator`] runs the sans-IO [`Resolution`] against it with a TTL
//! cache and an overall time limit.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{Name, ResolveError, TokioResolver};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::DnsError;
use crate::records::{Answer, AnswerData, Failure, Naptr, Query, QueryKind, Srv};
use crate::rfc3263::{Policy, Resolution, Resolved, Target};
use crate::uri::Destination;

/// Answers DNS queries. Implemented by [`HickorySource`]; tests use canned records.
pub trait DnsSource: Send + Sync + 'static {
    fn query(&self, query: &Query) -> impl Future<Output = Answer> + Send;
}

/// `hickory-resolver` with either the system's configuration or one given server.
#[derive(Clone)]
pub struct HickorySource {
    resolver: TokioResolver,
}

impl std::fmt::Debug for HickorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickorySource")
    }
}

fn opts(mut o: ResolverOpts, timeout: Duration) -> ResolverOpts {
    o.timeout = timeout;
    o.attempts = 2;
    // Our own cache (in `Locator`) is the one that counts; hickory's would only hide queries.
    o.cache_size = 0;
    o
}

impl HickorySource {
    /// /etc/resolv.conf (nameservers, options timeout/attempts).
    pub fn system() -> Result<Self, DnsError> {
        let mut b = TokioResolver::builder_tokio().map_err(|e| DnsError::Setup(e.to_string()))?;
        let timeout = b.options_mut().timeout;
        *b.options_mut() = opts(b.options_mut().clone(), timeout);
        Ok(Self {
            resolver: b.build(),
        })
    }

    /// One configured server (UDP, then TCP for truncated answers), `timeout` per attempt.
    pub fn with_server(server: SocketAddr, timeout: Duration) -> Self {
        let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
        let config = ResolverConfig::from_parts(None, vec![], group);
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts(ResolverOpts::default(), timeout))
                .build();
        Self { resolver }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn map_error(e: &ResolveError) -> Answer {
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { negative_ttl, .. }) => {
            Answer::empty(negative_ttl.unwrap_or(0))
        }
        Some(ProtoErrorKind::Timeout) => Answer::failed(Failure::Timeout),
        _ => Answer::failed(Failure::Other(e.to_string())),
    }
}

fn no_records_without_soa(e: &ResolveError) -> bool {
    matches!(
        e.proto().map(|p| p.kind()),
        Some(ProtoErrorKind::NoRecordsFound { soa: None, .. })
    )
}

/// Follow CNAMEs from `name` (at most 8 hops): a loop, or an alias whose target has no
/// record of the asked type, becomes a failure that says so.
async fn cname_problem(resolver: &TokioResolver, name: Name, kind: QueryKind) -> Option<Answer> {
    let mut chain = vec![name];
    for _ in 0..8 {
        let last = chain.last()?.clone();
        let Ok(l) = resolver.lookup(last, RecordType::CNAME).await else {
            break;
        };
        let next = l.records().iter().find_map(|r| match r.data() {
            RData::CNAME(c) => Some(c.0.clone()),
            _ => None,
        })?;
        let looped = chain.contains(&next);
        chain.push(next);
        if looped {
            break;
        }
    }
    if chain.len() < 2 {
        return None;
    }
    let text: Vec<String> = chain.iter().map(|n| n.to_ascii()).collect();
    let looped = chain
        .last()
        .is_some_and(|l| chain[..chain.len() - 1].contains(l));
    let what = if looped {
        "CNAME loop".to_string()
    } else {
        format!("CNAME chain ends without a {kind} record")
    };
    Some(Answer::failed(Failure::Other(format!(
        "{what}: {}",
        text.join(" -> ")
    ))))
}

impl DnsSource for HickorySource {
    fn query(&self, query: &Query) -> impl Future<Output = Answer> + Send {
        let resolver = self.resolver.clone();
        let query = query.clone();
        async move {
            // Absolute name: no search domains (RFC 3263 names are fully qualified).
            let name = match Name::from_ascii(format!("{}.", query.name)) {
                Ok(n) => n,
                Err(e) => return Answer::failed(Failure::Other(format!("bad name: {e}"))),
            };
            let rtype = match query.kind {
                QueryKind::Naptr => RecordType::NAPTR,
                QueryKind::Srv => RecordType::SRV,
                QueryKind::A => RecordType::A,
                QueryKind::Aaaa => RecordType::AAAA,
            };
            let lookup = match resolver.lookup(name.clone(), rtype).await {
                Ok(l) => l,
                Err(e) => {
                    // hickory reports a CNAME chain that never reaches the type as "no
                    // records" without an SOA; walk the chain to say what is wrong.
                    if no_records_without_soa(&e) {
                        if let Some(a) = cname_problem(&resolver, name, query.kind).await {
                            return a;
                        }
                    }
                    return map_error(&e);
                }
            };
            let mut ttl = u32::MAX;
            let mut cnames: Vec<String> = Vec::new();
            let mut naptr = Vec::new();
            let mut srv = Vec::new();
            let mut addrs: Vec<IpAddr> = Vec::new();
            // CNAMEs on the way are in the answer too; keep only the asked-for type.
            for r in lookup.records() {
                let kept = match (query.kind, r.data()) {
                    (QueryKind::Naptr, RData::NAPTR(n)) => {
                        naptr.push(Naptr {
                            order: n.order(),
                            preference: n.preference(),
                            flags: text(n.flags()),
                            services: text(n.services()),
                            regexp: text(n.regexp()),
                            replacement: n.replacement().to_ascii(),
                        });
                        true
                    }
                    (QueryKind::Srv, RData::SRV(s)) => {
                        srv.push(Srv {
                            priority: s.priority(),
                            weight: s.weight(),
                            port: s.port(),
                            target: s.target().to_ascii(),
                        });
                        true
                    }
                    (QueryKind::A, RData::A(a)) => {
                        addrs.push(IpAddr::V4(a.0));
                        true
                    }
                    (QueryKind::Aaaa, RData::AAAA(a)) => {
                        addrs.push(IpAddr::V6(a.0));
                        true
                    }
                    (_, RData::CNAME(c)) => {
                        cnames.push(c.0.to_ascii());
                        false
                    }
                    _ => false,
                };
                if kept {
                    ttl = ttl.min(r.ttl());
                }
            }
            let data = match query.kind {
                QueryKind::Naptr if !naptr.is_empty() => AnswerData::Naptr(naptr),
                QueryKind::Srv if !srv.is_empty() => AnswerData::Srv(srv),
                QueryKind::A | QueryKind::Aaaa if !addrs.is_empty() => AnswerData::Addrs(addrs),
                _ if !cnames.is_empty() => {
                    return Answer::failed(Failure::Other(format!(
                        "CNAME chain ({}) ends without a {} record: a loop or a dangling alias",
                        cnames.join(" -> "),
                        query.kind
                    )))
                }
                _ => return Answer::empty(0),
            };
            Answer::new(ttl, data)
        }
    }
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<Query, (Answer, Instant)>,
}

impl Cache {
    fn get(&mut self, q: &Query, now: Instant) -> Option<Answer> {
        match self.entries.get(q) {
            Some((a, until)) if *until > now => Some(a.clone()),
            Some(_) => {
                self.entries.remove(q);
                None
            }
            None => None,
        }
    }
    fn put(&mut self, q: Query, a: &Answer, now: Instant) {
        // Failures are not cached; answers with TTL 0 neither.
        if matches!(a.data, AnswerData::Failed(_)) || a.ttl == 0 {
            return;
        }
        if self.entries.len() >= 4096 {
            self.entries.retain(|_, (_, until)| *until > now);
        }
        let until = now + Duration::from_secs(u64::from(a.ttl));
        self.entries.insert(q, (a.clone(), until));
    }
}

/// RFC 3263 location with IO: owns the resolver, the TTL cache and the RNG for SRV weights.
/// Cheap to share (`Arc<Locator>`); every method takes `&self`.
pub struct Locator<S: DnsSource = HickorySource> {
    source: Arc<S>,
    cache: Mutex<Cache>,
    rng: Mutex<StdRng>,
    policy: Policy,
    limit: Duration,
}

impl<S: DnsSource> std::fmt::Debug for Locator<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("policy", &self.policy)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Locator<HickorySource> {
    /// The system's resolver configuration (/etc/resolv.conf).
    pub fn system() -> Result<Self, DnsError> {
        Ok(Self::with_source(HickorySource::system()?))
    }
    /// One configured DNS server (e.g. a test's own, or an account's `dns_server`).
    pub fn with_server(server: SocketAddr) -> Self {
        Self::with_source(HickorySource::with_server(server, Duration::from_secs(2)))
    }
}

impl<S: DnsSource> Locator<S> {
    /// Any [`DnsSource`]; default policy, 10 s limit, RNG seeded from the OS.
    pub fn with_source(source: S) -> Self {
        Self {
            source: Arc::new(source),
            cache: Mutex::new(Cache::default()),
            rng: Mutex::new(StdRng::from_entropy()),
            policy: Policy::default(),
            limit: Duration::from_secs(10),
        }
    }
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
    /// Seed the RNG that orders SRV records of equal priority (tests).
    pub fn seed(self, seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }
    /// Upper bound for one whole location (all queries); default 10 s.
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// The ordered targets for `uri` (RFC 3263 §4).
    pub async fn locate(&self, uri: &str) -> Result<Vec<Target>, DnsError> {
        Ok(self.resolve(&Destination::parse(uri)?).await?.targets)
    }

    /// Like [`Locator::locate`], with the queries and answers that led there.
    pub async fn resolve(&self, dest: &Destination) -> Result<Resolved, DnsError> {
        self.resolve_at(dest, Instant::now()).await
    }

    /// [`Locator::resolve`] with the cache judged at `now` (tests of TTL handling).
    pub async fn resolve_at(&self, dest: &Destination, now: Instant) -> Result<Resolved, DnsError> {
        let domain = dest.host.to_string();
        let work = self.run(dest, now);
        match tokio::time::timeout(self.limit, work).await {
            Ok(r) => r,
            Err(_) => Err(DnsError::Timeout {
                domain,
                after: self.limit,
            }),
        }
    }

    async fn run(&self, dest: &Destination, now: Instant) -> Result<Resolved, DnsError> {
        let mut res = Resolution::new(dest.clone(), self.policy.clone())?;
        // Each round sends every query the current step needs, concurrently. At most four
        // steps (NAPTR, SRV, A/AAAA); the bound only guards against a logic error.
        for _ in 0..8 {
            let mut batch = Vec::new();
            while let Some(q) = res.poll_query() {
                batch.push(q);
            }
            if batch.is_empty() {
                break;
            }
            // Answers are fed in query order (not arrival order): reproducible trails.
            let mut answers: Vec<Option<Answer>> = vec![None; batch.len()];
            let mut set = tokio::task::JoinSet::new();
            for (i, q) in batch.iter().enumerate() {
                let cached = self
                    .cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(q, now);
                match cached {
                    Some(a) => {
                        if let Some(slot) = answers.get_mut(i) {
                            *slot = Some(a);
                        }
                    }
                    None => {
                        let src = Arc::clone(&self.source);
                        let q = q.clone();
                        set.spawn(async move {
                            let a = src.query(&q).await;
                            (i, a)
                        });
                    }
                }
            }
            while let Some(joined) = set.join_next().await {
                let Ok((i, a)) = joined else { continue };
                let Some(q) = batch.get(i) else { continue };
                tracing::debug!(query = %q, answer = %a.summary(), "dns");
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .put(q.clone(), &a, now);
                if let Some(slot) = answers.get_mut(i) {
                    *slot = Some(a);
                }
            }
            for (q, a) in batch.iter().zip(answers) {
                // A task that panicked or was cancelled: report it as a failed query.
                let a =
                    a.unwrap_or_else(|| Answer::failed(Failure::Other("query task failed".into())));
                res.handle_answer(q, a);
            }
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        res.finish(&mut *rng)
    }

    /// Forget every cached answer.
    pub fn clear_cache(&self) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .clear();
    }
}
