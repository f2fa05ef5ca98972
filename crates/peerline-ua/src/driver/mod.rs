//! The tokio driver: owns the SIP socket and the sans-IO transaction [`Endpoint`], turns
//! user commands and transaction events into calls, and starts and stops each call's media.
//!
//! The loop is the one from docs/architecture.md: wait on the socket, the command channel,
//! media notices or the endpoint's next timeout; feed what arrived; drain transmits (each
//! recorded in the ledger) and events.

mod accounts;
mod calls;
mod client_txns;
mod ice_restart;
mod incoming;
mod media_setup;
mod out_of_dialog;
mod refer;
mod reinvite;

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
use crate::media::{
    self, AudioSource, MediaHandle, MediaOptions, MediaParams, MediaReport, Notice,
};
use crate::phone::{CallId, Command, EndReason, Event, PhoneError};

/// RFC 3261 §18.1.1: requests larger than this go over TCP (path MTU unknown).
const UDP_REQUEST_LIMIT: usize = 1300;

const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, MESSAGE, REFER, NOTIFY, INFO, UPDATE";
/// Option tags we implement (RFC 3261 §8.2.2.3).
const SUPPORTED: &[&str] = &["100rel", "timer", "replaces"];
const USER_AGENT: &str = concat!("Peerline/", env!("CARGO_PKG_VERSION"));
/// How long a shutting-down phone waits for its TCP/TLS connections to write what is queued.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(500);

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
    /// With ICE: the peer's current credentials and candidates (new ones in its re-offer
    /// mean an ICE restart).
    ice_remote: Option<peerline_sdp::RemoteIce>,
    /// Our ICE restart's fresh agent while its re-INVITE is answered.
    pending_ice: Option<PreparedIce>,
    /// The TURN bridge counters of every agent this call gathered (both components,
    /// restarts): their rows go into the call's ledger when it ends.
    turn: peerline_net::TurnTraffic,
    /// When we last restarted ICE (restarts are spaced out).
    ice_restarted_at: Option<Instant>,
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
    /// Keep-alives to the registrar while registered behind a NAT over UDP.
    keepalive: peerline_sip::nat::KeepAlive,
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
        let mut address_check = tokio::time::interval(ice_restart::ADDRESS_CHECK);
        address_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                    self.accounts
                        .iter()
                        .filter_map(|a| a.keepalive.poll_timeout()),
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
                _ = address_check.tick() => self.check_ice_addresses().await,
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
                    self.send_keepalives(now).await;
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

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Our Contact (a name-addr) for a dialog over `transport`, at `ip`, whose requests
    /// go to and come from `toward`: the public address a registrar behind a NAT saw us
    /// at when `toward` is that registrar or the account's outbound proxy
    /// ([`Driver::nat_contact_addr`]).
    fn contact_for(&self, toward: SocketAddr, ip: IpAddr, transport: Transport) -> String {
        let local = self
            .nat_contact_addr(toward, transport)
            .unwrap_or_else(|| SocketAddr::new(ip, self.listen_port(transport)));
        format!(
            "<{}>",
            located::contact_uri_for(&self.config.identity.user, local, transport)
        )
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
                // running keep theirs in their media task until then, except their TURN
                // traffic, which is counted here as it happens.
                let mut ledger = self.ledger.clone();
                for call in self.calls.values() {
                    call.turn.record_into(&mut ledger);
                }
                let _ = reply.send(ledger);
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
            Command::Stats { call, stats, reply } => {
                let r = self.with_media(call, media::MediaCommand::Snapshot(stats));
                let _ = reply.send(r);
            }
            Command::Hold { call, hold, reply } => {
                let r = self.send_reinvite(call, hold);
                let _ = reply.send(r);
            }
            Command::RestartIce { call, reply } => {
                let r = self.restart_ice(call).await;
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
        self.flush().await;
        // What is queued on TCP/TLS connections (a 200 to the BYE that just ended a call)
        // is written before the connections go away with the phone.
        self.transports.flush(SHUTDOWN_FLUSH).await;
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
