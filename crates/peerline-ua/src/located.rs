//! A SIP server found through RFC 3263 (an account's registrar or outbound proxy): its
//! ordered targets, the one new transactions use, and failover to the next one when a
//! transaction times out (Timer B/F), the connection fails or the server answers 503
//! (RFC 3263 §4.3, `peerline_dns::Failover`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use peerline_dns::{FailReason, Failover, Locator};
use peerline_sip::register::{Registration, RegistrationConfig};
use peerline_sip::{Target, Transport};
use rand::RngCore;
use rsip::Response;

use crate::account::AccountConfig;

/// One located server and which of its targets is in use.
#[derive(Debug)]
pub(crate) struct Located {
    /// The URI located (again when the records' TTL runs out).
    uri: String,
    failover: Failover,
    current: Option<peerline_dns::Target>,
    /// When the smallest TTL of the records runs out (`None`: numeric host, no DNS).
    expires_at: Option<Instant>,
}

/// When a target list located at `now` goes stale: its smallest TTL later (a TTL of 0
/// means a numeric host, which never goes stale).
fn expiry(targets: &[peerline_dns::Target], now: Instant) -> Option<Instant> {
    targets
        .iter()
        .map(|t| t.ttl)
        .filter(|ttl| !ttl.is_zero())
        .min()
        .map(|ttl| now + ttl)
}

impl Located {
    /// Locates `uri` with the phone's locator (numeric hosts need no DNS).
    pub(crate) async fn locate(locator: &Locator, uri: &str) -> Result<Self, String> {
        let targets = locator.locate(uri).await.map_err(|e| e.to_string())?;
        Self::new(uri, targets, Instant::now()).ok_or_else(|| format!("{uri}: no usable target"))
    }

    fn new(uri: &str, targets: Vec<peerline_dns::Target>, now: Instant) -> Option<Self> {
        let expires_at = expiry(&targets, now);
        let mut failover = Failover::new(targets);
        let current = failover.pick(now);
        current.is_some().then_some(Self {
            uri: uri.to_string(),
            failover,
            current,
            expires_at,
        })
    }

