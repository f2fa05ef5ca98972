//! The tokio side: sockets, connection tasks, the connection table and counters.
//!
//! One task reads the UDP socket, one accepts TCP, one accepts TLS, and one task runs
//! each stream connection (connect/handshake, then read → framer → events, queued
//! writes, pong, timers). They all end when [`SipTransports`] is dropped.

use crate::config::TransportConfig;
use crate::error::{CloseReason, ConnectError, SendError, TransportError};
use crate::tls::{self, CertPin, ClientTls};
use peerline_sip::transport::{Frame, StreamFramer};
use peerline_sip::{ConnectionId, Transmit, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A message (or a UDP datagram) received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Transport it came on.
    pub transport: Transport,
    /// The peer's address (for streams: the connection's remote address).
    pub source: SocketAddr,
    /// The stream connection (`None` for UDP).
    pub conn: Option<ConnectionId>,
    /// The datagram, or one complete message framed by Content-Length.
    pub bytes: Vec<u8>,
}

/// What [`SipTransports::recv`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// Feed to `Endpoint::handle_datagram` (UDP) or `handle_stream_message` (TCP/TLS).
    Incoming(Incoming),
    /// A stream connection ended (or could not be established): call
    /// `Endpoint::connection_closed(conn)`.
    Closed {
        /// The connection.
        conn: ConnectionId,
        /// TCP or TLS.
        transport: Transport,
        /// Its remote address.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// The peer answered our [`SipTransports::ping`] (RFC 5626 §4.4.1).
    Pong {
        /// The connection.
        conn: ConnectionId,
    },
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Accepted by our listener.
    Incoming,
    /// Opened by us.
    Outgoing,
}

/// What is known about an open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Its id.
    pub id: ConnectionId,
    /// TCP or TLS.
    pub transport: Transport,
    /// Remote address.
    pub remote: SocketAddr,
    /// Our address (once connected).
    pub local: Option<SocketAddr>,
    /// Who opened it.
    pub direction: Direction,
    /// Connected (and, for TLS, handshake done).
    pub established: bool,
    /// TLS: the name we verified (outgoing) or the SNI the client sent (incoming).
    pub server_name: Option<String>,
    /// TLS: SHA-256 of the peer's certificate, if it presented one.
    pub peer_cert: Option<CertPin>,
}

/// Counters since [`SipTransports::bind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// UDP datagrams sent / received.
    pub udp_sent: u64,
    /// UDP datagrams received.
    pub udp_received: u64,
    /// Messages written to stream connections.
    pub stream_messages_sent: u64,
    /// Messages framed from stream connections.
    pub stream_messages_received: u64,
    /// Bytes sent, all transports (keep-alives included).
    pub bytes_sent: u64,
    /// Bytes received, all transports.
    pub bytes_received: u64,
    /// Connections accepted by our TCP/TLS listeners.
    pub connections_accepted: u64,
    /// Outgoing connections established (connect + TLS handshake).
    pub connections_connected: u64,
    /// Established or accepted connections that have closed since.
    pub connections_closed: u64,
    /// Accepts closed at once and opens refused because of `max_connections`.
    pub connections_refused: u64,
    /// Outgoing connections that failed (refused, timeout, TLS).
    pub connect_failures: u64,
    /// Incoming TLS handshakes that failed.
    pub tls_handshake_failures: u64,
    /// Connections closed because their stream could not be framed.
    pub framing_errors: u64,
    /// Connections closed by the idle timeout.
    pub idle_closed: u64,
    /// Connections closed by the message timeout (half-open).
    pub half_open_closed: u64,
    /// Double-CRLF pings answered with a pong.
    pub pings_answered: u64,
    /// `send` calls that failed at once.
    pub send_errors: u64,
}

