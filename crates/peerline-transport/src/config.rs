//! Configuration of [`crate::SipTransports`].

use crate::tls::CertPin;
use peerline_sip::Limits;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Sockets, limits and TLS settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// UDP is bound here, and TCP on the same IP and port (port 0: the OS picks a
    /// port free for both).
    pub bind: SocketAddr,
    /// Listen for TCP on `bind` (default `true`). Outgoing TCP works either way.
    pub tcp_listen: bool,
    /// Listen for TLS (a server certificate is needed for that).
    pub tls_server: Option<TlsServerConfig>,
    /// How outgoing TLS connections verify the server.
    pub tls_client: TlsClientConfig,
    /// Time for an outgoing TCP connect and, for TLS, its handshake (default 5 s;
    /// below Timer B/F's 32 s so a failed connection fails the transaction early).
    pub connect_timeout: Duration,
    /// A connection with no bytes in either direction for this long is closed
    /// (default 10 min; keep-alive pings count as traffic).
    pub idle_timeout: Duration,
    /// Half-open guard (default 10 s): an accepted connection that has not completed
    /// its TLS handshake and its first message (or ping) within this time is closed, and
    /// so is any connection whose partly received message stays incomplete this long.
    pub message_timeout: Duration,
    /// A write that cannot complete within this time closes the connection (default 10 s).
    pub write_timeout: Duration,
    /// Most stream connections (incoming + outgoing) open at once (default 256).
    /// Beyond it accepted connections are closed at once and `send` to a new address fails.
    pub max_connections: usize,
    /// Message size limits for the stream framers.
    pub limits: Limits,
    /// Messages queued per connection before `send` reports [`crate::SendError::QueueFull`]
    /// (default 128).
    pub send_queue: usize,
    /// Capacity of the event channel to the driver (default 1024). When full, readers
    /// wait: backpressure on TCP, kernel drops on UDP.
    pub event_queue: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5060)),
            tcp_listen: true,
            tls_server: None,
            tls_client: TlsClientConfig::default(),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(600),
            message_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 256,
            limits: Limits::default(),
            send_queue: 128,
            event_queue: 1024,
        }
    }
}

/// A TLS listener.
#[derive(Debug, Clone)]
pub struct TlsServerConfig {
    /// Port on the IP of [`TransportConfig::bind`] (5061 by convention; 0: any).
    pub port: u16,
    /// PEM file with the server certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Mutual TLS: when set, clients must present a certificate issued by a CA in this
    /// PEM file.
    pub client_ca_file: Option<PathBuf>,
}

/// Outgoing TLS: how the server is verified and what we present.
#[derive(Debug, Clone, Default)]
pub struct TlsClientConfig {
    /// Trust anchors: `None` = the system's root store (`SSL_CERT_FILE`/`SSL_CERT_DIR`
    /// are honoured); `Some(path)` = only the CAs in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// Optional SHA-256 pins of the server's (leaf) certificate. When non-empty, the
    /// certificate must verify against the trust anchors **and** match one pin.
    pub pins: Vec<CertPin>,
    /// A client certificate for servers that ask for one.
    pub client_cert: Option<ClientCert>,
}

/// A certificate chain and key, PEM files.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key.
    pub key_file: PathBuf,
}
