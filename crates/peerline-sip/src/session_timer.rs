//! Session timers (RFC 4028), sans-IO: the `Session-Expires`/`Min-SE` headers, what a
//! UAS answers to an INVITE that asks for a session interval, and the timer of an
//! established session (the refresher refreshes at half the interval; the other side
//! ends the session when no refresh came by the interval minus min(32 s, interval/3)).

use std::time::{Duration, Instant};

use rsip::{Request, Response};

use crate::message::{header_value, header_values};

/// The smallest session interval we accept (RFC 4028 §4: at least 90 s).
pub const MIN_SE: u32 = 90;

/// Which side refreshes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller.
    Uac,
    /// The callee.
    Uas,
}

impl Refresher {
    /// `uac` / `uas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: `delta-seconds [;refresher=uac|uas]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval in seconds.
    pub secs: u32,
    /// Who refreshes, when the header says.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a header value; `None` when it is not a positive number of seconds.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let secs: u32 = parts.next()?.trim().parse().ok()?;
        if secs == 0 {
            return None;
        }
        let mut refresher = None;
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            if k.trim().eq_ignore_ascii_case("refresher") {
                refresher = match v.trim().to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => None,
                };
            }
        }
        Some(Self { secs, refresher })
    }

    /// The header value we send.
    pub fn to_header_value(self) -> String {
        match self.refresher {
            Some(r) => format!("{};refresher={}", self.secs, r.as_str()),
            None => self.secs.to_string(),
        }
    }
}

/// The `Session-Expires` (or compact `x`) of a request.
pub fn session_expires(request: &Request) -> Option<SessionExpires> {
    header_value(request, "Session-Expires")
        .or_else(|| header_value(request, "x"))
        .and_then(SessionExpires::parse)
}

/// The `Session-Expires` of a response.
pub fn response_session_expires(response: &Response) -> Option<SessionExpires> {
    header_value(response, "Session-Expires")
        .or_else(|| header_value(response, "x"))
        .and_then(SessionExpires::parse)
}

/// Whether the request's `Supported` (or `Require`) lists `timer`.
pub fn supports_timer(request: &Request) -> bool {
    header_values(request, "Supported")
        .into_iter()
        .chain(header_values(request, "Require"))
        .flat_map(crate::syntax::split_list)
        .any(|t| t.trim().eq_ignore_ascii_case("timer"))
}

/// What a UAS does with an INVITE's session-timer request (RFC 4028 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UasTimer {
    /// No `Session-Expires`: no session timer.
    None,
    /// The interval is below our `Min-SE` and the caller supports the extension: answer
    /// `422 Session Interval Too Small` with `Min-SE: min_se`.
    TooSmall {
        /// Our minimum.
        min_se: u32,
    },
    /// Run a session timer: the 2xx carries `Session-Expires` (and `Require: timer` when
    /// `require`).
    Use {
        /// What the 2xx's `Session-Expires` says.
        expires: SessionExpires,
        /// Whether the 2xx carries `Require: timer` (the caller supports it).
        require: bool,
    },
}

/// The UAS side of RFC 4028 §9 for an incoming INVITE, with our minimum `min_se`.
pub fn uas_negotiate(invite: &Request, min_se: u32) -> UasTimer {
    let Some(asked) = session_expires(invite) else {
        return UasTimer::None;
    };
    let supported = supports_timer(invite);
    // A caller that cannot handle 422 gets the interval raised instead (§9).
    if asked.secs < min_se && supported {
        return UasTimer::TooSmall { min_se };
    }
    let secs = asked.secs.max(min_se);
    // §9: without support on the caller's side, only we can refresh.
    let refresher = match (supported, asked.refresher) {
        (false, _) => Refresher::Uas,
        (true, Some(r)) => r,
        (true, None) => Refresher::Uac,
    };
    UasTimer::Use {
        expires: SessionExpires {
            secs,
            refresher: Some(refresher),
        },
        require: supported,
    }
}

/// What the timer of an established session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// We are the refresher: send a session refresh (re-INVITE or UPDATE) now.
    Refresh,
    /// The other side did not refresh in time: end the session (BYE).
    Expired,
}

/// The session timer of one established session.
#[derive(Debug, Clone)]
pub struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    last: Instant,
    refresh_sent: bool,
}

impl SessionTimer {
    /// A session refreshed at `now` (its INVITE answered), interval `secs`.
    pub fn new(now: Instant, secs: u32, we_refresh: bool) -> Self {
        Self {
            interval: Duration::from_secs(u64::from(secs.max(1))),
            we_refresh,
            last: now,
            refresh_sent: false,
        }
    }

    /// Whether we are the refresher.
    pub fn we_refresh(&self) -> bool {
        self.we_refresh
    }

