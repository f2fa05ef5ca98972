//! REGISTER client (RFC 3261 §10.2), sans-IO.
//!
//! The driver drains [`Registration::poll_request`] and sends each request through
//! the transaction [`crate::Endpoint`], feeds final responses to
//! [`Registration::handle_response`] (and a transaction timeout to
//! [`Registration::handle_transaction_timeout`]), sleeps until
//! [`Registration::poll_timeout`] and calls [`Registration::handle_timeout`].
//!
//! Refresh policy (RFC 3261 §10.2.4 only says "before the binding expires"): the
//! refresh goes out at `max(expires / 2, expires - 600 s)` after the 200 — halfway
//! for short bindings, ten minutes early for long ones — so the refresh transaction
//! (up to 64·T1 = 32 s with retransmissions) and one retry fit before expiry.
//! The granted expiry is the `expires` parameter of our Contact in the 200, else the
//! `Expires` header, else what we asked for.
//!
//! Failures back off as in RFC 5626 §4.5: `min(max, base · 2^(n-1))` with a random
//! factor in [0.5, 1], or the server's `Retry-After`.

use crate::auth::{AuthError, ChallengeOutcome, Credentials, DigestClient};
use crate::message::{header_value, header_values, make_header, MessageExt, RequestBuilder};
use crate::transport::Transport;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rsip::{Method, Request, Response};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How to register.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// Request-URI of the REGISTER (the registrar domain, e.g. `sip:example.com`).
    pub registrar: String,
    /// Address of record, used in To and From (e.g. `sip:alice@example.com`).
    pub aor: String,
    /// Display name for From/To.
    pub display_name: Option<String>,
    /// Our Contact URI (e.g. `sip:alice@192.0.2.1:5060`).
    pub contact: String,
    /// Requested binding lifetime in seconds (default 3600).
    pub expires: u32,
    /// Transport token for the Via.
    pub transport: Transport,
    /// Via sent-by (`host[:port]`).
    pub sent_by: String,
    /// Credentials for 401/407.
    pub credentials: Option<Credentials>,
    /// RFC 5626 `+sip.instance` (e.g. `<urn:uuid:…>`, angle brackets included or not).
    pub instance_id: Option<String>,
    /// RFC 5626 `reg-id` (only with `instance_id`).
    pub reg_id: Option<u32>,
    /// First failure back-off (default 30 s).
    pub retry_base: Duration,
    /// Maximum failure back-off (default 1800 s).
    pub retry_max: Duration,
    /// Over UDP: when the 2xx's top Via shows that the registrar saw us at another
    /// address (RFC 3581 `received`/`rport`: a NAT), register again at once with the
    /// Contact naming that public address and remove the old binding in the same
    /// REGISTER ("contact rewrite"). Default off here; the phone turns it on.
    pub rewrite_contact: bool,
}

impl RegistrationConfig {
    /// Config with defaults for everything but the addresses.
    pub fn new(registrar: &str, aor: &str, contact: &str, sent_by: &str) -> Self {
        RegistrationConfig {
            registrar: registrar.to_string(),
            aor: aor.to_string(),
            display_name: None,
            contact: contact.to_string(),
            expires: 3600,
            transport: Transport::Udp,
            sent_by: sent_by.to_string(),
            credentials: None,
            instance_id: None,
            reg_id: None,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(1800),
            rewrite_contact: false,
        }
    }
}

/// What happened to the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// The registrar accepted the binding for `expires` seconds.
    Registered {
        /// Granted lifetime in seconds.
        expires: u32,
    },
    /// Registering failed (a retry is scheduled unless it was final for auth).
    Failed {
        /// Status code (408 for a transaction timeout, 0 when the REGISTER could not be
        /// delivered: the connection to the registrar failed).
        code: u16,
        /// Reason phrase or explanation.
        reason: String,
    },
    /// The binding was removed (answer to expires=0), or unregistering gave up.
    Unregistered,
}

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Sending the first REGISTER or waiting for its answer.
    Registering,
    /// Bound; a refresh is scheduled.
    Registered,
    /// Waiting to retry after a failure.
    Backoff,
    /// Sending / awaiting the expires=0 REGISTER.
    Unregistering,
    /// Not registered and nothing scheduled.
    Idle,
}

