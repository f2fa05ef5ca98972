//! ICE (RFC 8445) for one media stream, on `webrtc-ice` 0.17, with the relay policy built in.
//!
//! One [`IceSession`] per component of a call's media stream: component 1 (RTP, and RTCP
//! with rtcp-mux) always; component 2 (RTCP) too when the peer does not multiplex
//! ([`gather_components`]: a second agent with the same ufrag/pwd, on its own sockets).
//!
//! 1. [`IceSession::gather`] with an [`IceConfig`] binds host sockets inside the RTP port
//!    range, asks the configured STUN servers for srflx candidates and allocates relay
//!    candidates on the configured TURN servers, and nowhere else. With no TURN server
//!    configured, relay candidates are not even asked for (and one showing up anyway is an
//!    error, [`IceError::RelayPolicy`]).
//! 2. [`IceSession::local_params`] gives the `a=ice-ufrag`, `a=ice-pwd` and `a=candidate`
//!    lines for the SDP offer or answer ([`peerline_sdp::IceParams`]).
//! 3. [`IceSession::connect`] with the peer's [`peerline_sdp::RemoteIce`] runs the
//!    connectivity checks (bounded by [`IceConfig::connect_timeout`]) and returns a
//!    [`Connected`]: the media socket ([`Connected::conn`], send/recv RTP and RTCP) and a
//!    [`PathReport`] of the selected pair. Failure is [`IceError::NoPath`], whose message
//!    says "no direct path and no TURN server configured" when that is the case.
//! 4. [`IceSession::close`] when the call ends (dropping also closes, in the background).
//!
//! What the agent does with traffic that is not for this call (webrtc-ice 0.17, read from
//! its source and tested in `tests/never_relay.rs`): STUN requests other than Binding
//! (e.g. a TURN Allocate) are ignored; Binding requests whose USERNAME is not
//! `<our ufrag>:<their ufrag>` or whose MESSAGE-INTEGRITY fails are dropped without an
//! answer; non-STUN datagrams from addresses that are not a remote candidate are dropped.
//! Nothing is ever forwarded: the agent only sends to remote candidates and to the
//! configured servers.

mod candidate;
mod components;
mod config;
mod media_conn;
mod report;
mod turn_bridge;
mod turn_probe;
pub mod turn_stream_framer;
pub mod wire_counter;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use peerline_sdp::{IceParams, RemoteIce};
use tokio::sync::{mpsc, watch};
use webrtc_ice::agent::agent_config::AgentConfig;
use webrtc_ice::agent::Agent;
use webrtc_ice::candidate::{
    Candidate as IceCandidate, CandidatePairState, CandidateType as IceType,
};
use webrtc_ice::mdns::MulticastDnsMode;
use webrtc_ice::network_type::NetworkType;
use webrtc_ice::state::ConnectionState;
use webrtc_ice::udp_network::{EphemeralUDP, UDPNetwork};
use webrtc_ice::url::{ProtoType, SchemeType, Url};
use webrtc_util::Conn;

pub use candidate::{
    component_priority, from_sdp_candidate, from_sdp_candidate_for, to_sdp_candidate,
    to_sdp_candidate_for, CandidateKind, SkipReason, RTCP_COMPONENT, RTP_COMPONENT,
};
pub use components::{gather_components, with_rtcp_component};
pub use config::{
    rest_credentials, IceConfig, StunServer, TurnCredential, TurnServer, TurnTlsConfig,
    TurnTransport, DEFAULT_REST_LABEL, DEFAULT_REST_TTL, DEFAULT_STUN_PORT, DEFAULT_TURNS_PORT,
};
pub use report::PathReport;
pub use turn_bridge::{TurnBridgeStats, TurnTraffic};
pub use turn_probe::probe_allocate;