    /// The interval in seconds.
    pub fn secs(&self) -> u64 {
        self.interval.as_secs()
    }

    /// A refresh succeeded at `now` (ours answered 2xx, or the peer's arrived); a new
    /// refresher may be named.
    pub fn refreshed(&mut self, now: Instant, we_refresh: Option<bool>) {
        self.last = now;
        self.refresh_sent = false;
        if let Some(w) = we_refresh {
            self.we_refresh = w;
        }
    }

    /// When to call [`SessionTimer::handle_timeout`]: at half the interval for the
    /// refresher (once), at the interval minus min(32 s, interval/3) for the other side
    /// (RFC 4028 §10), and for the refresher too if its refresh got no answer.
    pub fn poll_timeout(&self) -> Instant {
        let expiry = self.last + self.interval - (self.interval / 3).min(Duration::from_secs(32));
        if self.we_refresh && !self.refresh_sent {
            self.last + self.interval / 2
        } else {
            expiry
        }
    }

    /// The timer fired at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if now < self.poll_timeout() {
            return None;
        }
        if self.we_refresh && !self.refresh_sent {
            self.refresh_sent = true;
            return Some(TimerAction::Refresh);
        }
        Some(TimerAction::Expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{make_header, RequestBuilder};

    fn invite(headers: &[(&str, &str)]) -> Request {
        let mut r = RequestBuilder::new(rsip::Method::Invite, "sip:bob@192.0.2.1")
            .via("UDP", "192.0.2.2:5060", "z9hG4bKst")
            .from("sip:alice@192.0.2.2", None, "a")
            .to("sip:bob@192.0.2.1", None)
            .call_id("st@192.0.2.2")
            .cseq(1)
            .build()
            .unwrap();
        for (n, v) in headers {
            r.headers.push(make_header(n, v));
        }
        r
    }

    #[test]
    fn parses_session_expires() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=uas"),
            Some(SessionExpires {
                secs: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 ; Refresher = UAC"),
            Some(SessionExpires {
                secs: 90,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            SessionExpires::parse("600").map(|s| s.refresher),
            Some(None)
        );
        for bad in ["", "0", "-5", "abc;refresher=uac", "99999999999"] {
            assert_eq!(SessionExpires::parse(bad), None, "{bad:?}");
        }
        let se = SessionExpires::parse("1800;refresher=uac").unwrap();
        assert_eq!(se.to_header_value(), "1800;refresher=uac");
    }

    #[test]
    fn uas_negotiation() {
        assert_eq!(uas_negotiate(&invite(&[]), MIN_SE), UasTimer::None);
        // Supported, no refresher: the caller refreshes, Require: timer.
        assert_eq!(
            uas_negotiate(
                &invite(&[("Supported", "timer, 100rel"), ("Session-Expires", "1800")]),
                MIN_SE
            ),
            UasTimer::Use {
                expires: SessionExpires {
                    secs: 1800,
                    refresher: Some(Refresher::Uac)
                },
                require: true
            }
        );
        // Too small and supported: 422 with our Min-SE.
        assert_eq!(
            uas_negotiate(
                &invite(&[("Supported", "timer"), ("Session-Expires", "30")]),
                MIN_SE
            ),
            UasTimer::TooSmall { min_se: 90 }
        );
        // Not supported: we refresh, the interval raised to our minimum, no Require.
        assert_eq!(
            uas_negotiate(&invite(&[("Session-Expires", "30;refresher=uac")]), MIN_SE),
            UasTimer::Use {
                expires: SessionExpires {
                    secs: 90,
                    refresher: Some(Refresher::Uas)
                },
                require: false
            }
        );
    }

    #[test]
    fn refresher_refreshes_at_half_and_the_other_side_expires() {
        let t0 = Instant::now();
        let mut us = SessionTimer::new(t0, 90, true);
        assert_eq!(us.poll_timeout(), t0 + Duration::from_secs(45));
        assert_eq!(us.handle_timeout(t0 + Duration::from_secs(44)), None);
        assert_eq!(
            us.handle_timeout(t0 + Duration::from_secs(45)),
            Some(TimerAction::Refresh)
        );
        // No answer to our refresh: expiry at 90 - 30 = 60 s.
        assert_eq!(us.poll_timeout(), t0 + Duration::from_secs(60));
        us.refreshed(t0 + Duration::from_secs(46), None);
        assert_eq!(us.poll_timeout(), t0 + Duration::from_secs(46 + 45));
        // The other side: 1800 s interval, expiry at 1800 - 32.
        let them = SessionTimer::new(t0, 1800, false);
        assert_eq!(them.poll_timeout(), t0 + Duration::from_secs(1768));
        let mut them = them;
        assert_eq!(
            them.handle_timeout(t0 + Duration::from_secs(1768)),
            Some(TimerAction::Expired)
        );
    }
}
