//! Per-source rate limiting for incoming SIP requests, sans-IO.
//!
//! A [`RateLimiter`] keeps one token bucket per source address (IPv4 address, or IPv6
//! `/64` prefix by default, since one IPv6 host owns a whole `/64`). Each request takes a
//! token; tokens come back at `rate_per_sec` up to `burst`. The table is bounded:
//! at most `max_sources` buckets are tracked and the least recently seen one is evicted
//! first, so an address scan or a spoofed-source flood cannot grow memory. An evicted
//! source simply starts again with a full bucket.
//!
//! A limited request is answered with `503 Service Unavailable` and `Retry-After`
//! ([`service_unavailable`]) at most once per `answer_interval` per source; further
//! limited requests in that interval are dropped silently ([`Decision::Drop`]), so a
//! flood with a forged source address is not reflected at its victim packet for packet.
//!
//! Time is passed in; nothing here reads the clock or does I/O.
//!
//! ```
//! use std::net::IpAddr;
//! use std::time::{Duration, Instant};
//! use peerline_sip::rate_limit::{Decision, RateLimitConfig, RateLimiter};
//!
//! let mut rl = RateLimiter::new(RateLimitConfig { rate_per_sec: 1.0, burst: 2, ..Default::default() });
//! let t0 = Instant::now();
//! let ip: IpAddr = "192.0.2.7".parse().unwrap();
//! assert_eq!(rl.check(t0, ip), Decision::Allow);
//! assert_eq!(rl.check(t0, ip), Decision::Allow);
//! assert_eq!(rl.check(t0, ip), Decision::Limited { retry_after_secs: 1 });
//! assert_eq!(rl.check(t0, ip), Decision::Drop);
//! assert_eq!(rl.check(t0 + Duration::from_secs(1), ip), Decision::Allow);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use rsip::{Method, Request, Response};

use crate::message::{make_header, make_response_with_reason};

/// Limits for [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained requests per second allowed from one source.
    pub rate_per_sec: f64,
    /// Requests one source may send at once (bucket size); at least 1.
    pub burst: u32,
    /// Most sources tracked at once (least recently seen evicted first); at least 1.
    pub max_sources: usize,
    /// IPv6 sources are grouped by this prefix length (0..=128; 64 by default).
    pub ipv6_prefix_len: u8,
    /// A limited source is answered with a 503 at most once per this interval; the rest
    /// of its limited requests are dropped without an answer.
    pub answer_interval: Duration,
    /// Longest `Retry-After` we announce, in seconds.
    pub max_retry_after_secs: u32,
}

impl Default for RateLimitConfig {
    /// 20 requests/s sustained with bursts of 40 per source (a busy PBX trunk fits; a
    /// flood does not), 4096 sources (a few hundred KiB), answer once per second.
    fn default() -> Self {
        Self {
            rate_per_sec: 20.0,
            burst: 40,
            max_sources: 4096,
            ipv6_prefix_len: 64,
            answer_interval: Duration::from_secs(1),
            max_retry_after_secs: 60,
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Handle it.
    Allow,
    /// Refuse it with `503` and `Retry-After: retry_after_secs` ([`service_unavailable`]).
    Limited {
        /// When the source will have a token again, rounded up, at least 1.
        retry_after_secs: u32,
    },
    /// Refuse it silently: this source was already answered with a 503 recently.
    Drop,
}

/// Counters, for logs and the traffic report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Requests allowed.
    pub allowed: u64,
    /// Requests answered with a 503.
    pub limited: u64,
    /// Requests dropped without an answer.
    pub dropped: u64,
    /// Buckets evicted because the table was full.
    pub evictions: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// When we last answered this source with a 503.
    answered: Option<Instant>,
    /// Key into the recency index.
    stamp: u64,
}

/// Token buckets per source with a bounded, least-recently-used table. See the module docs.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: HashMap<IpAddr, Bucket>,
    /// Recency index: stamp -> source; the first entry is the least recently seen.
    recency: BTreeMap<u64, IpAddr>,
    next_stamp: u64,
    stats: RateLimitStats,
}

