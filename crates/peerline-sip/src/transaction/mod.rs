//! Sans-IO SIP transaction layer (RFC 3261 §17 for UDP, with the RFC 6026
//! Accepted state), in the style of quinn-proto.
//!
//! The driver feeds datagrams ([`Endpoint::handle_datagram`]) and timer expiries
//! ([`Endpoint::handle_timeout`]) and drains [`Endpoint::poll_transmit`],
//! [`Endpoint::poll_event`] and [`Endpoint::poll_timeout`] after each call.
//! Time is only ever taken from the `now` arguments.
//!
//! Beyond RFC 3261 §17 the INVITE server transaction also retransmits a 2xx
//! (T1 doubling, capped at T2) until the ACK arrives, which RFC 3261 assigns to the
//! TU; the ACK itself is still delivered as [`Event::Ack`].

use crate::message::{make_ack_non2xx, make_response, serialize, MessageExt, MAGIC_COOKIE};
use crate::parse::{error_response, parse_message_with, Limits};
use crate::syntax;
use crate::transport::{ConnectionId, Transport};
use rsip::{Method, Request, Response, SipMessage};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Timer values and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message remains in the network, default 5 s.
    pub t4: Duration,
    /// An INVITE server transaction sends `100 Trying` if the TU has not answered
    /// within this delay (default 200 ms).
    pub trying_delay: Duration,
    /// Parser limits applied to every datagram.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying_delay: Duration::from_millis(200),
            limits: Limits::default(),
        }
    }
}

/// Identifies a transaction. Client keys use our own branch and the method;
/// server keys use branch + sent-by + method (ACK is folded into INVITE), or an
/// RFC 2543 compatibility key when the branch lacks the magic cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey {
    /// `true` for a server transaction (a request we received).
    pub server: bool,
    /// Branch (or RFC 2543 compatibility id).
    pub branch: String,
    /// Lower-cased sent-by of the top Via (empty for client transactions).
    pub sent_by: String,
    /// Method (INVITE for ACK).
    pub method: String,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub dest: SocketAddr,
    /// Serialized SIP message.
    pub bytes: Vec<u8>,
    /// Transport to send it on (`Udp` unless the transaction runs over a stream).
    pub transport: Transport,
    /// Stream connection to send it on. `None` with a reliable transport: use
    /// any open connection to `dest` or open a new one (RFC 3261 §18.2.2).
    pub conn: Option<ConnectionId>,
}

/// Where a request goes (or a server transaction's peer): address, transport and
/// optionally the stream connection. `From<SocketAddr>` gives UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Remote address.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// Existing connection to reuse (reliable transports).
    pub conn: Option<ConnectionId>,
}

impl Target {
    /// UDP to `addr`.
    pub fn udp(addr: SocketAddr) -> Self {
        Target {
            addr,
            transport: Transport::Udp,
            conn: None,
        }
    }

    /// A stream transport to `addr`, on connection `conn` if given.
    pub fn stream(addr: SocketAddr, transport: Transport, conn: Option<ConnectionId>) -> Self {
        Target {
            addr,
            transport,
            conn,
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Target::udp(addr)
    }
}

/// Something the TU must know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new request (not a retransmission, not ACK/CANCEL). Answer it with
    /// [`Endpoint::send_response`] using `key`.
    IncomingRequest {
        /// Server transaction key.
        key: TransactionKey,
        /// The request; the top Via got `received`/`rport` stamped (RFC 3581).
        request: Request,
        /// Where it came from (responses go back there).
        source: SocketAddr,
    },
    /// A response for one of our client transactions. For INVITE, 2xx
    /// retransmissions are delivered too (the TU re-sends its ACK).
    Response {
        /// Client transaction key.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// Client: Timer B/F fired (no final response). Server INVITE: no ACK came for
    /// a final response (Timer H, or Timer L for an unacknowledged 2xx).
    TransactionTimeout {
        /// Transaction key.
        key: TransactionKey,
    },
    /// An ACK not absorbed by an INVITE server transaction: the ACK for a 2xx
    /// (handed to the dialog layer).
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: SocketAddr,
    },
    /// A CANCEL matched a pending INVITE server transaction. The endpoint already
    /// answered the CANCEL with 200; the TU should answer the INVITE with 487.
    Cancelled {
        /// Key of the INVITE server transaction.
        invite_key: TransactionKey,
        /// The CANCEL request.
        cancel: Request,
    },
}

