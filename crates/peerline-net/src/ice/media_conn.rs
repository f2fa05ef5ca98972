//! Sending and receiving media on a connected ICE path, with `std::io` errors, so callers
//! need not know webrtc-util's `Conn`.
//!
//! The agent's conn carries every non-STUN datagram of the selected pair: RTP, RTCP and
//! DTLS all arrive here (demultiplex them by RFC 7983, e.g. `peerline_srtp::classify_packet`);
//! STUN checks and keepalives never do.

use std::io;
use std::net::SocketAddr;

use super::Connected;

impl Connected {
    /// Sends one datagram to the selected pair's remote candidate (STUN-looking datagrams
    /// are refused by the agent).
    pub async fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        self.conn.send(datagram).await.map_err(to_io)
    }

    /// Receives one datagram and the address of the selected pair's remote candidate.
    /// `ErrorKind::NotConnected` once the agent is closed (stop reading then);
    /// `ErrorKind::InvalidData` when a datagram was larger than `buf` (it is dropped).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.conn.recv_from(buf).await.map_err(to_io)
    }
}

fn to_io(e: webrtc_util::Error) -> io::Error {
    // webrtc-ice wraps everything into `io::Error::other(text)`: the text is all there is.
    let text = e.to_string();
    let kind = if text.contains("closed") {
        io::ErrorKind::NotConnected
    } else if text.contains("short") {
        io::ErrorKind::InvalidData
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_and_short_are_told_apart() {
        let closed = webrtc_util::Error::from(io::Error::other("Conn is closed"));
        assert_eq!(to_io(closed).kind(), io::ErrorKind::NotConnected);
        let short = webrtc_util::Error::from(io::Error::other(
            webrtc_util::Error::ErrBufferShort.to_string(),
        ));
        assert_eq!(to_io(short).kind(), io::ErrorKind::InvalidData);
        let closed = webrtc_util::Error::from(io::Error::other(
            webrtc_util::Error::ErrBufferClosed.to_string(),
        ));
        assert_eq!(to_io(closed).kind(), io::ErrorKind::NotConnected);
    }
}