/// The REGISTER state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    rng: StdRng,
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegistrationState,
    /// Requested expiry for the next REGISTER (raised by 423).
    expires: u32,
    send_now: bool,
    in_flight: Option<u32>,
    timer: Option<Instant>,
    failures: u32,
    digest: Option<DigestClient>,
    events: VecDeque<RegistrationEvent>,
    last_request: Option<Request>,
    expires_at: Option<Instant>,
    /// Where the registrar saw our last REGISTER come from (2xx top Via).
    public: Option<std::net::SocketAddr>,
    /// A Contact to remove (`expires=0`) in the next REGISTER: the one before a rewrite.
    stale_contact: Option<String>,
}

type Params = Vec<(String, Option<String>)>;

fn contact_params(value: &str) -> Option<(String, Params)> {
    let na = crate::syntax::parse_name_addr(value).ok()?;
    Some((
        na.uri,
        na.params
            .into_iter()
            .map(|p| (p.name.to_ascii_lowercase(), p.value))
            .collect(),
    ))
}

fn same_uri(a: &str, b: &str) -> bool {
    a.trim_matches(|c| c == '<' || c == '>')
        .eq_ignore_ascii_case(b.trim_matches(|c| c == '<' || c == '>'))
}

impl Registration {
    /// A registration; the first REGISTER is ready at once ([`Registration::poll_request`]).
    pub fn new(config: RegistrationConfig, rng: &mut dyn RngCore) -> Self {
        let mut rng = StdRng::seed_from_u64(rng.next_u64());
        let host = config
            .sent_by
            .split(':')
            .next()
            .unwrap_or("peerline")
            .to_string();
        let call_id = crate::message::new_call_id(&mut rng, &host);
        let from_tag = crate::message::new_tag(&mut rng);
        let digest = config.credentials.clone().map(DigestClient::new);
        let expires = config.expires;
        Registration {
            config,
            rng,
            call_id,
            from_tag,
            cseq: 0,
            state: RegistrationState::Registering,
            expires,
            send_now: true,
            in_flight: None,
            timer: None,
            failures: 0,
            digest,
            events: VecDeque::new(),
            last_request: None,
            expires_at: None,
            public: None,
            stale_contact: None,
        }
    }

    /// Our Contact URI as registered (rewritten to the public address after a NAT was
    /// seen, with [`RegistrationConfig::rewrite_contact`]).
    pub fn contact(&self) -> &str {
        &self.config.contact
    }

    /// Where the registrar saw us, from the top Via of its last 2xx (RFC 3581), when it
    /// said (`received` or a valued `rport`).
    pub fn public_address(&self) -> Option<std::net::SocketAddr> {
        self.public
    }

