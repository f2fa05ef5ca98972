//! SIP transports on tokio: the sockets under `peerline_sip::Endpoint`.
//!
//! [`SipTransports`] binds UDP and TCP on the same port (RFC 3261 §18: a UA listening
//! on a port for UDP also listens on it for TCP), optionally TLS on a second port, and
//! carries the endpoint's [`peerline_sip::Transmit`]s:
//!
//! * UDP: one datagram per message;
//! * TCP/TLS: over the connection the transmit names, else over an open connection to
//!   the same address and transport (connection reuse, RFC 3261 §18.1.1/§18.2.2), else
//!   over a new outgoing connection (connect timeout, TLS with verification by default);
//! * every stream connection has its own [`peerline_sip::StreamFramer`]: incoming bytes
//!   become whole messages ([`Incoming`]), double-CRLF pings are answered with a CRLF pong
//!   (RFC 5626 §4.4.1), framing errors close the connection;
//! * limits: a maximum number of connections (beyond it accepts are closed at once and
//!   new outgoing connections refused), an idle timeout, and a message timeout that closes
//!   half-open connections (an accepted connection with no complete message, or a message
//!   that stays incomplete, for that long);
//! * counters in [`TransportStats`].
//!
//! Nothing here panics on network input; everything that goes wrong on a connection ends
//! that connection with a [`CloseReason`] the driver sees in [`TransportEvent::Closed`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), peerline_transport::TransportError> {
//! use peerline_transport::{SipTransports, TransportConfig, TransportEvent};
//! let mut transports = SipTransports::bind(TransportConfig::default()).await?;
//! while let Some(event) = transports.recv().await {
//!     match event {
//!         TransportEvent::Incoming(m) => println!("{} bytes from {} over {}", m.bytes.len(), m.source, m.transport),
//!         TransportEvent::Closed { conn, reason, .. } => println!("{conn:?} closed: {reason}"),
//!         TransportEvent::Pong { .. } => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod config;
mod error;
mod sockets;
pub mod tls;
pub mod uri;

pub use config::{ClientCert, TlsClientConfig, TlsServerConfig, TransportConfig};
pub use error::{CloseReason, ConnectError, SendError, TlsError, TransportError};
pub use peerline_sip::{ConnectionId, Transmit, Transport};
pub use sockets::{
    ConnectionInfo, Direction, Incoming, SipTransports, TransportEvent, TransportStats,
};
pub use tls::CertPin;
