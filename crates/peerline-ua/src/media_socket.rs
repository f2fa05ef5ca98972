//! The socket a call's media goes over: a plain UDP socket (RTP to the SDP address, with
//! symmetric latching), or the selected pair of an ICE session (the agent sends to the
//! remote candidate; STUN never reaches us, RTP/RTCP/DTLS all do).

use std::io;
use std::net::SocketAddr;

use peerline_net::Connected;
use tokio::net::UdpSocket;

/// Where a call's datagrams go in and out.
pub(crate) enum MediaSocket {
    /// Plain UDP from the RTP port range.
    Udp(UdpSocket),
    /// The selected ICE pair (rtcp-mux: RTP, RTCP and DTLS on one component).
    Ice(Connected),
}

impl MediaSocket {
    /// Sends to `dest` (plain) or to the selected pair's remote candidate (ICE: `dest` is
    /// what the pair says and is only used for the ledger by the caller).
    pub(crate) async fn send_to(&self, data: &[u8], dest: SocketAddr) -> io::Result<usize> {
        match self {
            Self::Udp(s) => s.send_to(data, dest).await,
            Self::Ice(c) => c.send(data).await,
        }
    }

    /// One datagram and where it came from (ICE: the selected pair's remote candidate).
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Self::Udp(s) => s.recv_from(buf).await,
            Self::Ice(c) => c.recv_from(buf).await,
        }
    }

    /// Our address: the bound one, or the selected pair's local candidate.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Udp(s) => s.local_addr().ok(),
            Self::Ice(c) => Some(c.path.local_addr),
        }
    }

    /// Whether ICE validated the peer (no latching needed, the agent filters sources).
    pub(crate) fn is_ice(&self) -> bool {
        matches!(self, Self::Ice(_))
    }
}