    /// Whether we are behind a NAT as far as the registrar can tell: it saw our
    /// REGISTER come from another address than our Via's sent-by.
    pub fn behind_nat(&self) -> bool {
        let sent_by = crate::nat::uri_addr(&format!("sip:{}", self.config.sent_by));
        match (self.public, sent_by) {
            (Some(p), Some(s)) => p != s,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The constant Call-ID of this registration.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Current state.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// When the current binding expires (if registered).
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// Remove the binding (REGISTER with `expires=0`), e.g. on shutdown.
    pub fn unregister(&mut self, _now: Instant) {
        self.state = RegistrationState::Unregistering;
        self.timer = None;
        self.send_now = true;
    }

    /// The next REGISTER to send, if one is due. CSeq increases by one per request;
    /// Call-ID and From tag stay the same (RFC 3261 §10.2.4).
    pub fn poll_request(&mut self, _now: Instant) -> Option<Request> {
        if !self.send_now {
            return None;
        }
        self.send_now = false;
        self.cseq += 1;
        let unregister = self.state == RegistrationState::Unregistering;
        let expires = if unregister { 0 } else { self.expires };
        let mut contact = format!("<{}>;expires={expires}", self.config.contact);
        if let Some(inst) = &self.config.instance_id {
            let inst = inst.trim_matches(|c| c == '<' || c == '>');
            contact.push_str(&format!(";+sip.instance=\"<{inst}>\""));
            if let Some(r) = self.config.reg_id {
                contact.push_str(&format!(";reg-id={r}"));
            }
        }
        if let Some(old) = self.stale_contact.as_ref().filter(|_| !unregister) {
            // The binding before a contact rewrite goes in the same request.
            contact.push_str(&format!(", <{old}>;expires=0"));
        }
        let branch = crate::message::new_branch(&mut self.rng);
        let mut b = RequestBuilder::new(Method::Register, self.config.registrar.as_str())
            .via(
                self.config.transport.via_token(),
                &self.config.sent_by,
                &branch,
            )
            .from(
                &self.config.aor,
                self.config.display_name.as_deref(),
                &self.from_tag,
            )
            .to(&self.config.aor, None)
            .call_id(&self.call_id)
            .cseq(self.cseq)
            .header(make_header("Contact", &contact))
            .header(make_header("Expires", &expires.to_string()));
        if self.config.instance_id.is_some() && self.config.reg_id.is_some() {
            b = b.header(make_header("Supported", "outbound, path"));
        }
        let mut req = b.build().ok()?;
        if let Some(d) = &mut self.digest {
            if d.has_challenge() {
                // Pre-emptive credentials with the cached nonce (nc counts up).
                let _ = d.authorize(&mut req, &mut self.rng);
            }
        }
        self.in_flight = Some(self.cseq);
        self.last_request = Some(req.clone());
        Some(req)
    }

    /// Earliest instant for [`Registration::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// Process the refresh / retry timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            if self.state == RegistrationState::Backoff {
                self.state = RegistrationState::Registering;
            }
            self.send_now = true;
        }
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// The REGISTER transaction timed out (Timer F); a failed connection is
    /// [`Registration::handle_transport_failure`].
    pub fn handle_transaction_timeout(&mut self, now: Instant) {
        if self.in_flight.take().is_none() {
            return;
        }
        self.fail(now, 408, "Request Timeout".into(), None);
    }

    /// The REGISTER never reached the registrar: its connection failed (refused, TLS
    /// handshake). Reported as code 0 with `reason` (e.g. the certificate error) and
    /// retried with the same backoff as a timeout.
    pub fn handle_transport_failure(&mut self, now: Instant, reason: String) {
        if self.in_flight.take().is_none() {
            return;
        }
        self.fail(now, 0, reason, None);
    }

