//! The checks an incoming out-of-dialog INVITE or MESSAGE passes before the user sees
//! it: the failed-authentication guard (`peerline_sip::auth_guard`), the digest check
//! (`[auth]`, `peerline_sip::auth::DigestServer`) and, for INVITEs, the incoming-call
//! policy (`[policy]`, [`crate::incoming_policy`]). Each refusal is logged at info with
//! the source address and the claimed user name — never a password, a digest response
//! or a nonce — and counted in [`SecurityStats`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use peerline_sip::auth::{DigestServer, Verdict};
use peerline_sip::auth_guard::{forbidden, Admission, AuthGuard, AuthGuardStats};
use peerline_sip::message::make_response_with_reason;
use rand::RngCore;
use rsip::{Request, Response};

use crate::config::Config;
use crate::incoming_policy::PolicyConfig;

/// Counters of the incoming gate, from [`crate::Phone::security_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecurityStats {
    /// Requests that authenticated.
    pub authorized: u64,
    /// Requests without credentials, challenged with 401.
    pub challenged: u64,
    /// Wrong password, unknown user or bad credentials (401 with a fresh challenge).
    pub auth_failures: u64,
    /// Replayed or non-increasing nonce counts (401, counted as failures too).
    pub replays: u64,
    /// Right credentials on an expired nonce (401 with `stale=true`; not a failure).
    pub stale: u64,
    /// INVITEs refused by `[policy]` (403).
    pub policy_refused: u64,
    /// The failed-authentication guard's own counters (blocks, 403s, table sizes).
    pub guard: AuthGuardStats,
}

pub(crate) struct IncomingGate {
    digest: Option<(DigestServer, AuthGuard)>,
    policy: PolicyConfig,
    stats: SecurityStats,
    last_purge: Instant,
}

impl IncomingGate {
    pub(crate) fn new(config: &Config, now: Instant, rng: &mut dyn RngCore) -> Self {
        let auth = &config.auth;
        let digest = (!auth.users.is_empty()).then(|| {
            let mut server = DigestServer::new(&auth.realm, now, rng)
                .with_nonce_ttl(Duration::from_secs(auth.nonce_ttl_secs.max(1)))
                .with_algorithms(&auth.parsed_algorithms().unwrap_or_default());
            for u in &auth.users {
                server.add_user(&u.user, &u.password);
            }
            (server, AuthGuard::new(auth.guard()))
        });
        Self {
            digest,
            policy: config.policy.clone(),
            stats: SecurityStats::default(),
            last_purge: now,
        }
    }

    pub(crate) fn stats(&self) -> SecurityStats {
        SecurityStats {
            guard: self
                .digest
                .as_ref()
                .map(|(_, g)| g.stats())
                .unwrap_or_default(),
            ..self.stats
        }
    }

    /// `Ok(())` when `request` (from `source`) authenticated or no `[auth]` is
    /// configured; otherwise the response to send (401 challenge or 403).
    pub(crate) fn authenticate(
        &mut self,
        now: Instant,
        rng: &mut dyn RngCore,
        request: &Request,
        source: SocketAddr,
        to_tag: Option<&str>,
    ) -> Result<(), Response> {
        let Some((server, guard)) = self.digest.as_mut() else {
            return Ok(());
        };
        if now.saturating_duration_since(self.last_purge) >= Duration::from_secs(60) {
            guard.purge_idle(now);
            self.last_purge = now;
        }
        let ip = source.ip();
        let user = server.claimed_user(request, false);
        let method = request.method.to_string();
        if let Admission::Blocked { cause, remaining } = guard.check(now, ip, user.as_deref()) {
            // Refusals of a blocked source are not logged one by one (that would let a
            // guesser flood the log); the block itself was logged when it started.
            tracing::debug!(source = %ip, user = ?user, ?cause, "{method} refused: blocked for {} s more", remaining.as_secs());
            return Err(forbidden(request, to_tag));
        }
        let verdict = server.verify(request, now, false);
        let failed = match &verdict {
            Verdict::Authorized { username } => {
                self.stats.authorized += 1;
                tracing::debug!(source = %ip, user = ?username, "{method} authenticated");
                return Ok(());
            }
            Verdict::Missing => {
                self.stats.challenged += 1;
                tracing::debug!(source = %ip, "{method} without credentials: challenged");
                false
            }
            Verdict::Stale => {
                self.stats.stale += 1;
                tracing::info!(source = %ip, user = ?user, "{method}: expired nonce, challenged with stale=true");
                false
            }
            Verdict::Replay => {
                self.stats.replays += 1;
                tracing::info!(source = %ip, user = ?user, "{method} authentication failed: replayed nonce count");
                true
            }
            Verdict::Invalid(why) => {
                self.stats.auth_failures += 1;
                tracing::info!(source = %ip, user = ?user, "{method} authentication failed: {why}");
                true
            }
        };
        if failed {
            let o = guard.record_failure(now, ip, user.as_deref());
            if o.source_blocked {
                tracing::warn!(
                    source = %ip,
                    user = ?user,
                    "{} failed authentications within {} s: source blocked for {} s",
                    o.source_failures,
                    guard.config().window.as_secs(),
                    guard.config().block_for.as_secs()
                );
            }
            if o.user_locked {
                tracing::warn!(user = ?user, "too many failed authentications for this user: locked against failing sources");
            }
        }
        Err(server.challenge_response(request, now, rng, to_tag, false, &verdict))
    }

    /// `[policy]` for an incoming INVITE that passed [`Self::authenticate`]: `Err` is
    /// the 403 to send.
    pub(crate) fn admit_call(
        &mut self,
        request: &Request,
        source: SocketAddr,
        to_tag: Option<&str>,
    ) -> Result<(), Response> {
        let auth_users = self.digest.is_some();
        self.policy.admit(auth_users, request).map_err(|reason| {
            self.stats.policy_refused += 1;
            let from = peerline_sip::MessageExt::from_addr(request).map(|a| a.uri.to_string());
            tracing::info!(source = %source.ip(), from = ?from, "INVITE refused by [policy]: {reason}");
            make_response_with_reason(request, 403, reason, to_tag)
        })
    }
}