/// Errors of the TU-facing API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransactionError {
    /// No such (live) transaction.
    #[error("unknown transaction")]
    UnknownTransaction,
    /// The request has no top Via with a branch.
    #[error("request needs a top Via with a z9hG4bK branch")]
    MissingBranch,
    /// ACK for a 2xx is not a transaction: use [`Endpoint::send_stateless`].
    #[error("ACK is not sent in a transaction; use send_stateless")]
    AckNotTransaction,
    /// A client transaction with that key already exists.
    #[error("duplicate transaction")]
    Duplicate,
    /// The transaction already sent a final response.
    #[error("transaction already completed")]
    AlreadyCompleted,
    /// Could not build a message.
    #[error("cannot build message: {0}")]
    Build(#[from] crate::BuildError),
}

/// Counters (never reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that failed to parse.
    pub parse_errors: u64,
    /// Error responses (400/501/505/513) sent for malformed requests.
    pub error_responses_sent: u64,
    /// Retransmitted requests absorbed by server transactions.
    pub retransmissions_absorbed: u64,
    /// Responses matching no client transaction (dropped).
    pub stray_responses: u64,
    /// Requests rejected with 482 (merged request).
    pub merged_requests: u64,
    /// Our own retransmissions.
    pub retransmissions_sent: u64,
    /// Client transactions failed because their connection closed (RFC 3261 §17.1.4).
    pub transport_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

type MergeKey = (String, String, u32, String);

#[derive(Debug)]
struct Txn {
    kind: Kind,
    state: State,
    peer: SocketAddr,
    transport: Transport,
    conn: Option<ConnectionId>,
    request: Request,
    /// Client: serialized request. Server: last response sent.
    wire: Option<Vec<u8>>,
    /// INVITE client: ACK for a non-2xx final response.
    ack: Option<Vec<u8>>,
    interval: Duration,
    /// Timer A / E / G / 2xx retransmission.
    retrans_at: Option<Instant>,
    /// Timer B / F / H / L / M.
    timeout_at: Option<Instant>,
    /// Timer D / K / I / J.
    end_at: Option<Instant>,
    /// INVITE server: send 100 Trying at.
    trying_at: Option<Instant>,
    /// INVITE server in Accepted: the 2xx has been acknowledged.
    acked: bool,
    merge_key: Option<MergeKey>,
    /// The earliest entry this transaction has in the timer heap, if any.
    scheduled: Option<Instant>,
}