/// RFC 8445 §14.2 pacing (Ta = 50 ms): how often the agent sends a round of checks.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks per pair before it is failed: 100 × 50 ms = 5 s, so a peer that starts its
/// checks later (NAT hole punching needs both sides; baresip 1.0 paces its checks and
/// took 2.3-2.8 s to open its side of an EIM↔EIM path in the NAT lab) still meets ours.
const MAX_BINDING_REQUESTS: u16 = 100;
/// How long [`IceSession::close`] waits for the agent before leaving it to finish alone.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What went wrong. A failed connectivity check is [`IceError::NoPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceError {
    /// A configured STUN/TURN server cannot be used.
    #[error("server {server}: {reason}")]
    BadServer {
        /// The server as configured (never with its credential).
        server: String,
        /// Why.
        reason: String,
    },
    /// webrtc-ice refused an operation.
    #[error("ICE agent: {0}")]
    Agent(String),
    /// Gathering produced no candidate at all (no usable interface in `host_ips`?).
    #[error("no ICE candidate gathered (no usable local address)")]
    NoCandidates,
    /// A relay candidate appeared although no TURN server is configured. Never expected:
    /// the policy check behind the promise "relay only through configured TURN".
    #[error("relay policy violated: relay candidate {0} without a configured TURN server")]
    RelayPolicy(String),
    /// The peer offered no candidate we can use.
    #[error("the peer offered no usable ICE candidate ({skipped} skipped)")]
    NoRemoteCandidates {
        /// How many were skipped (other component, TCP, FQDN, unknown type).
        skipped: usize,
    },
    /// The remote ufrag/pwd are missing.
    #[error("the peer's SDP has no ice-ufrag/ice-pwd")]
    NoRemoteCredentials,
    /// `connect` was already called on this session.
    #[error("connect was already called on this ICE session")]
    AlreadyConnecting,
    /// Connectivity checks found no working pair.
    #[error("{}", no_path_message(turn_servers, local, remote, *after))]
    NoPath {
        /// The configured TURN servers (empty: none).
        turn_servers: Vec<String>,
        /// Types of our candidates.
        local: Vec<CandidateKind>,
        /// Types of the peer's candidates.
        remote: Vec<CandidateKind>,
        /// How long we checked.
        after: Duration,
    },
}

fn no_path_message(
    turn: &[String],
    local: &[CandidateKind],
    remote: &[CandidateKind],
    after: Duration,
) -> String {
    let kinds = |v: &[CandidateKind]| v.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",");
    let head = if turn.is_empty() {
        "no direct path and no TURN server configured".to_owned()
    } else {
        format!(
            "no path to the peer, not even through the configured TURN server(s) {}",
            turn.join(", ")
        )
    };
    format!(
        "{head} (checked local [{}] against remote [{}] for {:.1} s)",
        kinds(local),
        kinds(remote),
        after.as_secs_f64()
    )
}