    /// Whether the records behind the targets have outlived their TTL at `now`.
    pub(crate) fn is_stale(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Locates the URI again (its records' TTL ran out): the new targets replace the
    /// old, failed targets stay avoided until their time is up, and the target in use
    /// stays in use when it is still listed. On a DNS error the old list is kept and
    /// tried again after a short while.
    pub(crate) async fn relocate(&mut self, locator: &Locator, now: Instant) -> Result<(), String> {
        match locator.locate(&self.uri).await {
            Ok(targets) if !targets.is_empty() => {
                self.expires_at = expiry(&targets, now);
                self.failover.set_targets(targets);
                let keep = self.current.as_ref().is_some_and(|c| {
                    self.failover.targets().iter().any(|t| t.key() == c.key())
                        && !self.failover.is_down(c, now)
                });
                if !keep {
                    self.current = self.failover.pick(now);
                }
                Ok(())
            }
            Ok(_) => {
                self.expires_at = Some(now + Duration::from_secs(30));
                Err(format!(
                    "{}: no targets on a new lookup; keeping the old ones",
                    self.uri
                ))
            }
            Err(e) => {
                self.expires_at = Some(now + Duration::from_secs(30));
                Err(format!("{}: {e}; keeping the old targets", self.uri))
            }
        }
    }

    /// The TLS targets and the name each must present (RFC 5922: the URI's domain, not
    /// the SRV target; the address itself for a numeric host).
    pub(crate) fn tls_names(&self) -> impl Iterator<Item = (SocketAddr, &str)> {
        self.failover
            .targets()
            .iter()
            .filter(|t| t.transport == peerline_dns::Transport::Tls)
            .map(|t| (t.addr, t.domain.as_str()))
    }

    /// Where new transactions go, with the transport location chose.
    pub(crate) fn hop(&self) -> Option<Target> {
        self.current.as_ref().map(sip_target)
    }

    /// The target in use failed: it is avoided for a while and the next one in order (if
    /// any) becomes the one in use, which is returned.
    pub(crate) fn fail(&mut self, reason: FailReason, now: Instant) -> Option<Target> {
        let current = self.current.clone()?;
        let (_, next) = self.failover.mark_failed(&current, reason, now);
        tracing::info!(
            failed = %current.addr,
            transport = %current.transport,
            next = ?next.as_ref().map(|t| (t.transport, t.addr)),
            "SIP server target failed ({reason:?})"
        );
        match next {
            Some(n) if n.key() != current.key() => {
                self.current = Some(n);
                self.hop()
            }
            _ => None,
        }
    }

    /// Failback: the first usable target in order, when it is not the one in use (a target
    /// before it is usable again: its blacklisting ran out). It becomes the one in use.
    pub(crate) fn failback(&mut self, now: Instant) -> Option<Target> {
        let preferred = self.failover.pick(now)?;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.key() == preferred.key())
        {
            return None;
        }
        self.current = Some(preferred);
        self.hop()
    }

    /// The target in use answered.
    pub(crate) fn ok(&mut self) {
        if let Some(c) = &self.current {
            self.failover.mark_ok(c);
        }
    }

    /// Is `remote` over `transport` the target in use?
    pub(crate) fn is_current(&self, remote: SocketAddr, transport: Transport) -> bool {
        self.hop()
            .is_some_and(|h| h.addr == remote && h.transport == transport)
    }
}

/// The failover reason for a response that fails a target: 503 (with its Retry-After).
pub(crate) fn unavailable(response: &Response) -> Option<FailReason> {
    if response.status_code.code() != 503 {
        return None;
    }
    let retry_after = peerline_sip::message::header_value(response, "Retry-After")
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .map(Duration::from_secs);
    Some(FailReason::Unavailable { retry_after })
}

/// The SIP transport of a located target.
pub(crate) fn sip_transport(t: peerline_dns::Transport) -> Transport {
    match t {
        peerline_dns::Transport::Udp => Transport::Udp,
        peerline_dns::Transport::Tcp => Transport::Tcp,
        peerline_dns::Transport::Tls => Transport::Tls,
    }
}

fn sip_target(t: &peerline_dns::Target) -> Target {
    match sip_transport(t.transport) {
        Transport::Udp => Target::udp(t.addr),
        other => Target::stream(t.addr, other, None),
    }
}

/// Our Contact URI for `transport`, `local` being our listener for it: `sip:` for UDP,
/// `;transport=tcp` for TCP, `sips:` for TLS.
pub(crate) fn contact_uri_for(user: &str, local: SocketAddr, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("sip:{user}@{local}"),
        Transport::Tcp => format!("sip:{user}@{local};transport=tcp"),
        Transport::Tls => format!("sips:{user}@{local}"),
    }
}