impl Txn {
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.retrans_at,
            self.timeout_at,
            self.end_at,
            self.trying_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The transaction endpoint. See the [module docs](self).
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    txns: HashMap<TransactionKey, Txn>,
    merge: HashMap<MergeKey, TransactionKey>,
    /// Deadlines, earliest first. Entries go stale when a transaction ends or its
    /// deadline moves; a stale entry only makes [`Endpoint::handle_timeout`] look at a
    /// transaction with nothing due, so the heap is never searched or rebuilt.
    timers: BinaryHeap<Reverse<(Instant, TransactionKey)>>,
    /// INVITE server transactions whose 2xx awaits its ACK, by what the ACK carries
    /// (Call-ID, CSeq number, From tag): an ACK for a 2xx is matched in O(1), not by
    /// scanning every answered call of the last 32 s (docs/benchmarks.md, figure 1).
    awaiting_ack: HashMap<AckKey, TransactionKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

/// What an ACK for a 2xx shares with its INVITE: Call-ID, CSeq number, From tag.
type AckKey = (String, u32, Option<String>);

fn ack_key(req: &Request) -> Option<AckKey> {
    Some((req.call_id()?.to_string(), req.cseq()?.seq, req.from_tag()))
}

fn method_key(m: &Method) -> String {
    match m {
        Method::Ack => "INVITE".to_string(),
        other => other.to_string(),
    }
}

fn server_key(req: &Request) -> Option<TransactionKey> {
    let via = req.top_via()?;
    let method = method_key(&req.method);
    match via.branch() {
        Some(b) if b.starts_with(MAGIC_COOKIE) => Some(TransactionKey {
            server: true,
            branch: b.to_string(),
            sent_by: via.sent_by(),
            method,
        }),
        other => {
            // RFC 2543 fallback: identify by Request-URI, From tag, Call-ID, CSeq, top Via.
            let cseq = req.cseq()?;
            Some(TransactionKey {
                server: true,
                branch: format!(
                    "2543|{}|{}|{}|{}|{}",
                    req.uri,
                    req.from_tag().unwrap_or_default(),
                    req.call_id().unwrap_or_default(),
                    cseq.seq,
                    other.unwrap_or_default()
                ),
                sent_by: via.sent_by(),
                method,
            })
        }
    }
}

fn client_key_of(branch: &str, method: &str) -> TransactionKey {
    TransactionKey {
        server: false,
        branch: branch.to_string(),
        sent_by: String::new(),
        method: method.to_string(),
    }
}

/// RFC 3581: stamp `received` (and `rport` if requested) on the top Via.
fn stamp_via(req: &mut Request, source: SocketAddr) {
    let Some(pos) = req
        .headers
        .iter()
        .position(|h| matches!(h, rsip::Header::Via(_)))
    else {
        return;
    };
    let Some(mut via) = req.top_via() else { return };
    let ip = source.ip().to_string();
    let host_plain = via.host.trim_start_matches('[').trim_end_matches(']');
    let mut changed = false;
    if host_plain != ip && via.received().is_none() {
        via.params.push(syntax::Param {
            name: "received".into(),
            value: Some(ip),
        });
        changed = true;
    }
    for p in via.params.iter_mut() {
        if p.name.eq_ignore_ascii_case("rport") && p.value.is_none() {
            p.value = Some(source.port().to_string());
            changed = true;
        }
    }
    if !changed {
        return;
    }
    let mut s = format!(
        "{}/{}/{} {}",
        via.protocol, via.version, via.transport, via.host
    );
    if let Some(p) = via.port {
        s.push_str(&format!(":{p}"));
    }
    for p in &via.params {
        match &p.value {
            Some(v) => s.push_str(&format!(";{}={}", p.name, v)),
            None => s.push_str(&format!(";{}", p.name)),
        }
    }
    let mut headers: Vec<rsip::Header> = std::mem::take(&mut req.headers).into();
    if let Some(h) = headers.get_mut(pos) {
        *h = crate::message::make_header("Via", &s);
    }
    req.headers = headers.into();
}

impl Endpoint {
    /// New endpoint with the given timers.
    pub fn new(config: Config) -> Self {
        Endpoint {
            config,
            txns: HashMap::new(),
            merge: HashMap::new(),
            timers: BinaryHeap::new(),
            awaiting_ack: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Number of live transactions.
    pub fn transaction_count(&self) -> usize {
        self.txns.len()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Earliest instant at which [`Endpoint::handle_timeout`] must be called.
    /// O(1): the top of the timer heap (kept exact: stale entries are pruned from the
    /// top after every change).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Puts `key`'s next deadline in the timer heap unless an entry at or before it is
    /// already there, then prunes stale entries from the top. Called after every change
    /// to a transaction's timers.
    fn schedule(&mut self, key: &TransactionKey) {
        self.push_deadline(key);
        self.prune_timers();
    }

    fn push_deadline(&mut self, key: &TransactionKey) {
        let Some(txn) = self.txns.get_mut(key) else {
            return;
        };
        let Some(at) = txn.next_deadline() else {
            return;
        };
        if txn.scheduled.is_some_and(|s| s <= at) {
            return;
        }
        txn.scheduled = Some(at);
        self.timers.push(Reverse((at, key.clone())));
    }

    /// Pops entries from the top of the timer heap until the top is a live
    /// transaction's real next deadline, so [`Endpoint::poll_timeout`] is exact. An
    /// entry that was its transaction's scheduled one is replaced by the real deadline.
    fn prune_timers(&mut self) {
        while let Some(Reverse((at, key))) = self.timers.peek() {
            let live = self
                .txns
                .get(key)
                .is_some_and(|t| t.next_deadline() == Some(*at));
            if live {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            if let Some(txn) = self.txns.get_mut(&key) {
                if txn.scheduled == Some(at) {
                    txn.scheduled = None;
                    self.push_deadline(&key);
                }
            }
        }
    }

    /// Send a message outside any transaction (ACK for 2xx, TU-driven retransmissions).
    pub fn send_stateless(&mut self, dest: SocketAddr, msg: SipMessage) {
        self.send_stateless_to(Target::udp(dest), msg);
    }

    /// [`Endpoint::send_stateless`] on any transport.
    pub fn send_stateless_to(&mut self, target: Target, msg: SipMessage) {
        self.transmits.push_back(Transmit {
            dest: target.addr,
            bytes: serialize(&msg),
            transport: target.transport,
            conn: target.conn,
        });
    }

    /// Where a transaction's messages go: the request's source for a server
    /// transaction (with the connection it arrived on), the destination for a client one.
    pub fn target_of(&self, key: &TransactionKey) -> Option<Target> {
        self.txns.get(key).map(|t| Target {
            addr: t.peer,
            transport: t.transport,
            conn: t.conn,
        })
    }

    /// The driver lost a stream connection. Client transactions bound to it fail
    /// (RFC 3261 §17.1.4: reported as [`Event::TransactionTimeout`], which the TU
    /// treats like a 503); server transactions keep going and send later responses
    /// with `conn: None` (the driver opens a new connection, RFC 3261 §18.2.2).
    pub fn connection_closed(&mut self, conn: ConnectionId) {
        let mut failed = Vec::new();
        for (key, txn) in self.txns.iter_mut() {
            if txn.conn != Some(conn) {
                continue;
            }
            txn.conn = None;
            let pending = matches!(
                (txn.kind, txn.state),
                (Kind::InviteClient, State::Calling | State::Proceeding)
                    | (Kind::NonInviteClient, State::Trying | State::Proceeding)
            );
            if pending {
                failed.push(key.clone());
            }
        }
        for key in failed {
            self.stats.transport_errors += 1;
            self.remove_txn(&key);
            self.events.push_back(Event::TransactionTimeout { key });
        }
    }

    /// The driver could not connect to `dest` over `transport` (refused, unreachable,
    /// TLS handshake failed). Pending client transactions whose requests were queued
    /// for `dest` on that transport without a bound connection fail at once (RFC 3261
    /// §17.1.4, reported as [`Event::TransactionTimeout`]) instead of waiting for
    /// Timer B/F; stream transports have no retransmission that could still succeed.
    /// Returns the failed transactions' keys.
    pub fn unreachable(&mut self, transport: Transport, dest: SocketAddr) -> Vec<TransactionKey> {
        let failed: Vec<TransactionKey> = self
            .txns
            .iter()
            .filter(|(_, t)| {
                t.peer == dest
                    && t.transport == transport
                    && matches!(
                        (t.kind, t.state),
                        (Kind::InviteClient, State::Calling | State::Proceeding)
                            | (Kind::NonInviteClient, State::Trying | State::Proceeding)
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &failed {
            self.stats.transport_errors += 1;
            self.remove_txn(key);
            self.events
                .push_back(Event::TransactionTimeout { key: key.clone() });
        }
        failed
    }

    fn remove_txn(&mut self, key: &TransactionKey) {
        if let Some(t) = self.txns.remove(key) {
            if let Some(m) = t.merge_key {
                if self.merge.get(&m) == Some(key) {
                    self.merge.remove(&m);
                }
            }
            if let Some(a) = ack_key(&t.request) {
                if self.awaiting_ack.get(&a) == Some(key) {
                    self.awaiting_ack.remove(&a);
                }
            }
        }
        self.prune_timers();
    }

    /// Start a client transaction: sends `request` to `dest` and retransmits it as
    /// needed. The request must have a top Via with a `z9hG4bK` branch.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        dest: SocketAddr,
    ) -> Result<TransactionKey, TransactionError> {
        self.send_request_to(now, request, Target::udp(dest))
    }

    /// [`Endpoint::send_request`] on any transport. Over TCP/TLS nothing is
    /// retransmitted (Timers A and E are not started, RFC 3261 §17.1.1.2/§17.1.2.2);
    /// Timers B and F still bound the wait for a final response.
    pub fn send_request_to(
        &mut self,
        now: Instant,
        request: Request,
        target: Target,
    ) -> Result<TransactionKey, TransactionError> {
        let dest = target.addr;
        if request.method == Method::Ack {
            return Err(TransactionError::AckNotTransaction);
        }
        let branch = request
            .branch()
            .filter(|b| b.starts_with(MAGIC_COOKIE))
            .ok_or(TransactionError::MissingBranch)?;
        let key = client_key_of(&branch, &request.method.to_string());
        if self.txns.contains_key(&key) {
            return Err(TransactionError::Duplicate);
        }
        let bytes = serialize(&request.clone().into());
        self.transmits.push_back(Transmit {
            dest,
            bytes: bytes.clone(),
            transport: target.transport,
            conn: target.conn,
        });
        let reliable = target.transport.is_reliable();
        let t1 = self.config.t1;
        let (kind, state) = if request.method == Method::Invite {
            (Kind::InviteClient, State::Calling)
        } else {
            (Kind::NonInviteClient, State::Trying)
        };
        self.txns.insert(
            key.clone(),
            Txn {
                kind,
                state,
                peer: dest,
                transport: target.transport,
                conn: target.conn,
                request,
                wire: Some(bytes),
                ack: None,
                interval: t1,
                retrans_at: (!reliable).then(|| now + t1),
                timeout_at: Some(now + 64 * t1),
                end_at: None,
                trying_at: None,
                acked: false,
                merge_key: None,
                scheduled: None,
            },
        );
        self.schedule(&key);
        Ok(key)
    }

    /// Send a CANCEL for a pending INVITE client transaction (a new non-INVITE
    /// client transaction, whose key is returned).
    pub fn cancel(
        &mut self,
        now: Instant,
        invite_key: &TransactionKey,
    ) -> Result<TransactionKey, TransactionError> {
        let txn = self
            .txns
            .get(invite_key)
            .filter(|t| t.kind == Kind::InviteClient)
            .ok_or(TransactionError::UnknownTransaction)?;
        if !matches!(txn.state, State::Calling | State::Proceeding) {
            return Err(TransactionError::AlreadyCompleted);
        }
        let cancel = crate::message::make_cancel(&txn.request)?;
        let target = Target {
            addr: txn.peer,
            transport: txn.transport,
            conn: txn.conn,
        };
        self.send_request_to(now, cancel, target)
    }

    /// Send a response in a server transaction.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        response: Response,
    ) -> Result<(), TransactionError> {
        let cfg = self.config;
        let txn = self
            .txns
            .get_mut(key)
            .filter(|t| matches!(t.kind, Kind::InviteServer | Kind::NonInviteServer))
            .ok_or(TransactionError::UnknownTransaction)?;
        if !matches!(txn.state, State::Trying | State::Proceeding) {
            return Err(TransactionError::AlreadyCompleted);
        }
        let code = response.status_code.code();
        let bytes = serialize(&response.into());
        self.transmits.push_back(Transmit {
            dest: txn.peer,
            transport: txn.transport,
            conn: txn.conn,
            bytes: bytes.clone(),
        });
        txn.wire = Some(bytes);
        txn.trying_at = None;
        let reliable = txn.transport.is_reliable();
        match (txn.kind, code) {
            (_, 100..=199) => txn.state = State::Proceeding,
            (Kind::InviteServer, 200..=299) => {
                txn.state = State::Accepted;
                txn.interval = cfg.t1;
                txn.retrans_at = Some(now + cfg.t1);
                txn.timeout_at = Some(now + 64 * cfg.t1);
                if let Some(a) = ack_key(&txn.request) {
                    self.awaiting_ack.insert(a, key.clone());
                }
            }
            (Kind::InviteServer, _) => {
                txn.state = State::Completed;
                txn.interval = cfg.t1;
                // Timer G only on unreliable transports; Timer H always.
                txn.retrans_at = (!reliable).then(|| now + cfg.t1);
                txn.timeout_at = Some(now + 64 * cfg.t1);
            }
            (_, _) => {
                txn.state = State::Completed;
                // Timer J: 64*T1 for UDP, zero for reliable transports.
                txn.end_at = Some(if reliable { now } else { now + 64 * cfg.t1 });
            }
        }
        self.schedule(key);
        Ok(())
    }

    /// Feed a received datagram.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, bytes: &[u8]) {
        self.handle_input(now, Target::udp(source), bytes);
    }

    /// Feed one complete message framed by a [`crate::transport::StreamFramer`]
    /// from stream connection `conn` (TCP or TLS). Server transactions created by
    /// it answer on the same connection.
    pub fn handle_stream_message(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        transport: Transport,
        source: SocketAddr,
        bytes: &[u8],
    ) {
        self.handle_input(now, Target::stream(source, transport, Some(conn)), bytes);
    }

    fn handle_input(&mut self, now: Instant, source: Target, bytes: &[u8]) {
        let msg = match parse_message_with(bytes, &self.config.limits) {
            Ok(m) => m,
            Err(crate::ParseError::Empty) => return, // CRLF keep-alive
            Err(e) => {
                self.stats.parse_errors += 1;
                if let Some(resp) = error_response(bytes, &e) {
                    self.stats.error_responses_sent += 1;
                    self.send_stateless_to(source, resp.into());
                }
                return;
            }
        };
        match msg {
            SipMessage::Request(req) => self.handle_request(now, source, req),
            SipMessage::Response(resp) => self.handle_response(now, resp),
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Response) {
        let (Some(branch), Some(cseq)) = (resp.branch(), resp.cseq()) else {
            self.stats.stray_responses += 1;
            return;
        };
        let key = client_key_of(&branch, &cseq.method);
        let cfg = self.config;
        let Some(txn) = self.txns.get_mut(&key) else {
            self.stats.stray_responses += 1;
            return;
        };
        let code = resp.status_code.code();
        let reliable = txn.transport.is_reliable();
        let mut deliver = false;
        match (txn.kind, txn.state, code) {
            (Kind::InviteClient, State::Calling | State::Proceeding, 100..=199) => {
                txn.state = State::Proceeding;
                txn.retrans_at = None;
                txn.timeout_at = None;
                deliver = true;
            }
            (Kind::InviteClient, State::Calling | State::Proceeding, 200..=299) => {
                txn.state = State::Accepted;
                txn.retrans_at = None;
                txn.timeout_at = Some(now + 64 * cfg.t1); // Timer M
                deliver = true;
            }
            (Kind::InviteClient, State::Accepted, 200..=299) => deliver = true,
            (Kind::InviteClient, State::Calling | State::Proceeding, _) if code >= 300 => {
                match make_ack_non2xx(&txn.request, &resp) {
                    Ok(ack) => {
                        let b = serialize(&ack.into());
                        self.transmits.push_back(Transmit {
                            dest: txn.peer,
                            transport: txn.transport,
                            conn: txn.conn,
                            bytes: b.clone(),
                        });
                        txn.ack = Some(b);
                    }
                    Err(_) => txn.ack = None,
                }
                txn.state = State::Completed;
                txn.retrans_at = None;
                txn.timeout_at = None;
                // Timer D: > 32 s for UDP, zero for reliable transports.
                txn.end_at = Some(if reliable {
                    now
                } else {
                    now + std::cmp::max(Duration::from_secs(32), 64 * cfg.t1)
                });
                deliver = true;
            }
            (Kind::InviteClient, State::Completed, _) if code >= 300 => {
                if let Some(a) = &txn.ack {
                    self.transmits.push_back(Transmit {
                        dest: txn.peer,
                        transport: txn.transport,
                        conn: txn.conn,
                        bytes: a.clone(),
                    });
                    self.stats.retransmissions_sent += 1;
                }
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding, 100..=199) => {
                txn.state = State::Proceeding;
                deliver = true;
            }
            (Kind::NonInviteClient, State::Trying | State::Proceeding, _) if code >= 200 => {
                txn.state = State::Completed;
                txn.retrans_at = None;
                txn.timeout_at = None;
                // Timer K: T4 for UDP, zero for reliable transports.
                txn.end_at = Some(if reliable { now } else { now + cfg.t4 });
                deliver = true;
            }
            _ => {}
        }
        self.schedule(&key);
        if deliver {
            self.events.push_back(Event::Response {
                key,
                response: resp,
            });
        }
    }

    fn handle_request(&mut self, now: Instant, from: Target, mut req: Request) {
        let source = from.addr;
        stamp_via(&mut req, source);
        let Some(key) = server_key(&req) else {
            return;
        };
        if req.method == Method::Ack {
            self.handle_ack(now, source, key, req);
            return;
        }
        if let Some(txn) = self.txns.get_mut(&key) {
            // Retransmission: absorb, and repeat the last response if any.
            self.stats.retransmissions_absorbed += 1;
            let repeat = match (txn.kind, txn.state) {
                (_, State::Proceeding | State::Completed) => true,
                (Kind::InviteServer, State::Accepted) => false, // RFC 6026: absorb
                _ => false,
            };
            if repeat {
                if let Some(w) = &txn.wire {
                    self.transmits.push_back(Transmit {
                        dest: source,
                        bytes: w.clone(),
                        transport: from.transport,
                        conn: from.conn,
                    });
                    self.stats.retransmissions_sent += 1;
                }
            }
            return;
        }
        let merge_key = if req.to_tag().is_none() {
            match (req.from_tag(), req.call_id(), req.cseq()) {
                (Some(f), Some(c), Some(s)) => Some((f, c.to_string(), s.seq, s.method)),
                _ => None,
            }
        } else {
            None
        };
        let merged = merge_key
            .as_ref()
            .and_then(|m| self.merge.get(m))
            .is_some_and(|k| k != &key && self.txns.contains_key(k));
        let is_invite = req.method == Method::Invite;
        let is_cancel = req.method == Method::Cancel;
        self.txns.insert(
            key.clone(),
            Txn {
                kind: if is_invite {
                    Kind::InviteServer
                } else {
                    Kind::NonInviteServer
                },
                state: if is_invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                peer: source,
                transport: from.transport,
                conn: from.conn,
                request: req.clone(),
                wire: None,
                ack: None,
                interval: self.config.t1,
                retrans_at: None,
                timeout_at: None,
                end_at: None,
                trying_at: is_invite.then(|| now + self.config.trying_delay),
                acked: false,
                merge_key: if merged { None } else { merge_key.clone() },
                scheduled: None,
            },
        );
        self.schedule(&key);
        if merged {
            self.stats.merged_requests += 1;
            let resp = make_response(&req, 482, None);
            let _ = self.send_response(now, &key, resp);
            return;
        }
        if let Some(m) = merge_key {
            self.merge.insert(m, key.clone());
        }
        if is_cancel {
            let invite_key = TransactionKey {
                method: "INVITE".into(),
                ..key.clone()
            };
            let pending = self
                .txns
                .get(&invite_key)
                .filter(|t| t.kind == Kind::InviteServer)
                .map(|t| t.state == State::Proceeding);
            let code = if pending.is_some() { 200 } else { 481 };
            let resp = make_response(&req, code, None);
            let _ = self.send_response(now, &key, resp);
            if pending == Some(true) {
                self.events.push_back(Event::Cancelled {
                    invite_key,
                    cancel: req,
                });
            }
            return;
        }
        self.events.push_back(Event::IncomingRequest {
            key,
            request: req,
            source,
        });
    }

    fn handle_ack(&mut self, now: Instant, source: SocketAddr, key: TransactionKey, req: Request) {
        if let Some(txn) = self.txns.get_mut(&key) {
            match txn.state {
                State::Completed => {
                    txn.state = State::Confirmed;
                    txn.retrans_at = None;
                    txn.timeout_at = None;
                    // Timer I: T4 for UDP, zero for reliable transports.
                    txn.end_at = Some(if txn.transport.is_reliable() {
                        now
                    } else {
                        now + self.config.t4
                    });
                    self.schedule(&key);
                    return;
                }
                State::Confirmed => {
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
                _ => {}
            }
        }
        // ACK for a 2xx: stop our 2xx retransmissions, hand it to the TU.
        let answered = ack_key(&req).and_then(|a| self.awaiting_ack.remove(&a));
        if let Some(txn) = answered.and_then(|k| self.txns.get_mut(&k)) {
            if txn.kind == Kind::InviteServer && txn.state == State::Accepted {
                txn.acked = true;
                txn.retrans_at = None;
            }
        }
        self.prune_timers();
        self.events.push_back(Event::Ack {
            request: req,
            source,
        });
    }

    /// Process expired timers: only the transactions whose deadline has come, found in
    /// the timer heap (O(k log n) for k due entries, whatever the number of transactions).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            if let Some(txn) = self.txns.get_mut(&key) {
                if txn.scheduled == Some(at) {
                    txn.scheduled = None;
                }
                due.push(key);
            }
        }
        due.sort();
        due.dedup();
        for key in due {
            self.fire_timers(now, &key);
        }
    }

    fn fire_timers(&mut self, now: Instant, key: &TransactionKey) {
        let cfg = self.config;
        let Some(txn) = self.txns.get_mut(key) else {
            return;
        };
        if txn.trying_at.is_some_and(|t| t <= now) {
            txn.trying_at = None;
            if txn.state == State::Proceeding && txn.wire.is_none() {
                let b = serialize(&make_response(&txn.request, 100, None).into());
                self.transmits.push_back(Transmit {
                    dest: txn.peer,
                    transport: txn.transport,
                    conn: txn.conn,
                    bytes: b.clone(),
                });
                txn.wire = Some(b);
            }
        }
        while let Some(at) = txn.retrans_at.filter(|t| *t <= now) {
            if let Some(w) = &txn.wire {
                self.transmits.push_back(Transmit {
                    dest: txn.peer,
                    transport: txn.transport,
                    conn: txn.conn,
                    bytes: w.clone(),
                });
                self.stats.retransmissions_sent += 1;
            }
            txn.interval = match (txn.kind, txn.state) {
                (Kind::InviteClient, _) => txn.interval * 2,
                (Kind::NonInviteClient, State::Proceeding) => cfg.t2,
                _ => std::cmp::min(txn.interval * 2, cfg.t2),
            };
            txn.retrans_at = Some(at + txn.interval);
        }
        if txn.timeout_at.is_some_and(|t| t <= now) {
            txn.timeout_at = None;
            txn.retrans_at = None;
            let report = match (txn.kind, txn.state) {
                (Kind::InviteServer, State::Accepted) => !txn.acked,
                (Kind::InviteClient, State::Accepted) => false,
                _ => true,
            };
            if report {
                self.events
                    .push_back(Event::TransactionTimeout { key: key.clone() });
            }
            txn.state = State::Terminated;
        }
        if txn.end_at.is_some_and(|t| t <= now) {
            txn.state = State::Terminated;
        }
        if txn.state == State::Terminated {
            self.remove_txn(key);
        } else {
            self.schedule(key);
        }
    }
}

#[cfg(test)]
mod tests;