/// A working path: the media socket and where it goes.
#[derive(Clone)]
pub struct Connected {
    /// Send and receive RTP/RTCP on this (`send`/`recv`; it refuses STUN messages, and
    /// only delivers datagrams from the selected remote candidate's address family of
    /// validated peers).
    pub conn: Arc<dyn Conn + Send + Sync>,
    /// The selected pair.
    pub path: PathReport,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One ICE agent for one call's media stream. See the module docs for the order of calls.
pub struct IceSession {
    agent: Arc<Agent>,
    /// The component this agent serves ([`RTP_COMPONENT`] or [`RTCP_COMPONENT`]).
    component: u16,
    config: IceConfig,
    local: IceParams,
    gather_complete: bool,
    /// (resolved IPs, url) of each configured TURN server, to name the one a relay is on.
    turn_ips: Vec<(Vec<IpAddr>, String)>,
    connecting: AtomicBool,
    path: Mutex<Option<PathReport>>,
    closed: AtomicBool,
    /// (configured server url, bridge) for each TURN server whose bridge started.
    bridges: Mutex<Vec<(String, turn_bridge::TurnBridge)>>,
    /// STUN Binding traffic counted on the agent's own sockets ([`wire_counter`]).
    wire: wire_counter::StunCounter,
    /// The bridges' counters, readable after `close` (for the traffic ledger).
    turn_traffic: TurnTraffic,
}

impl std::fmt::Debug for IceSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceSession")
            .field("component", &self.component)
            .field("config", &self.config)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The agent's server list. TURN credentials are resolved at `now`: shared-secret servers
/// get fresh REST credentials for every gathering. Every TURN server (index `i` in
/// `config.turn_servers`) is given as `turn:<bridge>?transport=udp`, its loopback bridge
/// from `bridges`, so its traffic is counted; one without a bridge (it did not connect or
/// resolve) is left out. A UDP TURN server is also given as a STUN server (unless it is
/// one already): webrtc-ice asks every TURN URL for a server-reflexive address, which the
/// bridge cannot give (the server would see the bridge's socket), so the agent asks the
/// server itself, from its own sockets, as it did before the bridge.
fn urls(config: &IceConfig, now: SystemTime, bridges: &[(usize, SocketAddr)]) -> Vec<Url> {
    let stun = |host: &str, port: u16| Url {
        scheme: SchemeType::Stun,
        host: host.to_owned(),
        port,
        username: String::new(),
        password: String::new(),
        proto: ProtoType::Udp,
    };
    let mut v: Vec<Url> = config
        .stun_servers
        .iter()
        .map(|s| stun(&s.host, s.port))
        .collect();
    for t in &config.turn_servers {
        if t.transport == TurnTransport::Udp
            && !v.iter().any(|u| u.host == t.host && u.port == t.port)
        {
            v.push(stun(&t.host, t.port));
        }
    }
    v.extend(config.turn_servers.iter().enumerate().filter_map(|(i, t)| {
        let (_, bridge) = bridges.iter().find(|(j, _)| *j == i)?;
        let (username, password) = t.credential.resolve(now);
        Some(Url {
            scheme: SchemeType::Turn,
            host: bridge.ip().to_string(),
            port: bridge.port(),
            username,
            password,
            proto: ProtoType::Udp,
        })
    }));
    v
}

/// Starts a loopback bridge for each TURN server (UDP, TCP or TLS), concurrently, bounded
/// by the gathering timeout. A server that does not resolve or connect gives no relay
/// candidate (logged), like a UDP server that does not answer.
async fn start_bridges(config: &IceConfig) -> Vec<(usize, String, turn_bridge::TurnBridge)> {
    let starting: Vec<_> = config
        .turn_servers
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.clone();
            let tls = config.turn_tls.clone();
            let timeout = config.gather_timeout;
            tokio::spawn(async move {
                (
                    i,
                    t.to_string(),
                    turn_bridge::TurnBridge::start(&t, tls.as_ref(), timeout).await,
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for s in starting {
        match s.await {
            Ok((i, url, Ok(b))) => {
                tracing::debug!(server = %url, address = %b.server_addr(), bridge = %b.local_addr(), "TURN bridge up");
                out.push((i, url, b));
            }
            Ok((_, url, Err(e))) => {
                tracing::warn!(server = %url, error = %e, "TURN server unreachable")
            }
            Err(e) => tracing::warn!(error = %e, "TURN bridge task"),
        }
    }
    out
}

/// The relay policy as candidate types: host always; srflx only with a configured
/// STUN or TURN server; relay only with a configured TURN server.
pub fn allowed_candidate_types(config: &IceConfig) -> Vec<CandidateKind> {
    let mut v = vec![CandidateKind::Host];
    if !config.stun_servers.is_empty() || !config.turn_servers.is_empty() {
        v.push(CandidateKind::Srflx);
    }
    if !config.turn_servers.is_empty() {
        v.push(CandidateKind::Relay);
    }
    v
}

impl IceSession {
    /// Creates the agent and gathers candidates (bounded by `config.gather_timeout`; what
    /// was gathered by then is used) for component 1, with fresh credentials. Needs a
    /// tokio runtime.
    pub async fn gather(config: IceConfig) -> Result<Self, IceError> {
        Self::gather_component(config, RTP_COMPONENT, None).await
    }

    /// [`IceSession::gather`] for `component`, with the given local `(ufrag, pwd)` (all
    /// components of a stream share them, RFC 8445 §5.3) or fresh ones. The candidates in
    /// [`IceSession::local_params`] carry `component` and priorities computed for it.
    pub async fn gather_component(
        config: IceConfig,
        component: u16,
        credentials: Option<(String, String)>,
    ) -> Result<Self, IceError> {
        config.validate()?;
        let deadline = tokio::time::Instant::now() + config.gather_timeout;
        let (local_ufrag, local_pwd) = credentials.unwrap_or_default();
        let candidate_types: Vec<IceType> = allowed_candidate_types(&config)
            .into_iter()
            .map(|k| match k {
                CandidateKind::Host => IceType::Host,
                CandidateKind::Srflx => IceType::ServerReflexive,
                CandidateKind::Prflx => IceType::PeerReflexive,
                CandidateKind::Relay => IceType::Relay,
            })
            .collect();
        // Before the agent binds anything: count STUN on every socket it binds.
        wire_counter::install();
        let udp = EphemeralUDP::new(config.port_range.low(), config.port_range.high())
            .map_err(|e| IceError::Agent(e.to_string()))?;
        let host_ips = config.host_ips.clone();
        let ip_filter: webrtc_ice::agent::agent_config::IpFilterFn =
            Box::new(move |ip: IpAddr| host_ips.is_empty() || host_ips.contains(&ip));
        let bridges = start_bridges(&config).await;
        let bridge_addrs: Vec<(usize, SocketAddr)> = bridges
            .iter()
            .map(|(i, _, b)| (*i, b.local_addr()))
            .collect();
        let bridges: Vec<(String, turn_bridge::TurnBridge)> =
            bridges.into_iter().map(|(_, url, b)| (url, b)).collect();
        let mut turn_traffic = TurnTraffic::default();
        for (_, b) in &bridges {
            turn_traffic.extend(&b.traffic());
        }
        let agent_config = AgentConfig {
            urls: urls(&config, SystemTime::now(), &bridge_addrs),
            udp_network: UDPNetwork::Ephemeral(udp),
            // No multicast DNS: it would send to 224.0.0.251 from every agent, traffic that
            // belongs to no call.
            multicast_dns_mode: MulticastDnsMode::Disabled,
            network_types: vec![NetworkType::Udp4],
            candidate_types,
            check_interval: CHECK_INTERVAL,
            max_binding_requests: Some(MAX_BINDING_REQUESTS),
            // A peer-reflexive remote is an address that just passed a check with the call's
            // credentials (often the peer's host candidate, when its check beat its SDP).
            // webrtc-ice would wait 1 s before nominating it; host pairs wait 0, srflx 0.5 s
            // and relay 2 s (its defaults), so direct paths still win over relayed ones.
            prflx_acceptance_min_wait: Some(Duration::ZERO),
            is_controlling: config.controlling,
            ip_filter: Arc::new(Some(ip_filter)),
            include_loopback: config.include_loopback,
            local_ufrag,
            local_pwd,
            ..AgentConfig::default()
        };
        let agent = Arc::new(
            Agent::new(agent_config)
                .await
                .map_err(|e| IceError::Agent(e.to_string()))?,
        );

        let (tx, mut rx) = mpsc::unbounded_channel::<Option<Arc<dyn IceCandidate + Send + Sync>>>();
        agent.on_candidate(Box::new(move |c| {
            let _ = tx.send(c);
            Box::pin(async {})
        }));
        if let Err(e) = agent.gather_candidates() {
            let _ = agent.close().await;
            return Err(IceError::Agent(e.to_string()));
        }

        let turn_ips = resolve_turn(&config).await;
        let mut gathered: Vec<Arc<dyn IceCandidate + Send + Sync>> = Vec::new();
        let mut gather_complete = false;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Some(c))) => gathered.push(c),
                Ok(Some(None)) | Ok(None) => {
                    gather_complete = true;
                    break;
                }
                Err(_) => break,
            }
        }

        let mut candidates = Vec::new();
        for c in &gathered {
            if c.candidate_type() == IceType::Relay && config.turn_servers.is_empty() {
                let s = c.marshal();
                let _ = agent.close().await;
                return Err(IceError::RelayPolicy(s));
            }
            if matches!(c.candidate_type(), IceType::Host | IceType::ServerReflexive)
                && !config.port_range.contains(local_port(c.as_ref()))
            {
                tracing::warn!(candidate = %c.marshal(), range = %config.port_range, "ICE socket outside the RTP port range");
            }
            if let Some(sc) = to_sdp_candidate_for(c.as_ref(), component) {
                candidates.push(sc);
            }
        }
        if candidates.is_empty() {
            let _ = agent.close().await;
            return Err(IceError::NoCandidates);
        }
        let wire = wire_counter::StunCounter::of(gathered.iter().filter_map(|c| c.get_conn()))
            .excluding(bridge_addrs.iter().map(|(_, a)| *a));
        let (ufrag, pwd) = agent.get_local_user_credentials().await;
        let local = IceParams {
            ufrag,
            pwd,
            options: Vec::new(),
            candidates,
            end_of_candidates: gather_complete,
            lite: false,
            rtcp: None,
        };
        tracing::debug!(
            component,
            candidates = local.candidates.len(),
            gather_complete,
            "ICE gathered"
        );
        Ok(Self {
            agent,
            component,
            config,
            local,
            gather_complete,
            turn_ips,
            connecting: AtomicBool::new(false),
            path: Mutex::new(None),
            closed: AtomicBool::new(false),
            bridges: Mutex::new(bridges),
            wire,
            turn_traffic,
        })
    }

