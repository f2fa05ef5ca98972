//! The loopback bridge that lets webrtc-ice 0.17 allocate on a TURN server over TCP or TLS.
//!
//! webrtc-ice's gatherer only runs its TURN client over UDP (`turn:` over TCP and `turns:`
//! are TODO there), and its agent has no API to add a relay candidate made elsewhere. So
//! for each configured TCP/TLS server, Peerline opens the one TCP (or TLS) connection to
//! that server itself, and gives the agent `turn:127.0.0.1:<bridge port>?transport=udp`
//! with the same credentials. The bridge copies whole messages both ways, unchanged
//! (STUN integrity and fingerprint do not depend on the transport); the only change is
//! the ChannelData padding a stream needs ([`super::turn_stream_framer`]).
//!
//! What the bridge never does (design.md, "no relaying for others"):
//! - its UDP socket is bound on 127.0.0.1 only;
//! - it latches to the first loopback source that sends a TURN Allocate request (the
//!   agent's TURN client socket) and drops, counting them, datagrams from anyone else;
//!   a STUN Binding request from another local socket (webrtc-ice also asks every TURN
//!   URL for a server-reflexive address) gets a local 400 answer, since a TCP server
//!   cannot tell a UDP mapping;
//! - it talks only to the one configured server, over the one connection;
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

use super::turn_stream_framer::{datagram_to_stream, TurnStreamFramer, READ_CHUNK};
use super::{TurnServer, TurnTransport};

/// What one bridge did, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnBridgeStats {
    /// Messages sent to the server over the stream.
    pub to_server: u64,
    /// Messages received from the server over the stream.
    pub from_server: u64,
    /// Datagrams dropped: from a source other than the latched TURN client, or not TURN.
    pub dropped: u64,
    /// STUN Binding requests from other local sockets answered with a local 400.
    pub bindings_refused: u64,
    /// Connections ended because the server's bytes were not TURN framing.
    pub framing_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    to_server: AtomicU64,
    from_server: AtomicU64,
    dropped: AtomicU64,
    bindings_refused: AtomicU64,
    framing_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A running bridge to one TCP/TLS TURN server. Dropping it ends it.
#[derive(Debug)]
pub(crate) struct TurnBridge {
    local: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl TurnBridge {
    /// Connects to `server` (TCP, then TLS for `turns:` verified with `tls`, else the
    /// system roots), bounded by `timeout`, and starts bridging. The error says why,
    /// never with a credential.
    pub(crate) async fn start(
        server: &TurnServer,
        tls: Option<&Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let connecting = async {
            let addr = resolve(server).await?;
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect over TCP to {addr}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let udp = UdpSocket::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot bind the loopback bridge socket: {e}"))?;
            let local = udp
                .local_addr()
                .map_err(|e| format!("loopback bridge socket: {e}"))?;
            let counters = Arc::new(Counters::default());
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
            Ok::<_, String>(Self {
                local,
                counters,
                task,
            })
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

    /// The loopback address the agent's TURN client is given.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What it did so far.
    pub(crate) fn stats(&self) -> TurnBridgeStats {
        let c = &self.counters;
        TurnBridgeStats {
            to_server: c.to_server.load(Ordering::Relaxed),
            from_server: c.from_server.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            bindings_refused: c.bindings_refused.load(Ordering::Relaxed),
            framing_errors: c.framing_errors.load(Ordering::Relaxed),
        }
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
    let reason: &[u8] = b"TURN over TCP/TLS: no UDP mapping here";
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

async fn run<S>(stream: S, udp: UdpSocket, counters: Arc<Counters>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let client: OnceLock<SocketAddr> = OnceLock::new();
    let uplink = async {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, src) = match udp.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    // Not expected on an unconnected loopback socket; never spin on it.
                    tracing::debug!(error = %e, "TURN bridge: loopback receive");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let d = &buf[..n];
            if client.get() != Some(&src) {
                let typ = stun_type(d);
                if !src.ip().is_loopback() {
                    bump(&counters.dropped);
                    continue;
                }
                if typ == Some(BINDING_REQUEST) {
                    if let Some(r) = binding_refusal(d) {
                        let _ = udp.send_to(&r, src).await;
                    }
                    bump(&counters.bindings_refused);
                    continue;
                }
                if !(typ == Some(ALLOCATE_REQUEST) && client.set(src).is_ok()) {
                    bump(&counters.dropped);
                    continue;
                }
            }
            match datagram_to_stream(d) {
                Ok((_, bytes)) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        tracing::debug!(error = %e, "TURN bridge: stream write");
                        return;
                    }
                    bump(&counters.to_server);
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
                    Ok(Some((_, msg))) => {
                        bump(&counters.from_server);
                        match client.get() {
                            Some(to) => {
                                let _ = udp.send_to(&msg, *to).await;
                            }
                            None => bump(&counters.dropped),
                        }
                    }
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
                from_server: 2,
                dropped: 2,
                bindings_refused: 1,
                framing_errors: 1,
            }
        );
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
