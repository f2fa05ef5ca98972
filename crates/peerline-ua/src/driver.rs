//! The tokio driver: owns the SIP socket and the sans-IO transaction [`Endpoint`], turns
//! user commands and transaction events into calls, and starts and stops each call's media.
//!
//! The loop is the one from docs/architecture.md: wait on the socket, the command channel,
//! media notices or the endpoint's next timeout; feed what arrived; drain transmits (each
//! recorded in the ledger) and events.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use peerline_dns::Locator;
use peerline_net::{Direction as LedgerDirection, Ledger, PortRange, TrafficClass};
use peerline_sdp::{Codec as SdpCodec, LocalCapabilities, SessionDescription, SrtpPolicy};
use peerline_sip::dialog::{Dialog, DialogError};
use peerline_sip::message::{
    make_header, make_response, make_response_with_reason, RequestBuilder,
};
use peerline_sip::prack::{
    cseq_number, wants_100rel, PrackTracker, Provisional, Rack, ReliableProvisionals,
    Timeout as PrackTimeout, Want100rel,
};
use peerline_sip::session_timer::{
    response_session_expires, uas_negotiate, Refresher, SessionExpires, SessionTimer, TimerAction,
    UasTimer, MIN_SE,
};
use peerline_sip::{
    serialize, Endpoint, Event as SipEvent, MessageExt, Target, TransactionKey, Transmit, Transport,
};
use peerline_transport::{SipTransports, TransportEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rsip::{Method, Request, Response, SipMessage};
use tokio::sync::{mpsc, oneshot};

use crate::call_ice::{self, PreparedIce};
use crate::config::{CodecName, Config, SrtpKeying, SrtpMode};
use crate::located::{self, Located};
use crate::media::{self, MediaHandle, MediaOptions, MediaParams, MediaReport, Notice};
use crate::phone::{CallId, Command, EndReason, Event, PhoneError};

/// RFC 3261 §18.1.1: requests larger than this go over TCP (path MTU unknown).
const UDP_REQUEST_LIMIT: usize = 1300;

const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, MESSAGE, REFER, NOTIFY, INFO, UPDATE";
/// Option tags we implement (RFC 3261 §8.2.2.3).
const SUPPORTED: &[&str] = &["100rel", "timer", "replaces"];
const USER_AGENT: &str = concat!("Peerline/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// UAC: INVITE sent, no final response yet.
    Calling,
    /// UAS: INVITE received, ringing, waiting for the user.
    Ringing,
    /// UAS: 2xx sent, waiting for the ACK.
    Accepted,
    /// Both: the dialog is confirmed.
    Confirmed,
    /// BYE or CANCEL sent, waiting for its response.
    Terminating,
}

struct Call {
    state: State,
    call_id: String,
    /// Our tag (From tag as UAC, To tag as UAS).
    local_tag: String,
    /// The dialog, once the 2xx is received (UAC) or the INVITE accepted (UAS).
    dialog: Option<Dialog>,
    /// Where in-dialog requests are sent: the first route or the remote target when it is
    /// an address, else where the INVITE went to (UAC) or came from (UAS).
    next_hop: SocketAddr,
    /// The SIP transport of the call's signaling (the INVITE's).
    transport: Transport,
    invite_key: Option<TransactionKey>,
    invite: Option<Request>,
    offer: Option<SessionDescription>,
    remote_offer: Option<SessionDescription>,
    rtp: Option<media::MediaSockets>,
    rtp_addr: Option<SocketAddr>,
    media_options: MediaOptions,
    media: Option<MediaHandle>,
    /// UAC: the ACK for the 2xx, re-sent on each 2xx retransmission.
    ack: Option<Vec<u8>>,
    bye_key: Option<TransactionKey>,
    /// Why the call is ending, once we know.
    ending: Option<EndReason>,
    /// The last SDP we sent (offer or answer), for re-offers and versioning.
    local_sdp: Option<SessionDescription>,
    /// Our re-INVITE in progress: its transaction, the offer, whether it puts on hold.
    reinvite: Option<(TransactionKey, SessionDescription, bool)>,
    /// A hold/resume to send again after a 491 back-off.
    reinvite_retry: Option<bool>,
    /// We put the call on hold.
    on_hold: bool,
    /// We placed the call (we own the Call-ID for the glare back-off).
    outgoing: bool,
    /// Answers 401/407 to our INVITE when the call's account has credentials.
    digest: Option<peerline_sip::auth::DigestClient>,
    /// With ICE: the gathered agent until media starts, and our ICE attributes.
    ice: Option<PreparedIce>,
    ice_local: Option<peerline_sdp::IceParams>,
    /// UAS: our reliable provisional responses (RFC 3262) when the INVITE required them.
    prack: Option<ReliableProvisionals>,
    /// UAC: which reliable provisional responses to our INVITE we PRACKed (RFC 3262 §4),
    /// and the CSeq numbers used, which the confirmed dialog continues after.
    uac_prack: Option<PrackTracker>,
    /// UAC: our PRACK transactions in flight (their responses are only logged).
    prack_keys: Vec<TransactionKey>,
    /// Transferor: our REFER's transaction while it is pending, and whether a transfer
    /// is in progress (NOTIFYs expected).
    refer_key: Option<TransactionKey>,
    transferring: bool,
    /// The SDES keys in use (both directions), to see when a re-INVITE changes them.
    sdes: Option<peerline_sdp::Security>,
    /// Our INVITE went over TCP only because of its size: retry over UDP if refused.
    udp_fallback: bool,
    /// UAS: the session timer the INVITE asked for, to put in our 2xx (RFC 4028).
    uas_timer: Option<(SessionExpires, bool)>,
    /// The session timer of the established call (RFC 4028).
    session_timer: Option<SessionTimer>,
    /// The keys of our answer to a re-INVITE, put into use when its ACK arrives.
    pending_rekey: Option<peerline_sdp::Security>,
    /// The account the call belongs to (index into the config's accounts): its profile's
    /// media and ICE settings apply.
    account: Option<usize>,
}

/// Which of a call's client transactions a key is ([`Driver::call_of_txn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientTxn {
    /// The INVITE (or its resend with credentials, or to another target).
    Invite,
    /// Our BYE (or CANCEL's companion end of the call).
    Bye,
    /// Our REFER.
    Refer,
    /// Our re-INVITE (hold/resume, session refresh).
    Reinvite,
    /// A PRACK of ours.
    Prack,
}

/// Where and as whom a new out-of-dialog request goes ([`Driver::out_of_dialog`]).
struct OutOfDialog {
    dest: SocketAddr,
    transport: Transport,
    /// Our address toward `dest`.
    ip: IpAddr,
    /// The account's outbound proxy, as a Route.
    route: Option<String>,
    /// The account's AOR (our From).
    aor: Option<String>,
    digest: Option<peerline_sip::auth::DigestClient>,
    /// Which account (index), if any.
    account: Option<usize>,
}

/// One configured account at run time.
struct Account {
    config: crate::account::AccountConfig,
    credentials: Option<peerline_sip::auth::Credentials>,
    /// Where the account's calls go first: its outbound proxy, if it has one.
    proxy: Option<Located>,
    /// Its registrar's targets (RFC 3263) and the one in use.
    registrar: Option<Located>,
    registration: Option<peerline_sip::register::Registration>,
    /// The REGISTER transaction in flight.
    register_key: Option<TransactionKey>,
}

pub(crate) struct Driver {
    config: Config,
    /// SIP over UDP and TCP on the same port.
    transports: SipTransports,
    sip_addr: SocketAddr,
    endpoint: Endpoint,
    rng: StdRng,
    calls: HashMap<CallId, Call>,
    by_call_id: HashMap<String, CallId>,
    next_call: CallId,
    events: mpsc::UnboundedSender<Event>,
    notices_tx: mpsc::UnboundedSender<(CallId, Notice)>,
    notices_rx: mpsc::UnboundedReceiver<(CallId, Notice)>,
    ledger: Ledger,
    rtp_ports: PortRange,
    session_id: u64,
    /// This phone's DTLS certificate; its fingerprint goes in our SDP.
    dtls_cert: std::sync::Arc<peerline_srtp::DtlsCert>,
    accounts: Vec<Account>,
    /// RFC 3263 server location, with a TTL cache.
    locator: Locator,
    /// Per-source limit on new requests (503 + Retry-After beyond it).
    limiter: peerline_sip::rate_limit::RateLimiter,
    /// Why client transactions just failed without a connection (connect refused…),
    /// read when their TransactionTimeout is handled.
    unreachable: HashMap<TransactionKey, String>,
    /// Calls with a reliable provisional response awaiting its PRACK (their timers).
    prack_calls: std::collections::BTreeSet<CallId>,
    /// Calls with a session timer (RFC 4028).
    timer_calls: std::collections::BTreeSet<CallId>,
    /// `[auth]` digest with its failed-authentication guard, and `[policy]`, for
    /// incoming INVITEs and MESSAGEs.
    gate: crate::incoming_gate::IncomingGate,
    /// MESSAGEs we sent, by transaction, until their final response.
    messages: HashMap<TransactionKey, crate::messaging::Pending>,
    /// Transferee: our new call to a `Refer-To` target -> the call that was transferred
    /// (whose dialog carries the NOTIFYs), until the new call's final status is reported.
    transferee_of: HashMap<CallId, CallId>,
}

fn sip_err(e: impl std::fmt::Display) -> PhoneError {
    PhoneError::Io(std::io::Error::other(e.to_string()))
}

