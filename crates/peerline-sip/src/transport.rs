//! Transport-level helpers, sans-IO: which transport a message travels on, stream
//! framing for TCP/TLS connections (RFC 3261 §18.3), CRLF keep-alives (RFC 5626
//! §4.4.1) and the RFC 3261 §18.1.1 switch to a stream transport for large requests.
//!
//! ```
//! use peerline_sip::transport::{Frame, StreamFramer};
//! let mut f = StreamFramer::default();
//! f.push(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n");
//! assert_eq!(f.poll(), Some(Ok(Frame::Ping))); // answer with StreamFramer::PONG
//! assert_eq!(f.poll(), None); // incomplete message
//! f.push(b"\r\n");
//! assert!(matches!(f.poll(), Some(Ok(Frame::Message(_)))));
//! ```

use crate::parse::Limits;
use std::collections::VecDeque;
use thiserror::Error;

/// The transport a message is sent or received on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (unreliable: the transaction layer retransmits).
    #[default]
    Udp,
    /// TCP (reliable, stream framed by Content-Length).
    Tcp,
    /// TLS over TCP (reliable, stream framed by Content-Length).
    Tls,
}

impl Transport {
    /// TCP and TLS are reliable: no retransmissions, Timers D/I/J/K are zero
    /// (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via transport token (`UDP`, `TCP`, `TLS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Parse a Via transport token (case-insensitive); `None` for others.
    pub fn from_via_token(token: &str) -> Option<Transport> {
        match token.to_ascii_uppercase().as_str() {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
            "TLS" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.via_token())
    }
}

/// A stream connection, numbered by the driver (any scheme, unique while open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// RFC 3261 §18.1.1: a request "within 200 bytes of the path MTU, or larger
/// than 1300 bytes if the path MTU is unknown" must go over a congestion-controlled
/// transport (TCP). `path_mtu = None` means unknown (taken as 1500).
pub fn needs_stream_transport(message_len: usize, path_mtu: Option<usize>) -> bool {
    let mtu = path_mtu.unwrap_or(1500);
    message_len > mtu.saturating_sub(200)
}

/// What a [`StreamFramer`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete SIP message (headers + Content-Length bytes of body); feed it to
    /// [`crate::Endpoint::handle_stream_message`].
    Message(Vec<u8>),
    /// A double-CRLF keep-alive ping (RFC 5626 §4.4.1): send [`StreamFramer::PONG`].
    Ping,
    /// A single-CRLF pong answering our ping (only reported after
    /// [`StreamFramer::ping_sent`]).
    Pong,
}

/// Why a stream cannot be framed any further. Every variant means: close the
/// connection (the byte stream has lost sync). The framer stays in the error state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    /// RFC 3261 §18.3: Content-Length is mandatory on stream transports.
    #[error("message without Content-Length on a stream transport")]
    MissingContentLength,
    /// Content-Length is not a number, or repeated with different values.
    #[error("invalid Content-Length")]
    InvalidContentLength,
    /// The header section or the announced body exceeds the size limit.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The limit (`Limits::max_message_size`).
        limit: usize,
    },
}

impl FramingError {
    /// Always `true`: the driver must close the connection.
    pub fn must_close(&self) -> bool {
        true
    }
}

/// Splits a TCP/TLS byte stream into SIP messages by Content-Length
/// (RFC 3261 §18.3), one framer per connection. Sans-IO: [`StreamFramer::push`]
/// bytes as they arrive, then [`StreamFramer::poll`] until `None`.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max: usize,
    awaiting_pong: bool,
    /// A lone CRLF was consumed and the next bytes decide: CRLF -> ping.
    half_ping: bool,
    failed: Option<FramingError>,
    out: VecDeque<Result<Frame, FramingError>>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(Limits::default())
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Content-Length from a header section (handles compact `l`, folding is
/// irrelevant for a number on its own line).
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<usize> = None;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let v = value.trim();
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FramingError::InvalidContentLength);
            }
            let n: usize = v.parse().map_err(|_| FramingError::InvalidContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(FramingError::InvalidContentLength);
            }
            found = Some(n);
        }
    }
    found.ok_or(FramingError::MissingContentLength)
}

