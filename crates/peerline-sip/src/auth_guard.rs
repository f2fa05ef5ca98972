//! Failed-authentication guard for a digest server (password guessing defence), sans-IO.
//!
//! An [`AuthGuard`] counts failed digest attempts (wrong password, unknown user, replayed
//! nonce count, forged nonce…) per **source** (an IPv4 address, or an IPv6 `/64`) and per
//! **user name** in a sliding window. After `max_failures` failures within `window`:
//!
//! * the source is **blocked** for `block_for`: every request from it that would be
//!   challenged is refused with `403` ([`forbidden`]) before the digest is even looked at,
//!   so a guesser gets no more oracle answers, right or wrong;
//! * the user name is **locked against failing sources**: during `block_for`, attempts
//!   for that user from a source that has itself failed in the window are refused too
//!   (a distributed guesser gets one guess per address per lock), while a source with
//!   no recent failure — the real user on their own phone — still gets through. Per-user
//!   lock-out of everyone would hand any attacker a denial of service against that user.
//!
//! A correct answer does not reset a source's count (a guesser holding one account must
//! not be able to launder its failures). Failures age out of the window one by one.
//!
//! Memory is bounded: at most `max_entries` sources and `max_entries` user names are
//! tracked; when a table is full, entries with nothing left in their window go first,
//! then the least recently seen unblocked one, then the least recently seen one.
//!
//! Time is passed in; nothing here reads the clock or does I/O.
//!
//! ```
//! use std::net::IpAddr;
//! use std::time::{Duration, Instant};
//! use peerline_sip::auth_guard::{Admission, AuthGuard, AuthGuardConfig};
//!
//! let mut g = AuthGuard::new(AuthGuardConfig { max_failures: 2, ..Default::default() });
//! let t0 = Instant::now();
//! let ip: IpAddr = "192.0.2.7".parse().unwrap();
//! assert_eq!(g.check(t0, ip, Some("alice")), Admission::Allow);
//! g.record_failure(t0, ip, Some("alice"));
//! g.record_failure(t0, ip, Some("alice"));
//! assert!(matches!(g.check(t0, ip, Some("alice")), Admission::Blocked { .. }));
//! assert_eq!(g.check(t0 + Duration::from_secs(301), ip, None), Admission::Allow);
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use rsip::{Request, Response};

use crate::message::make_response_with_reason;

/// The reason phrase of the `403` a blocked source or locked user gets.
pub const BLOCKED_REASON: &str = "Too Many Failed Authentications";

/// Limits for [`AuthGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthGuardConfig {
    /// Failures within `window` that block a source (and lock a user name); at least 1.
    pub max_failures: u32,
    /// The sliding window failures are counted in.
    pub window: Duration,
    /// How long a block or lock lasts, from the failure that started it.
    pub block_for: Duration,
    /// Most sources, and most user names, tracked at once; at least 1.
    pub max_entries: usize,
    /// Failures for one user name (from all sources together) within `window` that lock
    /// it against failing sources; at least 1.
    pub max_user_failures: u32,
}

impl Default for AuthGuardConfig {
    /// 5 failures per 60 s block a source for 5 minutes; 20 failures per 60 s against one
    /// user name lock it (for failing sources) for 5 minutes; 4096 entries per table.
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(60),
            block_for: Duration::from_secs(300),
            max_entries: 4096,
            max_user_failures: 20,
        }
    }
}

/// What to do with a request about to be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go on: verify its digest (or challenge it).
    Allow,
    /// Refuse it with `403` ([`forbidden`]) without looking at its credentials.
    Blocked {
        /// Why: the source is blocked, or the user name is locked.
        cause: BlockCause,
        /// Time left until the block ends.
        remaining: Duration,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCause {
    /// Too many failures from this source.
    Source,
    /// Too many failures for this user name, and this source failed too.
    User,
}

/// Result of [`AuthGuard::record_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Failures of this source within the window, this one included.
    pub source_failures: u32,
    /// This failure started a block of the source.
    pub source_blocked: bool,
    /// This failure locked the user name.
    pub user_locked: bool,
}