    /// What this session's TURN bridges carried, by server address, as a handle that
    /// stays readable after [`IceSession::close`]: for the traffic ledger
    /// ([`TurnTraffic::record_into`]). Empty without TURN servers.
    pub fn turn_traffic(&self) -> TurnTraffic {
        self.turn_traffic.clone()
    }

    /// What each loopback bridge to a TURN server did: (server url, counters, still
    /// running).
    pub fn turn_bridge_stats(&self) -> Vec<(String, TurnBridgeStats, bool)> {
        self.bridges
            .lock()
            .map(|g| {
                g.iter()
                    .map(|(u, b)| (u.clone(), b.stats(), b.is_running()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Our ufrag, pwd and candidates for the SDP (offer or answer).
    pub fn local_params(&self) -> &IceParams {
        &self.local
    }

    /// The component this agent serves (1: RTP, 2: RTCP).
    pub fn component(&self) -> u16 {
        self.component
    }

    /// Whether gathering finished before the timeout (else some server did not answer).
    pub fn gather_complete(&self) -> bool {
        self.gather_complete
    }

    /// The config this session was gathered with.
    pub fn config(&self) -> &IceConfig {
        &self.config
    }

    /// Types of our gathered candidates (for tests and diagnostics).
    pub fn local_kinds(&self) -> Vec<CandidateKind> {
        self.local
            .candidates
            .iter()
            .filter_map(|c| CandidateKind::from_sdp(&c.typ))
            .collect()
    }

    /// Runs connectivity checks against the peer's ICE attributes until a pair is selected
    /// (controlling: we nominate; controlled: the peer does), bounded by
    /// `config.connect_timeout`. Call once per session.
    pub async fn connect(&self, remote: &RemoteIce) -> Result<Connected, IceError> {
        if self.connecting.swap(true, Ordering::SeqCst) {
            return Err(IceError::AlreadyConnecting);
        }
        if remote.ufrag.is_empty() || remote.pwd.is_empty() {
            return Err(IceError::NoRemoteCredentials);
        }
        let mut skipped = 0;
        let mut remote_kinds = Vec::new();
        let mut to_add = Vec::new();
        for c in &remote.candidates {
            match from_sdp_candidate_for(c, self.component) {
                Ok(ic) => {
                    if let Some(k) = CandidateKind::from_sdp(&c.typ) {
                        remote_kinds.push(k);
                    }
                    to_add.push(ic);
                }
                Err(reason) => {
                    tracing::debug!(candidate = %c, ?reason, "remote candidate skipped");
                    skipped += 1;
                }
            }
        }
        if to_add.is_empty() {
            return Err(IceError::NoRemoteCandidates { skipped });
        }

        let (state_tx, mut state_rx) = watch::channel(ConnectionState::New);
        self.agent.on_connection_state_change(Box::new(move |s| {
            let _ = state_tx.send(s);
            Box::pin(async {})
        }));
        for ic in &to_add {
            self.agent
                .add_remote_candidate(ic)
                .map_err(|e| IceError::Agent(e.to_string()))?;
        }

        // add_remote_candidate registers in a spawned task: wait (bounded) until the agent
        // knows them, so its first round of checks already pairs with all of them.
        let registered = async {
            while self.agent.get_remote_candidates_stats().await.len() < to_add.len() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(500), registered).await;

        let started = Instant::now();
        // Kept alive until the checks end: dropping the sender cancels dial/accept.
        let (_cancel_tx, cancel_rx) = mpsc::channel::<()>(1);
        let ufrag = remote.ufrag.clone();
        let pwd = remote.pwd.clone();
        let no_path = |after: Duration| IceError::NoPath {
            turn_servers: self
                .config
                .turn_servers
                .iter()
                .map(ToString::to_string)
                .collect(),
            local: self.local_kinds(),
            remote: remote_kinds.clone(),
            after,
        };
        let failed = async {
            loop {
                if *state_rx.borrow_and_update() == ConnectionState::Failed {
                    return;
                }
                if state_rx.changed().await.is_err() {
                    // The agent dropped its handler: only the timeout can end this.
                    std::future::pending::<()>().await;
                }
            }
        };
        // webrtc-ice only reports Failed after 30 s; every pair having failed its checks
        // (MAX_BINDING_REQUESTS unanswered) is the same verdict, reached in seconds.
        let all_pairs_failed = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let stats = self.agent.get_candidate_pairs_stats().await;
                if !stats.is_empty() && stats.iter().all(|p| p.state == CandidatePairState::Failed)
                {
                    return;
                }
            }
        };
        let checks = async {
            if self.config.controlling {
                self.agent
                    .dial(cancel_rx, ufrag, pwd)
                    .await
                    .map(|c| c as Arc<dyn Conn + Send + Sync>)
            } else {
                self.agent
                    .accept(cancel_rx, ufrag, pwd)
                    .await
                    .map(|c| c as Arc<dyn Conn + Send + Sync>)
            }
        };
        let conn = tokio::select! {
            r = checks => r.map_err(|e| IceError::Agent(e.to_string()))?,
            _ = failed => return Err(no_path(started.elapsed())),
            _ = all_pairs_failed => return Err(no_path(started.elapsed())),
            _ = tokio::time::sleep(self.config.connect_timeout) => return Err(no_path(started.elapsed())),
        };
        let connect_time = started.elapsed();
        let path = self
            .selected_path(connect_time)
            .ok_or_else(|| IceError::Agent("connected without a selected pair".into()))?;
        tracing::info!(component = self.component, %path, "ICE connected");
        if let Ok(mut g) = self.path.lock() {
            *g = Some(path.clone());
        }
        Ok(Connected { conn, path })
    }

    /// The current selected pair (it may change after `connect` returns, e.g. when the
    /// controlling side nominates a better pair).
    pub fn path_report(&self) -> Option<PathReport> {
        let connect_time = self
            .path
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|p| p.connect_time))?;
        self.selected_path(connect_time)
    }

    fn selected_path(&self, connect_time: Duration) -> Option<PathReport> {
        let pair = self.agent.get_selected_candidate_pair()?;
        let local_type = CandidateKind::from_ice(pair.local.candidate_type())?;
        let remote_type = CandidateKind::from_ice(pair.remote.candidate_type())?;
        let local_addr = pair.local.addr();
        let turn_server = if local_type.is_relay() {
            Some(self.turn_for(local_addr.ip()))
        } else {
            None
        };
        Some(PathReport {
            local_type,
            remote_type,
            local_addr,
            remote_addr: pair.remote.addr(),
            turn_server,
            rtt: None,
            connect_time,
        })
    }

    /// Which configured TURN server a relayed address belongs to: the one whose address it
    /// is, else the only one configured, else all of them listed.
    fn turn_for(&self, relayed: IpAddr) -> String {
        if let Some((_, url)) = self.turn_ips.iter().find(|(ips, _)| ips.contains(&relayed)) {
            return url.clone();
        }
        match self.turn_ips.as_slice() {
            [(_, only)] => only.clone(),
            all => format!(
                "one of {}",
                all.iter()
                    .map(|(_, u)| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The STUN Binding traffic on this agent's sockets so far, by remote address: requests
    /// to STUN servers, connectivity checks, consent keep-alives and their responses (class
    /// `Stun`). Still readable after [`IceSession::close`].
    pub fn stun_ledger(&self) -> crate::ledger::Ledger {
        self.wire.ledger()
    }

    /// The same counts as [`IceSession::stun_ledger`], as a handle that outlives the session.
    pub fn stun_counter(&self) -> wire_counter::StunCounter {
        self.wire.clone()
    }

    /// Bytes the media conn sent and received (payload only, not checks).
    pub fn media_bytes(&self) -> (usize, usize) {
        (self.agent.get_bytes_sent(), self.agent.get_bytes_received())
    }

    /// Closes the agent: stops checks and keepalives, releases sockets and TURN allocations.
    /// Waits at most [`CLOSE_WAIT`]: webrtc-ice's close can wait on a TURN transaction that
    /// holds its client's lock (seen in the NAT lab after the peer's relay went away);
    /// past that the close goes on in the background and the call is not held up.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let agent = Arc::clone(&self.agent);
        let closing = tokio::spawn(async move {
            if let Err(e) = agent.close().await {
                tracing::debug!(error = %e, "ICE agent close");
            }
        });
        if tokio::time::timeout(CLOSE_WAIT, closing).await.is_err() {
            tracing::warn!(
                "ICE agent still closing after {CLOSE_WAIT:?}; finishing in the background"
            );
        }
        // The bridges end with the session (closing the TCP/TLS connection also ends the
        // allocation on the server, RFC 8656 §3.1; over UDP the agent's close above
        // already sent its refresh with lifetime 0 through the bridge).
        if let Ok(mut g) = self.bridges.lock() {
            g.clear();
        }
    }
}

impl Drop for IceSession {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // The agent's tasks hold its sockets; close them on the runtime if there is one.
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let agent = Arc::clone(&self.agent);
            h.spawn(async move {
                let _ = agent.close().await;
            });
        }
    }
}

fn local_port(c: &(dyn IceCandidate + Send + Sync)) -> u16 {
    match c.candidate_type() {
        // A srflx candidate's socket is its related (base) address.
        IceType::ServerReflexive => c.related_address().map(|r| r.port).unwrap_or(0),
        _ => c.port(),
    }
}

async fn resolve_turn(config: &IceConfig) -> Vec<(Vec<IpAddr>, String)> {
    let mut out = Vec::new();
    for t in &config.turn_servers {
        let ips: Vec<IpAddr> = match t.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host(t.host_port()),
            )
            .await
            {
                Ok(Ok(it)) => it.map(|a: SocketAddr| a.ip()).collect(),
                _ => Vec::new(),
            },
        };
        out.push((ips, t.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_allows_relay_only_with_turn() {
        let mut c = IceConfig::default();
        assert_eq!(allowed_candidate_types(&c), vec![CandidateKind::Host]);
        c.stun_servers.push(StunServer::from(
            "192.0.2.1:3478".parse::<SocketAddr>().unwrap(),
        ));
        assert_eq!(
            allowed_candidate_types(&c),
            vec![CandidateKind::Host, CandidateKind::Srflx]
        );
        c.turn_servers
            .push(TurnServer::udp("192.0.2.2:3478".parse().unwrap(), "u", "p"));
        assert_eq!(
            allowed_candidate_types(&c),
            vec![
                CandidateKind::Host,
                CandidateKind::Srflx,
                CandidateKind::Relay
            ]
        );
        // The UDP TURN server is asked for srflx as a STUN server, and is given as a TURN
        // server only through its loopback bridge: left out without one.
        let u = urls(&c, SystemTime::now(), &[]);
        assert_eq!(u.len(), 2);
        assert_eq!(
            (u[1].scheme, u[1].host.as_str(), u[1].port),
            (SchemeType::Stun, "192.0.2.2", 3478)
        );
        let udp_bridge: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let u = urls(&c, SystemTime::now(), &[(0, udp_bridge)]);
        assert_eq!(u.len(), 3);
        assert_eq!(
            (u[2].scheme, u[2].host.as_str(), u[2].port),
            (SchemeType::Turn, "127.0.0.1", 40001)
        );
        // A TCP server is given to the agent as its loopback bridge over UDP (never as a
        // STUN server), and left out when it has no bridge (it did not connect).
        c.turn_servers
            .push(TurnServer::parse("turns:turn.example.org", "u", "p").unwrap());
        assert_eq!(urls(&c, SystemTime::now(), &[]).len(), 2);
        let bridge: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let u = urls(&c, SystemTime::now(), &[(1, bridge)]);
        assert_eq!(u.len(), 3);
        assert_eq!(
            (u[2].host.as_str(), u[2].port, u[2].proto),
            ("127.0.0.1", 40000, ProtoType::Udp)
        );
        assert_eq!(u[2].username, "u");
        // A UDP TURN server that is also a configured STUN server is asked once.
        c.stun_servers.push(StunServer::from(
            "192.0.2.2:3478".parse::<SocketAddr>().unwrap(),
        ));
        assert_eq!(urls(&c, SystemTime::now(), &[]).len(), 2);
    }

    #[test]
    fn no_path_message_names_the_reason() {
        let e = IceError::NoPath {
            turn_servers: vec![],
            local: vec![CandidateKind::Host, CandidateKind::Srflx],
            remote: vec![CandidateKind::Host],
            after: Duration::from_millis(2500),
        };
        assert_eq!(
            e.to_string(),
            "no direct path and no TURN server configured (checked local [host,srflx] against remote [host] for 2.5 s)"
        );
        let e = IceError::NoPath {
            turn_servers: vec!["turn:192.0.2.2:3478?transport=udp".into()],
            local: vec![],
            remote: vec![],
            after: Duration::from_secs(1),
        };
        assert!(e
            .to_string()
            .starts_with("no path to the peer, not even through the configured TURN server(s) turn:192.0.2.2:3478"));
    }
}
