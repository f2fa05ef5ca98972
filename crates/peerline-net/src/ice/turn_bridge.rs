//! The loopback bridge between webrtc-ice 0.17's TURN client and every configured TURN
//! server, over UDP, TCP or TLS.
//!
//! webrtc-ice owns its sockets, so nothing its TURN client sends or receives would reach
//! the traffic ledger; and its gatherer only runs that client over UDP (`turn:` over TCP
//! and `turns:` are TODO there), with no API to add a relay candidate made elsewhere. So
//! for each configured server Peerline runs a bridge and gives the agent
//! `turn:127.0.0.1:<bridge port>?transport=udp` with the same credentials:
//! - **UDP** (`turn:host:port`, also with REST credentials): a second UDP socket talks to
//!   the server's one resolved address; datagrams are copied both ways unchanged;
//! - **TCP/TLS**: Peerline opens the one TCP (or rustls TLS) connection to the server
//!   itself and copies whole messages both ways, unchanged (STUN integrity and
//!   fingerprint do not depend on the transport); the only change is the ChannelData
//!   padding a stream needs ([`super::turn_stream_framer`]).
//!
//! Either way the bridge counts messages and bytes to and from the server
//! ([`TurnTraffic`]), which is how TURN traffic (allocations, permissions, channel binds,
//! relayed media) gets into the call's and the process's ledger.
//!
//! What the bridge never does (design.md, "no relaying for others"):
//! - its loopback socket is bound on 127.0.0.1 only;
//! - it latches to the first loopback source that sends a TURN Allocate request (the
//!   agent's TURN client socket) and drops, counting them, datagrams from anyone else;
//!   a STUN Binding request from another local socket (webrtc-ice also asks every TURN
//!   URL for a server-reflexive address) gets a local 400 answer, since the mapping the
//!   server would see is the bridge's, not the asking socket's (for a UDP server the agent
//!   asks the server itself, as a STUN server, see `urls` in the module above);
//! - it talks only to the one configured server: over the one connection, or (UDP) only
//!   to the server's resolved address, dropping and counting datagrams from any other
//!   address on its server-side socket;
//! - it has no queue: a slow stream back-pressures the loopback socket, whose kernel
//!   buffer drops datagrams; one whole message is buffered from the stream at most;
//! - it ends with the ICE session (dropping it aborts its task), when the server closes
//!   the connection, or on bad framing from the server (counted).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::turn_stream_framer::{check_datagram, datagram_to_stream, TurnStreamFramer, READ_CHUNK};
use super::{TurnServer, TurnTransport};
use crate::ledger::{Counter, Direction, Ledger, TrafficClass};