/// Counters for the phone's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthGuardStats {
    /// Failed authentications recorded.
    pub failures: u64,
    /// Requests refused because their source was blocked.
    pub refused_source: u64,
    /// Requests refused because their user name was locked.
    pub refused_user: u64,
    /// Blocks of a source started.
    pub sources_blocked: u64,
    /// Locks of a user name started.
    pub users_locked: u64,
    /// Entries evicted because a table was full.
    pub evicted: u64,
    /// Sources tracked now.
    pub tracked_sources: usize,
    /// User names tracked now.
    pub tracked_users: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Failure times within the window, oldest first (at most the threshold kept).
    failures: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            failures: VecDeque::new(),
            blocked_until: None,
            last_seen: now,
        }
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
        if self.blocked_until.is_some_and(|u| now >= u) {
            self.blocked_until = None;
        }
    }

    fn blocked(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .filter(|u| now < *u)
            .map(|u| u.saturating_duration_since(now))
    }

    /// Nothing left to remember.
    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.blocked(now).is_none()
            && self
                .failures
                .back()
                .is_none_or(|t| now.saturating_duration_since(*t) >= window)
    }

    /// Adds a failure; `true` when it reaches `threshold` and starts a block.
    fn fail(&mut self, now: Instant, threshold: u32, block_for: Duration) -> bool {
        self.last_seen = now;
        self.failures.push_back(now);
        while self.failures.len() > threshold as usize {
            self.failures.pop_front();
        }
        if self.failures.len() >= threshold as usize && self.blocked(now).is_none() {
            self.blocked_until = Some(now + block_for);
            return true;
        }
        false
    }
}

/// A bounded table of entries keyed by source or user name.
#[derive(Debug, Clone)]
struct Table<K> {
    entries: HashMap<K, Entry>,
    cap: usize,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            cap: cap.max(1),
        }
    }

    fn get(&mut self, now: Instant, window: Duration, key: &K) -> Option<&mut Entry> {
        let e = self.entries.get_mut(key)?;
        e.expire(now, window);
        Some(e)
    }

    /// The entry for `key`, making room first if needed; returns how many were evicted.
    fn entry(&mut self, now: Instant, window: Duration, key: &K) -> (&mut Entry, u64) {
        let mut evicted = 0;
        if !self.entries.contains_key(key) && self.entries.len() >= self.cap {
            self.entries.retain(|_, e| !e.idle(now, window));
            if self.entries.len() >= self.cap {
                let victim = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| (e.blocked(now).is_some(), e.last_seen))
                    .map(|(k, _)| k.clone());
                if let Some(k) = victim {
                    self.entries.remove(&k);
                    evicted = 1;
                }
            }
        }
        let e = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| Entry::new(now));
        e.expire(now, window);
        (e, evicted)
    }
}

/// See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct AuthGuard {
    config: AuthGuardConfig,
    sources: Table<IpAddr>,
    users: Table<String>,
    stats: AuthGuardStats,
}

impl AuthGuard {
    /// A guard with these limits (zero counts are raised to 1).
    pub fn new(mut config: AuthGuardConfig) -> Self {
        config.max_failures = config.max_failures.max(1);
        config.max_user_failures = config.max_user_failures.max(1);
        config.max_entries = config.max_entries.max(1);
        Self {
            sources: Table::new(config.max_entries),
            users: Table::new(config.max_entries),
            config,
            stats: AuthGuardStats::default(),
        }
    }

    /// The limits in use.
    pub fn config(&self) -> &AuthGuardConfig {
        &self.config
    }

    /// The counters, with the table sizes as of now.
    pub fn stats(&self) -> AuthGuardStats {
        AuthGuardStats {
            tracked_sources: self.sources.entries.len(),
            tracked_users: self.users.entries.len(),
            ..self.stats
        }
    }

    /// The key a source is counted under: the IPv4 address, or the IPv6 `/64`.
    pub fn source_key(source: IpAddr) -> IpAddr {
        match source {
            IpAddr::V4(_) => source,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !(u128::MAX >> 64);
                    IpAddr::V6(Ipv6Addr::from(bits))
                }
            },
        }
    }

    /// Before verifying a request from `source` that names `username` (from its
    /// `Authorization`, if any): may it be looked at? Refusals are counted.
    pub fn check(&mut self, now: Instant, source: IpAddr, username: Option<&str>) -> Admission {
        let window = self.config.window;
        let key = Self::source_key(source);
        let src = self.sources.get(now, window, &key);
        if let Some(remaining) = src.as_ref().and_then(|e| e.blocked(now)) {
            self.stats.refused_source += 1;
            return Admission::Blocked {
                cause: BlockCause::Source,
                remaining,
            };
        }
        let source_failed = src.is_some_and(|e| !e.failures.is_empty());
        if let (true, Some(user)) = (source_failed, username) {
            if let Some(remaining) = self
                .users
                .get(now, window, &user.to_string())
                .and_then(|e| e.blocked(now))
            {
                self.stats.refused_user += 1;
                return Admission::Blocked {
                    cause: BlockCause::User,
                    remaining,
                };
            }
        }
        Admission::Allow
    }

    /// A request from `source` (naming `username`, if it carried credentials) failed
    /// authentication.
    pub fn record_failure(
        &mut self,
        now: Instant,
        source: IpAddr,
        username: Option<&str>,
    ) -> FailureOutcome {
        let AuthGuardConfig {
            max_failures,
            max_user_failures,
            window,
            block_for,
            ..
        } = self.config;
        self.stats.failures += 1;
        let key = Self::source_key(source);
        let (src, evicted) = self.sources.entry(now, window, &key);
        let source_blocked = src.fail(now, max_failures, block_for);
        let source_failures = src.failures.len() as u32;
        self.stats.evicted += evicted;
        let mut user_locked = false;
        if let Some(user) = username {
            let (u, evicted) = self.users.entry(now, window, &user.to_string());
            user_locked = u.fail(now, max_user_failures, block_for);
            self.stats.evicted += evicted;
        }
        self.stats.sources_blocked += u64::from(source_blocked);
        self.stats.users_locked += u64::from(user_locked);
        FailureOutcome {
            source_failures,
            source_blocked,
            user_locked,
        }
    }

    /// Drops entries with nothing left to remember (call now and then; the tables are
    /// bounded without it).
    pub fn purge_idle(&mut self, now: Instant) {
        let window = self.config.window;
        self.sources.entries.retain(|_, e| !e.idle(now, window));
        self.users.entries.retain(|_, e| !e.idle(now, window));
    }
}