/// A registration of `account` at `hop`: Via and Contact name the hop's transport
/// (`;transport=tcp` for TCP) and our address toward it, on the phone's SIP port (UDP
/// and TCP listen on the same one).
pub(crate) fn registration_for(
    account: &AccountConfig,
    credentials: Option<peerline_sip::auth::Credentials>,
    hop: &Target,
    local_ip: IpAddr,
    sip_port: u16,
    rng: &mut dyn RngCore,
) -> Registration {
    let (user, _) = account.aor_parts().unwrap_or_default();
    let local = SocketAddr::new(local_ip, sip_port);
    let contact = contact_uri_for(&user, local, hop.transport);
    let mut rc = RegistrationConfig::new(
        &account.registrar_uri(),
        &account.aor,
        &contact,
        &local.to_string(),
    );
    rc.transport = hop.transport;
    rc.expires = account.expires;
    rc.credentials = credentials;
    rc.rewrite_contact = account.rewrite_contact;
    Registration::new(rc, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn numeric_hosts_keep_their_transport_and_fail_over_nowhere() {
        let locator =
            Locator::with_server("127.0.0.1:9".parse().unwrap()).policy(crate::location::policy());
        let mut l = Located::locate(&locator, "sip:127.0.0.1:5070;transport=tcp")
            .await
            .unwrap();
        let hop = l.hop().unwrap();
        assert_eq!(
            (hop.addr, hop.transport),
            ("127.0.0.1:5070".parse().unwrap(), Transport::Tcp)
        );
        assert!(l.is_current(hop.addr, Transport::Tcp));
        // One target only: nothing to fail over to. A numeric host never goes stale.
        assert!(l.fail(FailReason::Timeout, Instant::now()).is_none());
        assert!(!l.is_stale(Instant::now() + Duration::from_secs(86_400)));
    }

    fn target(transport: peerline_dns::Transport, addr: &str) -> peerline_dns::Target {
        peerline_dns::Target {
            transport,
            addr: addr.parse().unwrap(),
            from: peerline_dns::Origin::Numeric,
            ttl: Duration::from_secs(10),
            domain: "example.com".into(),
        }
    }

    #[test]
    fn fails_over_in_order_and_fails_back_after_the_ttl() {
        use peerline_dns::Transport::{Tcp, Udp};
        let t0 = Instant::now();
        let mut l = Located::new(
            "sip:example.com",
            vec![target(Tcp, "192.0.2.1:5060"), target(Udp, "192.0.2.1:5060")],
            t0,
        )
        .unwrap();
        // The records' TTL (10 s) makes the list stale after 10 s, not before.
        assert!(!l.is_stale(t0 + Duration::from_secs(9)));
        assert!(l.is_stale(t0 + Duration::from_secs(10)));
        assert_eq!(l.hop().unwrap().transport, Transport::Tcp);
        // TCP refused: UDP next, for new transactions.
        let next = l.fail(FailReason::Transport, t0).unwrap();
        assert_eq!(next.transport, Transport::Udp);
        assert!(l.is_current(next.addr, Transport::Udp));
        // Within the TTL the TCP target stays blacklisted …
        assert!(l.failback(t0 + Duration::from_secs(9)).is_none());
        // … after it, new registrations go back to it.
        let back = l.failback(t0 + Duration::from_secs(11)).unwrap();
        assert_eq!(back.transport, Transport::Tcp);
        assert!(l.failback(t0 + Duration::from_secs(12)).is_none());
        // 503 with Retry-After: that long.
        let r: Response = rsip::Response::try_from(
            "SIP/2.0 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let t1 = t0 + Duration::from_secs(20);
        l.fail(unavailable(&r).unwrap(), t1).unwrap();
        assert!(l.failback(t1 + Duration::from_secs(29)).is_none());
        assert!(l.failback(t1 + Duration::from_secs(31)).is_some());
    }

    #[test]
    fn a_503_names_its_retry_after() {
        let r: Response = rsip::Response::try_from(
            "SIP/2.0 503 Service Unavailable\r\nRetry-After: 30 (maintenance)\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            unavailable(&r),
            Some(FailReason::Unavailable {
                retry_after: Some(Duration::from_secs(30))
            })
        );
    }

    #[test]
    fn contact_and_via_follow_the_transport() {
        let account: AccountConfig =
            toml::from_str("aor = \"sip:alice@example.com\"\nexpires = 60\n").unwrap();
        let hop = Target::stream("192.0.2.1:5060".parse().unwrap(), Transport::Tcp, None);
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        let mut r = registration_for(
            &account,
            None,
            &hop,
            "192.0.2.9".parse().unwrap(),
            5070,
            &mut rng,
        );
        let req = r.poll_request(Instant::now()).unwrap().to_string();
        assert!(req.contains("Via: SIP/2.0/TCP 192.0.2.9:5070;"), "{req}");
        assert!(
            req.contains("<sip:alice@192.0.2.9:5070;transport=tcp>"),
            "{req}"
        );
    }
}