/// What one bridge did, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnBridgeStats {
    /// Messages sent to the server (datagrams over UDP, messages over the stream).
    pub to_server: u64,
    /// Bytes of those messages (over a stream: with ChannelData padding, without TLS).
    pub bytes_to_server: u64,
    /// Messages received from the server.
    pub from_server: u64,
    /// Bytes of those messages (ChannelData padding on a stream not included).
    pub bytes_from_server: u64,
    /// Datagrams dropped: from a source other than the latched TURN client or (UDP) the
    /// server, or not TURN.
    pub dropped: u64,
    /// STUN Binding requests from other local sockets answered with a local 400.
    pub bindings_refused: u64,
    /// Connections ended because the server's bytes were not TURN framing.
    pub framing_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    to_server: AtomicU64,
    bytes_to_server: AtomicU64,
    from_server: AtomicU64,
    bytes_from_server: AtomicU64,
    dropped: AtomicU64,
    bindings_refused: AtomicU64,
    framing_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn sent(&self, bytes: usize) {
        bump(&self.to_server);
        self.bytes_to_server
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn received(&self, bytes: usize) {
        bump(&self.from_server);
        self.bytes_from_server
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> TurnBridgeStats {
        TurnBridgeStats {
            to_server: self.to_server.load(Ordering::Relaxed),
            bytes_to_server: self.bytes_to_server.load(Ordering::Relaxed),
            from_server: self.from_server.load(Ordering::Relaxed),
            bytes_from_server: self.bytes_from_server.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            bindings_refused: self.bindings_refused.load(Ordering::Relaxed),
            framing_errors: self.framing_errors.load(Ordering::Relaxed),
        }
    }
}

/// What a session's TURN bridges carried, by server address: a cheap handle (shared
/// counters) that stays readable after the session and its bridges are gone, so the
/// phone can put TURN traffic into the call's and the process's ledger.
#[derive(Debug, Clone, Default)]
pub struct TurnTraffic {
    servers: Vec<(SocketAddr, Arc<Counters>)>,
}

impl TurnTraffic {
    /// No bridge at all (no TURN server configured, or none reachable).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Adds the bridges of `other` (another component's, a restart's) that are not
    /// already here.
    pub fn extend(&mut self, other: &TurnTraffic) {
        for (addr, c) in &other.servers {
            if !self.servers.iter().any(|(_, have)| Arc::ptr_eq(have, c)) {
                self.servers.push((*addr, Arc::clone(c)));
            }
        }
    }

    /// (server address, counters so far) for each bridge.
    pub fn stats(&self) -> Vec<(SocketAddr, TurnBridgeStats)> {
        self.servers
            .iter()
            .map(|(a, c)| (*a, c.snapshot()))
            .collect()
    }

    /// Adds what the bridges carried so far to `ledger`, as rows
    /// `(server address, TrafficClass::Turn, Sent / Received)`. Call it once per ledger
    /// (it adds totals, not increments).
    pub fn record_into(&self, ledger: &mut Ledger) {
        for (server, st) in self.stats() {
            for (direction, packets, bytes) in [
                (Direction::Sent, st.to_server, st.bytes_to_server),
                (Direction::Received, st.from_server, st.bytes_from_server),
            ] {
                if packets > 0 {
                    let counter = Counter { packets, bytes };
                    ledger.add(server, TrafficClass::Turn, direction, counter);
                }
            }
        }
    }
}

/// A running bridge to one TURN server. Dropping it ends it.
#[derive(Debug)]
pub(crate) struct TurnBridge {
    local: SocketAddr,
    server: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl TurnBridge {
    /// For UDP: binds the two sockets and starts bridging to `server`'s resolved
    /// address. For TCP/TLS: connects to `server` (TCP, then TLS for `turns:` verified
    /// with `tls`, else the system roots) and starts bridging. Bounded by `timeout`. The
    /// error says why, never with a credential.
    pub(crate) async fn start(
        server: &TurnServer,
        tls: Option<&Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let connecting = async {
            let addr = resolve(server).await?;
            let udp = UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot bind the loopback bridge socket: {e}"))?;
            let local = udp
                .local_addr()
                .map_err(|e| format!("loopback bridge socket: {e}"))?;
            let counters = Arc::new(Counters::default());
            let bridge = |task| Self {
                local,
                server: addr,
                counters: Arc::clone(&counters),
                task,
            };
            if server.transport == TurnTransport::Udp {
                // Any local address, as webrtc-ice's own TURN client socket was bound.
                let any: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let out = UdpSocket::bind(any)
                    .await
                    .map_err(|e| format!("cannot bind a socket toward {addr}: {e}"))?;
                let task = tokio::spawn(run_udp(udp, out, addr, Arc::clone(&counters)));
                return Ok(bridge(task));
            }
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect over TCP to {addr}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let task = match server.transport {
                TurnTransport::Tls => {
                    let config = match tls {
                        Some(c) => Arc::clone(c),
                        None => system_tls()?,
                    };
                    let name = rustls::pki_types::ServerName::try_from(
                        server
                            .host
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_owned(),
                    )
                    .map_err(|_| format!("{} is not a valid TLS server name", server.host))?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
                    tokio::spawn(run(stream, udp, Arc::clone(&counters)))
                }
                _ => tokio::spawn(run(tcp, udp, Arc::clone(&counters))),
            };
            Ok::<_, String>(bridge(task))
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no connection to {} within {} ms",
                    server.host_port(),
                    timeout.as_millis()
                ))
            })
    }

    /// The server's socket address the bridge talks to.
    pub(crate) fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// A handle on this bridge's counters for the ledger.
    pub(crate) fn traffic(&self) -> TurnTraffic {
        TurnTraffic {
            servers: vec![(self.server, Arc::clone(&self.counters))],
        }
    }

    /// The loopback address the agent's TURN client is given.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What it did so far.
    pub(crate) fn stats(&self) -> TurnBridgeStats {
        self.counters.snapshot()
    }

    /// Whether it is still bridging (the server has not closed the connection).
    pub(crate) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for TurnBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn resolve(server: &TurnServer) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(server.host_port())
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", server.host))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{} has no address", server.host))
}