impl RateLimiter {
    /// A limiter with `config` (zero `burst`/`max_sources` are raised to 1; a rate that
    /// is not a positive finite number is treated as a very slow one, 1 per hour).
    pub fn new(config: RateLimitConfig) -> Self {
        let mut config = config;
        config.burst = config.burst.max(1);
        config.max_sources = config.max_sources.max(1);
        config.ipv6_prefix_len = config.ipv6_prefix_len.min(128);
        if !(config.rate_per_sec.is_finite() && config.rate_per_sec > 0.0) {
            config.rate_per_sec = 1.0 / 3600.0;
        }
        config.max_retry_after_secs = config.max_retry_after_secs.max(1);
        Self {
            config,
            buckets: HashMap::new(),
            recency: BTreeMap::new(),
            next_stamp: 0,
            stats: RateLimitStats::default(),
        }
    }

    /// The configuration in force (after the adjustments of [`RateLimiter::new`]).
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Sources tracked now (never more than `max_sources`).
    pub fn tracked_sources(&self) -> usize {
        self.buckets.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> RateLimitStats {
        self.stats
    }

    /// The key a source is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by
    /// prefix.
    pub fn source_key(&self, source: IpAddr) -> IpAddr {
        match source {
            IpAddr::V4(_) => source,
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return IpAddr::V4(v4);
                }
                let bits = u128::from(v6);
                let len = u32::from(self.config.ipv6_prefix_len);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }

    /// Takes a token for one request from `source` at `now`. `now` may go backwards
    /// (out-of-order callers); no tokens are refilled for negative time.
    pub fn check(&mut self, now: Instant, source: IpAddr) -> Decision {
        let key = self.source_key(source);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let cfg = self.config;
        let burst = f64::from(cfg.burst);
        let bucket = match self.buckets.get_mut(&key) {
            Some(b) => {
                self.recency.remove(&b.stamp);
                let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                b.tokens = (b.tokens + elapsed * cfg.rate_per_sec).min(burst);
                if now > b.last {
                    b.last = now;
                }
                b.stamp = stamp;
                b
            }
            None => {
                while self.buckets.len() >= cfg.max_sources {
                    let Some((_, oldest)) = self.recency.pop_first() else {
                        break;
                    };
                    self.buckets.remove(&oldest);
                    self.stats.evictions += 1;
                }
                self.buckets.entry(key).or_insert(Bucket {
                    tokens: burst,
                    last: now,
                    answered: None,
                    stamp,
                })
            }
        };
        self.recency.insert(stamp, key);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            self.stats.allowed += 1;
            return Decision::Allow;
        }
        let recently = bucket
            .answered
            .is_some_and(|t| now.saturating_duration_since(t) < cfg.answer_interval && t <= now);
        if recently {
            self.stats.dropped += 1;
            return Decision::Drop;
        }
        bucket.answered = Some(now);
        self.stats.limited += 1;
        let wait = ((1.0 - bucket.tokens) / cfg.rate_per_sec).ceil();
        let retry_after_secs = if wait.is_finite() && wait >= 1.0 {
            (wait.min(f64::from(cfg.max_retry_after_secs))) as u32
        } else {
            1
        };
        Decision::Limited { retry_after_secs }
    }

    /// Forgets buckets that have been idle long enough to be full again (they would
    /// behave exactly like a new source). Optional: the table is bounded anyway.
    pub fn purge_idle(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(
            (f64::from(self.config.burst) / self.config.rate_per_sec).min(1e9),
        )
        .max(self.config.answer_interval);
        let recency = &mut self.recency;
        self.buckets.retain(|_, b| {
            let keep = now.saturating_duration_since(b.last) < refill;
            if !keep {
                recency.remove(&b.stamp);
            }
            keep
        });
    }
}