    fn fail(&mut self, now: Instant, code: u16, reason: String, retry_after: Option<Duration>) {
        self.events
            .push_back(RegistrationEvent::Failed { code, reason });
        if self.state == RegistrationState::Unregistering {
            self.state = RegistrationState::Idle;
            self.expires_at = None;
            self.events.push_back(RegistrationEvent::Unregistered);
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let wait = retry_after.unwrap_or_else(|| {
            let exp = self.failures.saturating_sub(1).min(16);
            let w = self
                .config
                .retry_base
                .saturating_mul(1u32 << exp)
                .min(self.config.retry_max);
            w.mul_f64(self.rng.gen_range(0.5..=1.0))
        });
        self.state = RegistrationState::Backoff;
        self.timer = Some(now + wait);
    }

    /// Feed a response to our REGISTER (others are ignored: Call-ID/CSeq must match).
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        let code = response.status_code.code();
        if code < 200
            || response.call_id() != Some(self.call_id.as_str())
            || response.cseq().map(|c| c.seq) != self.in_flight
        {
            return;
        }
        self.in_flight = None;
        let reason = response.status_code.to_string();
        let reason = reason
            .split_once(' ')
            .map(|(_, r)| r.to_string())
            .unwrap_or(reason);
        match code {
            200..=299 => {
                self.failures = 0;
                if let Some(d) = &mut self.digest {
                    d.on_success();
                }
                if self.state == RegistrationState::Unregistering {
                    self.state = RegistrationState::Idle;
                    self.expires_at = None;
                    self.events.push_back(RegistrationEvent::Unregistered);
                    return;
                }
                self.stale_contact = None;
                let granted = self.granted_expires(response);
                self.public = crate::nat::public_address(response);
                if granted > 0 && self.rewrite_to_public() {
                    return;
                }
                if granted == 0 {
                    self.state = RegistrationState::Idle;
                    self.expires_at = None;
                    self.events.push_back(RegistrationEvent::Unregistered);
                    return;
                }
                self.state = RegistrationState::Registered;
                self.expires_at = Some(now + Duration::from_secs(granted.into()));
                self.timer = Some(now + refresh_delay(granted));
                self.events
                    .push_back(RegistrationEvent::Registered { expires: granted });
            }
            401 | 407 => {
                let Some(d) = &mut self.digest else {
                    self.fail(now, code, format!("{reason} (no credentials)"), None);
                    return;
                };
                match d.handle_challenge(response) {
                    Ok(ChallengeOutcome::Retry) | Ok(ChallengeOutcome::RetryStale) => {
                        self.send_now = true;
                    }
                    Err(AuthError::Rejected(realm)) => {
                        d.on_success(); // start afresh at the next retry
                        self.fail(now, code, format!("credentials rejected for {realm}"), None);
                    }
                    Err(e) => self.fail(now, code, e.to_string(), None),
                }
            }
            423 => {
                let min = header_value(response, "Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > self.expires => {
                        self.expires = m;
                        self.send_now = true;
                    }
                    _ => self.fail(
                        now,
                        code,
                        "Interval Too Brief without usable Min-Expires".into(),
                        None,
                    ),
                }
            }
            _ => {
                let retry_after = header_value(response, "Retry-After")
                    .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.fail(now, code, reason, retry_after);
            }
        }
    }

    /// After a 2xx: when contact rewrite is on (UDP) and the registrar saw us at a public
    /// address other than our Contact's, the Contact becomes that address and a REGISTER
    /// goes out at once, removing the old binding. `true` when it did (the registration
    /// is reported once the new binding is accepted).
    fn rewrite_to_public(&mut self) -> bool {
        if !self.config.rewrite_contact || self.config.transport != Transport::Udp {
            return false;
        }
        let Some(public) = self.public else {
            return false;
        };
        if crate::nat::uri_addr(&self.config.contact) == Some(public) {
            return false;
        }
        let Some(new) = crate::nat::uri_at(&self.config.contact, public) else {
            return false;
        };
        let old = std::mem::replace(&mut self.config.contact, new);
        self.stale_contact = Some(old);
        self.state = RegistrationState::Registering;
        self.send_now = true;
        true
    }

    fn granted_expires(&self, response: &Response) -> u32 {
        for v in header_values(response, "Contact") {
            if let Some((uri, params)) = contact_params(v) {
                if same_uri(&uri, &self.config.contact) {
                    if let Some(e) = params
                        .iter()
                        .find(|(n, _)| n == "expires")
                        .and_then(|(_, v)| v.as_deref())
                        .and_then(|v| v.parse::<u32>().ok())
                    {
                        return e;
                    }
                }
            }
        }
        header_value(response, "Expires")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(self.expires)
    }
}