/// The system's roots, when the UA gave no TLS configuration.
fn system_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err("the system has no trusted root certificates for turns:".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(rustls::DEFAULT_VERSIONS)
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// STUN message type of a datagram (its first two bytes), if it looks like STUN.
fn stun_type(d: &[u8]) -> Option<u16> {
    match d {
        [a, b, ..] if d.len() >= 20 && a >> 6 == 0 => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

const BINDING_REQUEST: u16 = 0x0001;
const ALLOCATE_REQUEST: u16 = 0x0003;

/// A Binding error response (400) to `request`, answered by the bridge itself.
pub(crate) fn binding_refusal(request: &[u8]) -> Option<Vec<u8>> {
    let header = request.get(..20)?;
    let reason: &[u8] = b"TURN bridge: no mapping here, ask the server";
    let padded = reason.len().next_multiple_of(4);
    let attr_len = 4 + reason.len();
    let mut m = Vec::with_capacity(20 + 4 + 4 + padded);
    m.extend_from_slice(&[0x01, 0x11]);
    m.extend_from_slice(&u16::try_from(4 + 4 + padded).ok()?.to_be_bytes());
    m.extend_from_slice(&header[4..20]);
    m.extend_from_slice(&[0x00, 0x09]);
    m.extend_from_slice(&u16::try_from(attr_len).ok()?.to_be_bytes());
    m.extend_from_slice(&[0, 0, 4, 0]);
    m.extend_from_slice(reason);
    m.resize(20 + 4 + 4 + padded, 0);
    Some(m)
}

/// What the bridge does with a datagram on its loopback socket.
#[derive(Debug, PartialEq, Eq)]
enum FromAgent {
    /// From the latched TURN client, one whole TURN message: carry it to the server.
    Forward,
    /// A Binding request from another local socket: answer it with this 400 (if the
    /// request was long enough to answer).
    Refuse(Option<Vec<u8>>),
    /// Anything else: dropped.
    Drop,
}

/// The loopback side of a bridge, sans-IO: which source it latched to, and the verdict on
/// each datagram (shared by the UDP and the stream bridge, and by their two directions).
#[derive(Debug, Default)]
struct Latch {
    client: OnceLock<SocketAddr>,
}

impl Latch {
    /// The verdict on datagram `d` from `src`; latches on the first loopback Allocate.
    fn verdict(&self, src: SocketAddr, d: &[u8]) -> FromAgent {
        if self.client.get() != Some(&src) {
            if !src.ip().is_loopback() {
                return FromAgent::Drop;
            }
            let typ = stun_type(d);
            if typ == Some(BINDING_REQUEST) {
                return FromAgent::Refuse(binding_refusal(d));
            }
            if !(typ == Some(ALLOCATE_REQUEST) && self.client.set(src).is_ok()) {
                return FromAgent::Drop;
            }
        }
        if check_datagram(d).is_err() {
            return FromAgent::Drop;
        }
        FromAgent::Forward
    }

    /// The latched TURN client, where the server's messages go.
    fn client(&self) -> Option<SocketAddr> {
        self.client.get().copied()
    }
}

/// Receives on the loopback socket until a datagram is to be forwarded (answering local
/// Binding requests and counting drops on the way) and returns its length in `buf`.
async fn next_from_agent(
    udp: &UdpSocket,
    buf: &mut [u8],
    latch: &Latch,
    counters: &Counters,
) -> usize {
    loop {
        let (n, src) = match udp.recv_from(buf).await {
            Ok(r) => r,
            Err(e) => {
                // Not expected on an unconnected loopback socket; never spin on it.
                tracing::debug!(error = %e, "TURN bridge: loopback receive");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        match latch.verdict(src, &buf[..n]) {
            FromAgent::Forward => return n,
            FromAgent::Refuse(answer) => {
                if let Some(r) = answer {
                    let _ = udp.send_to(&r, src).await;
                }
                bump(&counters.bindings_refused);
            }
            FromAgent::Drop => bump(&counters.dropped),
        }
    }
}

/// Hands one message from the server to the latched TURN client (counted), or drops it
/// when no client has latched yet.
async fn to_agent(udp: &UdpSocket, latch: &Latch, counters: &Counters, msg: &[u8]) {
    counters.received(msg.len());
    match latch.client() {
        Some(to) => {
            let _ = udp.send_to(msg, to).await;
        }
        None => bump(&counters.dropped),
    }
}

async fn run<S>(stream: S, udp: UdpSocket, counters: Arc<Counters>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let latch = Latch::default();
    let uplink = async {
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = next_from_agent(&udp, &mut buf, &latch, &counters).await;
            match datagram_to_stream(&buf[..n]) {
                Ok((_, bytes)) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        tracing::debug!(error = %e, "TURN bridge: stream write");
                        return;
                    }
                    counters.sent(bytes.len());
                }
                Err(_) => bump(&counters.dropped),
            }
        }
    };
    let downlink = async {
        let mut framer = TurnStreamFramer::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => {
                    tracing::debug!("TURN bridge: the server closed the connection");
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "TURN bridge: stream read");
                    return;
                }
            };
            framer.push(&buf[..n]);
            loop {
                match framer.pop() {
                    Ok(Some((_, msg))) => to_agent(&udp, &latch, &counters, &msg).await,
                    Ok(None) => break,
                    Err(e) => {
                        bump(&counters.framing_errors);
                        tracing::warn!(error = %e, "TURN bridge: bad framing from the server; closing");
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = uplink => {}
        () = downlink => {}
    }
}

/// The UDP bridge: `udp` on 127.0.0.1 toward the agent, `out` toward `server` only.
/// Datagrams are copied unchanged; it ends only when dropped (with the session).
async fn run_udp(udp: UdpSocket, out: UdpSocket, server: SocketAddr, counters: Arc<Counters>) {
    let latch = Latch::default();
    let uplink = async {
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = next_from_agent(&udp, &mut buf, &latch, &counters).await;
            match out.send_to(&buf[..n], server).await {
                Ok(_) => counters.sent(n),
                Err(e) => {
                    // A full send buffer or no route: lost, as it would have been.
                    tracing::debug!(error = %e, "TURN bridge: send to the server");
                    bump(&counters.dropped);
                }
            }
        }
    };
    let downlink = async {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, src) = match out.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "TURN bridge: receive from the server");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            if src != server {
                // Never a relay: only the configured server's datagrams reach the agent.
                bump(&counters.dropped);
                continue;
            }
            to_agent(&udp, &latch, &counters, &buf[..n]).await;
        }
    };
    tokio::select! {
        () = uplink => {}
        () = downlink => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn stun(typ: u16, tid: u8) -> Vec<u8> {
        let mut m = typ.to_be_bytes().to_vec();
        m.extend_from_slice(&[0, 4, 0x21, 0x12, 0xA4, 0x42]);
        m.extend([tid; 12]);
        m.extend_from_slice(&[0x80, 0x22, 0, 0]); // SOFTWARE, empty
        m
    }

    async fn recv(sock: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// The bridge against a scripted TCP "server": latching, local Binding refusals,
    /// foreign sources dropped, padding both ways, and bad framing ending it (counted).
    #[tokio::test]
    async fn latches_pads_drops_strangers_and_stops_on_bad_framing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("turn:{}?transport=tcp", listener.local_addr().unwrap());
        let server = TurnServer::parse(&url, "u", "p").unwrap();
        let (bridge, accepted) = tokio::join!(
            TurnBridge::start(&server, None, Duration::from_secs(2)),
            listener.accept()
        );
        let bridge = bridge.unwrap();
        let (mut tcp, _) = accepted.unwrap();
        assert!(bridge.local_addr().ip().is_loopback());
        let srflx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = bridge.local_addr();

        // The agent's srflx socket asks for a mapping: a local 400, nothing to the server.
        srflx.send_to(&stun(0x0001, 1), to).await.unwrap();
        let r = recv(&srflx).await;
        assert_eq!((&r[..2], &r[8..20]), (&[0x01, 0x11][..], &[1u8; 12][..]));
        // Not an Allocate: no latching, dropped.
        client.send_to(&[0x40, 0, 0, 1, 9], to).await.unwrap();
        // The TURN client's Allocate latches it and goes to the server unchanged.
        let alloc = stun(0x0003, 2);
        client.send_to(&alloc, to).await.unwrap();
        let mut got = vec![0u8; alloc.len()];
        tcp.read_exact(&mut got).await.unwrap();
        assert_eq!(got, alloc);
        // Another local socket cannot use the bridge any more, not even with an Allocate.
        srflx.send_to(&stun(0x0003, 3), to).await.unwrap();
        // ChannelData from the client is padded for the stream.
        client
            .send_to(&[0x40, 0, 0, 5, 1, 2, 3, 4, 5], to)
            .await
            .unwrap();
        let mut got = [0u8; 12];
        tcp.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0x40, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]);

        // The server's answer and a padded ChannelData, coalesced in one write.
        let answer = stun(0x0103, 2);
        let mut w = answer.clone();
        w.extend_from_slice(&[0x40, 0, 0, 2, 7, 8, 0, 0]);
        tcp.write_all(&w).await.unwrap();
        assert_eq!(recv(&client).await, answer);
        assert_eq!(recv(&client).await, vec![0x40, 0, 0, 2, 7, 8]);

        // Garbage from the server ends the bridge.
        tcp.write_all(&[0xC0, 0, 0, 0]).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut rest)).await;
        for _ in 0..100 {
            if !bridge.is_running() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!bridge.is_running());
        assert_eq!(
            bridge.stats(),
            TurnBridgeStats {
                to_server: 2,
                bytes_to_server: 24 + 12,
                from_server: 2,
                bytes_from_server: 24 + 6,
                dropped: 2,
                bindings_refused: 1,
                framing_errors: 1,
            }
        );
    }

    async fn recv_from(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 2048];
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf.truncate(n);
        (buf, from)
    }

    /// The UDP bridge against a scripted UDP "server": latching to the first Allocate, a
    /// second local source refused, datagrams from any address but the server dropped,
    /// datagrams copied unchanged, and the counters and ledger rows that result.
    #[tokio::test]
    async fn udp_bridge_latches_talks_only_to_the_server_and_counts() {
        let server_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server_sock.local_addr().unwrap();
        let server = TurnServer::udp(server_addr, "u", "p");
        let bridge = TurnBridge::start(&server, None, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(bridge.local_addr().ip().is_loopback());
        assert_eq!(bridge.server_addr(), server_addr);
        let to = bridge.local_addr();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();

        // Another local socket asks for a mapping: a local 400, nothing to the server.
        other.send_to(&stun(0x0001, 1), to).await.unwrap();
        let r = recv(&other).await;
        assert_eq!((&r[..2], &r[8..20]), (&[0x01, 0x11][..], &[1u8; 12][..]));
        // Not an Allocate: no latching, dropped.
        client.send_to(&[0x40, 0, 0, 1, 9], to).await.unwrap();
        // The TURN client's Allocate latches it and reaches the server unchanged.
        let alloc = stun(0x0003, 2);
        client.send_to(&alloc, to).await.unwrap();
        let (got, bridge_out) = recv_from(&server_sock).await;
        assert_eq!(got, alloc);
        assert_ne!(bridge_out, to, "the server sees the server-side socket");
        // A second local source cannot use the bridge, not even with an Allocate.
        other.send_to(&stun(0x0003, 3), to).await.unwrap();
        // ChannelData goes unchanged (no padding over UDP); it is the next thing the
        // server gets, so the second source's Allocate was not forwarded.
        let cd = [0x40, 0, 0, 5, 1, 2, 3, 4, 5];
        client.send_to(&cd, to).await.unwrap();
        assert_eq!(recv_from(&server_sock).await.0, cd);

        // A stranger writes to the server-side socket: dropped, never reaches the client,
        // whose next datagram is the server's answer.
        stranger
            .send_to(&stun(0x0103, 9), bridge_out)
            .await
            .unwrap();
        let answer = stun(0x0103, 2);
        server_sock.send_to(&answer, bridge_out).await.unwrap();
        assert_eq!(recv(&client).await, answer);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), other.recv_from(&mut [0u8; 64]))
                .await
                .is_err(),
            "the second local source got nothing but its 400"
        );

        assert!(bridge.is_running());
        assert_eq!(
            bridge.stats(),
            TurnBridgeStats {
                to_server: 2,
                bytes_to_server: 24 + 9,
                from_server: 1,
                bytes_from_server: 24,
                dropped: 3,
                bindings_refused: 1,
                framing_errors: 0,
            }
        );
        // The ledger rows: the server's real address, class Turn, both directions; a
        // handle added twice counts once.
        let mut traffic = bridge.traffic();
        traffic.extend(&bridge.traffic());
        let mut ledger = Ledger::new();
        traffic.record_into(&mut ledger);
        let rows: Vec<_> = ledger
            .entries()
            .map(|e| (e.remote, e.class, e.direction, e.counter))
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    server_addr,
                    TrafficClass::Turn,
                    Direction::Sent,
                    Counter {
                        packets: 2,
                        bytes: 33
                    }
                ),
                (
                    server_addr,
                    TrafficClass::Turn,
                    Direction::Received,
                    Counter {
                        packets: 1,
                        bytes: 24
                    }
                ),
            ]
        );
        // Dropping the bridge ends it; the handle still reads the totals.
        drop(bridge);
        assert_eq!(traffic.stats()[0].1.to_server, 2);
    }

    #[test]
    fn latch_verdicts() {
        let latch = Latch::default();
        let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let remote = SocketAddr::from(([192, 0, 2, 1], 1000));
        assert_eq!(latch.verdict(remote, &stun(0x0003, 1)), FromAgent::Drop);
        assert!(matches!(
            latch.verdict(lo(1), &stun(0x0001, 1)),
            FromAgent::Refuse(Some(_))
        ));
        assert_eq!(latch.verdict(lo(1), &[0x40, 0, 0, 0]), FromAgent::Drop);
        assert_eq!(latch.client(), None);
        assert_eq!(latch.verdict(lo(2), &stun(0x0003, 1)), FromAgent::Forward);
        assert_eq!(latch.client(), Some(lo(2)));
        assert_eq!(latch.verdict(lo(3), &stun(0x0003, 1)), FromAgent::Drop);
        // The latched client's non-TURN bytes are not forwarded either.
        assert_eq!(latch.verdict(lo(2), &[0x80; 24]), FromAgent::Drop);
        assert_eq!(latch.verdict(lo(2), &[0x40, 0, 0, 9, 1]), FromAgent::Drop);
    }

    #[test]
    fn binding_requests_get_a_well_formed_400() {
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        req.extend(1..=12u8);
        let r = binding_refusal(&req).unwrap();
        assert_eq!(&r[..2], &[0x01, 0x11]);
        assert_eq!(&r[4..20], &req[4..20]);
        let len = usize::from(u16::from_be_bytes([r[2], r[3]]));
        assert_eq!(r.len(), 20 + len);
        assert_eq!(len % 4, 0);
        assert_eq!(&r[20..22], &[0x00, 0x09]);
        assert_eq!(&r[24..28], &[0, 0, 4, 0]);
        assert!(binding_refusal(&req[..19]).is_none());
        assert_eq!(stun_type(&req), Some(BINDING_REQUEST));
        assert_eq!(stun_type(&[0x40, 0x00, 0, 0]), None);
    }
}