/// The `503 Service Unavailable` with `Retry-After` for a rate-limited request
/// (RFC 3261 §21.5.4, §20.33), with `to_tag` added to To if it has none. `None` for an
/// ACK, which is never answered.
pub fn service_unavailable(
    request: &Request,
    retry_after_secs: u32,
    to_tag: Option<&str>,
) -> Option<Response> {
    if request.method == Method::Ack {
        return None;
    }
    let mut response = make_response_with_reason(request, 503, "Service Unavailable", to_tag);
    response.headers.push(make_header(
        "Retry-After",
        &retry_after_secs.max(1).to_string(),
    ));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{header_value, MessageExt};
    use crate::parse_message;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cfg(rate: f64, burst: u32, max_sources: usize) -> RateLimitConfig {
        RateLimitConfig {
            rate_per_sec: rate,
            burst,
            max_sources,
            ..RateLimitConfig::default()
        }
    }

    #[test]
    fn burst_then_sustained_rate() {
        let mut rl = RateLimiter::new(cfg(10.0, 5, 16));
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(rl.check(t0, a), Decision::Allow);
        }
        assert_eq!(
            rl.check(t0, a),
            Decision::Limited {
                retry_after_secs: 1
            }
        );
        // Over one simulated second at 100 requests/s, about 10 get through.
        let mut allowed = 0;
        for i in 1..=100u64 {
            if rl.check(t0 + Duration::from_millis(10 * i), a) == Decision::Allow {
                allowed += 1;
            }
        }
        assert!((9..=11).contains(&allowed), "{allowed}");
    }

    #[test]
    fn sources_are_independent() {
        let mut rl = RateLimiter::new(cfg(1.0, 1, 16));
        let t0 = Instant::now();
        assert_eq!(rl.check(t0, ip("192.0.2.1")), Decision::Allow);
        assert!(matches!(
            rl.check(t0, ip("192.0.2.1")),
            Decision::Limited { .. }
        ));
        assert_eq!(rl.check(t0, ip("192.0.2.2")), Decision::Allow);
    }

    #[test]
    fn answers_once_per_interval_then_drops() {
        let mut rl = RateLimiter::new(cfg(0.1, 1, 16));
        let t0 = Instant::now();
        let a = ip("198.51.100.9");
        assert_eq!(rl.check(t0, a), Decision::Allow);
        assert_eq!(
            rl.check(t0, a),
            Decision::Limited {
                retry_after_secs: 10
            }
        );
        for ms in [1, 200, 999] {
            assert_eq!(rl.check(t0 + Duration::from_millis(ms), a), Decision::Drop);
        }
        // A second later: answered again, with the remaining wait.
        assert_eq!(
            rl.check(t0 + Duration::from_secs(1), a),
            Decision::Limited {
                retry_after_secs: 9
            }
        );
        assert_eq!(rl.check(t0 + Duration::from_secs(10), a), Decision::Allow);
        let s = rl.stats();
        assert_eq!((s.allowed, s.limited, s.dropped), (2, 2, 3));
    }

    #[test]
    fn retry_after_is_capped() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            rate_per_sec: 0.0001,
            burst: 1,
            max_retry_after_secs: 30,
            ..RateLimitConfig::default()
        });
        let t0 = Instant::now();
        assert_eq!(rl.check(t0, ip("192.0.2.1")), Decision::Allow);
        assert_eq!(
            rl.check(t0, ip("192.0.2.1")),
            Decision::Limited {
                retry_after_secs: 30
            }
        );
    }

    #[test]
    fn a_scan_cannot_grow_the_table_and_evicts_least_recent() {
        let mut rl = RateLimiter::new(cfg(1.0, 2, 100));
        let t0 = Instant::now();
        let busy = ip("203.0.113.1");
        assert_eq!(rl.check(t0, busy), Decision::Allow);
        assert_eq!(rl.check(t0, busy), Decision::Allow);
        assert!(matches!(rl.check(t0, busy), Decision::Limited { .. }));
        // 100 000 scanning sources, one request each; `busy` stays recent by sending
        // every 10th step (and stays limited: its bucket is not reset by the scan).
        for i in 0..100_000u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            assert_eq!(rl.check(t0, src), Decision::Allow);
            assert!(rl.tracked_sources() <= 100);
            if i % 10 == 0 {
                assert_ne!(rl.check(t0, busy), Decision::Allow, "at {i}");
            }
        }
        assert_eq!(rl.tracked_sources(), 100);
        assert_eq!(rl.recency.len(), 100);
        assert!(rl.stats().evictions >= 99_900);
        // The least recently seen scanners were evicted, the last ones are still there.
        assert!(rl.buckets.contains_key(&ip("10.1.134.159")));
        assert!(!rl.buckets.contains_key(&ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_is_counted_per_prefix_and_mapped_v4_as_v4() {
        let mut rl = RateLimiter::new(cfg(1.0, 1, 16));
        let t0 = Instant::now();
        assert_eq!(rl.check(t0, ip("2001:db8:1:2::1")), Decision::Allow);
        // Another address in the same /64: same bucket.
        assert!(matches!(
            rl.check(t0, ip("2001:db8:1:2:ffff::9")),
            Decision::Limited { .. }
        ));
        assert_eq!(rl.check(t0, ip("2001:db8:1:3::1")), Decision::Allow);
        assert_eq!(rl.check(t0, ip("::ffff:192.0.2.5")), Decision::Allow);
        assert!(matches!(
            rl.check(t0, ip("192.0.2.5")),
            Decision::Limited { .. }
        ));
        assert_eq!(rl.tracked_sources(), 3);
        let full = RateLimiter::new(RateLimitConfig {
            ipv6_prefix_len: 128,
            ..RateLimitConfig::default()
        });
        assert_eq!(full.source_key(ip("2001:db8::1")), ip("2001:db8::1"));
        let none = RateLimiter::new(RateLimitConfig {
            ipv6_prefix_len: 0,
            ..RateLimitConfig::default()
        });
        assert_eq!(none.source_key(ip("2001:db8::1")), ip("::"));
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let mut rl = RateLimiter::new(cfg(1.0, 1, 16));
        let t0 = Instant::now() + Duration::from_secs(100);
        let a = ip("192.0.2.1");
        assert_eq!(rl.check(t0, a), Decision::Allow);
        assert!(matches!(
            rl.check(t0 - Duration::from_secs(50), a),
            Decision::Limited { .. }
        ));
        assert_eq!(rl.check(t0 + Duration::from_secs(1), a), Decision::Allow);
    }

    #[test]
    fn odd_configs_are_made_safe() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut rl = RateLimiter::new(RateLimitConfig {
                rate_per_sec: rate,
                burst: 0,
                max_sources: 0,
                ipv6_prefix_len: 200,
                max_retry_after_secs: 0,
                ..RateLimitConfig::default()
            });
            let t0 = Instant::now();
            assert_eq!(rl.check(t0, ip("192.0.2.1")), Decision::Allow);
            assert!(matches!(
                rl.check(t0, ip("192.0.2.1")),
                Decision::Limited {
                    retry_after_secs: 1..
                }
            ));
            assert_eq!(rl.check(t0, ip("192.0.2.2")), Decision::Allow);
            assert_eq!(rl.tracked_sources(), 1);
        }
    }

    #[test]
    fn purge_idle_forgets_full_buckets_only() {
        let mut rl = RateLimiter::new(cfg(10.0, 10, 16));
        let t0 = Instant::now();
        rl.check(t0, ip("192.0.2.1"));
        rl.check(t0 + Duration::from_millis(1500), ip("192.0.2.2"));
        rl.purge_idle(t0 + Duration::from_millis(2000));
        assert_eq!(rl.tracked_sources(), 1);
        assert_eq!(rl.recency.len(), 1);
        assert!(rl.buckets.contains_key(&ip("192.0.2.2")));
    }

    #[test]
    fn builds_503_with_retry_after() {
        let req = parse_message(
            b"OPTIONS sip:bob@192.0.2.9 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKflood1\r\n\
              Max-Forwards: 70\r\n\
              From: <sip:scan@192.0.2.1>;tag=abc\r\n\
              To: <sip:bob@192.0.2.9>\r\n\
              Call-ID: flood-1@192.0.2.1\r\n\
              CSeq: 1 OPTIONS\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let rsip::SipMessage::Request(req) = req else {
            panic!("not a request")
        };
        let resp = service_unavailable(&req, 7, Some("rl1")).unwrap();
        assert_eq!(resp.status_code.code(), 503);
        let bytes = crate::serialize(&resp.into());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{text}"
        );
        let back = parse_message(&bytes).unwrap();
        assert_eq!(header_value(&back, "Retry-After"), Some("7"));
        assert_eq!(back.to_tag().as_deref(), Some("rl1"));
        assert_eq!(back.branch().as_deref(), Some("z9hG4bKflood1"));
        assert_eq!(back.cseq().map(|c| c.seq), Some(1));
        // Never an answer to an ACK.
        let mut ack = req.clone();
        ack.method = Method::Ack;
        assert!(service_unavailable(&ack, 7, None).is_none());
    }
}