/// Refresh delay after a 200 granting `expires` seconds:
/// `max(expires / 2, expires - 600)`.
pub fn refresh_delay(expires: u32) -> Duration {
    let e = u64::from(expires);
    Duration::from_secs(std::cmp::max(e / 2, e.saturating_sub(600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{DigestServer, Verdict};
    use crate::message::make_response;

    fn cfg() -> RegistrationConfig {
        let mut c = RegistrationConfig::new(
            "sip:example.com",
            "sip:alice@example.com",
            "sip:alice@192.0.2.1:5060",
            "192.0.2.1:5060",
        );
        c.credentials = Some(Credentials {
            username: "alice".into(),
            password: "pw".into(),
        });
        c
    }

    fn ok(req: &Request, contact_expires: Option<u32>, expires_hdr: Option<u32>) -> Response {
        let mut r = make_response(req, 200, Some("reg"));
        if let Some(e) = contact_expires {
            r.headers.push(make_header(
                "Contact",
                &format!(
                    "<sip:other@192.0.2.77>;expires=99, <sip:alice@192.0.2.1:5060>;expires={e}"
                ),
            ));
        }
        if let Some(e) = expires_hdr {
            r.headers.push(make_header("Expires", &e.to_string()));
        }
        // Round-trip through the parser as a real response would.
        match crate::parse_message(&crate::serialize(&r.into())).unwrap() {
            rsip::SipMessage::Response(r) => r,
            _ => unreachable!(),
        }
    }

    fn events(r: &mut Registration) -> Vec<RegistrationEvent> {
        std::iter::from_fn(|| r.poll_event()).collect()
    }

    /// A 2xx for `req` as a registrar behind which we sit at `public` would send it
    /// (RFC 3581: `received` and `rport` filled in), with `Expires: 600`.
    fn ok_seen_at(req: &Request, public: Option<(&str, u16)>) -> Response {
        let r = make_response(req, 200, Some("reg"));
        let mut text = String::from_utf8(crate::serialize(&r.into())).unwrap();
        let via = match public {
            Some((ip, port)) => format!(";rport={port};received={ip}\r\n"),
            None => ";rport=5060\r\n".to_string(),
        };
        text = text.replacen(";rport\r\n", &via, 1);
        text = text.replacen("\r\n\r\n", "\r\nExpires: 600\r\n\r\n", 1);
        match crate::parse_message(text.as_bytes()).unwrap() {
            rsip::SipMessage::Response(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn contact_rewritten_to_the_public_address_seen_by_the_registrar() {
        let mut rng = StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let mut c = cfg();
        c.credentials = None;
        c.rewrite_contact = true;
        let mut reg = Registration::new(c, &mut rng);
        let first = reg.poll_request(t0).unwrap();
        assert!(header_value(&first, "Via").unwrap().ends_with(";rport"));
        reg.handle_response(t0, &ok_seen_at(&first, Some(("203.0.113.9", 40000))));
        // Not reported yet: a second REGISTER goes at once with the public Contact and
        // the private binding removed.
        assert!(events(&mut reg).is_empty());
        assert_eq!(reg.state(), RegistrationState::Registering);
        assert_eq!(
            reg.public_address(),
            Some("203.0.113.9:40000".parse().unwrap())
        );
        assert!(reg.behind_nat());
        assert_eq!(reg.contact(), "sip:alice@203.0.113.9:40000");
        let second = reg.poll_request(t0).unwrap();
        assert_eq!(
            header_value(&second, "Contact").unwrap(),
            "<sip:alice@203.0.113.9:40000>;expires=3600, <sip:alice@192.0.2.1:5060>;expires=0"
        );
        assert_eq!(second.call_id(), first.call_id());
        reg.handle_response(t0, &ok_seen_at(&second, Some(("203.0.113.9", 40000))));
        assert_eq!(
            events(&mut reg),
            vec![RegistrationEvent::Registered { expires: 600 }]
        );
        assert!(reg.poll_request(t0).is_none());
        // The refresh names only the public Contact.
        reg.handle_timeout(t0 + Duration::from_secs(300));
        let refresh = reg.poll_request(t0 + Duration::from_secs(300)).unwrap();
        assert_eq!(
            header_value(&refresh, "Contact").unwrap(),
            "<sip:alice@203.0.113.9:40000>;expires=3600"
        );
        // The NAT gave a new mapping (rebooted): rewritten again.
        reg.handle_response(t0, &ok_seen_at(&refresh, Some(("203.0.113.9", 40777))));
        assert!(events(&mut reg).is_empty());
        let again = reg.poll_request(t0).unwrap();
        assert_eq!(
            header_value(&again, "Contact").unwrap(),
            "<sip:alice@203.0.113.9:40777>;expires=3600, <sip:alice@203.0.113.9:40000>;expires=0"
        );
    }

    #[test]
    fn no_rewrite_without_a_nat_or_when_turned_off() {
        let mut rng = StdRng::seed_from_u64(6);
        let t0 = Instant::now();
        let mut c = cfg();
        c.credentials = None;
        c.rewrite_contact = true;
        let mut reg = Registration::new(c.clone(), &mut rng);
        let req = reg.poll_request(t0).unwrap();
        // Seen at our own address: no NAT.
        reg.handle_response(t0, &ok_seen_at(&req, None));
        assert_eq!(
            events(&mut reg),
            vec![RegistrationEvent::Registered { expires: 600 }]
        );
        assert!(!reg.behind_nat());
        assert_eq!(reg.contact(), "sip:alice@192.0.2.1:5060");
        // Rewrite off: registered with the private Contact, the NAT still known.
        c.rewrite_contact = false;
        let mut reg = Registration::new(c.clone(), &mut rng);
        let req = reg.poll_request(t0).unwrap();
        reg.handle_response(t0, &ok_seen_at(&req, Some(("203.0.113.9", 40000))));
        assert_eq!(
            events(&mut reg),
            vec![RegistrationEvent::Registered { expires: 600 }]
        );
        assert!(reg.behind_nat());
        assert_eq!(reg.contact(), "sip:alice@192.0.2.1:5060");
        // Over TCP the flow is the connection: no rewrite.
        c.rewrite_contact = true;
        c.transport = Transport::Tcp;
        let mut reg = Registration::new(c, &mut rng);
        let req = reg.poll_request(t0).unwrap();
        let text = String::from_utf8(crate::serialize(
            &make_response(&req, 200, Some("r")).into(),
        ))
        .unwrap();
        let text = text.replacen(";rport\r\n", ";rport=40000;received=203.0.113.9\r\n", 1);
        let rsip::SipMessage::Response(resp) = crate::parse_message(text.as_bytes()).unwrap()
        else {
            unreachable!()
        };
        reg.handle_response(t0, &resp);
        assert_eq!(reg.state(), RegistrationState::Registered);
        assert_eq!(reg.contact(), "sip:alice@192.0.2.1:5060");
    }

    #[test]
    fn register_auth_refresh_and_unregister() {
        let mut rng = StdRng::seed_from_u64(3);
        let t0 = Instant::now();
        let mut server = DigestServer::new("example.com", t0, &mut rng);
        server.add_user("alice", "pw");
        let mut reg = Registration::new(cfg(), &mut rng);
        let r1 = reg.poll_request(t0).unwrap();
        assert!(reg.poll_request(t0).is_none());
        assert_eq!(r1.method, Method::Register);
        assert_eq!(r1.to_addr().unwrap().uri, "sip:alice@example.com");
        assert_eq!(r1.from_addr().unwrap().uri, "sip:alice@example.com");
        assert!(header_value(&r1, "Contact")
            .unwrap()
            .contains("expires=3600"));
        assert_eq!(r1.cseq().unwrap().seq, 1);
        // 401 -> authenticated retry with CSeq 2, same Call-ID, new branch.
        let v = server.verify(&r1, t0, false);
        assert_eq!(v, Verdict::Missing);
        reg.handle_response(
            t0,
            &server.challenge_response(&r1, t0, &mut rng, Some("x"), false, &v),
        );
        let r2 = reg.poll_request(t0).unwrap();
        assert_eq!(r2.cseq().unwrap().seq, 2);
        assert_eq!(r2.call_id(), r1.call_id());
        assert_ne!(r2.branch(), r1.branch());
        assert!(server.verify(&r2, t0, false).is_authorized());
        reg.handle_response(t0, &ok(&r2, Some(1800), Some(3600)));
        assert_eq!(
            events(&mut reg),
            vec![RegistrationEvent::Registered { expires: 1800 }]
        );
        assert_eq!(reg.state(), RegistrationState::Registered);
        // Refresh at max(900, 1200) = 1200 s.
        assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(1200)));
        reg.handle_timeout(t0 + Duration::from_secs(1199));
        assert!(reg.poll_request(t0).is_none());
        let t1 = t0 + Duration::from_secs(1200);
        reg.handle_timeout(t1);
        let r3 = reg.poll_request(t1).unwrap();
        assert_eq!(r3.cseq().unwrap().seq, 3);
        assert_eq!(r3.call_id(), r1.call_id());
        // Pre-emptive auth reuses the nonce with nc=2.
        assert!(header_value(&r3, "Authorization")
            .unwrap()
            .contains("nc=00000002"));
        // The nonce is older than the server's 300 s lifetime: stale, and the
        // registration retries with the new nonce without failing.
        let v = server.verify(&r3, t1, false);
        assert_eq!(v, Verdict::Stale);
        reg.handle_response(
            t1,
            &server.challenge_response(&r3, t1, &mut rng, None, false, &v),
        );
        assert!(events(&mut reg).is_empty());
        let r3 = reg.poll_request(t1).unwrap();
        assert_eq!(r3.cseq().unwrap().seq, 4);
        assert!(header_value(&r3, "Authorization")
            .unwrap()
            .contains("nc=00000001"));
        assert!(server.verify(&r3, t1, false).is_authorized());
        // Expires header used when our Contact has no expires.
        reg.handle_response(t1, &ok(&r3, None, Some(120)));
        assert_eq!(
            events(&mut reg),
            vec![RegistrationEvent::Registered { expires: 120 }]
        );
        assert_eq!(reg.poll_timeout(), Some(t1 + Duration::from_secs(60)));
        // Unregister.
        reg.unregister(t1);
        let r4 = reg.poll_request(t1).unwrap();
        assert!(header_value(&r4, "Contact").unwrap().contains("expires=0"));
        assert_eq!(header_value(&r4, "Expires"), Some("0"));
        reg.handle_response(t1, &ok(&r4, None, None));
        assert_eq!(events(&mut reg), vec![RegistrationEvent::Unregistered]);
        assert_eq!(reg.state(), RegistrationState::Idle);
        assert_eq!(reg.poll_timeout(), None);
    }

    #[test]
    fn interval_too_brief_raises_expires() {
        let mut rng = StdRng::seed_from_u64(4);
        let t0 = Instant::now();
        let mut c = cfg();
        c.expires = 60;
        let mut reg = Registration::new(c, &mut rng);
        let r1 = reg.poll_request(t0).unwrap();
        let mut resp = make_response(&r1, 423, Some("x"));
        resp.headers.push(make_header("Min-Expires", "300"));
        reg.handle_response(t0, &resp);
        let r2 = reg.poll_request(t0).unwrap();
        assert!(header_value(&r2, "Contact")
            .unwrap()
            .contains("expires=300"));
        assert!(events(&mut reg).is_empty());
        // 423 without Min-Expires: failure and back-off.
        let resp = make_response(&r2, 423, Some("x"));
        reg.handle_response(t0, &resp);
        assert!(matches!(
            &events(&mut reg)[..],
            [RegistrationEvent::Failed { code: 423, .. }]
        ));
        assert_eq!(reg.state(), RegistrationState::Backoff);
    }

    #[test]
    fn failures_back_off_exponentially_and_honour_retry_after() {
        let mut rng = StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let mut reg = Registration::new(cfg(), &mut rng);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let r = reg.poll_request(now).unwrap();
            reg.handle_response(now, &make_response(&r, 500, Some("x")));
            let at = reg.poll_timeout().unwrap();
            waits.push((at - now).as_secs());
            now = at;
            reg.handle_timeout(now);
        }
        // base 30 s doubling, capped at 1800 s, each scaled by [0.5, 1].
        for (i, w) in waits.iter().enumerate() {
            let cap = (30u64 << i).min(1800);
            assert!(*w >= cap / 2 && *w <= cap, "{i}: {w} vs {cap}");
        }
        let r = reg.poll_request(now).unwrap();
        let mut resp = make_response(&r, 503, Some("x"));
        resp.headers
            .push(make_header("Retry-After", "17 (maintenance)"));
        reg.handle_response(now, &resp);
        assert_eq!(reg.poll_timeout(), Some(now + Duration::from_secs(17)));
        // Timeout is a 408 failure.
        reg.handle_timeout(now + Duration::from_secs(17));
        let _ = reg.poll_request(now).unwrap();
        events(&mut reg);
        reg.handle_transaction_timeout(now);
        assert!(matches!(
            &events(&mut reg)[..],
            [RegistrationEvent::Failed { code: 408, .. }]
        ));
        // A failed connection is code 0 with its reason, and backs off like a timeout.
        reg.handle_timeout(now + Duration::from_secs(3600));
        let _ = reg.poll_request(now).unwrap();
        reg.handle_transport_failure(now, "certificate not trusted".into());
        match &events(&mut reg)[..] {
            [RegistrationEvent::Failed { code: 0, reason }] => {
                assert_eq!(reason, "certificate not trusted")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reg.state(), RegistrationState::Backoff);
        assert!(reg.poll_timeout().is_some());
    }

    #[test]
    fn wrong_password_fails_instead_of_looping() {
        let mut rng = StdRng::seed_from_u64(6);
        let t0 = Instant::now();
        let mut server = DigestServer::new("example.com", t0, &mut rng);
        server.add_user("alice", "other");
        let mut reg = Registration::new(cfg(), &mut rng);
        for _ in 0..2 {
            let r = reg.poll_request(t0).unwrap();
            let v = server.verify(&r, t0, false);
            assert!(!v.is_authorized());
            reg.handle_response(
                t0,
                &server.challenge_response(&r, t0, &mut rng, None, false, &v),
            );
        }
        assert!(reg.poll_request(t0).is_none());
        let ev = events(&mut reg);
        assert!(
            matches!(&ev[..], [RegistrationEvent::Failed { code: 401, .. }]),
            "{ev:?}"
        );
        assert_eq!(reg.state(), RegistrationState::Backoff);
    }

    #[test]
    fn outbound_instance_and_reg_id_and_stray_responses() {
        let mut rng = StdRng::seed_from_u64(7);
        let t0 = Instant::now();
        let mut c = cfg();
        c.instance_id = Some("urn:uuid:00000000-0000-1000-8000-000A95A0E128".into());
        c.reg_id = Some(1);
        let mut reg = Registration::new(c, &mut rng);
        let r = reg.poll_request(t0).unwrap();
        let contact = header_value(&r, "Contact").unwrap();
        assert!(
            contact.contains("+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\""),
            "{contact}"
        );
        assert!(contact.contains("reg-id=1"));
        assert_eq!(header_value(&r, "Supported"), Some("outbound, path"));
        // Parses strictly.
        crate::parse_message(&crate::serialize(&r.clone().into())).unwrap();
        // A response for another CSeq is ignored.
        let mut other = r.clone();
        other
            .headers
            .retain(|h| !matches!(h, rsip::Header::CSeq(_)));
        other.headers.push(make_header("CSeq", "99 REGISTER"));
        reg.handle_response(t0, &make_response(&other, 200, Some("x")));
        assert!(events(&mut reg).is_empty());
        assert_eq!(refresh_delay(3600), Duration::from_secs(3000));
        assert_eq!(refresh_delay(60), Duration::from_secs(30));
    }
}