macro_rules! counters {
    ($($f:ident),* $(,)?) => {
        #[derive(Default)]
        struct Counters { $($f: AtomicU64,)* }
        impl Counters {
            fn snapshot(&self) -> TransportStats {
                TransportStats { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    udp_sent,
    udp_received,
    stream_messages_sent,
    stream_messages_received,
    bytes_sent,
    bytes_received,
    connections_accepted,
    connections_connected,
    connections_closed,
    connections_refused,
    connect_failures,
    tls_handshake_failures,
    framing_errors,
    idle_closed,
    half_open_closed,
    pings_answered,
    send_errors,
);

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Resolves when an outgoing connection is established or has failed.
type Waiter = oneshot::Receiver<Result<(), ConnectError>>;

enum Command {
    Send(Vec<u8>),
    Ping,
    Close,
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

struct Entry {
    info: ConnectionInfo,
    tx: mpsc::Sender<Command>,
    waiters: Vec<oneshot::Sender<Result<(), ConnectError>>>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<ConnectionId, Entry>,
    by_remote: HashMap<(SocketAddr, Transport), ConnectionId>,
    names: HashMap<SocketAddr, String>,
}

impl Table {
    fn insert(&mut self, info: ConnectionInfo, tx: mpsc::Sender<Command>) {
        self.by_remote
            .insert((info.remote, info.transport), info.id);
        self.conns.insert(
            info.id,
            Entry {
                info,
                tx,
                waiters: Vec::new(),
            },
        );
    }

    fn next(&mut self) -> ConnectionId {
        self.next_id += 1;
        ConnectionId(self.next_id)
    }

    fn remove(&mut self, id: ConnectionId) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        let key = (e.info.remote, e.info.transport);
        if self.by_remote.get(&key) == Some(&id) {
            self.by_remote.remove(&key);
        }
        Some(e)
    }
}

struct Shared {
    config: TransportConfig,
    udp: UdpSocket,
    table: Mutex<Table>,
    counters: Counters,
    events: mpsc::Sender<TransportEvent>,
    client_tls: OnceLock<Result<ClientTls, String>>,
    /// Anchors of the TLS listener's client verification, for error messages.
    server_anchors: String,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent in a way
        // worse than losing one update: keep going.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn client_tls(&self) -> Result<ClientTls, String> {
        self.client_tls
            .get_or_init(|| tls::client_config(&self.config.tls_client))
            .clone()
    }

    /// Removes the connection; with a reason, counts it and tells the driver.
    async fn finish(&self, id: ConnectionId, reason: Option<CloseReason>) {
        let entry = self.table().remove(id);
        let (Some(entry), Some(reason)) = (entry, reason) else {
            return;
        };
        match &reason {
            CloseReason::ConnectFailed(_) => bump(&self.counters.connect_failures, 1),
            _ => bump(&self.counters.connections_closed, 1),
        }
        tracing::debug!(conn = id.0, remote = %entry.info.remote, %reason, "SIP connection closed");
        let _ = self
            .events
            .send(TransportEvent::Closed {
                conn: id,
                transport: entry.info.transport,
                remote: entry.info.remote,
                reason,
            })
            .await;
    }

    /// An outgoing connection failed before it was established.
    async fn fail(&self, id: ConnectionId, error: ConnectError) {
        let waiters = self
            .table()
            .conns
            .get_mut(&id)
            .map(|e| std::mem::take(&mut e.waiters))
            .unwrap_or_default();
        for w in waiters {
            let _ = w.send(Err(error.clone()));
        }
        self.finish(id, Some(CloseReason::ConnectFailed(error)))
            .await;
    }

    fn established(&self, id: ConnectionId, local: Option<SocketAddr>, tls: Option<TlsFacts>) {
        let mut table = self.table();
        let Some(e) = table.conns.get_mut(&id) else {
            return;
        };
        e.info.established = true;
        e.info.local = local;
        if let Some(t) = tls {
            if t.server_name.is_some() {
                e.info.server_name = t.server_name;
            }
            e.info.peer_cert = t.peer_cert;
        }
        for w in e.waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }
}

struct TlsFacts {
    server_name: Option<String>,
    peer_cert: Option<CertPin>,
}

/// UDP, TCP (same port) and optionally TLS listeners, with outgoing stream connections.
/// Owned by the driver: `recv().await` in its `select!`, `send(&transmit).await` for
/// every `Endpoint::poll_transmit()`.
pub struct SipTransports {
    shared: Arc<Shared>,
    events: mpsc::Receiver<TransportEvent>,
    /// Dropping it stops every task.
    _shutdown: watch::Sender<()>,
    shutdown_rx: watch::Receiver<()>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for SipTransports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipTransports")
            .field("udp", &self.udp_addr)
            .field("tcp", &self.tcp_addr)
            .field("tls", &self.tls_addr)
            .finish()
    }
}

impl SipTransports {
    /// Binds UDP on `config.bind`, TCP on the same port (when `tcp_listen`), and TLS on
    /// `tls_server.port` (when configured). With port 0 a port free for both UDP and
    /// TCP is chosen.
    pub async fn bind(config: TransportConfig) -> Result<Self, TransportError> {
        let attempts = if config.bind.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let udp =
                UdpSocket::bind(config.bind)
                    .await
                    .map_err(|source| TransportError::Bind {
                        transport: Transport::Udp,
                        addr: config.bind,
                        source,
                    })?;
            match Self::with_udp(udp, config.clone()).await {
                Err(TransportError::Bind {
                    transport: Transport::Tcp,
                    source,
                    addr,
                }) if source.kind() == std::io::ErrorKind::AddrInUse => {
                    last = Some(TransportError::Bind {
                        transport: Transport::Tcp,
                        source,
                        addr,
                    });
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| TransportError::TlsConfig("unreachable".into())))
    }

    /// Like [`SipTransports::bind`] around a UDP socket the caller bound already
    /// (`config.bind` is ignored; TCP listens on the socket's address).
    pub async fn with_udp(udp: UdpSocket, config: TransportConfig) -> Result<Self, TransportError> {
        let udp_addr = udp.local_addr().map_err(|source| TransportError::Bind {
            transport: Transport::Udp,
            addr: config.bind,
            source,
        })?;
        let tcp = if config.tcp_listen {
            Some(
                TcpListener::bind(udp_addr)
                    .await
                    .map_err(|source| TransportError::Bind {
                        transport: Transport::Tcp,
                        addr: udp_addr,
                        source,
                    })?,
            )
        } else {
            None
        };
        let tls = match &config.tls_server {
            Some(s) => {
                let server = tls::server_config(s).map_err(TransportError::TlsConfig)?;
                let addr = SocketAddr::new(udp_addr.ip(), s.port);
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| TransportError::Bind {
                            transport: Transport::Tls,
                            addr,
                            source,
                        })?;
                Some((listener, TlsAcceptor::from(server)))
            }
            None => None,
        };
        let server_anchors = config
            .tls_server
            .as_ref()
            .and_then(|s| s.client_ca_file.as_ref())
            .map(|p| format!("CA file {}", p.display()))
            .unwrap_or_default();
        let eager_client =
            config.tls_client.ca_file.is_some() || config.tls_client.client_cert.is_some();
        let (ev_tx, ev_rx) = mpsc::channel(config.event_queue.max(1));
        let shared = Arc::new(Shared {
            config,
            udp,
            table: Mutex::new(Table::default()),
            counters: Counters::default(),
            events: ev_tx,
            client_tls: OnceLock::new(),
            server_anchors,
        });
        if eager_client {
            // Configured files are checked now: a wrong path is a startup error.
            shared.client_tls().map_err(TransportError::TlsConfig)?;
        }
        let (shutdown, shutdown_rx) = watch::channel(());
        let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
        tokio::spawn(udp_reader(shared.clone(), shutdown_rx.clone()));
        if let Some(l) = tcp {
            tokio::spawn(accept_loop(shared.clone(), l, None, shutdown_rx.clone()));
        }
        if let Some((l, acceptor)) = tls {
            tokio::spawn(accept_loop(
                shared.clone(),
                l,
                Some(acceptor),
                shutdown_rx.clone(),
            ));
        }
        Ok(SipTransports {
            shared,
            events: ev_rx,
            _shutdown: shutdown,
            shutdown_rx,
            udp_addr,
            tcp_addr,
            tls_addr,
        })
    }

    /// The address a transport listens on (`None`: not listening). Use it for the Via
    /// sent-by and Contact port of requests on that transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => Some(self.udp_addr),
            Transport::Tcp => self.tcp_addr,
            Transport::Tls => self.tls_addr,
        }
    }

    /// The next received message or connection event. Cancel-safe: use it as a
    /// `tokio::select!` branch. (`None` cannot happen while `self` lives.)
    pub async fn recv(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    /// Sends an endpoint transmit. UDP: one datagram (awaits the socket). TCP/TLS:
    /// queued on `transmit.conn` if it is open, else on an open connection to
    /// `transmit.dest` with that transport, else on a new connection (returns at once;
    /// if connecting fails later, [`TransportEvent::Closed`] with
    /// [`CloseReason::ConnectFailed`] follows). Returns the connection used.
    pub async fn send(&self, transmit: &Transmit) -> Result<Option<ConnectionId>, SendError> {
        let r = self.send_inner(transmit).await;
        if r.is_err() {
            bump(&self.shared.counters.send_errors, 1);
        }
        r
    }

    async fn send_inner(&self, t: &Transmit) -> Result<Option<ConnectionId>, SendError> {
        if t.transport == Transport::Udp {
            self.shared
                .udp
                .send_to(&t.bytes, t.dest)
                .await
                .map_err(|source| SendError::Udp {
                    dest: t.dest,
                    source,
                })?;
            bump(&self.shared.counters.udp_sent, 1);
            bump(&self.shared.counters.bytes_sent, t.bytes.len() as u64);
            return Ok(None);
        }
        let open = t.conn.filter(|c| self.shared.table().conns.contains_key(c));
        let id = match open {
            Some(c) => c,
            None => self.open(t.dest, t.transport, None)?,
        };
        self.queue(id, Command::Send(t.bytes.clone()))?;
        Ok(Some(id))
    }

    /// Waits until every message queued so far on every open connection is written (a
    /// phone shutting down lets its last responses, such as the 200 to a BYE, leave),
    /// at most `max`.
    pub async fn flush(&self, max: Duration) {
        let ids: Vec<ConnectionId> = self.shared.table().conns.keys().copied().collect();
        let mut written = Vec::new();
        for id in ids {
            let (tx, rx) = oneshot::channel();
            if self.queue(id, Command::Flush(tx)).is_ok() {
                written.push(rx);
            }
        }
        let _ = timeout(max, async {
            for rx in written {
                let _ = rx.await;
            }
        })
        .await;
    }

    fn queue(&self, id: ConnectionId, cmd: Command) -> Result<(), SendError> {
        let tx = self
            .shared
            .table()
            .conns
            .get(&id)
            .map(|e| e.tx.clone())
            .ok_or(SendError::Closed(id))?;
        tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::QueueFull(id),
            mpsc::error::TrySendError::Closed(_) => SendError::Closed(id),
        })
    }

    /// The TLS name (certificate check and SNI) to use for connections to `addr`, e.g.
    /// the host of the `sips:` URI or outbound proxy that resolved to it. Without one,
    /// the IP address itself is verified (the certificate needs an IP SAN).
    pub fn set_server_name(&self, addr: SocketAddr, name: &str) {
        self.shared.table().names.insert(addr, name.to_string());
    }

    /// The open connection to `dest` with `transport`, or a new one being opened
    /// (returns at once; its id can go in `Target::stream(dest, transport, Some(id))` so
    /// a failure to connect fails the transaction through `connection_closed`).
    /// `server_name`: TLS name for a new connection (else [`Self::set_server_name`]'s,
    /// else the IP).
    pub fn open(
        &self,
        dest: SocketAddr,
        transport: Transport,
        server_name: Option<&str>,
    ) -> Result<ConnectionId, ConnectError> {
        self.open_inner(dest, transport, server_name, false)
            .map(|(id, _)| id)
    }

    /// Like [`Self::open`], but waits until the connection is established (TCP connect
    /// and TLS handshake) and returns why it failed otherwise.
    pub async fn connect(
        &self,
        dest: SocketAddr,
        transport: Transport,
        server_name: Option<&str>,
    ) -> Result<ConnectionId, ConnectError> {
        let (id, waiter) = self.open_inner(dest, transport, server_name, true)?;
        match waiter {
            None => Ok(id),
            Some(rx) => match rx.await {
                Ok(Ok(())) => Ok(id),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ConnectError::Shutdown),
            },
        }
    }

    fn open_inner(
        &self,
        dest: SocketAddr,
        transport: Transport,
        server_name: Option<&str>,
        wait: bool,
    ) -> Result<(ConnectionId, Option<Waiter>), ConnectError> {
        if transport == Transport::Udp {
            return Err(ConnectError::NotAStream);
        }
        let shared = &self.shared;
        let reuse = |table: &mut Table| -> Option<(ConnectionId, Option<Waiter>)> {
            let id = *table.by_remote.get(&(dest, transport))?;
            let e = table.conns.get_mut(&id)?;
            if !wait || e.info.established {
                return Some((id, None));
            }
            let (tx, rx) = oneshot::channel();
            e.waiters.push(tx);
            Some((id, Some(rx)))
        };
        if let Some(found) = reuse(&mut shared.table()) {
            return Ok(found);
        }
        // TLS settings (the first time: reads the system root store) outside the lock.
        let client_tls = match transport {
            Transport::Tls => Some(shared.client_tls().map_err(ConnectError::TlsConfig)?),
            _ => None,
        };
        let mut table = shared.table();
        if let Some(found) = reuse(&mut table) {
            return Ok(found);
        }
        let limit = shared.config.max_connections;
        if table.conns.len() >= limit {
            bump(&shared.counters.connections_refused, 1);
            return Err(ConnectError::TooManyConnections { limit });
        }
        let tls = match client_tls {
            Some(ctls) => {
                let name = server_name
                    .map(str::to_string)
                    .or_else(|| table.names.get(&dest).cloned())
                    .unwrap_or_else(|| dest.ip().to_string());
                let sn = tls::server_name(&name)?;
                Some(OutgoingTls {
                    name,
                    server_name: sn,
                    client: ctls,
                })
            }
            None => None,
        };
        let id = table.next();
        let (tx, rx) = mpsc::channel(shared.config.send_queue.max(1));
        table.insert(
            ConnectionInfo {
                id,
                transport,
                remote: dest,
                local: None,
                direction: Direction::Outgoing,
                established: false,
                server_name: tls.as_ref().map(|t| t.name.clone()),
                peer_cert: None,
            },
            tx,
        );
        let waiter = if wait {
            let (wtx, wrx) = oneshot::channel();
            if let Some(e) = table.conns.get_mut(&id) {
                e.waiters.push(wtx);
            }
            Some(wrx)
        } else {
            None
        };
        drop(table);
        tokio::spawn(outgoing(
            shared.clone(),
            id,
            dest,
            transport,
            tls,
            rx,
            self.shutdown_rx.clone(),
        ));
        Ok((id, waiter))
    }

    /// Sends an RFC 5626 §4.4.1 double-CRLF ping on a connection; the pong comes as
    /// [`TransportEvent::Pong`].
    pub fn ping(&self, conn: ConnectionId) -> Result<(), SendError> {
        self.queue(conn, Command::Ping)
    }

    /// Closes a connection (after the messages already queued on it);
    /// [`TransportEvent::Closed`] with [`CloseReason::Local`] follows.
    pub fn close(&self, conn: ConnectionId) {
        let _ = self.queue(conn, Command::Close);
    }

    /// Whether a connection is open (or being opened).
    pub fn is_open(&self, conn: ConnectionId) -> bool {
        self.shared.table().conns.contains_key(&conn)
    }

    /// What is known about an open connection.
    pub fn connection(&self, conn: ConnectionId) -> Option<ConnectionInfo> {
        self.shared.table().conns.get(&conn).map(|e| e.info.clone())
    }

    /// Every open connection.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let mut v: Vec<_> = self
            .shared
            .table()
            .conns
            .values()
            .map(|e| e.info.clone())
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }
}

