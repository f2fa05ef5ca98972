//! Errors: binding, sending, connecting, TLS, and why a connection closed.

use peerline_sip::transport::FramingError;
use peerline_sip::{ConnectionId, Transport};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// [`crate::SipTransports::bind`] failed.
#[derive(Debug, Error)]
pub enum TransportError {
    /// A socket could not be bound.
    #[error("cannot bind {transport} on {addr}: {source}")]
    Bind {
        /// Which listener.
        transport: Transport,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS server or client configuration is unusable.
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    /// The chain does not lead to a trusted CA (unknown issuer, bad signature, …).
    #[error("certificate not trusted: {0}")]
    NotTrusted(String),
    /// The certificate is for another name.
    #[error("certificate does not match server name {name}: {detail}")]
    NameMismatch {
        /// The name we asked for (SNI / URI host).
        name: String,
        /// What the certificate holds.
        detail: String,
    },
    /// Expired, not yet valid, revoked, unreadable.
    #[error("certificate invalid: {0}")]
    Invalid(String),
    /// The certificate verified but matches none of the configured SHA-256 pins.
    #[error(
        "certificate pin mismatch: server certificate SHA-256 is {presented}, not a configured pin"
    )]
    PinMismatch {
        /// The presented certificate's SHA-256, colon-separated hex.
        presented: String,
    },
    /// The peer did not present a certificate it had to present.
    #[error("no certificate presented")]
    NoCertificate,
    /// Any other handshake failure (alerts, protocol errors, I/O).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
}

/// An outgoing connection could not be established.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectError {
    /// TCP connect (or the TLS handshake) took longer than the connect timeout.
    #[error("connecting to {dest} timed out after {after:?}")]
    Timeout {
        /// Destination.
        dest: SocketAddr,
        /// The timeout.
        after: Duration,
    },
    /// TCP connect failed (refused, unreachable…).
    #[error("cannot connect to {dest}: {error}")]
    Io {
        /// Destination.
        dest: SocketAddr,
        /// The OS error.
        error: String,
    },
    /// The TLS handshake failed.
    #[error("TLS to {dest}: {error}")]
    Tls {
        /// Destination.
        dest: SocketAddr,
        /// Why.
        error: TlsError,
    },
    /// The TLS client configuration could not be built (no roots, bad CA or key file).
    #[error("TLS client not configured: {0}")]
    TlsConfig(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// `max_connections` stream connections are open already.
    #[error("connection limit reached ({limit} connections)")]
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
    /// UDP is not a connection.
    #[error("UDP has no connections")]
    NotAStream,
    /// The transports are shutting down.
    #[error("transports closed")]
    Shutdown,
}

impl ConnectError {
    /// The TLS failure, if this is one.
    pub fn tls(&self) -> Option<&TlsError> {
        match self {
            ConnectError::Tls { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// [`crate::SipTransports::send`] failed at once (a failure later on the connection
/// comes as [`crate::TransportEvent::Closed`]).
#[derive(Debug, Error)]
pub enum SendError {
    /// The UDP send failed.
    #[error("UDP send to {dest}: {source}")]
    Udp {
        /// Destination.
        dest: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection's send queue is full (the peer does not read).
    #[error("send queue of {0:?} is full")]
    QueueFull(ConnectionId),
    /// The connection closed before the message could be queued.
    #[error("{0:?} is closed")]
    Closed(ConnectionId),
}

/// Why a stream connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloseReason {
    /// The peer closed it.
    #[error("closed by peer")]
    RemoteClosed,
    /// [`crate::SipTransports::close`].
    #[error("closed locally")]
    Local,
    /// No traffic for the idle timeout.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// Half-open: no complete message within the message timeout.
    #[error("no complete message within {0:?}")]
    MessageTimeout(Duration),
    /// The byte stream could not be framed (RFC 3261 §18.3); it lost sync.
    #[error("framing error: {0}")]
    Framing(FramingError),
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// A write did not complete in time.
    #[error("write timed out")]
    WriteTimeout,
    /// An outgoing connection could not be established.
    #[error("{0}")]
    ConnectFailed(ConnectError),
    /// An incoming TLS handshake failed.
    #[error("incoming TLS handshake: {0}")]
    Tls(TlsError),
}