impl Driver {
    pub(crate) fn new(
        config: Config,
        transports: SipTransports,
        sip_addr: SocketAddr,
        events: mpsc::UnboundedSender<Event>,
        dtls_cert: std::sync::Arc<peerline_srtp::DtlsCert>,
        locator: Locator,
    ) -> Self {
        let (notices_tx, notices_rx) = mpsc::unbounded_channel();
        let (config_rate, config_burst) =
            (config.network.sip_rate_limit, config.network.sip_rate_burst);
        let mut rng = StdRng::from_entropy();
        let gate = crate::incoming_gate::IncomingGate::new(&config, Instant::now(), &mut rng);
        let session_id = rng.gen_range(1..u64::from(u32::MAX));
        Self {
            rtp_ports: config.network.rtp_ports,
            config,
            transports,
            sip_addr,
            endpoint: Endpoint::new(peerline_sip::Config::default()),
            rng,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            next_call: 1,
            events,
            notices_tx,
            notices_rx,
            ledger: Ledger::new(),
            session_id,
            dtls_cert,
            accounts: Vec::new(),
            locator,
            limiter: peerline_sip::rate_limit::RateLimiter::new(
                peerline_sip::rate_limit::RateLimitConfig {
                    rate_per_sec: config_rate,
                    burst: config_burst,
                    ..peerline_sip::rate_limit::RateLimitConfig::default()
                },
            ),
            unreachable: HashMap::new(),
            prack_calls: std::collections::BTreeSet::new(),
            timer_calls: std::collections::BTreeSet::new(),
            gate,
            messages: HashMap::new(),
            transferee_of: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.start_accounts().await;
        self.flush().await;
        loop {
            let deadline = self
                .endpoint
                .poll_timeout()
                .into_iter()
                .chain(
                    self.accounts
                        .iter()
                        .filter_map(|a| a.registration.as_ref()?.poll_timeout()),
                )
                .chain(
                    self.prack_calls
                        .iter()
                        .filter_map(|id| self.calls.get(id)?.prack.as_ref()?.poll_timeout()),
                )
                .chain(self.timer_calls.iter().filter_map(|id| {
                    Some(self.calls.get(id)?.session_timer.as_ref()?.poll_timeout())
                }))
                .min()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = self.transports.recv() => self.transport_event(ev),
                cmd = commands.recv() => {
                    match cmd {
                        None => break,
                        Some(Command::Shutdown { reply }) => {
                            self.shutdown().await;
                            let _ = reply.send(());
                            break;
                        }
                        Some(c) => self.command(c).await,
                    }
                }
                Some((call, notice)) = self.notices_rx.recv() => self.notice(call, notice).await,
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    for a in &mut self.accounts {
                        if let Some(r) = a.registration.as_mut() {
                            if r.poll_timeout().is_some_and(|t| t <= now) {
                                r.handle_timeout(now);
                            }
                        }
                    }
                    self.prack_timers(now).await;
                    self.session_timers(now).await;
                    self.relocate_stale(now).await;
                }
            }
            self.flush().await;
        }
    }

    /// Sends every queued datagram and handles every queued event, until both are empty.
    async fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                tracing::debug!(to = %t.dest, "SIP out:\n{}", peerline_sip::log_redact::redact_credentials(&String::from_utf8_lossy(&t.bytes)));
                if self.transports.send(&t).await.is_ok() {
                    self.ledger.record(
                        t.dest,
                        TrafficClass::Sip,
                        LedgerDirection::Sent,
                        t.bytes.len(),
                    );
                }
            }
            while let Some(ev) = self.endpoint.poll_event() {
                progressed = true;
                self.sip_event(ev).await;
            }
            // A response may have made a registration send again or report.
            progressed |= self.pump_registrations();
            if !progressed {
                break;
            }
        }
    }

    /// Resolves each account's proxy and registrar and creates its registration.
    async fn start_accounts(&mut self) {
        let configs = self.config.accounts.clone();
        for config in configs {
            let credentials = match config.resolve_password() {
                Ok(Some(password)) => Some(peerline_sip::auth::Credentials {
                    username: config.auth_user(),
                    password,
                }),
                Ok(None) => None,
                Err(e) => {
                    self.emit(Event::RegistrationFailed {
                        aor: config.aor.clone(),
                        code: 0,
                        reason: e,
                    });
                    None
                }
            };
            // RFC 3263: each server's targets in order, each with the transport the
            // location chose (NAPTR preference, SRV, `;transport=`).
            let registrar_uri = config.registrar_uri();
            let registrar = Located::locate(&self.locator, &registrar_uri).await;
            let proxy = match &config.outbound_proxy {
                Some(p) => Located::locate(&self.locator, p).await.ok(),
                None => None,
            };
            for l in registrar.iter().chain(proxy.iter()) {
                self.learn_tls_names(l);
            }
            let registration = match (config.register, &registrar) {
                (true, Ok(located)) => located.hop().map(|hop| {
                    let ip = local_ip_toward(hop.addr, self.sip_addr.ip());
                    let port = self.listen_port(hop.transport);
                    located::registration_for(
                        &config,
                        credentials.clone(),
                        &hop,
                        ip,
                        port,
                        &mut self.rng,
                    )
                }),
                (true, Err(e)) => {
                    self.emit(Event::RegistrationFailed {
                        aor: config.aor.clone(),
                        code: 0,
                        reason: format!("cannot resolve registrar {registrar_uri}: {e}"),
                    });
                    None
                }
                (false, _) => None,
            };
            let registrar = registrar.ok();
            self.accounts.push(Account {
                config,
                credentials,
                proxy,
                registrar,
                registration,
                register_key: None,
            });
        }
    }

    /// Removes every binding (REGISTER with expires=0) and waits, at most 2 s, for the
    /// registrars to answer.
    async fn unregister_all(&mut self) {
        let now = Instant::now();
        let mut pending = 0;
        for a in &mut self.accounts {
            if let Some(r) = a.registration.as_mut() {
                if r.state() == peerline_sip::register::RegistrationState::Registered {
                    r.unregister(now);
                    pending += 1;
                }
            }
        }
        if pending == 0 {
            return;
        }
        self.flush().await;
        let limit = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.accounts.iter().any(|a| {
            a.registration.as_ref().is_some_and(|r| {
                r.state() == peerline_sip::register::RegistrationState::Unregistering
            })
        }) {
            match tokio::time::timeout_at(limit, self.transports.recv()).await {
                Ok(ev @ Some(_)) => {
                    self.transport_event(ev);
                    self.flush().await;
                }
                _ => break,
            }
        }
    }

    /// Sends due REGISTERs and turns registration events into phone events; `true` when
    /// it did anything.
    fn pump_registrations(&mut self) -> bool {
        let now = Instant::now();
        let mut events = Vec::new();
        let mut sent = false;
        for i in 0..self.accounts.len() {
            self.registrar_failback(i, now);
        }
        for a in &mut self.accounts {
            let (Some(r), Some(dest)) = (
                a.registration.as_mut(),
                a.registrar.as_ref().and_then(Located::hop),
            ) else {
                continue;
            };
            while let Some(req) = r.poll_request(now) {
                sent = true;
                match self.endpoint.send_request_to(now, req, dest) {
                    Ok(key) => a.register_key = Some(key),
                    Err(e) => tracing::warn!("REGISTER not sent: {e}"),
                }
            }
            while let Some(ev) = r.poll_event() {
                let aor = a.config.aor.clone();
                events.push(match ev {
                    peerline_sip::register::RegistrationEvent::Registered { expires } => {
                        Event::Registered { aor, expires }
                    }
                    peerline_sip::register::RegistrationEvent::Failed { code, reason } => {
                        Event::RegistrationFailed { aor, code, reason }
                    }
                    peerline_sip::register::RegistrationEvent::Unregistered => {
                        Event::Unregistered { aor }
                    }
                });
            }
        }
        let did = sent || !events.is_empty();
        for e in events {
            self.emit(e);
        }
        did
    }

    /// Flood defence, before any transaction exists and before parsing: a new
    /// (out-of-dialog) request, or bytes that are not SIP at all, count against their
    /// source; beyond the limit a request gets a stateless 503 with Retry-After (once per
    /// interval) or is dropped, and no server transaction is created for it.
    fn admit(&mut self, now: Instant, from: Target, bytes: &[u8]) -> bool {
        use peerline_sip::prescan::{prescan, Prescan};
        use peerline_sip::rate_limit::{service_unavailable, Decision};
        // A cheap look first: under a flood most datagrams are dropped here without
        // being parsed (the prescan reads the start line and header names only).
        let class = prescan(bytes);
        if matches!(class, Prescan::Response | Prescan::Exempt) {
            return true; // responses match our own transactions; dialogs go on
        }
        match self.limiter.check(now, from.addr.ip()) {
            Decision::Allow => true,
            Decision::Limited { retry_after_secs } => {
                // Parsed only to build the 503, at most once per second per source.
                if let Ok(SipMessage::Request(request)) = peerline_sip::parse_message(bytes) {
                    if let Some(r) = service_unavailable(&request, retry_after_secs, None) {
                        self.endpoint
                            .send_stateless_to(from, SipMessage::Response(r));
                    }
                }
                false
            }
            Decision::Drop => false,
        }
    }

    /// Feeds what a transport received to the transaction layer.
    fn transport_event(&mut self, ev: Option<TransportEvent>) {
        match ev {
            Some(TransportEvent::Incoming(m)) => {
                tracing::debug!(from = %m.source, transport = ?m.transport, "SIP in:\n{}", peerline_sip::log_redact::redact_credentials(&String::from_utf8_lossy(&m.bytes)));
                self.ledger.record(
                    m.source,
                    TrafficClass::Sip,
                    LedgerDirection::Received,
                    m.bytes.len(),
                );
                let now = Instant::now();
                let target = match m.conn {
                    None => Target::udp(m.source),
                    Some(c) => Target::stream(m.source, m.transport, Some(c)),
                };
                if !self.admit(now, target, &m.bytes) {
                    return;
                }
                match m.conn {
                    None => self.endpoint.handle_datagram(now, m.source, &m.bytes),
                    Some(c) => {
                        self.endpoint
                            .handle_stream_message(now, c, m.transport, m.source, &m.bytes)
                    }
                }
            }
            Some(TransportEvent::Closed {
                conn,
                transport,
                remote,
                reason,
            }) => {
                self.endpoint.connection_closed(conn);
                // Requests queued for a connection that never came up fail now, not
                // at Timer B/F: the call or registration learns why at once.
                if let peerline_transport::CloseReason::ConnectFailed(e) = reason {
                    let why = format!("{transport} connection to {remote} failed: {e}");
                    tracing::info!("{why}");
                    for key in self.endpoint.unreachable(transport, remote) {
                        self.unreachable.insert(key, why.clone());
                    }
                }
            }
            Some(TransportEvent::Pong { .. }) | None => {}
        }
    }

    /// The registrar target of account `i` failed (Timer F, transport, 503): the account
    /// registers anew on the next target in RFC 3263 order (a new transaction, with Via and
    /// Contact for that target's transport). `false` when there is no other target.
    fn registrar_failover(&mut self, i: usize, reason: peerline_dns::FailReason) -> bool {
        let now = Instant::now();
        let a = &mut self.accounts[i];
        if a.registration
            .as_ref()
            .is_some_and(|r| r.state() == peerline_sip::register::RegistrationState::Unregistering)
        {
            return false;
        }
        let Some(next) = a.registrar.as_mut().and_then(|l| l.fail(reason, now)) else {
            return false;
        };
        self.register_at(i, &next);
        true
    }

    /// Failback (RFC 3263 §4.3): when account `i`'s registration is due for its refresh
    /// and a target before the one in use is usable again (its blacklisting ran out), the
    /// account registers there instead, as a new registration.
    fn registrar_failback(&mut self, i: usize, now: Instant) {
        let a = &mut self.accounts[i];
        let refresh_due = a.registration.as_ref().is_some_and(|r| {
            r.state() == peerline_sip::register::RegistrationState::Registered
                && r.poll_timeout().is_none()
        });
        if !refresh_due {
            return;
        }
        if let Some(hop) = a.registrar.as_mut().and_then(|l| l.failback(now)) {
            self.register_at(i, &hop);
        }
    }

    /// Our listening port for `transport`: the TLS listener's for TLS (the UDP/TCP port
    /// when there is none: the peer then answers on our connection), else the SIP port.
    fn listen_port(&self, transport: Transport) -> u16 {
        match transport {
            Transport::Tls => self
                .transports
                .local_addr(Transport::Tls)
                .map(|a| a.port())
                .unwrap_or(self.sip_addr.port()),
            _ => self.sip_addr.port(),
        }
    }

    /// Tells the transports which name each TLS target of `located` must present
    /// (certificate check and SNI).
    fn learn_tls_names(&self, located: &Located) {
        for (addr, name) in located.tls_names() {
            self.transports.set_server_name(addr, name);
        }
    }

    /// A new registration of account `i` at `hop` (Via and Contact for its transport).
    fn register_at(&mut self, i: usize, hop: &Target) {
        let ip = local_ip_toward(hop.addr, self.sip_addr.ip());
        let port = self.listen_port(hop.transport);
        let a = &mut self.accounts[i];
        a.registration = Some(located::registration_for(
            &a.config,
            a.credentials.clone(),
            hop,
            ip,
            port,
            &mut self.rng,
        ));
        a.register_key = None;
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Our Contact (a name-addr) for a dialog over `transport`, at `ip`.
    fn contact_for(&self, ip: IpAddr, transport: Transport) -> String {
        let local = SocketAddr::new(ip, self.listen_port(transport));
        format!(
            "<{}>",
            located::contact_uri_for(&self.config.identity.user, local, transport)
        )
    }

    /// What we offer or answer with. For an offer, keys follow `srtp_keying`; for an answer
    /// both kinds are available and the offer decides which is used.
    /// Whether SDES keys may go in SDP carried over `transport` (see
    /// `media.allow_sdes_without_tls`); logs a warning when they go in the clear.
    fn sdes_allowed(&self, transport: Transport, account: Option<usize>) -> bool {
        if transport == Transport::Tls {
            return true;
        }
        if self.media_config(account).allow_sdes_without_tls {
            tracing::warn!(
                %transport,
                "SDES keys in SDP over unencrypted signaling (allow_sdes_without_tls)"
            );
            return true;
        }
        false
    }

    /// The `[media]` of `account`'s calls: its profile's, or the phone's.
    fn media_config(&self, account: Option<usize>) -> &crate::config::MediaConfig {
        account
            .and_then(|i| self.config.accounts.get(i))
            .and_then(|a| a.media.as_ref())
            .unwrap_or(&self.config.media)
    }

    /// The `[ice]` of `account`'s calls: its profile's, or the phone's.
    fn ice_config(&self, account: Option<usize>) -> &crate::ice_settings::IceSettings {
        account
            .and_then(|i| self.config.accounts.get(i))
            .and_then(|a| a.ice.as_ref())
            .unwrap_or(&self.config.ice)
    }

    /// The account an incoming request is for: the one whose AOR user is the
    /// Request-URI's user, else the To URI's.
    fn account_of(&self, request: &Request) -> Option<usize> {
        let to_user = request
            .to_addr()
            .and_then(|a| rsip::Uri::try_from(a.uri.as_str()).ok())
            .and_then(|u| u.user().map(str::to_string));
        [request.uri.user().map(str::to_string), to_user]
            .into_iter()
            .flatten()
            .find_map(|user| {
                self.config
                    .accounts
                    .iter()
                    .position(|a| a.aor_parts().is_ok_and(|(u, _)| u == user))
            })
    }

    /// What we offer or answer with for a call of `account` whose signaling is
    /// `transport`.
    fn capabilities_over(
        &self,
        answering: bool,
        transport: Transport,
        account: Option<usize>,
    ) -> LocalCapabilities {
        let mut caps = self.capabilities(answering, account);
        let sdes_wanted = !caps.crypto.is_empty();
        if sdes_wanted && !self.sdes_allowed(transport, account) {
            caps.crypto.clear();
        }
        caps
    }

    fn capabilities(&self, answering: bool, account: Option<usize>) -> LocalCapabilities {
        let media = self.media_config(account);
        let srtp = match media.srtp {
            SrtpMode::Mandatory => SrtpPolicy::Mandatory,
            SrtpMode::Optional => SrtpPolicy::Optional,
            SrtpMode::Off => SrtpPolicy::Off,
        };
        let on = media.srtp != SrtpMode::Off;
        let sdes = on && (answering || media.srtp_keying == SrtpKeying::Sdes);
        let dtls = on && (answering || media.srtp_keying == SrtpKeying::Dtls);
        let crypto = if sdes {
            // Fresh keys from the OS CSPRNG for every offer/answer (RFC 4568 §6.1).
            peerline_srtp::generate_crypto(
                &mut rand::rngs::OsRng,
                &[
                    peerline_srtp::SrtpSuite::AesCm128HmacSha1_80,
                    peerline_srtp::SrtpSuite::AesCm128HmacSha1_32,
                    peerline_srtp::SrtpSuite::AeadAes128Gcm,
                ],
                &peerline_srtp::SdesKeyOptions::default(),
            )
        } else {
            Vec::new()
        };
        LocalCapabilities {
            srtp,
            crypto,
            fingerprint: dtls.then(|| self.dtls_cert.fingerprint().clone()),
            codecs: media
                .codecs
                .iter()
                .map(|c| match c {
                    CodecName::Pcmu => SdpCodec::Pcmu,
                    CodecName::Pcma => SdpCodec::Pcma,
                    CodecName::G722 => SdpCodec::G722,
                    CodecName::Opus => SdpCodec::opus(),
                })
                .collect(),
            dtmf: media.dtmf,
            ptime: Some(media.ptime),
            rtcp_mux: true,
            username: self.config.identity.user.clone(),
            ..LocalCapabilities::default()
        }
    }

    /// With `[ice] enabled`: gathers a call's candidates before its offer or answer.
    async fn prepare_ice(
        &self,
        controlling: bool,
        toward: IpAddr,
        account: Option<usize>,
    ) -> Option<PreparedIce> {
        let ice = self.ice_config(account);
        if !ice.enabled {
            return None;
        }
        let range = self.rtp_ports;
        match call_ice::prepare(ice, controlling, range, self.sip_addr.ip(), toward).await {
            Ok(p) => Some(p),
            Err(e) => {
                // No usable candidate (or the agent refused): the call goes on with plain
                // RTP, as with a peer without ICE; MediaUp then reports no ICE path.
                tracing::warn!("{e}; this call uses plain RTP");
                None
            }
        }
    }

    /// Our offer had ICE, the answer has none: plain RTP on the default candidate's socket.
    async fn ice_fall_back(&mut self, id: CallId) {
        let Some(prepared) = self.calls.get_mut(&id).and_then(|c| c.ice.take()) else {
            return;
        };
        let base = prepared.base;
        let result = call_ice::fall_back_to_plain(prepared.session, base).await;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.ice_local = None;
        match result {
            Ok(sockets) => call.rtp = Some(sockets),
            Err(e) => {
                call.ending = Some(EndReason::Media(format!(
                    "peer without ICE, and {base} cannot be rebound for plain RTP: {e}"
                )))
            }
        }
    }

    fn branch(&mut self) -> String {
        peerline_sip::message::new_branch(&mut self.rng)
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Call {
                target,
                media,
                account,
                reply,
            } => {
                let r = match account {
                    None => self.start_call(&target, media, Vec::new(), None).await,
                    Some(aor) => match self.config.accounts.iter().position(|a| a.aor == aor) {
                        Some(i) => self.start_call(&target, media, Vec::new(), Some(i)).await,
                        None => Err(PhoneError::BadTarget(aor, "no such account".into())),
                    },
                };
                let _ = reply.send(r);
            }
            Command::Answer { call, media, reply } => {
                let r = self.answer(call, media).await;
                let _ = reply.send(r);
            }
            Command::Reject {
                call,
                status,
                reply,
            } => {
                let r = self
                    .reject(call, status, EndReason::RejectedLocally(status))
                    .await;
                let _ = reply.send(r);
            }
            Command::Hangup { call, reply } => {
                let r = self.hangup(call).await;
                let _ = reply.send(r);
            }
            Command::SecurityStats { reply } => {
                let _ = reply.send(self.gate.stats());
            }
            Command::Ledger { reply } => {
                // Ended calls' media ledgers were merged in when they ended; calls still
                // running keep theirs in their media task until then.
                let _ = reply.send(self.ledger.clone());
            }
            Command::Dtmf {
                call,
                digits,
                reply,
            } => {
                let r = self.with_media(call, media::MediaCommand::Dtmf(digits));
                let _ = reply.send(r);
            }
            Command::Mute { call, mute, reply } => {
                let r = self.with_media(call, media::MediaCommand::Mute(mute));
                let _ = reply.send(r);
            }
            Command::Hold { call, hold, reply } => {
                let r = self.send_reinvite(call, hold);
                let _ = reply.send(r);
            }
            Command::Message {
                target,
                content_type,
                body,
                reply,
            } => {
                if let Err((e, reply)) =
                    self.send_message(&target, &content_type, body, reply).await
                {
                    let _ = reply.send(Err(e));
                }
            }
            Command::Transfer {
                call,
                target,
                reply,
            } => {
                let r = rsip::Uri::try_from(target.as_str())
                    .map_err(|e| PhoneError::BadTarget(target.clone(), e.to_string()))
                    .and_then(|uri| self.send_refer(call, format!("<{uri}>")));
                let _ = reply.send(r);
            }
            Command::AttendedTransfer {
                call,
                consultation,
                reply,
            } => {
                let r = self.send_attended_refer(call, consultation);
                let _ = reply.send(r);
            }
            Command::Shutdown { .. } => {}
        }
    }

    /// RFC 3263 targets are kept no longer than their records' TTL: each account's
    /// registrar and outbound proxy whose list went stale are located again (checked when
    /// a timer fires and before each new out-of-dialog request). When the registrar's
    /// target in use changes transport, the registration is rebuilt for it.
    async fn relocate_stale(&mut self, now: Instant) {
        for i in 0..self.accounts.len() {
            let before = self.accounts[i].registrar.as_ref().and_then(Located::hop);
            for which in [0, 1] {
                let a = &mut self.accounts[i];
                let Some(l) = (if which == 0 {
                    a.registrar.as_mut()
                } else {
                    a.proxy.as_mut()
                })
                .filter(|l| l.is_stale(now)) else {
                    continue;
                };
                match l.relocate(&self.locator, now).await {
                    Ok(()) => tracing::info!("located again after the TTL: {:?}", l.hop()),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            for l in [&self.accounts[i].registrar, &self.accounts[i].proxy]
                .into_iter()
                .flatten()
            {
                self.learn_tls_names(l);
            }
            let after = self.accounts[i].registrar.as_ref().and_then(Located::hop);
            if let (Some(b), Some(a)) = (before, after) {
                if b.transport != a.transport && self.accounts[i].registration.is_some() {
                    self.register_at(i, &a);
                }
            }
        }
    }

    /// Where a new out-of-dialog request to `target` goes and as whom: with an account,
    /// through its outbound proxy (or registrar) with its AOR and credentials; without
    /// one, straight to the target. The transport is the one RFC 3263 location chose.
    async fn out_of_dialog(
        &mut self,
        target: &str,
        account_index: Option<usize>,
    ) -> Result<OutOfDialog, PhoneError> {
        let uri = rsip::Uri::try_from(target)
            .map_err(|e| PhoneError::BadTarget(target.into(), e.to_string()))?;
        self.relocate_stale(Instant::now()).await;
        let account_index = account_index.or((!self.accounts.is_empty()).then_some(0));
        let account = account_index.and_then(|i| self.accounts.get(i));
        let via_proxy = account
            .and_then(|a| a.proxy.as_ref())
            .and_then(Located::hop);
        let route = account.and_then(|a| a.config.outbound_proxy.clone());
        let aor = account.map(|a| a.config.aor.clone());
        let digest = account
            .and_then(|a| a.credentials.clone())
            .map(peerline_sip::auth::DigestClient::new);
        let first_hop = match via_proxy {
            Some(p) => p,
            None => {
                let located = Located::locate(&self.locator, &uri.to_string())
                    .await
                    .map_err(|e| PhoneError::BadTarget(target.into(), e))?;
                self.learn_tls_names(&located);
                located.hop().ok_or_else(|| {
                    PhoneError::BadTarget(target.into(), format!("{uri}: no usable target"))
                })?
            }
        };
        let (dest, transport) = (first_hop.addr, first_hop.transport);
        Ok(OutOfDialog {
            dest,
            transport,
            ip: local_ip_toward(dest, self.sip_addr.ip()),
            route,
            aor,
            digest,
            account: account_index,
        })
    }

    /// Where our media will be: the ICE default candidate (its attributes go in `caps`),
    /// or a plain RTP socket bound in the port range on `ip`.
    async fn media_address(
        &mut self,
        ice: Option<&PreparedIce>,
        caps: &mut LocalCapabilities,
        ip: IpAddr,
    ) -> Result<(Option<media::MediaSockets>, SocketAddr), PhoneError> {
        match ice {
            Some(p) => {
                caps.ice = Some(p.local.clone());
                Ok((None, p.advertised))
            }
            None => {
                let rtp = media::bind_rtp(ip, &mut self.rtp_ports).await?;
                let addr = rtp.rtp.local_addr()?;
                Ok((Some(rtp), addr))
            }
        }
    }

    /// Sends a MESSAGE (RFC 3428) outside any dialog; `reply` gets the final status
    /// later. On an error before sending, the error and `reply` come back.
    async fn send_message(
        &mut self,
        target: &str,
        content_type: &str,
        body: Vec<u8>,
        reply: oneshot::Sender<Result<u16, PhoneError>>,
    ) -> Result<(), (PhoneError, oneshot::Sender<Result<u16, PhoneError>>)> {
        let hop = match self.out_of_dialog(target, None).await {
            Ok(h) => h,
            Err(e) => return Err((e, reply)),
        };
        let from_uri = hop.aor.clone().unwrap_or_else(|| {
            format!(
                "sip:{}@{}",
                self.config.identity.user,
                SocketAddr::new(hop.ip, self.sip_addr.port())
            )
        });
        let call_id = peerline_sip::message::new_call_id(&mut self.rng, &hop.ip.to_string());
        let tag = peerline_sip::message::new_tag(&mut self.rng);
        let branch = self.branch();
        let sent_by = SocketAddr::new(hop.ip, self.sip_addr.port()).to_string();
        let mut builder = RequestBuilder::new(Method::Message, target)
            .via(hop.transport.via_token(), &sent_by, &branch)
            .from(
                &from_uri,
                self.config.identity.display_name.as_deref(),
                &tag,
            )
            .to(target, None)
            .call_id(&call_id)
            .cseq(1);
        if let Some(r) = &hop.route {
            builder = builder.route(&format!("<{};lr>", contact_uri(r)));
        }
        let request = match builder
            .header(make_header("User-Agent", USER_AGENT))
            .body(content_type, body)
            .build()
        {
            Ok(r) => r,
            Err(e) => return Err((sip_err(e), reply)),
        };
        let to = match hop.transport {
            Transport::Udp => Target::udp(hop.dest),
            t => Target::stream(hop.dest, t, None),
        };
        match self
            .endpoint
            .send_request_to(Instant::now(), request.clone(), to)
        {
            Ok(key) => {
                self.messages.insert(
                    key,
                    crate::messaging::Pending {
                        request,
                        target: to,
                        digest: hop.digest,
                        reply,
                    },
                );
                Ok(())
            }
            Err(e) => Err((sip_err(e), reply)),
        }
    }

    /// A final response to one of our MESSAGEs: retried once with credentials on a
    /// 401/407 when the account has them, else reported to the sender.
    fn message_response(&mut self, mut pending: crate::messaging::Pending, response: &Response) {
        let code = response.status_code.code();
        if matches!(code, 401 | 407) {
            if let Some(mut digest) = pending.digest.take() {
                let branch = self.branch();
                let mut retry = crate::request_edit::next_attempt(&pending.request, &branch);
                if digest.handle_challenge(response).is_ok()
                    && digest.authorize(&mut retry, &mut self.rng).is_ok()
                {
                    if let Ok(key) =
                        self.endpoint
                            .send_request_to(Instant::now(), retry.clone(), pending.target)
                    {
                        pending.request = retry;
                        self.messages.insert(key, pending);
                        return;
                    }
                }
            }
        }
        let _ = pending.reply.send(crate::messaging::outcome(response));
    }

    /// A new outgoing call to `target`; `extra` headers go into its INVITE (the
    /// `Replaces` of an attended transfer).
    async fn start_call(
        &mut self,
        target: &str,
        media: MediaOptions,
        extra: Vec<rsip::Header>,
        account: Option<usize>,
    ) -> Result<CallId, PhoneError> {
        let OutOfDialog {
            dest,
            transport,
            ip,
            route,
            aor,
            digest,
            account,
        } = self.out_of_dialog(target, account).await?;
        let media_config = self.media_config(account);
        if media_config.srtp == SrtpMode::Mandatory
            && media_config.srtp_keying == SrtpKeying::Sdes
            && !self.sdes_allowed(transport, account)
        {
            return Err(PhoneError::BadTarget(
                target.into(),
                format!(
                    "SRTP is mandatory with SDES keying, and SDES keys would travel in clear \
                     over {transport}: call over TLS, use DTLS keying, or set \
                     media.allow_sdes_without_tls"
                ),
            ));
        }
        let mut caps = self.capabilities_over(false, transport, account);
        let ice = self.prepare_ice(true, ip, account).await;
        let (rtp, rtp_addr) = self.media_address(ice.as_ref(), &mut caps, ip).await?;
        let offer = peerline_sdp::create_offer(&caps, rtp_addr, self.session_id, 1);
        let call_id = peerline_sip::message::new_call_id(&mut self.rng, &ip.to_string());
        let local_tag = peerline_sip::message::new_tag(&mut self.rng);
        let user = aor
            .as_deref()
            .and_then(|a| rsip::Uri::try_from(a).ok())
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_else(|| self.config.identity.user.clone());
        let local = SocketAddr::new(ip, self.listen_port(transport));
        let our_contact = located::contact_uri_for(&user, local, transport);
        let from_uri = aor.unwrap_or_else(|| our_contact.clone());
        let branch = self.branch();
        let sent_by = local.to_string();
        let mut builder = RequestBuilder::new(Method::Invite, target)
            .via(transport.via_token(), &sent_by, &branch)
            .from(
                &from_uri,
                self.config.identity.display_name.as_deref(),
                &local_tag,
            )
            .to(target, None)
            .call_id(&call_id)
            .cseq(1)
            .contact(&our_contact);
        if let Some(r) = &route {
            builder = builder.route(&format!("<{};lr>", contact_uri(r)));
        }
        for h in extra {
            builder = builder.header(h);
        }
        let mut invite = builder
            .header(make_header("Allow", ALLOW))
            .header(make_header("Supported", &SUPPORTED.join(", ")))
            .header(make_header("User-Agent", USER_AGENT))
            .body("application/sdp", offer.to_string().into_bytes())
            .build()
            .map_err(sip_err)?;
        // RFC 3261 §18.1.1: a request larger than 1300 bytes (path MTU unknown) goes over
        // TCP instead of UDP; if the connection is refused it is retried over UDP.
        let mut transport = transport;
        let mut udp_fallback = false;
        if transport == Transport::Udp
            && serialize(&SipMessage::Request(invite.clone())).len() > UDP_REQUEST_LIMIT
        {
            transport = Transport::Tcp;
            udp_fallback = true;
            crate::request_edit::replace_top_via(
                &mut invite,
                &format!("SIP/2.0/TCP {sent_by};rport;branch={branch}"),
            );
            crate::request_edit::replace_header(
                &mut invite,
                "Contact",
                &format!(
                    "<{}>",
                    located::contact_uri_for(&user, local, Transport::Tcp)
                ),
            );
        }
        let hop = match transport {
            Transport::Udp => Target::udp(dest),
            t => Target::stream(dest, t, None),
        };
        let key = self
            .endpoint
            .send_request_to(Instant::now(), invite.clone(), hop)
            .map_err(sip_err)?;
        let id = self.next_call;
        self.next_call += 1;
        self.by_call_id.insert(call_id.clone(), id);
        self.calls.insert(
            id,
            Call {
                state: State::Calling,
                call_id,
                local_tag,
                dialog: None,
                next_hop: dest,
                transport,
                invite_key: Some(key),
                invite: Some(invite),
                local_sdp: Some(offer.clone()),
                outgoing: true,
                offer: Some(offer),
                remote_offer: None,
                rtp,
                rtp_addr: Some(rtp_addr),
                media_options: media,
                media: None,
                ack: None,
                bye_key: None,
                ending: None,
                reinvite: None,
                reinvite_retry: None,
                on_hold: false,
                digest,
                ice_local: ice.as_ref().map(|p| p.local.clone()),
                prack: None,
                uac_prack: None,
                prack_keys: Vec::new(),
                refer_key: None,
                transferring: false,
                sdes: None,
                udp_fallback,
                uas_timer: None,
                session_timer: None,
                pending_rekey: None,
                ice,
                account,
            },
        );
        Ok(id)
    }

    async fn answer(&mut self, id: CallId, options: MediaOptions) -> Result<(), PhoneError> {
        let (transport, account) = self
            .calls
            .get(&id)
            .map_or((Transport::Udp, None), |c| (c.transport, c.account));
        let mut caps = self.capabilities_over(true, transport, account);
        let session_id = self.session_id;
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.state != State::Ringing {
            return Err(PhoneError::Call(id, "not ringing"));
        }
        let (Some(invite), Some(offer), Some(key)) = (
            call.invite.clone(),
            call.remote_offer.clone(),
            call.invite_key.clone(),
        ) else {
            return Err(PhoneError::Call(id, "no offer to answer"));
        };
        let ip = local_ip_toward(call.next_hop, self.sip_addr.ip());
        // ICE only when the offer has it: a peer without ICE gets plain RTP as before.
        let ice = if offers_ice(&offer) {
            self.prepare_ice(false, ip, account).await
        } else {
            None
        };
        let (rtp, rtp_addr) = self.media_address(ice.as_ref(), &mut caps, ip).await?;
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let (answer, negotiated) =
            match peerline_sdp::create_answer(&offer, &caps, rtp_addr, session_id, 1) {
                Ok(a) => a,
                Err(e) => {
                    let reason = e.to_string();
                    let resp = make_response_with_reason(
                        &invite,
                        e.sip_status(),
                        &reason,
                        Some(&call.local_tag),
                    );
                    let _ = self.endpoint.send_response(Instant::now(), &key, resp);
                    self.end_call(id, EndReason::Negotiation(reason)).await;
                    return Err(PhoneError::Call(id, "offer not acceptable (488 sent)"));
                }
            };
        let transport = call.transport;
        let contact = self.contact_for(ip, transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let mut dialog =
            Dialog::uas(&invite, &call.local_tag, &contact_uri(&contact)).map_err(sip_err)?;
        dialog.confirm();
        if let Some(hop) = dialog_next_hop(&dialog) {
            call.next_hop = hop;
        }
        call.dialog = Some(dialog);
        let mut ok = make_response(&invite, 200, Some(&call.local_tag));
        if let Some((expires, require)) = call.uas_timer {
            ok.headers
                .push(make_header("Session-Expires", &expires.to_header_value()));
            if require {
                ok.headers.push(make_header("Require", "timer"));
            }
            call.session_timer = Some(SessionTimer::new(
                Instant::now(),
                expires.secs,
                expires.refresher == Some(Refresher::Uas),
            ));
        }
        ok.headers.push(make_header("Contact", &contact));
        ok.headers.push(make_header("Allow", ALLOW));
        ok.headers.push(make_header("Server", USER_AGENT));
        ok.headers
            .push(make_header("Content-Type", "application/sdp"));
        ok.body = answer.to_string().into_bytes();
        call.local_sdp = Some(answer);
        self.endpoint
            .send_response(Instant::now(), &key, ok)
            .map_err(sip_err)?;
        if let Some(rel) = call.prack.as_mut() {
            rel.finish(); // kept: a late PRACK for what we sent is still answered 200
        }
        self.prack_calls.remove(&id);
        if call.session_timer.is_some() {
            self.timer_calls.insert(id);
        }
        call.state = State::Accepted;
        call.media_options = options;
        call.rtp_addr = Some(rtp_addr);
        call.rtp = rtp;
        call.ice_local = ice.as_ref().map(|p| p.local.clone());
        call.ice = ice;
        self.start_media(id, &negotiated);
        Ok(())
    }

    async fn reject(
        &mut self,
        id: CallId,
        status: u16,
        reason: EndReason,
    ) -> Result<(), PhoneError> {
        let Some(call) = self.calls.get(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.state != State::Ringing || !(300..700).contains(&status) {
            return Err(PhoneError::Call(
                id,
                "not ringing, or not a final error status",
            ));
        }
        if let (Some(invite), Some(key)) = (&call.invite, &call.invite_key) {
            let resp = make_response(invite, status, Some(&call.local_tag));
            let _ = self.endpoint.send_response(Instant::now(), key, resp);
        }
        self.end_call(id, reason).await;
        Ok(())
    }

    async fn hangup(&mut self, id: CallId) -> Result<(), PhoneError> {
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        match call.state {
            State::Ringing => return self.reject(id, 486, EndReason::LocalHangup).await,
            State::Calling => {
                call.ending = Some(EndReason::Cancelled);
                call.state = State::Terminating;
                if let Some(key) = call.invite_key.clone() {
                    // Before any provisional response a CANCEL may not be sent yet (RFC 3261
                    // §9.1); the endpoint refuses it then and the INVITE simply times out.
                    if self.endpoint.cancel(Instant::now(), &key).is_err() {
                        self.end_call(id, EndReason::Cancelled).await;
                    }
                }
            }
            State::Accepted | State::Confirmed => {
                call.ending = Some(EndReason::LocalHangup);
                self.send_bye(id)?;
            }
            State::Terminating => {}
        }
        Ok(())
    }

    fn with_media(&self, id: CallId, command: media::MediaCommand) -> Result<(), PhoneError> {
        match self.calls.get(&id).and_then(|c| c.media.as_ref()) {
            Some(m) => {
                m.command(command);
                Ok(())
            }
            None => Err(PhoneError::Call(id, "no media running")),
        }
    }

    fn via_sent_by(&self, hop: SocketAddr) -> String {
        SocketAddr::new(
            local_ip_toward(hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string()
    }

    /// Sends a hold (`hold`) or resume re-offer in the dialog (RFC 3264 §8, RFC 6337).
    fn send_reinvite(&mut self, id: CallId, hold: bool) -> Result<(), PhoneError> {
        let branch = self.branch();
        let Some(call) = self.calls.get(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let sent_by = self.via_sent_by(call.next_hop);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.state != State::Confirmed {
            return Err(PhoneError::Call(id, "not established"));
        }
        if call.reinvite.is_some() {
            return Err(PhoneError::Call(id, "a re-INVITE is already in progress"));
        }
        let (Some(dialog), Some(previous)) = (call.dialog.as_mut(), call.local_sdp.as_ref()) else {
            return Err(PhoneError::Call(id, "no dialog"));
        };
        let offer = if hold {
            peerline_sdp::hold(previous, peerline_sdp::HoldMode::SendOnly)
        } else {
            peerline_sdp::resume(previous)
        };
        let request = dialog
            .request(
                Method::Invite,
                call.transport.via_token(),
                &sent_by,
                &branch,
            )
            .map_err(sip_err)?
            .header(make_header("Allow", ALLOW))
            .header(make_header("User-Agent", USER_AGENT))
            .body("application/sdp", offer.to_string().into_bytes())
            .build()
            .map_err(sip_err)?;
        // RFC 4028 §7.4: a re-INVITE in a timed session is a refresh and says who keeps
        // refreshing ("uac": us, the sender of this request).
        let mut request = request;
        if let Some(t) = &call.session_timer {
            let refresher = if t.we_refresh() { "uac" } else { "uas" };
            request.headers.push(make_header(
                "Session-Expires",
                &format!("{};refresher={refresher}", t.secs()),
            ));
        }
        let key = self
            .endpoint
            .send_request_to(Instant::now(), request, call_target(call))
            .map_err(sip_err)?;
        call.reinvite = Some((key, offer, hold));
        Ok(())
    }

    /// The answer to our re-INVITE.
    async fn reinvite_response(&mut self, id: CallId, response: Response) {
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((_, offer, hold)) = call.reinvite.take() else {
            return;
        };
        match code {
            200..=299 => {
                let seq = response.cseq().map(|c| c.seq).unwrap_or(1);
                let hop = call.next_hop;
                let transport = call.transport;
                let sent_by = SocketAddr::new(
                    local_ip_toward(hop, self.sip_addr.ip()),
                    self.sip_addr.port(),
                )
                .to_string();
                let ack = call
                    .dialog
                    .as_ref()
                    .and_then(|d| d.ack(seq, transport.via_token(), &sent_by, &branch).ok())
                    .map(|a| serialize(&SipMessage::Request(a)));
                let negotiated = SessionDescription::parse_bytes(&response.body)
                    .map_err(|e| e.to_string())
                    .and_then(|answer| {
                        peerline_sdp::process_answer(&offer, &answer).map_err(|e| e.to_string())
                    });
                if let Some(t) = call.session_timer.as_mut() {
                    let we = response_session_expires(&response)
                        .and_then(|se| se.refresher)
                        .map(|r| r == Refresher::Uac);
                    t.refreshed(Instant::now(), we);
                }
                if let Ok(n) = &negotiated {
                    call.local_sdp = Some(offer);
                    call.on_hold = hold;
                    if let Some(m) = &call.media {
                        m.command(media::MediaCommand::Update {
                            remote: n.remote_rtp,
                            send: n.direction.sends(),
                            receive: n.direction.receives(),
                        });
                    }
                    rekey_if_changed(call, &n.security);
                }
                if let Some(ack) = ack {
                    self.send_raw(&ack, hop, transport).await;
                }
                match negotiated {
                    Ok(_) => self.emit(Event::Hold {
                        call: id,
                        held: hold,
                    }),
                    Err(e) => {
                        tracing::warn!("re-INVITE answer unusable: {e}; ending the call");
                        if let Some(call) = self.calls.get_mut(&id) {
                            call.ending = Some(EndReason::Negotiation(e));
                        }
                        let _ = self.send_bye(id);
                    }
                }
            }
            491 => {
                // Glare (RFC 3261 §14.1): retry after a random back-off, longer for the
                // owner of the Call-ID.
                let ms = if call.outgoing {
                    self.rng.gen_range(2100..=4000)
                } else {
                    self.rng.gen_range(0..=2000)
                };
                call.reinvite_retry = Some(hold);
                let tx = self.notices_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let _ = tx.send((id, Notice::RetryReinvite));
                });
            }
            408 | 481 => {
                // The dialog is gone (RFC 3261 §14.1).
                call.ending = Some(EndReason::Rejected(code, "re-INVITE failed".into()));
                let _ = self.send_bye(id);
            }
            _ => {
                // The session stays as it was.
                tracing::info!("re-INVITE refused with {code}; session unchanged");
            }
        }
    }

    /// A re-INVITE from the peer (RFC 3261 §14.2): answer its offer and update the media.
    fn incoming_reinvite(&mut self, id: CallId, key: TransactionKey, request: Request) {
        let now = Instant::now();
        let (transport, account) = self
            .calls
            .get(&id)
            .map_or((Transport::Udp, None), |c| (c.transport, c.account));
        let mut caps = self.capabilities_over(true, transport, account);
        let session_id = self.session_id;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let respond = |ep: &mut Endpoint, code: u16, reason: &str| {
            let resp = make_response_with_reason(&request, code, reason, None);
            let _ = ep.send_response(now, &key, resp);
        };
        if let Some(Err(e)) = call.dialog.as_mut().map(|d| d.on_request(&request)) {
            respond(&mut self.endpoint, e.status_code(), &e.to_string());
            return;
        }
        if call.reinvite.is_some() || call.state != State::Confirmed {
            respond(&mut self.endpoint, 491, "Request Pending");
            return;
        }
        let offer = match SessionDescription::parse_bytes(&request.body) {
            Ok(o) if !request.body.is_empty() => o,
            Ok(_) => {
                respond(&mut self.endpoint, 488, "Offerless Re-INVITE Not Supported");
                return;
            }
            Err(e) => {
                respond(&mut self.endpoint, 400, &format!("Bad SDP: {e}"));
                return;
            }
        };
        let Some(local) = call.rtp_addr else {
            respond(&mut self.endpoint, 488, "No Media Session");
            return;
        };
        if call.on_hold {
            caps.direction = peerline_sdp::Direction::SendOnly;
        }
        // The same ICE attributes again: no ICE restart.
        caps.ice = call.ice_local.clone();
        let version = call
            .local_sdp
            .as_ref()
            .map(|s| s.origin.session_version + 1)
            .unwrap_or(2);
        let (answer, negotiated) =
            match peerline_sdp::create_answer(&offer, &caps, local, session_id, version) {
                Ok(a) => a,
                Err(e) => {
                    respond(&mut self.endpoint, e.sip_status(), &e.to_string());
                    return;
                }
            };
        let mut ok = make_response(&request, 200, None);
        if let Some(c) = call.dialog.as_ref().and_then(|d| d.local_contact.clone()) {
            ok.headers.push(make_header("Contact", &format!("<{c}>")));
        }
        peer_refresh(call, &request, &mut ok);
        ok.headers.push(make_header("Allow", ALLOW));
        ok.headers
            .push(make_header("Content-Type", "application/sdp"));
        ok.body = answer.to_string().into_bytes();
        if self.endpoint.send_response(now, &key, ok).is_err() {
            return;
        }
        call.local_sdp = Some(answer);
        if let Some(m) = &call.media {
            m.command(media::MediaCommand::Update {
                remote: negotiated.remote_rtp,
                send: negotiated.direction.sends(),
                receive: negotiated.direction.receives(),
            });
        }
        // New SDES keys of ours go into use once the ACK says the offerer has our
        // answer (its packets with the old key may still come: the old inbound key
        // stays usable); an UPDATE has no ACK, so at once.
        if request.method == Method::Invite {
            call.pending_rekey = Some(negotiated.security.clone());
        } else {
            rekey_if_changed(call, &negotiated.security);
        }
        self.emit(Event::RemoteUpdate {
            call: id,
            send: negotiated.direction.sends(),
            receive: negotiated.direction.receives(),
        });
    }

    fn send_bye(&mut self, id: CallId) -> Result<(), PhoneError> {
        if let Some(call) = self.calls.get_mut(&id) {
            call.state = State::Terminating;
        }
        let key = self.send_in_dialog(id, Method::Bye, Vec::new(), None)?;
        if let Some(call) = self.calls.get_mut(&id) {
            call.bye_key = Some(key);
        }
        Ok(())
    }

    /// Sends a request in the call's dialog (next CSeq, route set, remote target).
    fn send_in_dialog(
        &mut self,
        id: CallId,
        method: Method,
        headers: Vec<rsip::Header>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<TransactionKey, PhoneError> {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let sent_by = SocketAddr::new(
            local_ip_toward(call.next_hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string();
        let Some(dialog) = call.dialog.as_mut() else {
            return Err(PhoneError::Call(id, "no dialog"));
        };
        let mut builder = dialog
            .request(method, call.transport.via_token(), &sent_by, &branch)
            .map_err(sip_err)?
            .header(make_header("User-Agent", USER_AGENT));
        for h in headers {
            builder = builder.header(h);
        }
        if let Some((content_type, bytes)) = body {
            builder = builder.body(content_type, bytes);
        }
        let request = builder.build().map_err(sip_err)?;
        self.endpoint
            .send_request_to(Instant::now(), request, call_target(call))
            .map_err(sip_err)
    }

    /// Transferor, attended (RFC 5589 §7): REFER in `id`'s dialog whose `Refer-To` is
    /// the remote target of `consultation` with a `Replaces` naming that call as the
    /// target sees it (its tag is our remote tag).
    fn send_attended_refer(&mut self, id: CallId, consultation: CallId) -> Result<(), PhoneError> {
        if id == consultation {
            return Err(PhoneError::Call(
                id,
                "a call cannot be transferred to itself",
            ));
        }
        let refer_to = match self.calls.get(&consultation) {
            Some(c) if c.state == State::Confirmed => match &c.dialog {
                Some(d) => {
                    let replaces = peerline_sip::replaces::Replaces {
                        call_id: d.id.call_id.clone(),
                        to_tag: d.id.remote_tag.clone(),
                        from_tag: d.id.local_tag.clone(),
                        early_only: false,
                    };
                    crate::transfer::attended_refer_to(&d.remote_target, &replaces)
                }
                None => return Err(PhoneError::Call(consultation, "no dialog")),
            },
            Some(_) => return Err(PhoneError::Call(consultation, "not an answered call")),
            None => return Err(PhoneError::Call(consultation, "no such call")),
        };
        self.send_refer(id, refer_to)
    }

    /// Transferor: REFER in the call's dialog (RFC 3515) with this `Refer-To` value.
    fn send_refer(&mut self, id: CallId, refer_to: String) -> Result<(), PhoneError> {
        match self.calls.get(&id) {
            Some(c) if c.state == State::Confirmed && !c.transferring => {}
            Some(_) => {
                return Err(PhoneError::Call(
                    id,
                    "not an answered call, or already transferring",
                ))
            }
            None => return Err(PhoneError::Call(id, "no such call")),
        }
        let referred_by = self
            .accounts
            .first()
            .map(|a| a.config.aor.clone())
            .unwrap_or_else(|| format!("sip:{}@{}", self.config.identity.user, self.sip_addr));
        let headers = vec![
            make_header("Refer-To", &refer_to),
            make_header("Referred-By", &format!("<{referred_by}>")),
        ];
        let key = self.send_in_dialog(id, Method::Refer, headers, None)?;
        if let Some(call) = self.calls.get_mut(&id) {
            call.refer_key = Some(key);
            call.transferring = true;
        }
        Ok(())
    }

    /// Transferee: NOTIFY the transferor of our new call's status (sipfrag).
    fn notify_transfer(&mut self, orig: CallId, code: u16, reason: &str) {
        let final_status = code >= 200;
        let body = crate::transfer::sipfrag(code, reason);
        let headers = crate::transfer::notify_headers(final_status);
        if let Err(e) = self.send_in_dialog(
            orig,
            Method::Notify,
            headers,
            Some(("message/sipfrag;version=2.0", body)),
        ) {
            tracing::info!(call = orig, "NOTIFY for the transfer not sent: {e}");
        }
    }

    /// Transferee: a REFER in a call's dialog. 202, then a call to the target with the
    /// call's media options, reported by NOTIFYs.
    async fn incoming_refer(&mut self, id: CallId, key: &TransactionKey, request: &Request) {
        let now = Instant::now();
        let target = match crate::transfer::refer_target(request) {
            Ok(t) => t,
            Err(e) => {
                let resp = make_response_with_reason(request, 400, &e.reason(), None);
                let _ = self.endpoint.send_response(now, key, resp);
                return;
            }
        };
        let confirmed = self
            .calls
            .get(&id)
            .is_some_and(|c| c.state == State::Confirmed);
        if !confirmed {
            let resp = make_response_with_reason(request, 491, "Request Pending", None);
            let _ = self.endpoint.send_response(now, key, resp);
            return;
        }
        let _ = self
            .endpoint
            .send_response(now, key, make_response(request, 202, None));
        // RFC 3515 §2.4.4: the first NOTIFY right away.
        self.notify_transfer(id, 100, "Trying");
        let (options, account) = self
            .calls
            .get(&id)
            .map(|c| (c.media_options.clone(), c.account))
            .unwrap_or_default();
        let crate::transfer::ReferTarget {
            uri: target,
            replaces,
        } = target;
        let extra = replaces
            .map(|r| vec![make_header("Replaces", &r.to_header_value())])
            .unwrap_or_default();
        match self.start_call(&target, options, extra, account).await {
            Ok(new_call) => {
                self.transferee_of.insert(new_call, id);
                self.emit(Event::Transfer {
                    call: id,
                    status: 100,
                    target: Some(target),
                    new_call: Some(new_call),
                });
            }
            Err(e) => {
                tracing::info!(call = id, "transfer to {target}: {e}");
                self.notify_transfer(id, 503, "Service Unavailable");
                self.emit(Event::Transfer {
                    call: id,
                    status: 503,
                    target: Some(target),
                    new_call: None,
                });
            }
        }
    }

    /// Transferor: a NOTIFY for our REFER's implicit subscription. A 2xx sipfrag ends
    /// our call (the transferee is now talking to the target).
    async fn incoming_notify(&mut self, id: CallId, request: &Request) -> u16 {
        let is_refer = peerline_sip::message::header_value(request, "Event")
            .or_else(|| peerline_sip::message::header_value(request, "o"))
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
        let transferring = self.calls.get(&id).is_some_and(|c| c.transferring);
        if !is_refer || !transferring {
            return 481; // no such subscription (RFC 6665 §4.1.3)
        }
        let Some(status) = crate::transfer::sipfrag_status(&request.body) else {
            return 400;
        };
        self.emit(Event::Transfer {
            call: id,
            status,
            target: None,
            new_call: None,
        });
        if status >= 200 {
            if let Some(call) = self.calls.get_mut(&id) {
                call.transferring = false;
            }
        }
        if (200..300).contains(&status) {
            if let Some(call) = self.calls.get_mut(&id) {
                call.ending = Some(EndReason::Transferred);
            }
            if self.send_bye(id).is_err() {
                self.end_call(id, EndReason::Transferred).await;
            }
        }
        200
    }

    /// Starts the call's media task; when it cannot start (the reason is in
    /// `call.ending`), the call is torn down like a media failure: BYE once the dialog is
    /// confirmed, rather than left up without media (nothing would ever end it).
    fn start_media(&mut self, id: CallId, negotiated: &peerline_sdp::Negotiated) {
        self.launch_media(id, negotiated);
        if let Some(call) = self.calls.get(&id) {
            if call.media.is_none() {
                let why = call
                    .ending
                    .as_ref()
                    .map_or_else(|| "media did not start".to_string(), |e| e.to_string());
                tracing::warn!(call = id, "{why}");
                let _ = self.notices_tx.send((id, Notice::Failed(why)));
            }
        }
    }

    fn launch_media(&mut self, id: CallId, negotiated: &peerline_sdp::Negotiated) {
        let media_config = self.media_config(self.calls.get(&id).and_then(|c| c.account));
        let ptime = media_config.ptime;
        let rtp_timeout = Duration::from_secs(media_config.rtp_timeout_secs);
        let (ssrc, seq, ts) = (self.rng.gen(), self.rng.gen(), self.rng.gen());
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let path = match (call.ice.take(), &negotiated.remote_ice) {
            (Some(p), Some(remote)) => media::MediaPath::Ice {
                session: Box::new(p.session),
                remote: remote.clone(),
            },
            (Some(_), None) => {
                // invite_accepted falls back to plain RTP before this; an answer we sent
                // with ICE always answers an offer with ICE.
                call.ending = Some(EndReason::Media("ICE: the peer's SDP has no ICE".into()));
                return;
            }
            (None, _) => match call.rtp.take() {
                Some(s) => media::MediaPath::Plain(s),
                None => {
                    call.ending = Some(EndReason::Media("no media socket".into()));
                    return;
                }
            },
        };
        let ice = matches!(path, media::MediaPath::Ice { .. });
        let codec = match negotiated.codec {
            SdpCodec::Pcmu => peerline_media::Codec::Pcmu,
            SdpCodec::Pcma => peerline_media::Codec::Pcma,
            SdpCodec::Opus(_) => peerline_media::Codec::Opus,
            SdpCodec::G722 => peerline_media::Codec::G722,
            _ => {
                call.ending = Some(EndReason::Media(format!(
                    "codec {} has no encoder",
                    negotiated.codec.encoding_name()
                )));
                return;
            }
        };
        let security = match &negotiated.security {
            peerline_sdp::Security::None => media::MediaSecurity::None,
            s @ peerline_sdp::Security::Sdes { .. } => {
                match peerline_srtp::sdes_pair_from_security(s) {
                    Ok(pair) => {
                        call.sdes = Some(s.clone());
                        media::MediaSecurity::Sdes(Box::new(pair))
                    }
                    Err(e) => {
                        call.ending = Some(EndReason::Negotiation(format!("SDES keys: {e}")));
                        return;
                    }
                }
            }
            peerline_sdp::Security::Dtls {
                remote_fingerprints,
                local_setup,
            } => match peerline_srtp::DtlsRole::from_setup(*local_setup) {
                Some(role) => media::MediaSecurity::Dtls {
                    cert: self.dtls_cert.clone(),
                    role,
                    remote_fingerprints: remote_fingerprints.clone(),
                },
                None => {
                    call.ending = Some(EndReason::Negotiation(format!(
                        "unusable DTLS a=setup:{}",
                        local_setup.as_str()
                    )));
                    return;
                }
            },
        };
        let params = MediaParams {
            security,
            codec,
            send_pt: negotiated.send_pt,
            recv_pt: negotiated.recv_pt,
            dtmf_pt: negotiated.telephone_event.map(|t| t.recv_pt),
            dtmf_send_pt: negotiated.telephone_event.map(|t| t.send_pt),
            send: negotiated.direction.sends(),
            receive: negotiated.direction.receives(),
            remote: negotiated.remote_rtp,
            remote_rtcp: if negotiated.rtcp_mux {
                None
            } else {
                Some(negotiated.remote_rtcp.unwrap_or_else(|| {
                    SocketAddr::new(
                        negotiated.remote_rtp.ip(),
                        negotiated.remote_rtp.port().saturating_add(1),
                    )
                }))
            },
            cname: format!("{}@{}", self.config.identity.user, self.sip_addr.ip()),
            ptime_ms: ptime,
            rtp_timeout,
            ssrc,
            initial_seq: seq,
            initial_timestamp: ts,
        };
        let local = call.rtp_addr.unwrap_or(negotiated.remote_rtp);
        call.media = Some(media::start(
            path,
            params,
            call.media_options.clone(),
            self.notices_tx.clone(),
            id,
        ));
        // With ICE, media is up once the checks selected a pair (Notice::IceConnected).
        if !ice {
            self.emit(Event::MediaUp {
                call: id,
                local,
                remote: negotiated.remote_rtp,
                codec: codec.name(),
                path: None,
            });
        }
    }

    async fn end_call(&mut self, id: CallId, reason: EndReason) {
        self.prack_calls.remove(&id);
        self.timer_calls.remove(&id);
        if let Some(orig) = self.transferee_of.remove(&id) {
            // Our call to the transfer target ended before it was answered.
            let (code, phrase) = crate::transfer::status_of(&reason);
            self.notify_transfer(orig, code, &phrase);
            self.emit(Event::Transfer {
                call: orig,
                status: code,
                target: None,
                new_call: Some(id),
            });
        }
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        self.by_call_id.remove(&call.call_id);
        let report = match call.media.take() {
            Some(m) => m.stop().await,
            None => MediaReport::default(),
        };
        self.ledger.merge(&report.ledger);
        let reason = call.ending.take().unwrap_or(reason);
        self.emit(Event::Ended {
            call: id,
            reason,
            media: Box::new(report),
        });
    }

    async fn notice(&mut self, id: CallId, notice: Notice) {
        match notice {
            Notice::Dtmf(digit) => self.emit(Event::Dtmf { call: id, digit }),
            Notice::IceConnected { path, codec } => self.emit(Event::MediaUp {
                call: id,
                local: path.local_addr,
                remote: path.remote_addr,
                codec,
                path: Some(path),
            }),
            Notice::Failed(reason) => {
                if let Some(call) = self.calls.get_mut(&id) {
                    // A reason set when media could not start (negotiation) is kept.
                    call.ending
                        .get_or_insert_with(|| EndReason::Media(reason.clone()));
                    // RFC 3261 §15: the callee sends no BYE before the ACK for its 2xx;
                    // the ACK's arrival sends it (or Timer H ends the call).
                    if !call.outgoing && call.state == State::Accepted {
                        return;
                    }
                    let established = matches!(call.state, State::Accepted | State::Confirmed);
                    if !established || self.send_bye(id).is_err() {
                        self.end_call(id, EndReason::Media(reason)).await;
                    }
                }
            }
            Notice::RetryReinvite => {
                let hold = self
                    .calls
                    .get_mut(&id)
                    .and_then(|c| c.reinvite_retry.take());
                if let Some(hold) = hold {
                    if let Err(e) = self.send_reinvite(id, hold) {
                        tracing::warn!("re-INVITE retry failed: {e}");
                    }
                }
            }
            Notice::Timeout => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.ending = Some(EndReason::RtpTimeout);
                    if matches!(call.state, State::Accepted | State::Confirmed) {
                        // RFC 3261 §15.1.1: the session ends when the BYE is sent. A peer
                        // we have not heard for the whole timeout is unlikely to answer
                        // soon: stop the media now, the BYE transaction runs on its own.
                        if let Err(e) = self.send_bye(id) {
                            tracing::debug!(call = id, "BYE after the RTP timeout: {e}");
                        }
                        self.end_call(id, EndReason::RtpTimeout).await;
                    }
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        self.unregister_all().await;
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let _ = self.hangup(id).await;
        }
        self.flush().await;
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            self.end_call(id, EndReason::LocalHangup).await;
        }
    }

    async fn sip_event(&mut self, ev: SipEvent) {
        match ev {
            SipEvent::IncomingRequest {
                key,
                request,
                source,
            } => self.incoming_request(key, request, source).await,
            SipEvent::Response { key, response } => self.response(key, response).await,
            SipEvent::TransactionTimeout { key } => self.transaction_timeout(key).await,
            SipEvent::Ack { request, .. } => {
                let id = request
                    .call_id()
                    .and_then(|c| self.by_call_id.get(c).copied());
                if let Some(call) = id.and_then(|id| self.calls.get_mut(&id)) {
                    if let Some(security) = call.pending_rekey.take() {
                        rekey_if_changed(call, &security);
                    }
                    if call.state == State::Accepted {
                        call.state = State::Confirmed;
                        let id = id.unwrap_or_default();
                        if call.ending.is_some() {
                            // Media failed before the ACK: the BYE waited for it.
                            if self.send_bye(id).is_err() {
                                self.end_call(id, EndReason::Media("media failed".into()))
                                    .await;
                            }
                        } else {
                            self.emit(Event::Answered { call: id });
                        }
                    }
                }
            }
            SipEvent::Cancelled { invite_key, .. } => {
                let id = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.invite_key.as_ref() == Some(&invite_key))
                    .map(|(id, _)| *id);
                if let Some(id) = id {
                    if let Some(call) = self.calls.get(&id) {
                        if let Some(invite) = &call.invite {
                            let resp = make_response(invite, 487, Some(&call.local_tag));
                            let _ = self
                                .endpoint
                                .send_response(Instant::now(), &invite_key, resp);
                        }
                    }
                    self.end_call(id, EndReason::Cancelled).await;
                }
            }
        }
    }

    /// A PRACK (RFC 3262 §3): 200 when its RAck acknowledges a reliable provisional
    /// response of the call's INVITE (then retransmissions stop), 481 otherwise.
    fn incoming_prack(&mut self, request: &Request) -> u16 {
        let (Some(rack), Some(call_id), Some(to_tag)) =
            (Rack::of(request), request.call_id(), request.to_tag())
        else {
            return 481;
        };
        let Some(&id) = self.by_call_id.get(call_id) else {
            return 481;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return 481;
        };
        let invite_cseq = call.invite.as_ref().map(cseq_number).unwrap_or(0);
        let acked = call.local_tag == to_tag
            && call
                .prack
                .as_mut()
                .is_some_and(|rel| rel.acknowledge(&rack, invite_cseq));
        if !acked {
            return 481;
        }
        if let Some(d) = call.dialog.as_mut() {
            let _ = d.on_request(request); // keeps the remote CSeq in order
        }
        if !call.prack.as_ref().is_some_and(|r| r.is_pending()) {
            self.prack_calls.remove(&id);
        }
        200
    }

    /// Retransmits due reliable provisional responses; after 64*T1 without a PRACK the
    /// INVITE is rejected with 500 (RFC 3262 §3 says a 5xx).
    async fn prack_timers(&mut self, now: Instant) {
        let due = due_calls(&self.calls, &self.prack_calls, now, |c| {
            c.prack.as_ref()?.poll_timeout()
        });
        for id in due {
            let Some(call) = self.calls.get_mut(&id) else {
                self.prack_calls.remove(&id);
                continue;
            };
            let action = call.prack.as_mut().and_then(|r| r.handle_timeout(now));
            match action {
                Some(PrackTimeout::Retransmit(resp)) => {
                    if let Some(key) = call.invite_key.clone() {
                        let _ = self.endpoint.send_response(now, &key, resp);
                    }
                }
                Some(PrackTimeout::GiveUp) => {
                    self.prack_calls.remove(&id);
                    tracing::info!(call = id, "no PRACK for our reliable 180 within 64*T1");
                    let _ = self.reject(id, 500, EndReason::Timeout).await;
                }
                None => {}
            }
        }
    }

    /// `[auth]`: whether `request` (an INVITE or MESSAGE) may go on. When it may not, it
    /// has been answered: 401 with fresh challenges (`stale=true` for an expired nonce).
    fn authenticated(
        &mut self,
        key: &TransactionKey,
        request: &Request,
        source: SocketAddr,
        to_tag: Option<&str>,
    ) -> bool {
        let now = Instant::now();
        match self
            .gate
            .authenticate(now, &mut self.rng, request, source, to_tag)
        {
            Ok(()) => true,
            Err(resp) => {
                let _ = self.endpoint.send_response(now, key, resp);
                false
            }
        }
    }

    /// RFC 4028 timers that are due: as refresher, a re-INVITE (carrying
    /// `Session-Expires;refresher=uac`); otherwise, or when our refresh went unanswered,
    /// the session has expired and is ended with BYE.
    async fn session_timers(&mut self, now: Instant) {
        let due = due_calls(&self.calls, &self.timer_calls, now, |c| {
            c.session_timer.as_ref().map(SessionTimer::poll_timeout)
        });
        for id in due {
            let action = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.session_timer.as_mut())
                .and_then(|t| t.handle_timeout(now));
            match action {
                Some(TimerAction::Refresh) => {
                    let on_hold = self.calls.get(&id).is_some_and(|c| c.on_hold);
                    if let Err(e) = self.send_reinvite(id, on_hold) {
                        tracing::info!(call = id, "session refresh not sent: {e}");
                    }
                }
                Some(TimerAction::Expired) => {
                    tracing::info!(call = id, "session expired (RFC 4028): no refresh");
                    self.timer_calls.remove(&id);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ending = Some(EndReason::SessionExpired);
                    }
                    if self.send_bye(id).is_err() {
                        self.end_call(id, EndReason::SessionExpired).await;
                    }
                }
                None => {}
            }
        }
    }

    /// A call of ours still ringing (UAS, no dialog yet) whose early dialog `request`
    /// belongs to: same Call-ID, our tag in To, the caller's tag in From.
    fn early_dialog_of(&self, request: &Request) -> Option<CallId> {
        let id = *self.by_call_id.get(request.call_id()?)?;
        let call = self.calls.get(&id)?;
        let to_tag = request.to_tag()?;
        let invite = call.invite.as_ref()?;
        (call.state == State::Ringing
            && call.dialog.is_none()
            && to_tag == call.local_tag
            && request.from_tag() == invite.from_tag())
        .then_some(id)
    }

    fn find_dialog(&self, request: &Request) -> Option<CallId> {
        let id = *self.by_call_id.get(request.call_id()?)?;
        let call = self.calls.get(&id)?;
        call.dialog
            .as_ref()
            .is_some_and(|d| d.matches_request(request))
            .then_some(id)
    }

    async fn incoming_request(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: SocketAddr,
    ) {
        let now = Instant::now();
        let respond = |ep: &mut Endpoint, code: u16, reason: Option<&str>| {
            let resp = match reason {
                Some(r) => make_response_with_reason(&request, code, r, None),
                None => make_response(&request, code, None),
            };
            let _ = ep.send_response(now, &key, resp);
        };
        match request.method {
            Method::Invite if request.to_tag().is_none() => {
                self.incoming_invite(key, request, source).await
            }
            Method::Options => {
                let mut resp = make_response(&request, 200, None);
                resp.headers.push(make_header("Allow", ALLOW));
                resp.headers.push(make_header("Accept", "application/sdp"));
                let _ = self.endpoint.send_response(now, &key, resp);
            }
            Method::Bye => match self.find_dialog(&request) {
                Some(id) => {
                    let checked = self
                        .calls
                        .get_mut(&id)
                        .and_then(|c| c.dialog.as_mut())
                        .map(|d| d.on_request(&request));
                    if let Some(Err(e @ DialogError::OutOfOrder { .. })) = checked {
                        respond(
                            &mut self.endpoint,
                            e.status_code(),
                            Some("CSeq Out Of Order"),
                        );
                        return;
                    }
                    respond(&mut self.endpoint, 200, None);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ending.get_or_insert(EndReason::RemoteHangup);
                    }
                    self.end_call(id, EndReason::RemoteHangup).await;
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Invite => match self.find_dialog(&request) {
                Some(id) => self.incoming_reinvite(id, key, request),
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Info => match self.find_dialog(&request) {
                // RFC 6086: legacy INFO (no Info-Package) is accepted; DTMF in it is
                // reported like RFC 4733 digits. Unknown packages get 469.
                Some(id) => {
                    if peerline_sip::message::header_value(&request, "Info-Package").is_some() {
                        let mut resp =
                            make_response_with_reason(&request, 469, "Bad Info Package", None);
                        resp.headers.push(make_header("Recv-Info", ""));
                        let _ = self.endpoint.send_response(now, &key, resp);
                        return;
                    }
                    respond(&mut self.endpoint, 200, None);
                    let ct =
                        peerline_sip::message::header_value(&request, "Content-Type").unwrap_or("");
                    if let Some(digit) = crate::info::dtmf_digit(ct, &request.body) {
                        self.emit(Event::Dtmf { call: id, digit });
                    }
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Update => match self.find_dialog(&request) {
                // RFC 3311: an offer in a confirmed dialog is answered like a re-INVITE's,
                // in the 200; without a body it only refreshes the session.
                Some(id) if !request.body.is_empty() => self.incoming_reinvite(id, key, request),
                Some(id) => {
                    let mut ok = make_response(&request, 200, None);
                    if let Some(call) = self.calls.get_mut(&id) {
                        if let Some(c) = call.dialog.as_ref().and_then(|d| d.local_contact.clone())
                        {
                            ok.headers.push(make_header("Contact", &format!("<{c}>")));
                        }
                        peer_refresh(call, &request, &mut ok);
                    }
                    let _ = self.endpoint.send_response(now, &key, ok);
                }
                // The early dialog of a call still ringing here (our To tag): without an
                // offer the UPDATE is just accepted; an offer before the answer is
                // refused, since the session cannot change without the user (RFC 3311
                // §5.2 allows refusing it).
                None if self.early_dialog_of(&request).is_some() => {
                    if request.body.is_empty() {
                        respond(&mut self.endpoint, 200, None);
                    } else {
                        respond(
                            &mut self.endpoint,
                            488,
                            Some("Offer In Early Dialog Not Supported"),
                        );
                    }
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Refer => match self.find_dialog(&request) {
                Some(id) => self.incoming_refer(id, &key, &request).await,
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Notify => match self.find_dialog(&request) {
                Some(id) => {
                    let code = self.incoming_notify(id, &request).await;
                    respond(&mut self.endpoint, code, None);
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Message => {
                // RFC 3428: accepted in or outside a dialog; the user reads it from the event.
                if request.to_tag().is_none() && !self.authenticated(&key, &request, source, None) {
                    return;
                }
                respond(&mut self.endpoint, 200, None);
                let (from, to, content_type, body) = crate::messaging::incoming(&request);
                self.emit(Event::Message {
                    from,
                    to,
                    content_type,
                    body,
                });
            }
            Method::PRack => {
                let code = self.incoming_prack(&request);
                let reason = (code == 481).then_some("No Matching Reliable Provisional Response");
                respond(&mut self.endpoint, code, reason);
            }
            _ => {
                let mut resp = make_response(&request, 405, None);
                resp.headers.push(make_header("Allow", ALLOW));
                let _ = self.endpoint.send_response(now, &key, resp);
            }
        }
    }

    async fn incoming_invite(&mut self, key: TransactionKey, request: Request, source: SocketAddr) {
        let now = Instant::now();
        let local_tag = peerline_sip::message::new_tag(&mut self.rng);
        if !self.authenticated(&key, &request, source, Some(&local_tag)) {
            return;
        }
        if let Err(resp) = self.gate.admit_call(&request, source, Some(&local_tag)) {
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        // RFC 3261 §8.2.2.3: refuse extensions we do not support, naming them.
        let unsupported: Vec<String> = peerline_sip::message::header_values(&request, "Require")
            .into_iter()
            .flat_map(peerline_sip::syntax::split_list)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && !SUPPORTED.contains(&t.to_ascii_lowercase().as_str()))
            .collect();
        if !unsupported.is_empty() {
            let mut resp = make_response(&request, 420, Some(&local_tag));
            resp.headers
                .push(make_header("Unsupported", &unsupported.join(", ")));
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        if request.contact().is_none() {
            // RFC 3261 §8.1.1.8: a dialog-creating request must carry a Contact.
            let resp = make_response_with_reason(
                &request,
                400,
                "Missing Contact Header",
                Some(&local_tag),
            );
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        let offer = match SessionDescription::parse_bytes(&request.body) {
            Ok(o) if !request.body.is_empty() => o,
            Ok(_) => {
                // Offerless INVITE (offer in 2xx, answer in ACK) is not supported yet.
                let resp =
                    make_response_with_reason(&request, 488, "Offer Required", Some(&local_tag));
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
            Err(e) => {
                let resp = make_response_with_reason(
                    &request,
                    400,
                    &format!("Bad SDP: {e}"),
                    Some(&local_tag),
                );
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
        };
        let from = request
            .from_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let account = self.account_of(&request);
        // RFC 4028 §9: an interval below our minimum is refused with 422 and Min-SE.
        let uas_timer = match uas_negotiate(&request, MIN_SE) {
            UasTimer::TooSmall { min_se } => {
                let mut resp = make_response(&request, 422, Some(&local_tag));
                resp.headers
                    .push(make_header("Min-SE", &min_se.to_string()));
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
            UasTimer::Use { expires, require } => Some((expires, require)),
            UasTimer::None => None,
        };
        // RFC 3891: an INVITE with `Replaces` takes the place of one of our calls.
        let replaced = match self.replaced_by(&request) {
            Ok(r) => r,
            Err((code, phrase)) => {
                let resp = make_response_with_reason(&request, code, &phrase, Some(&local_tag));
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
        };
        let transport = self
            .endpoint
            .target_of(&key)
            .map(|t| t.transport)
            .unwrap_or(Transport::Udp);
        // An offer we could never answer (mandatory SRTP against plain RTP, no common
        // codec, SDES over unencrypted signaling…) is refused now with the status the
        // answer would get (488 mostly), rather than ringing a call that cannot be taken.
        let caps = self.capabilities_over(true, transport, account);
        let probe = SocketAddr::new(self.sip_addr.ip(), 9);
        if let Err(e) = peerline_sdp::create_answer(&offer, &caps, probe, self.session_id, 1) {
            tracing::info!("incoming offer refused before ringing: {e}");
            let resp = make_response_with_reason(
                &request,
                e.sip_status(),
                &e.to_string(),
                Some(&local_tag),
            );
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        // The 180 creates an early dialog: it carries our Contact (RFC 3261 §12.1.1).
        let mut ringing = make_response(&request, 180, Some(&local_tag));
        let ip = local_ip_toward(source, self.sip_addr.ip());
        ringing
            .headers
            .push(make_header("Contact", &self.contact_for(ip, transport)));
        // RFC 3262: when the caller requires 100rel, the 180 goes reliably (Require,
        // RSeq) and is retransmitted until its PRACK.
        let mut prack = None;
        if wants_100rel(&request) == Want100rel::Required {
            let t1 = peerline_sip::Config::default().t1;
            let mut rel = ReliableProvisionals::new(self.rng.gen_range(1..=(1u32 << 31)), t1);
            if let Ok(r) = rel.send(now, ringing.clone()) {
                ringing = r;
                prack = Some(rel);
            }
        }
        let _ = self.endpoint.send_response(now, &key, ringing);
        let id = self.next_call;
        self.next_call += 1;
        if prack.is_some() {
            self.prack_calls.insert(id);
        }
        let call_id = request.call_id().unwrap_or_default().to_string();
        self.by_call_id.insert(call_id.clone(), id);
        let to = request.uri.to_string();
        self.calls.insert(
            id,
            Call {
                state: State::Ringing,
                call_id,
                local_tag,
                dialog: None,
                // Responses and in-dialog requests go back to where the INVITE came from
                // unless the dialog names an address (RFC 3581 symmetric signaling).
                next_hop: source,
                transport,
                invite_key: Some(key),
                invite: Some(request),
                offer: None,
                remote_offer: Some(offer),
                rtp: None,
                rtp_addr: None,
                media_options: MediaOptions::default(),
                media: None,
                ack: None,
                bye_key: None,
                ending: None,
                local_sdp: None,
                reinvite: None,
                reinvite_retry: None,
                on_hold: false,
                digest: None,
                outgoing: false,
                ice: None,
                ice_local: None,
                prack,
                uac_prack: None,
                prack_keys: Vec::new(),
                refer_key: None,
                transferring: false,
                sdes: None,
                udp_fallback: false,
                uas_timer,
                session_timer: None,
                pending_rekey: None,
                account,
            },
        );
        match replaced {
            Some(old) => self.replace_call(old, id, from).await,
            None => self.emit(Event::Incoming { call: id, from, to }),
        }
    }

    /// The call an incoming INVITE's `Replaces` names, when RFC 3891 §3 lets it replace
    /// it; `Err` is the status to refuse the INVITE with.
    fn replaced_by(&self, request: &Request) -> Result<Option<CallId>, (u16, String)> {
        use peerline_sip::replaces::{uas_verdict, MatchedDialog, Replaces, ReplacesVerdict};
        let values = peerline_sip::message::header_values(request, "Replaces");
        let value = match values.as_slice() {
            [] => return Ok(None),
            [v] => *v,
            _ => return Err((400, "More Than One Replaces Header".into())),
        };
        let replaces = Replaces::parse(value).map_err(|e| (400, format!("Bad Replaces: {e}")))?;
        let found = self.by_call_id.get(&replaces.call_id).and_then(|&id| {
            let call = self.calls.get(&id)?;
            let remote_tag = match (&call.dialog, &call.invite) {
                (Some(d), _) => d.id.remote_tag.clone(),
                (None, Some(invite)) if !call.outgoing => {
                    invite.from_tag().unwrap_or_default().to_string()
                }
                _ => return None, // our INVITE has no answer with a tag yet
            };
            if !replaces.matches(&call.call_id, &call.local_tag, &remote_tag) {
                return None;
            }
            let state = match call.state {
                _ if call.ending.is_some() => MatchedDialog::Terminated,
                State::Terminating => MatchedDialog::Terminated,
                State::Confirmed | State::Accepted => MatchedDialog::Confirmed,
                State::Calling => MatchedDialog::EarlyOutgoing,
                State::Ringing => MatchedDialog::EarlyIncoming,
            };
            Some((id, state))
        });
        match uas_verdict(&replaces, found.map(|(_, s)| s)) {
            ReplacesVerdict::Replace => Ok(found.map(|(id, _)| id)),
            ReplacesVerdict::Refuse(code, phrase) => Err((code, phrase.into())),
        }
    }

    /// Target of an attended transfer: answer `new` (an INVITE with `Replaces`) with the
    /// media options of `old` (see [`MediaOptions::replacement`]), then end `old` (BYE,
    /// or CANCEL while it is early).
    async fn replace_call(&mut self, old: CallId, new: CallId, from: String) {
        let options = self
            .calls
            .get(&old)
            .map(|c| c.media_options.replacement(new))
            .unwrap_or_default();
        self.emit(Event::Replaced {
            call: new,
            replaced: old,
            from,
        });
        if let Err(e) = self.answer(new, options).await {
            tracing::info!(call = new, "replacing call {old} failed: {e}");
            return;
        }
        let Some(call) = self.calls.get_mut(&old) else {
            return;
        };
        match call.state {
            State::Calling => {
                let _ = self.hangup(old).await;
            }
            State::Confirmed | State::Accepted => {
                if self.send_bye(old).is_err() {
                    self.end_call(old, EndReason::Replaced).await;
                }
            }
            State::Ringing | State::Terminating => {}
        }
        if let Some(call) = self.calls.get_mut(&old) {
            call.ending = Some(EndReason::Replaced);
        }
    }

    async fn response(&mut self, key: TransactionKey, response: Response) {
        let code = response.status_code.code();
        if code >= 200 {
            if let Some(pending) = self.messages.remove(&key) {
                self.message_response(pending, &response);
                return;
            }
        }
        if let Some(i) = self
            .accounts
            .iter()
            .position(|a| a.register_key.as_ref() == Some(&key))
        {
            match located::unavailable(&response) {
                // 503: the next target, if there is one (RFC 3263 §4.3).
                Some(reason) if self.registrar_failover(i, reason) => return,
                Some(_) => {}
                None => {
                    if let Some(l) = self.accounts[i].registrar.as_mut() {
                        l.ok();
                    }
                }
            }
            if let Some(r) = self.accounts[i].registration.as_mut() {
                r.handle_response(Instant::now(), &response);
            }
            return;
        }
        let id = match self.call_of_txn(&key) {
            Some((id, ClientTxn::Invite)) => id,
            Some((id, ClientTxn::Refer)) => {
                if code >= 200 {
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.refer_key = None;
                        if code >= 300 {
                            call.transferring = false; // refused: the call stays up
                        }
                    }
                    self.emit(Event::Transfer {
                        call: id,
                        status: code,
                        target: None,
                        new_call: None,
                    });
                }
                return;
            }
            // A BYE or CANCEL answered (or refused): the call is over either way.
            Some((id, ClientTxn::Bye)) => {
                if code >= 200 {
                    self.end_call(id, EndReason::LocalHangup).await;
                }
                return;
            }
            Some((id, ClientTxn::Reinvite)) => {
                self.reinvite_response(id, response).await;
                return;
            }
            Some((id, ClientTxn::Prack)) => {
                // The PRACK's own response: a 2xx is just consumed (RFC 3262 §4).
                if let Some(call) = self.calls.get_mut(&id).filter(|_| code >= 200) {
                    call.prack_keys.retain(|k| *k != key);
                    if code >= 300 {
                        tracing::warn!(call_id = %call.call_id, "PRACK refused: {}", response.status_code);
                    }
                }
                return;
            }
            None => return, // e.g. the 200 to our CANCEL
        };
        match code {
            100 => {}
            101..=199 => {
                self.prack_provisional(id, &response);
                if code == 180 || code == 183 {
                    self.emit(Event::Ringing {
                        call: id,
                        status: code,
                    });
                }
            }
            200..=299 => self.invite_accepted(id, response).await,
            401 | 407 if self.retry_with_credentials(id, &response) => {}
            _ => {
                if let Some(fail) = located::unavailable(&response) {
                    if let Some(next) = self.proxy_failed(id, fail) {
                        if self.retry_invite_at(id, next) {
                            return;
                        }
                    }
                }
                let reason = response.status_code.to_string();
                let reason = reason
                    .split_once(' ')
                    .map(|(_, r)| r.to_string())
                    .unwrap_or(reason);
                let reason = match self.calls.get(&id).and_then(|c| c.ending.clone()) {
                    Some(r) => r,
                    None => EndReason::Rejected(code, reason),
                };
                self.end_call(id, reason).await;
            }
        }
    }

    /// Resends the INVITE with digest credentials after a 401/407 (RFC 3261 §22.2): same
    /// Call-ID and From tag, next CSeq, new branch. `false` when the call cannot retry.
    fn retry_with_credentials(&mut self, id: CallId, response: &Response) -> bool {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.state != State::Calling {
            return false;
        }
        let (Some(digest), Some(invite)) = (call.digest.as_mut(), call.invite.as_ref()) else {
            return false;
        };
        if digest.handle_challenge(response).is_err() {
            return false;
        }
        let mut retry = crate::request_edit::next_attempt(invite, &branch);
        if digest.authorize(&mut retry, &mut self.rng).is_err() {
            return false;
        }
        let hop = call_target(call);
        self.resend_invite(id, retry, hop)
    }

    /// Sends `retry`, a new attempt of call `id`'s INVITE, to `hop` as a new transaction;
    /// on success it is the call's INVITE from now on, and `hop` its next hop.
    fn resend_invite(&mut self, id: CallId, retry: Request, hop: Target) -> bool {
        let Ok(key) = self
            .endpoint
            .send_request_to(Instant::now(), retry.clone(), hop)
        else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.invite_key = Some(key);
            call.invite = Some(retry);
            call.next_hop = hop.addr;
            call.transport = hop.transport;
        }
        true
    }

    /// UAC, RFC 3262 §4: a reliable provisional response to our INVITE is PRACKed in its
    /// early dialog (Request-URI its Contact, Route from its Record-Route, next CSeq,
    /// `RAck`); retransmissions and out-of-order ones are not. One whose reliability is
    /// unusable (no valid RSeq) is treated as unreliable: the call goes on.
    fn prack_provisional(&mut self, id: CallId, response: &Response) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(invite) = call
            .invite
            .as_ref()
            .filter(|_| call.state == State::Calling)
        else {
            return;
        };
        let invite_seq = cseq_number(invite);
        let tracker = match &mut call.uac_prack {
            Some(t) if t.invite_cseq() == invite_seq => t,
            slot => slot.insert(PrackTracker::new(invite_seq)),
        };
        let rack = match tracker.on_provisional(response) {
            Provisional::Prack(rack) => rack,
            Provisional::Unreliable => return,
            other => {
                tracing::info!(call_id = %call.call_id, "provisional {} not PRACKed: {other:?}", response.status_code);
                return;
            }
        };
        let mut early = match Dialog::uac(invite, response) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(call_id = %call.call_id, "reliable provisional without an early dialog: {e}");
                return;
            }
        };
        // The PRACK takes the next CSeq after the INVITE's and any earlier PRACK's.
        early.continue_local_seq(tracker.next_cseq() - 1);
        let hop = dialog_next_hop(&early).unwrap_or(call.next_hop);
        let sent_by = SocketAddr::new(
            local_ip_toward(hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string();
        let prack = early
            .request(Method::PRack, call.transport.via_token(), &sent_by, &branch)
            .map(|b| {
                b.header(make_header("RAck", &rack.to_string()))
                    .header(make_header("User-Agent", USER_AGENT))
            })
            .and_then(|b| b.build().map_err(DialogError::from));
        let prack = match prack {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(call_id = %call.call_id, "cannot build PRACK: {e}");
                return;
            }
        };
        let target = match call.transport {
            Transport::Udp => Target::udp(hop),
            t => Target::stream(hop, t, None),
        };
        match self.endpoint.send_request_to(Instant::now(), prack, target) {
            Ok(key) => call.prack_keys.push(key),
            Err(e) => tracing::warn!(call_id = %call.call_id, "cannot send PRACK: {e}"),
        }
    }

    async fn invite_accepted(&mut self, id: CallId, response: Response) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let transport = call.transport;
        let Some(invite) = call.invite.clone() else {
            return;
        };
        let same_dialog = call
            .dialog
            .as_ref()
            .is_some_and(|d| response.to_tag().as_deref() == Some(d.id.remote_tag.as_str()));
        if same_dialog {
            // A retransmitted 2xx: our ACK was lost; send it again.
            if let Some(ack) = call.ack.clone() {
                let hop = call.next_hop;
                self.send_raw(&ack, hop, transport).await;
            }
            return;
        }
        let invite_seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let mut dialog = match Dialog::uac(&invite, &response) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("2xx does not create a dialog: {e}");
                return;
            }
        };
        if let Some(tracker) = &call.uac_prack {
            // PRACKs went out in the early dialog: later requests continue after them.
            dialog.continue_local_seq(tracker.last_cseq());
        }
        let hop = dialog_next_hop(&dialog).unwrap_or(call.next_hop);
        let sent_by = SocketAddr::new(
            local_ip_toward(hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string();
        // ACK the 2xx (RFC 3261 §13.2.2.4): a request of its own, outside any transaction,
        // with the INVITE's CSeq number.
        let ack = match dialog.ack(invite_seq, transport.via_token(), &sent_by, &branch) {
            Ok(ack) => serialize(&SipMessage::Request(ack)),
            Err(e) => {
                tracing::warn!("cannot build ACK: {e}");
                return;
            }
        };
        if call.dialog.is_some() {
            // A 2xx from a second fork: acknowledge it and end that dialog at once.
            self.send_raw(&ack, hop, transport).await;
            let bye_branch = self.branch();
            let bye = dialog
                .request(Method::Bye, transport.via_token(), &sent_by, &bye_branch)
                .and_then(|b| b.build().map_err(DialogError::from));
            if let Ok(bye) = bye {
                let target = match transport {
                    Transport::Udp => Target::udp(hop),
                    t => Target::stream(hop, t, None),
                };
                let _ = self.endpoint.send_request_to(Instant::now(), bye, target);
            }
            return;
        }
        let negotiated = match (&call.offer, SessionDescription::parse_bytes(&response.body)) {
            (Some(offer), Ok(answer)) => {
                peerline_sdp::process_answer(offer, &answer).map_err(|e| e.to_string())
            }
            (_, Err(e)) => Err(format!("bad SDP answer: {e}")),
            (None, _) => Err("no offer".into()),
        };
        call.next_hop = hop;
        call.dialog = Some(dialog);
        call.ack = Some(ack.clone());
        call.state = State::Confirmed;
        self.send_raw(&ack, hop, transport).await;
        // RFC 4028 §7.2: the 2xx names the interval and the refresher (we are the UAC).
        if let Some(se) = response_session_expires(&response) {
            if let Some(call) = self.calls.get_mut(&id) {
                let we_refresh = se.refresher.unwrap_or(Refresher::Uac) == Refresher::Uac;
                call.session_timer = Some(SessionTimer::new(Instant::now(), se.secs, we_refresh));
                self.timer_calls.insert(id);
            }
        }
        self.emit(Event::Answered { call: id });
        if let Some(orig) = self.transferee_of.remove(&id) {
            self.notify_transfer(orig, 200, "OK");
            self.emit(Event::Transfer {
                call: orig,
                status: 200,
                target: None,
                new_call: Some(id),
            });
        }
        match negotiated {
            Ok(n) => {
                if n.remote_ice.is_none() {
                    self.ice_fall_back(id).await;
                }
                self.start_media(id, &n);
                // A hangup requested while the INVITE was pending ends the call now.
                if let Some(reason) = self.calls.get(&id).and_then(|c| c.ending.clone()) {
                    let _ = self.send_bye(id);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ending = Some(reason);
                    }
                }
            }
            Err(e) => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.ending = Some(EndReason::Negotiation(e));
                }
                let _ = self.send_bye(id);
            }
        }
    }

    /// Sends a datagram outside the transaction layer (ACK for 2xx), counting it.
    async fn send_raw(&mut self, bytes: &[u8], dest: SocketAddr, transport: Transport) {
        tracing::debug!(to = %dest, "SIP out:\n{}", peerline_sip::log_redact::redact_credentials(&String::from_utf8_lossy(bytes)));
        let t = Transmit {
            dest,
            bytes: bytes.to_vec(),
            transport,
            conn: None,
        };
        if self.transports.send(&t).await.is_ok() {
            self.ledger
                .record(dest, TrafficClass::Sip, LedgerDirection::Sent, bytes.len());
        }
    }

    /// The call and role of one of our client transactions (one pass over the calls).
    fn call_of_txn(&self, key: &TransactionKey) -> Option<(CallId, ClientTxn)> {
        self.calls.iter().find_map(|(id, c)| {
            let role = if c.invite_key.as_ref() == Some(key) {
                ClientTxn::Invite
            } else if c.bye_key.as_ref() == Some(key) {
                ClientTxn::Bye
            } else if c.refer_key.as_ref() == Some(key) {
                ClientTxn::Refer
            } else if c.reinvite.as_ref().is_some_and(|r| &r.0 == key) {
                ClientTxn::Reinvite
            } else if c.prack_keys.contains(key) {
                ClientTxn::Prack
            } else {
                return None;
            };
            Some((*id, role))
        })
    }

    async fn transaction_timeout(&mut self, key: TransactionKey) {
        let timeout_reason = match self.unreachable.remove(&key) {
            Some(why) => EndReason::Unreachable(why),
            None => EndReason::Timeout,
        };
        let txn = self.call_of_txn(&key);
        if let Some((id, ClientTxn::Refer)) = txn {
            if let Some(call) = self.calls.get_mut(&id) {
                call.refer_key = None;
                call.transferring = false;
            }
            self.emit(Event::Transfer {
                call: id,
                status: 408,
                target: None,
                new_call: None,
            });
            return;
        }
        if let Some(pending) = self.messages.remove(&key) {
            let why = match timeout_reason {
                EndReason::Unreachable(why) => why,
                _ => "no final response (Timer F)".to_string(),
            };
            let _ = pending.reply.send(Err(PhoneError::NoAnswer(why)));
            return;
        }
        if let Some(i) = self
            .accounts
            .iter()
            .position(|a| a.register_key.as_ref() == Some(&key))
        {
            // Timer F or a refused connection: register on the next target, if any.
            let fail = match timeout_reason {
                EndReason::Unreachable(_) => peerline_dns::FailReason::Transport,
                _ => peerline_dns::FailReason::Timeout,
            };
            if !self.registrar_failover(i, fail) {
                if let Some(r) = self.accounts[i].registration.as_mut() {
                    // A failed connection (refused, TLS certificate) is reported with
                    // its reason rather than as a 408.
                    match timeout_reason {
                        EndReason::Unreachable(why) => {
                            r.handle_transport_failure(Instant::now(), why)
                        }
                        _ => r.handle_transaction_timeout(Instant::now()),
                    }
                }
            }
            return;
        }
        // Our re-INVITE got no answer: the dialog is considered gone (RFC 3261 §14.1).
        if let Some((id, ClientTxn::Reinvite)) = txn {
            if let Some(call) = self.calls.get_mut(&id) {
                call.reinvite = None;
                call.ending = Some(EndReason::Timeout);
            }
            if self.send_bye(id).is_err() {
                self.end_call(id, EndReason::Timeout).await;
            }
            return;
        }
        if let Some((id, role @ (ClientTxn::Invite | ClientTxn::Bye))) = txn {
            let is_bye = role == ClientTxn::Bye;
            let in_progress = self
                .calls
                .get(&id)
                .is_some_and(|c| matches!(c.state, State::Calling | State::Accepted));
            if is_bye || in_progress {
                if !is_bye && matches!(timeout_reason, EndReason::Unreachable(_)) {
                    // Sent over TCP only for its size: RFC 3261 §18.1.1 says retry over UDP.
                    let fallback = self.calls.get_mut(&id).filter(|c| c.udp_fallback).map(|c| {
                        c.udp_fallback = false;
                        c.next_hop
                    });
                    if let Some(hop) = fallback {
                        if self.retry_invite_at(id, Target::udp(hop)) {
                            return;
                        }
                    }
                }
                if !is_bye {
                    let fail = match timeout_reason {
                        EndReason::Unreachable(_) => peerline_dns::FailReason::Transport,
                        _ => peerline_dns::FailReason::Timeout,
                    };
                    if let Some(next) = self.proxy_failed(id, fail) {
                        if self.retry_invite_at(id, next) {
                            return;
                        }
                    }
                }
                self.end_call(id, timeout_reason).await;
            }
        }
    }

    /// Our INVITE of call `id` got no answer (Timer B), could not be sent, or got a 503:
    /// when it went to the account's outbound proxy, that target is avoided and the
    /// proxy's next target (RFC 3263 §4.3), if any, is returned and used from now on.
    fn proxy_failed(&mut self, id: CallId, reason: peerline_dns::FailReason) -> Option<Target> {
        let c = self.calls.get(&id).filter(|c| c.outgoing)?;
        let (hop, transport) = (c.next_hop, c.transport);
        let mut next = None;
        for a in &mut self.accounts {
            if let Some(l) = a.proxy.as_mut().filter(|l| l.is_current(hop, transport)) {
                next = l.fail(reason, Instant::now()).or(next);
            }
        }
        next
    }

    /// RFC 3263 §4.3: the INVITE of call `id`, still unanswered, failed at its target;
    /// it is sent again as a new transaction (new branch, next CSeq, Via for the new
    /// transport) to `next`. `false` when the call cannot be retried.
    fn retry_invite_at(&mut self, id: CallId, next: Target) -> bool {
        let branch = self.branch();
        let ip = local_ip_toward(next.addr, self.sip_addr.ip());
        let sent_by = SocketAddr::new(ip, self.listen_port(next.transport));
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(invite) = call
            .invite
            .as_ref()
            .filter(|_| call.state == State::Calling)
        else {
            return false;
        };
        let mut retry = crate::request_edit::next_attempt(invite, &branch);
        crate::request_edit::replace_top_via(
            &mut retry,
            &format!(
                "SIP/2.0/{} {sent_by};rport;branch={branch}",
                next.transport.via_token()
            ),
        );
        tracing::info!(call = id, to = %next.addr, transport = %next.transport, "INVITE to the next target");
        self.resend_invite(id, retry, next)
    }
}

/// The calls of `set` whose `deadline` has come by `now` (prack and session timers).
fn due_calls(
    calls: &HashMap<CallId, Call>,
    set: &std::collections::BTreeSet<CallId>,
    now: Instant,
    deadline: impl Fn(&Call) -> Option<Instant>,
) -> Vec<CallId> {
    set.iter()
        .copied()
        .filter(|id| calls.get(id).and_then(&deadline).is_some_and(|t| t <= now))
        .collect()
}

/// The peer's re-INVITE or UPDATE refreshed a timed session (RFC 4028 §9): the timer
/// restarts, the refresher named in the request (of that transaction: "uac" is the peer)
/// is kept, and our 2xx repeats the interval and the refresher.
fn peer_refresh(call: &mut Call, request: &Request, ok: &mut Response) {
    let Some(t) = call.session_timer.as_mut() else {
        return;
    };
    let asked = peerline_sip::session_timer::session_expires(request);
    let we_refresh = asked
        .and_then(|se| se.refresher)
        .map(|r| r == Refresher::Uas);
    t.refreshed(Instant::now(), we_refresh);
    let refresher = if t.we_refresh() { "uas" } else { "uac" };
    let secs = asked.map_or(t.secs(), |se| u64::from(se.secs));
    ok.headers.push(make_header(
        "Session-Expires",
        &format!("{secs};refresher={refresher}"),
    ));
    if peerline_sip::session_timer::supports_timer(request) {
        ok.headers.push(make_header("Require", "timer"));
    }
}

/// A re-INVITE's offer/answer changed the SDES keys (RFC 4568 §7.1.4: either side may
/// send new ones): the media task switches to them. Same keys: nothing changes (a new
/// context would restart the rollover counter).
fn rekey_if_changed(call: &mut Call, security: &peerline_sdp::Security) {
    if !matches!(security, peerline_sdp::Security::Sdes { .. })
        || call.sdes.as_ref() == Some(security)
        || call.sdes.is_none()
    {
        return;
    }
    match peerline_srtp::sdes_pair_from_security(security) {
        Ok(pair) => {
            if let Some(m) = &call.media {
                m.command(media::MediaCommand::Rekey(Box::new(pair)));
            }
            call.sdes = Some(security.clone());
        }
        Err(e) => tracing::warn!("new SDES keys unusable, keeping the old ones: {e}"),
    }
}

/// Where and how a call's in-dialog requests go.
fn call_target(call: &Call) -> Target {
    match call.transport {
        Transport::Udp => Target::udp(call.next_hop),
        t => Target::stream(call.next_hop, t, None),
    }
}

/// Whether an offer carries ICE attributes (session or media level).
fn offers_ice(offer: &SessionDescription) -> bool {
    offer.ice_ufrag().is_some() || offer.media.iter().any(|m| m.ice_ufrag().is_some())
}

/// The URI inside `<…>` of a name-addr, or the text itself.
fn contact_uri(name_addr: &str) -> String {
    name_addr
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The socket address of a SIP URI whose host is an IP address (5060 by default).
fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let uri = rsip::Uri::try_from(contact_uri(uri).as_str()).ok()?;
    let rsip::Host::IpAddr(ip) = uri.host_with_port.host else {
        return None;
    };
    let port = match &uri.host_with_port.port {
        Some(p) => p.to_string().parse().ok()?,
        None => 5060,
    };
    Some(SocketAddr::new(ip, port))
}

/// Where the dialog's next request goes, when its next hop is an address.
fn dialog_next_hop(dialog: &Dialog) -> Option<SocketAddr> {
    uri_addr(&dialog.next_hop_uri())
}

/// Our address as `dest` sees it: the bound one, or, when bound to 0.0.0.0, the one the
/// kernel would pick (a connected UDP socket sends nothing).
pub(crate) fn local_ip_toward(dest: SocketAddr, bound: IpAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    std::net::UdpSocket::bind(SocketAddr::new(bound, 0))
        .and_then(|s| s.connect(dest).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(bound)
}