struct OutgoingTls {
    name: String,
    server_name: rustls::pki_types::ServerName<'static>,
    client: ClientTls,
}

/// A plain or TLS stream, so one connection loop serves all three.
enum AnyStream {
    Tcp(TcpStream),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for AnyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            AnyStream::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            AnyStream::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AnyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            AnyStream::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            AnyStream::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            AnyStream::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            AnyStream::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            AnyStream::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            AnyStream::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn udp_reader(shared: Arc<Shared>, mut shutdown: watch::Receiver<()>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let r = tokio::select! {
            _ = shutdown.changed() => return,
            r = shared.udp.recv_from(&mut buf) => r,
        };
        match r {
            Ok((n, source)) => {
                bump(&shared.counters.udp_received, 1);
                bump(&shared.counters.bytes_received, n as u64);
                let ev = TransportEvent::Incoming(Incoming {
                    transport: Transport::Udp,
                    source,
                    conn: None,
                    bytes: buf[..n].to_vec(),
                });
                if shared.events.send(ev).await.is_err() {
                    return;
                }
            }
            // ICMP errors surface here on some systems; never spin on a persistent one.
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<()>,
) {
    let transport = if acceptor.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let r = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => r,
        };
        let (tcp, remote) = match r {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                tracing::warn!(%transport, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        let registered = {
            let mut table = shared.table();
            if table.conns.len() >= shared.config.max_connections {
                None
            } else {
                let id = table.next();
                let (tx, rx) = mpsc::channel(shared.config.send_queue.max(1));
                table.insert(
                    ConnectionInfo {
                        id,
                        transport,
                        remote,
                        local,
                        direction: Direction::Incoming,
                        established: acceptor.is_none(),
                        server_name: None,
                        peer_cert: None,
                    },
                    tx,
                );
                Some((id, rx))
            }
        };
        let Some((id, rx)) = registered else {
            bump(&shared.counters.connections_refused, 1);
            tracing::warn!(%remote, limit = shared.config.max_connections, "connection refused: limit reached");
            drop(tcp);
            continue;
        };
        bump(&shared.counters.connections_accepted, 1);
        tokio::spawn(incoming(
            shared.clone(),
            id,
            tcp,
            remote,
            acceptor.clone(),
            rx,
            shutdown.clone(),
        ));
    }
}

async fn incoming(
    shared: Arc<Shared>,
    id: ConnectionId,
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    rx: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<()>,
) {
    let opened = Instant::now();
    let (stream, transport) = match acceptor {
        None => (AnyStream::Tcp(tcp), Transport::Tcp),
        Some(acceptor) => {
            let deadline = opened + shared.config.message_timeout;
            let r = tokio::select! {
                _ = shutdown.changed() => {
                    shared.finish(id, None).await;
                    return;
                }
                r = timeout_at(deadline, acceptor.accept(tcp)) => r,
            };
            match r {
                Err(_) => {
                    bump(&shared.counters.half_open_closed, 1);
                    let reason = CloseReason::MessageTimeout(shared.config.message_timeout);
                    shared.finish(id, Some(reason)).await;
                    return;
                }
                Ok(Err(e)) => {
                    bump(&shared.counters.tls_handshake_failures, 1);
                    let error = tls::classify_io(&e, "", &shared.server_anchors);
                    shared.finish(id, Some(CloseReason::Tls(error))).await;
                    return;
                }
                Ok(Ok(s)) => {
                    let (_, conn) = s.get_ref();
                    let facts = TlsFacts {
                        server_name: conn.server_name().map(str::to_string),
                        peer_cert: conn
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| CertPin::of_der(c.as_ref())),
                    };
                    let local = s.get_ref().0.local_addr().ok();
                    shared.established(id, local, Some(facts));
                    (AnyStream::TlsServer(Box::new(s)), Transport::Tls)
                }
            }
        }
    };
    let reason = serve(
        &shared,
        id,
        transport,
        remote,
        stream,
        rx,
        shutdown,
        Some(opened),
    )
    .await;
    shared.finish(id, reason).await;
}

async fn outgoing(
    shared: Arc<Shared>,
    id: ConnectionId,
    dest: SocketAddr,
    transport: Transport,
    tls: Option<OutgoingTls>,
    rx: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<()>,
) {
    let limit = shared.config.connect_timeout;
    let establish = async {
        let tcp = TcpStream::connect(dest)
            .await
            .map_err(|e| ConnectError::Io {
                dest,
                error: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        match tls {
            None => Ok((AnyStream::Tcp(tcp), local, None)),
            Some(t) => {
                let connector = TlsConnector::from(t.client.config.clone());
                match connector.connect(t.server_name, tcp).await {
                    Ok(s) => {
                        let facts = TlsFacts {
                            server_name: Some(t.name),
                            peer_cert: s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| CertPin::of_der(c.as_ref())),
                        };
                        Ok((AnyStream::TlsClient(Box::new(s)), local, Some(facts)))
                    }
                    Err(e) => Err(ConnectError::Tls {
                        dest,
                        error: tls::classify_io(&e, &t.name, &t.client.anchors),
                    }),
                }
            }
        }
    };
    let r = tokio::select! {
        _ = shutdown.changed() => {
            shared.fail(id, ConnectError::Shutdown).await;
            return;
        }
        r = timeout(limit, establish) => r,
    };
    let (stream, local, facts) = match r {
        Err(_) => {
            shared
                .fail(id, ConnectError::Timeout { dest, after: limit })
                .await;
            return;
        }
        Ok(Err(e)) => {
            tracing::info!(conn = id.0, %dest, error = %e, "SIP connection failed");
            shared.fail(id, e).await;
            return;
        }
        Ok(Ok(x)) => x,
    };
    bump(&shared.counters.connections_connected, 1);
    shared.established(id, local, facts);
    let reason = serve(&shared, id, transport, dest, stream, rx, shutdown, None).await;
    shared.finish(id, reason).await;
}

fn io_reason(e: &std::io::Error) -> CloseReason {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(t) => CloseReason::Tls(tls::classify(t, "", "")),
        None => CloseReason::Io(e.to_string()),
    }
}

async fn write_all<W: AsyncWrite + Unpin>(
    wr: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), CloseReason> {
    let w = async {
        wr.write_all(bytes).await?;
        wr.flush().await
    };
    match timeout(limit, w).await {
        Err(_) => Err(CloseReason::WriteTimeout),
        Ok(Err(e)) => Err(io_reason(&e)),
        Ok(Ok(())) => Ok(()),
    }
}

/// Runs an established connection until it closes; `None` on shutdown.
/// `accepted_at`: for accepted connections, the first message must arrive within the
/// message timeout of this instant.
#[allow(clippy::too_many_arguments)]
async fn serve(
    shared: &Shared,
    id: ConnectionId,
    transport: Transport,
    remote: SocketAddr,
    stream: AnyStream,
    mut rx: mpsc::Receiver<Command>,
    mut shutdown: watch::Receiver<()>,
    accepted_at: Option<Instant>,
) -> Option<CloseReason> {
    let cfg = &shared.config;
    let c = &shared.counters;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(cfg.limits);
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_activity = Instant::now();
    // Half-open guard: the instant since which we wait for a complete message.
    let mut waiting_since: Option<Instant> = accepted_at;
    loop {
        let idle_at = last_activity + cfg.idle_timeout;
        let msg_at = waiting_since.map(|t| t + cfg.message_timeout);
        let (deadline, half_open) = match msg_at {
            Some(m) if m < idle_at => (m, true),
            _ => (idle_at, false),
        };
        tokio::select! {
            _ = shutdown.changed() => return None,
            cmd = rx.recv() => {
                let cmd = match cmd {
                    Some(Command::Flush(done)) => {
                        let _ = done.send(());
                        continue;
                    }
                    other => other,
                };
                let (bytes, is_message): (&[u8], bool) = match &cmd {
                    None | Some(Command::Close) => {
                        let _ = timeout(cfg.write_timeout, wr.shutdown()).await;
                        return Some(CloseReason::Local);
                    }
                    Some(Command::Send(b)) => (b, true),
                    Some(Command::Flush(_)) => continue,
                    Some(Command::Ping) => {
                        framer.ping_sent();
                        (StreamFramer::PING, false)
                    }
                };
                if let Err(r) = write_all(&mut wr, bytes, cfg.write_timeout).await {
                    return Some(r);
                }
                bump(&c.bytes_sent, bytes.len() as u64);
                if is_message {
                    bump(&c.stream_messages_sent, 1);
                }
                last_activity = Instant::now();
            }
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) => return Some(CloseReason::RemoteClosed),
                    Ok(n) => n,
                    Err(e) => return Some(io_reason(&e)),
                };
                let now = Instant::now();
                last_activity = now;
                bump(&c.bytes_received, n as u64);
                framer.push(&buf[..n]);
                let mut completed = false;
                while let Some(frame) = framer.poll() {
                    match frame {
                        Ok(Frame::Message(bytes)) => {
                            completed = true;
                            bump(&c.stream_messages_received, 1);
                            let ev = TransportEvent::Incoming(Incoming {
                                transport,
                                source: remote,
                                conn: Some(id),
                                bytes,
                            });
                            if shared.events.send(ev).await.is_err() {
                                return None;
                            }
                        }
                        Ok(Frame::Ping) => {
                            completed = true;
                            bump(&c.pings_answered, 1);
                            if let Err(r) = write_all(&mut wr, StreamFramer::PONG, cfg.write_timeout).await {
                                return Some(r);
                            }
                            bump(&c.bytes_sent, StreamFramer::PONG.len() as u64);
                        }
                        Ok(Frame::Pong) => {
                            completed = true;
                            let _ = shared.events.send(TransportEvent::Pong { conn: id }).await;
                        }
                        Err(e) => {
                            bump(&c.framing_errors, 1);
                            tracing::info!(conn = id.0, %remote, error = %e, "closing unframeable SIP stream");
                            return Some(CloseReason::Framing(e));
                        }
                    }
                }
                let partial = framer.buffered() > 0;
                waiting_since = match (completed, partial) {
                    (true, false) => None,
                    (true, true) => Some(now),
                    (false, true) => waiting_since.or(Some(now)),
                    (false, false) => waiting_since, // stray CRLFs only
                };
            }
            _ = sleep_until(deadline) => {
                return Some(if half_open {
                    bump(&c.half_open_closed, 1);
                    CloseReason::MessageTimeout(cfg.message_timeout)
                } else {
                    bump(&c.idle_closed, 1);
                    CloseReason::Idle(cfg.idle_timeout)
                });
            }
        }
    }
}