/// The `403` for a request refused by the guard, with [`BLOCKED_REASON`].
pub fn forbidden(request: &Request, to_tag: Option<&str>) -> Response {
    make_response_with_reason(request, 403, BLOCKED_REASON, to_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard(max_failures: u32) -> AuthGuard {
        AuthGuard::new(AuthGuardConfig {
            max_failures,
            ..Default::default()
        })
    }

    #[test]
    fn blocks_after_n_failures_in_the_window_and_unblocks_after_the_cool_down() {
        let mut g = AuthGuard::new(AuthGuardConfig::default());
        let t0 = Instant::now();
        let a = ip("198.51.100.1");
        for i in 1..=4u32 {
            assert_eq!(g.check(t0, a, Some("alice")), Admission::Allow, "try {i}");
            let o = g.record_failure(t0, a, Some("alice"));
            assert_eq!((o.source_failures, o.source_blocked), (i, false));
        }
        assert_eq!(g.check(t0, a, Some("alice")), Admission::Allow);
        assert!(g.record_failure(t0, a, Some("alice")).source_blocked);
        let t1 = t0 + Duration::from_secs(299);
        assert_eq!(
            g.check(t1, a, None),
            Admission::Blocked {
                cause: BlockCause::Source,
                remaining: Duration::from_secs(1)
            }
        );
        // Another source is not affected.
        assert_eq!(g.check(t1, ip("198.51.100.2"), None), Admission::Allow);
        assert_eq!(
            g.check(t0 + Duration::from_secs(300), a, None),
            Admission::Allow
        );
        let s = g.stats();
        assert_eq!((s.failures, s.sources_blocked, s.refused_source), (5, 1, 1));
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut g = guard(3);
        let t0 = Instant::now();
        let a = ip("198.51.100.1");
        g.record_failure(t0, a, None);
        g.record_failure(t0 + Duration::from_secs(30), a, None);
        // The first one has aged out 60 s later: two in the window, not three.
        let o = g.record_failure(t0 + Duration::from_secs(60), a, None);
        assert_eq!((o.source_failures, o.source_blocked), (2, false));
        assert!(
            g.record_failure(t0 + Duration::from_secs(61), a, None)
                .source_blocked
        );
    }

    #[test]
    fn a_block_is_not_extended_by_refused_requests_and_a_success_does_not_reset() {
        let mut g = guard(2);
        let t0 = Instant::now();
        let a = ip("198.51.100.1");
        g.record_failure(t0, a, None);
        // Nothing here resets on success: the count stays.
        assert_eq!(g.check(t0, a, None), Admission::Allow);
        assert!(g.record_failure(t0, a, None).source_blocked);
        for s in 0..300 {
            let _ = g.check(t0 + Duration::from_secs(s), a, None);
        }
        assert_eq!(
            g.check(t0 + Duration::from_secs(300), a, None),
            Admission::Allow
        );
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let mut g = guard(2);
        let t0 = Instant::now();
        g.record_failure(t0, ip("2001:db8:1:2::1"), None);
        g.record_failure(t0, ip("2001:db8:1:2::ffff"), None);
        assert!(matches!(
            g.check(t0, ip("2001:db8:1:2:abcd::9"), None),
            Admission::Blocked { .. }
        ));
        assert_eq!(g.check(t0, ip("2001:db8:1:3::1"), None), Admission::Allow);
        // An IPv4-mapped address counts as the IPv4 address.
        g.record_failure(t0, ip("::ffff:192.0.2.1"), None);
        g.record_failure(t0, ip("192.0.2.1"), None);
        assert!(matches!(
            g.check(t0, ip("192.0.2.1"), None),
            Admission::Blocked { .. }
        ));
    }

    #[test]
    fn a_locked_user_refuses_failing_sources_but_not_clean_ones() {
        let mut g = AuthGuard::new(AuthGuardConfig {
            max_failures: 5,
            max_user_failures: 3,
            ..Default::default()
        });
        let t0 = Instant::now();
        // Three sources, one wrong guess each, against alice: locked.
        for i in 1..=3 {
            let o = g.record_failure(t0, ip(&format!("203.0.113.{i}")), Some("alice"));
            assert_eq!(o.user_locked, i == 3);
        }
        // The guessers may not try alice again (nor are they blocked for other users)…
        assert_eq!(
            g.check(t0, ip("203.0.113.1"), Some("alice")),
            Admission::Blocked {
                cause: BlockCause::User,
                remaining: Duration::from_secs(300)
            }
        );
        assert_eq!(
            g.check(t0, ip("203.0.113.1"), Some("bob")),
            Admission::Allow
        );
        // …but alice on her own phone, which never failed, gets through.
        assert_eq!(
            g.check(t0, ip("192.0.2.50"), Some("alice")),
            Admission::Allow
        );
        // Once a guesser's failure ages out of the window it may try again.
        assert_eq!(
            g.check(
                t0 + Duration::from_secs(60),
                ip("203.0.113.1"),
                Some("alice")
            ),
            Admission::Allow
        );
        assert_eq!(g.stats().refused_user, 1);
        assert_eq!(g.stats().users_locked, 1);
    }

    #[test]
    fn tables_are_bounded_and_blocked_sources_are_evicted_last() {
        let mut g = AuthGuard::new(AuthGuardConfig {
            max_failures: 1,
            max_entries: 8,
            ..Default::default()
        });
        let t0 = Instant::now();
        let blocked = ip("10.0.0.1");
        g.record_failure(t0, blocked, None);
        // A scan from thousands of addresses (each blocked after one failure here, but
        // later ones not yet): the table never grows past 8.
        for i in 0..2000u32 {
            let a = IpAddr::from([172, 16, (i >> 8) as u8, i as u8]);
            g.record_failure(
                t0 + Duration::from_millis(u64::from(i) + 1),
                a,
                Some(&i.to_string()),
            );
            assert!(g.stats().tracked_sources <= 8);
            assert!(g.stats().tracked_users <= 8);
        }
        assert!(g.stats().evicted >= 2000 - 8);
        // Everything is blocked here, so the oldest goes — including 10.0.0.1; with
        // unblocked entries around, those go first:
        let mut g = AuthGuard::new(AuthGuardConfig {
            max_failures: 2,
            max_entries: 4,
            ..Default::default()
        });
        g.record_failure(t0, blocked, None);
        g.record_failure(t0, blocked, None);
        for i in 0..100u8 {
            g.record_failure(
                t0 + Duration::from_millis(u64::from(i) + 1),
                IpAddr::from([172, 16, 0, i]),
                None,
            );
        }
        assert!(matches!(
            g.check(t0, blocked, None),
            Admission::Blocked { .. }
        ));
        assert_eq!(g.stats().tracked_sources, 4);
    }

    #[test]
    fn idle_entries_are_purged() {
        let mut g = guard(5);
        let t0 = Instant::now();
        g.record_failure(t0, ip("198.51.100.1"), Some("x"));
        g.purge_idle(t0 + Duration::from_secs(59));
        assert_eq!(g.stats().tracked_sources, 1);
        g.purge_idle(t0 + Duration::from_secs(60));
        assert_eq!((g.stats().tracked_sources, g.stats().tracked_users), (0, 0));
    }

    #[test]
    fn forbidden_names_the_reason() {
        let req = crate::message::RequestBuilder::new(rsip::Method::Invite, "sip:bob@example.com")
            .via("UDP", "192.0.2.1", "z9hG4bK1")
            .from("sip:eve@example.com", None, "t")
            .to("sip:bob@example.com", None)
            .call_id("c")
            .cseq(1)
            .build()
            .unwrap();
        let text = crate::serialize(&rsip::SipMessage::Response(forbidden(&req, Some("x"))));
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.starts_with("SIP/2.0 403 Too Many Failed Authentications\r\n"),
            "{text}"
        );
    }
}