impl StreamFramer {
    /// RFC 5626 §4.4.1 ping (client to server).
    pub const PING: &'static [u8] = b"\r\n\r\n";
    /// RFC 5626 §4.4.1 pong (server to client).
    pub const PONG: &'static [u8] = b"\r\n";

    /// New framer; `limits.max_message_size` bounds one message (headers + body).
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: Vec::new(),
            max: limits.max_message_size,
            awaiting_pong: false,
            half_ping: false,
            failed: None,
            out: VecDeque::new(),
        }
    }

    /// Tell the framer we sent a [`StreamFramer::PING`]: the next lone CRLF is
    /// reported as [`Frame::Pong`] instead of waiting to see whether it starts a ping.
    pub fn ping_sent(&mut self) {
        self.awaiting_pong = true;
    }

    /// Bytes buffered but not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Append received bytes (any chunking).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        self.frame();
    }

    /// Next frame, or the (sticky) error telling the driver to close.
    pub fn poll(&mut self) -> Option<Result<Frame, FramingError>> {
        if let Some(f) = self.out.pop_front() {
            return Some(f);
        }
        self.failed.clone().map(Err)
    }

    fn fail(&mut self, e: FramingError) {
        self.buf.clear();
        self.out.push_back(Err(e.clone()));
        self.failed = Some(e);
    }

    fn frame(&mut self) {
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            if rest.is_empty() {
                break;
            }
            // Keep-alives between messages.
            if rest.starts_with(b"\r\n") {
                if self.half_ping {
                    self.half_ping = false;
                    self.out.push_back(Ok(Frame::Ping));
                    start += 2;
                    continue;
                }
                if self.awaiting_pong {
                    // A server's pong, unless these are the first two bytes of its ping.
                    if rest.starts_with(b"\r\n\r\n") {
                        self.out.push_back(Ok(Frame::Ping));
                        start += 4;
                    } else {
                        self.awaiting_pong = false;
                        self.out.push_back(Ok(Frame::Pong));
                        start += 2;
                    }
                    continue;
                }
                self.half_ping = true;
                start += 2;
                continue;
            }
            if rest == b"\r" {
                break; // wait for the LF
            }
            // A stray CRLF before a message is allowed (RFC 3261 §7.5).
            self.half_ping = false;
            let Some(head_len) = find_head_end(rest) else {
                if rest.len() > self.max {
                    self.fail(FramingError::TooLarge { limit: self.max });
                    return;
                }
                break;
            };
            if head_len > self.max {
                self.fail(FramingError::TooLarge { limit: self.max });
                return;
            }
            let body_len = match content_length(&rest[..head_len]) {
                Ok(n) => n,
                Err(e) => {
                    self.fail(e);
                    return;
                }
            };
            if body_len > self.max.saturating_sub(head_len) {
                self.fail(FramingError::TooLarge { limit: self.max });
                return;
            }
            let total = head_len + body_len;
            if rest.len() < total {
                break;
            }
            self.out
                .push_back(Ok(Frame::Message(rest[..total].to_vec())));
            start += total;
        }
        self.buf.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: a@b\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 11\r\n\
