//! Failover over an ordered target list (RFC 3263 §4.3), sans-IO with an injected clock.
//!
//! A target that timed out (Timer B for INVITE, Timer F otherwise, or a transport error)
//! or answered 503 is put on a blacklist; new transactions go to the first target in order
//! that is not on it. An entry expires after the target's record TTL (clamped, see
//! [`FailoverConfig`]) or, for a 503 with Retry-After, after that time: then the target is
//! used again ("failback"), because it comes first in the order.

use std::time::{Duration, Instant};

use crate::rfc3263::Target;
use crate::uri::Transport;

/// Why a target is put aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The transaction timed out (Timer B/F) with no response at all.
    Timeout,
    /// The connection could not be made or broke (ICMP unreachable, TCP RST, TLS failure).
    Transport,
    /// 503 Service Unavailable, with its Retry-After if any.
    Unavailable { retry_after: Option<Duration> },
}

/// How long targets stay blacklisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    /// Shortest blacklisting (a TTL of 0 or 1 s would retry a dead server at once).
    pub min_down: Duration,
    /// Longest blacklisting (also caps Retry-After).
    pub max_down: Duration,
}

impl Default for FailoverConfig {
    /// 5 s .. 1 h.
    fn default() -> Self {
        Self {
            min_down: Duration::from_secs(5),
            max_down: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Down {
    key: (Transport, std::net::SocketAddr),
    until: Instant,
    reason: FailReason,
}

/// The target list of one destination (a registrar, an outbound proxy, a request's
/// domain) and which of its targets are currently blacklisted.
#[derive(Debug, Clone)]
pub struct Failover {
    targets: Vec<Target>,
    down: Vec<Down>,
    config: FailoverConfig,
}

impl Failover {
    pub fn new(targets: Vec<Target>) -> Self {
        Self::with_config(targets, FailoverConfig::default())
    }

    pub fn with_config(targets: Vec<Target>, config: FailoverConfig) -> Self {
        Self {
            targets,
            down: Vec::new(),
            config,
        }
    }

    /// Replace the targets after a new location (e.g. the TTL ran out); blacklist entries
    /// are kept, keyed by transport and address.
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        self.targets = targets;
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    fn expire(&mut self, now: Instant) {
        self.down.retain(|d| d.until > now);
    }

    /// Is `target` blacklisted at `now`?
    pub fn is_down(&self, target: &Target, now: Instant) -> bool {
        self.down
            .iter()
            .any(|d| d.key == target.key() && d.until > now)
    }

    /// Where a new transaction goes: the first target in order that is not blacklisted.
    /// `None` when every target is (see [`Failover::next_failback`]) or there are none.
    pub fn pick(&mut self, now: Instant) -> Option<Target> {
        self.expire(now);
        self.targets.iter().find(|t| !self.is_down(t, now)).cloned()
    }

    /// Record that `target` failed at `now`; returns until when it is avoided, and the
    /// target to retry the request on (the next one in order not blacklisted, if any).
    pub fn mark_failed(
        &mut self,
        target: &Target,
        reason: FailReason,
        now: Instant,
    ) -> (Instant, Option<Target>) {
        let base = match reason {
            FailReason::Unavailable {
                retry_after: Some(ra),
            } => ra,
            _ => target.ttl,
        };
        let hold = base.clamp(self.config.min_down, self.config.max_down);
        let until = now + hold;
        self.down.retain(|d| d.key != target.key());
        self.down.push(Down {
            key: target.key(),
            until,
            reason,
        });
        let pos = self.targets.iter().position(|t| t.key() == target.key());
        let next = match pos {
            Some(p) => self.targets[p + 1..]
                .iter()
                .find(|t| !self.is_down(t, now))
                .cloned(),
            None => None,
        }
        .or_else(|| self.pick(now));
        (until, next)
    }

    /// A response came from `target`: take it off the blacklist.
    pub fn mark_ok(&mut self, target: &Target) {
        self.down.retain(|d| d.key != target.key());
    }

    /// Why and until when `target` is blacklisted.
    pub fn down_info(&self, target: &Target, now: Instant) -> Option<(FailReason, Instant)> {
        self.down
            .iter()
            .find(|d| d.key == target.key() && d.until > now)
            .map(|d| (d.reason, d.until))
    }

    /// When the earliest blacklist entry expires (a failback may happen then): the driver's
    /// timer for re-registering on the preferred target.
    pub fn next_failback(&self) -> Option<Instant> {
        self.down.iter().map(|d| d.until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc3263::Origin;

    fn t(last: u8, ttl: u64) -> Target {
        Target {
            transport: Transport::Udp,
            addr: std::net::SocketAddr::from(([127, 0, 0, last], 5060)),
            from: Origin::Numeric,
            ttl: Duration::from_secs(ttl),
            domain: "peerline.test".into(),
        }
    }

    #[test]
    fn timeout_moves_to_next_and_fails_back_after_ttl() {
        let now = Instant::now();
        let mut f = Failover::new(vec![t(1, 60), t(2, 60), t(3, 60)]);
        assert_eq!(f.pick(now), Some(t(1, 60)));
        let (until, next) = f.mark_failed(&t(1, 60), FailReason::Timeout, now);
        assert_eq!(until, now + Duration::from_secs(60));
        assert_eq!(next, Some(t(2, 60)));
        assert_eq!(f.pick(now + Duration::from_secs(59)), Some(t(2, 60)));
        assert_eq!(f.next_failback(), Some(until));
        assert_eq!(f.pick(now + Duration::from_secs(60)), Some(t(1, 60)));
        assert_eq!(f.next_failback(), None);
    }

    #[test]
    fn retry_after_and_clamping() {
        let now = Instant::now();
        let mut f = Failover::new(vec![t(1, 0), t(2, 100_000)]);
        let ra = FailReason::Unavailable {
            retry_after: Some(Duration::from_secs(20)),
        };
        assert_eq!(
            f.mark_failed(&t(1, 0), ra, now).0,
            now + Duration::from_secs(20)
        );
        // 503 without Retry-After: the TTL, at least min_down.
        let na = FailReason::Unavailable { retry_after: None };
        assert_eq!(
            f.mark_failed(&t(1, 0), na, now).0,
            now + Duration::from_secs(5)
        );
        // Huge TTL: capped at max_down.
        assert_eq!(
            f.mark_failed(&t(2, 100_000), FailReason::Transport, now).0,
            now + Duration::from_secs(3600)
        );
        assert_eq!(
            f.down_info(&t(2, 100_000), now).map(|d| d.0),
            Some(FailReason::Transport)
        );
    }

    #[test]
    fn all_down_then_ok() {
        let now = Instant::now();
        let mut f = Failover::new(vec![t(1, 30), t(2, 30)]);
        f.mark_failed(&t(1, 30), FailReason::Timeout, now);
        let (_, next) = f.mark_failed(&t(2, 30), FailReason::Timeout, now);
        assert_eq!(next, None);
        assert_eq!(f.pick(now), None);
        f.mark_ok(&t(2, 30));
        assert_eq!(f.pick(now), Some(t(2, 30)));
        // Failing the last one wraps to the first usable one.
        f.mark_ok(&t(1, 30));
        let (_, next) = f.mark_failed(&t(2, 30), FailReason::Timeout, now);
        assert_eq!(next, Some(t(1, 30)));
    }

    #[test]
    fn blacklist_survives_new_target_list() {
        let now = Instant::now();
        let mut f = Failover::new(vec![t(1, 30), t(2, 30)]);
        f.mark_failed(&t(1, 30), FailReason::Timeout, now);
        f.set_targets(vec![t(1, 30), t(2, 30), t(3, 30)]);
        assert_eq!(f.pick(now), Some(t(2, 30)));
        assert!(f.is_down(&t(1, 30), now));
    }
}