\r\n\
v=0\r\no=- \r\n";

    const BYE: &[u8] = b"BYE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK777\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>;tag=2\r\n\
Call-ID: a@b\r\n\
CSeq: 2 BYE\r\n\
l: 0\r\n\
\r\n";

    fn drain(f: &mut StreamFramer) -> Vec<Result<Frame, FramingError>> {
        let mut v = Vec::new();
        while let Some(x) = f.poll() {
            let stop = x.is_err();
            v.push(x);
            if stop {
                break;
            }
        }
        v
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"\r\n\r\n");
        s.extend_from_slice(INVITE);
        s.extend_from_slice(b"\r\n\r\n");
        s.extend_from_slice(BYE);
        s.extend_from_slice(INVITE);
        s
    }

    fn expected() -> Vec<Result<Frame, FramingError>> {
        vec![
            Ok(Frame::Ping),
            Ok(Frame::Message(INVITE.to_vec())),
            Ok(Frame::Ping),
            Ok(Frame::Message(BYE.to_vec())),
            Ok(Frame::Message(INVITE.to_vec())),
        ]
    }

    #[test]
    fn whole_stream_in_one_chunk_yields_every_message_and_ping() {
        let mut f = StreamFramer::default();
        f.push(&stream());
        assert_eq!(drain(&mut f), expected());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let s = stream();
        for cut in 0..=s.len() {
            let mut f = StreamFramer::default();
            let mut got = Vec::new();
            f.push(&s[..cut]);
            got.extend(drain(&mut f));
            f.push(&s[cut..]);
            got.extend(drain(&mut f));
            assert_eq!(got, expected(), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        for b in stream() {
            f.push(&[b]);
            got.extend(drain(&mut f));
        }
        assert_eq!(got, expected());
    }

    #[test]
    fn three_way_splits() {
        let s = stream();
        for a in (0..s.len()).step_by(7) {
            for b in (a..s.len()).step_by(11) {
                let mut f = StreamFramer::default();
                let mut got = Vec::new();
                for chunk in [&s[..a], &s[a..b], &s[b..]] {
                    f.push(chunk);
                    got.extend(drain(&mut f));
                }
                assert_eq!(got, expected(), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn framed_messages_parse() {
        let mut f = StreamFramer::default();
        f.push(&stream());
        for fr in drain(&mut f) {
            if let Ok(Frame::Message(m)) = fr {
                crate::parse_message(&m).unwrap();
            }
        }
    }

    #[test]
    fn pong_reported_only_after_ping_sent() {
        let mut f = StreamFramer::default();
        f.ping_sent();
        f.push(b"\r\n");
        assert_eq!(f.poll(), Some(Ok(Frame::Pong)));
        // Without a ping outstanding a lone CRLF is just a stray CRLF.
        f.push(b"\r\n");
        assert_eq!(f.poll(), None);
        f.push(BYE);
        assert_eq!(f.poll(), Some(Ok(Frame::Message(BYE.to_vec()))));
        assert_eq!(f.poll(), None);
    }

    #[test]
    fn missing_content_length_closes() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\n");
        assert_eq!(f.poll(), Some(Err(FramingError::MissingContentLength)));
        // Sticky: nothing more is framed.
        f.push(BYE);
        assert_eq!(f.poll(), Some(Err(FramingError::MissingContentLength)));
        assert!(FramingError::MissingContentLength.must_close());
    }

    #[test]
    fn bad_and_conflicting_content_length() {
        for head in [
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            let mut f = StreamFramer::default();
            f.push(head.as_bytes());
            assert_eq!(
                f.poll(),
                Some(Err(FramingError::InvalidContentLength)),
                "{head}"
            );
        }
    }

    #[test]
    fn absurd_sizes_close() {
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4000000000\r\n\r\n");
        assert!(matches!(f.poll(), Some(Err(FramingError::TooLarge { .. }))));
        // A header section that never ends.
        let mut f = StreamFramer::default();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
        for _ in 0..2000 {
            f.push(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(f.poll(), Some(Err(FramingError::TooLarge { .. }))));
        assert!(f.buffered() == 0);
    }

    #[test]
    fn mtu_rule() {
        assert!(!needs_stream_transport(1300, None));
        assert!(needs_stream_transport(1301, None));
        assert!(needs_stream_transport(1400, Some(1500)));
        assert!(!needs_stream_transport(8000, Some(9000)));
        assert!(needs_stream_transport(1, Some(100)));
    }

    #[test]
    fn transport_tokens() {
        assert_eq!(Transport::default(), Transport::Udp);
        assert!(!Transport::Udp.is_reliable());
        assert!(Transport::Tls.is_reliable());
        assert_eq!(Transport::from_via_token("tcp"), Some(Transport::Tcp));
        assert_eq!(Transport::from_via_token("SCTP"), None);
        assert_eq!(Transport::Tls.to_string(), "TLS");
    }
}
