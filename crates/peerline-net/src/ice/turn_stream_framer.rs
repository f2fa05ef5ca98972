//! Sans-IO framing of TURN over a byte stream (TCP or TLS, RFC 8656 §3.1, §12.5).
//!
//! Over a stream, STUN messages and ChannelData messages come back to back with nothing
//! between them. The first two bits of a message tell them apart (RFC 7983 §7):
//!
//! - `00`: STUN: a 20-byte header whose bytes 2..4 are the length of the attributes (a
//!   multiple of 4) and bytes 4..8 the magic cookie `0x2112A442`;
//! - `01`: ChannelData: channel number (0x4000..=0x7FFF) and a 2-byte length, then the
//!   data, padded to a multiple of 4 over a stream (RFC 8656 §12.5, RFC 5766 §11.5).
//!
//! Anything else is a framing error: the stream is out of step and cannot be resynced,
//! so the caller closes the connection (and counts it). Nothing here panics on input.
//!
//! [`TurnStreamFramer`] splits the stream into datagrams (padding removed), the form a
//! TURN client over UDP expects; [`datagram_to_stream`] checks a datagram from that
//! client and adds the ChannelData padding the stream needs.

use std::borrow::Cow;

/// The STUN magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const STUN_HEADER: usize = 20;
const CHANNEL_HEADER: usize = 4;

/// What kind of message a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnFrameKind {
    /// A STUN message (request, response or indication).
    Stun,
    /// A ChannelData message.
    ChannelData,
}

/// Why the bytes are not TURN framing. The stream cannot be used any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnFramingError {
    /// The first two bits are `10` or `11`: neither STUN nor ChannelData.
    #[error("not a STUN or ChannelData message (first byte {0:#04x})")]
    UnknownMessage(u8),
    /// A STUN header without the magic cookie.
    #[error("STUN message without the magic cookie")]
    NoMagicCookie,
    /// A STUN length that is not a multiple of 4.
    #[error("STUN length {0} is not a multiple of 4")]
    BadStunLength(usize),
    /// A datagram shorter than its header or its length field says.
    #[error("truncated message: {have} bytes, {need} needed")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header announces.
        need: usize,
    },
}

/// Where a message at the start of `buf` ends: `Ok(None)` when more bytes are needed to
/// know, else `(kind, message length without padding, length with padding)`.
fn measure(buf: &[u8]) -> Result<Option<(TurnFrameKind, usize, usize)>, TurnFramingError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match first >> 6 {
        0b00 => {
            if buf.len() < 8 {
                return Ok(None);
            }
            if buf[4..8] != MAGIC_COOKIE {
                return Err(TurnFramingError::NoMagicCookie);
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if len % 4 != 0 {
                return Err(TurnFramingError::BadStunLength(len));
            }
            Ok(Some((
                TurnFrameKind::Stun,
                STUN_HEADER + len,
                STUN_HEADER + len,
            )))
        }
        0b01 => {
            if buf.len() < CHANNEL_HEADER {
                return Ok(None);
            }
            let len = CHANNEL_HEADER + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            Ok(Some((
                TurnFrameKind::ChannelData,
                len,
                len.next_multiple_of(4),
            )))
        }
        _ => Err(TurnFramingError::UnknownMessage(first)),
    }
}

/// The largest amount of buffered bytes: one whole message (ChannelData: 4 + 65535 + 1
/// padding; STUN: 20 + 65532) plus one read.
pub const MAX_BUFFERED: usize = 65_540 + READ_CHUNK;
/// How much the caller should read at a time (bounds the buffer with [`MAX_BUFFERED`]).
pub const READ_CHUNK: usize = 16 * 1024;

/// Splits a TURN byte stream into messages. Push what was read, then pop until `None`.
/// After an error, every pop returns that error again.
#[derive(Debug, Default)]
pub struct TurnStreamFramer {
    buf: Vec<u8>,
    failed: Option<TurnFramingError>,
}

impl TurnStreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream. Pop every message before pushing more than
    /// [`READ_CHUNK`] bytes again, so the buffer stays under [`MAX_BUFFERED`].
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes waiting for the rest of their message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message as a datagram (ChannelData padding removed), `Ok(None)`
    /// when more bytes are needed, or the framing error.
    pub fn pop(&mut self) -> Result<Option<(TurnFrameKind, Vec<u8>)>, TurnFramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match measure(&self.buf) {
            Ok(Some((kind, len, padded))) if self.buf.len() >= padded => {
                let msg = self.buf[..len].to_vec();
                self.buf.drain(..padded);
                Ok(Some((kind, msg)))
            }
            Ok(_) => Ok(None),
            Err(e) => {
                self.buf = Vec::new();
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// Checks that `datagram` (from the TURN client over UDP) is exactly one STUN or
/// ChannelData message and returns it as the stream needs it: ChannelData padded to a
/// multiple of 4 (over UDP the padding is optional, over a stream it is required).
pub fn datagram_to_stream(
    datagram: &[u8],
) -> Result<(TurnFrameKind, Cow<'_, [u8]>), TurnFramingError> {
    let (kind, len, padded) = measure_datagram(datagram)?;
    let msg = &datagram[..len];
    if padded == len {
        return Ok((kind, Cow::Borrowed(msg)));
    }
    let mut v = Vec::with_capacity(padded);
    v.extend_from_slice(msg);
    v.resize(padded, 0);
    Ok((kind, Cow::Owned(v)))
}

/// Checks that `datagram` holds one whole STUN or ChannelData message (what a TURN client
/// sends over UDP) and says which; a UDP bridge forwards it unchanged.
pub fn check_datagram(datagram: &[u8]) -> Result<TurnFrameKind, TurnFramingError> {
    measure_datagram(datagram).map(|(kind, _, _)| kind)
}

/// [`measure`] for a whole datagram: `(kind, message length, padded length)`, or an error
/// when the datagram is shorter than its header or length field says.
fn measure_datagram(datagram: &[u8]) -> Result<(TurnFrameKind, usize, usize), TurnFramingError> {
    let (kind, len, padded) = measure(datagram)?.ok_or(TurnFramingError::Truncated {
        have: datagram.len(),
        need: CHANNEL_HEADER,
    })?;
    if datagram.len() < len {
        return Err(TurnFramingError::Truncated {
            have: datagram.len(),
            need: len,
        });
    }
    Ok((kind, len, padded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(attrs: usize) -> Vec<u8> {
        let mut m = vec![0x01, 0x01];
        m.extend_from_slice(&(attrs as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend((0..12).map(|i| i as u8));
        m.extend((0..attrs).map(|i| (i * 7) as u8));
        m
    }

    fn channel_data(len: usize) -> Vec<u8> {
        let mut m = vec![0x40, 0x01];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.extend((0..len).map(|i| (i + 1) as u8));
        m
    }

    fn padded(mut m: Vec<u8>) -> Vec<u8> {
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    fn drain(f: &mut TurnStreamFramer) -> Vec<(TurnFrameKind, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(m) = f.pop().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn coalesced_messages_come_out_one_by_one_without_padding() {
        let (a, b, c, d) = (stun(8), channel_data(5), channel_data(8), stun(0));
        let mut stream = a.clone();
        stream.extend(padded(b.clone()));
        stream.extend(padded(c.clone()));
        stream.extend(d.clone());
        let mut f = TurnStreamFramer::new();
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(
            got,
            vec![
                (TurnFrameKind::Stun, a),
                (TurnFrameKind::ChannelData, b),
                (TurnFrameKind::ChannelData, c),
                (TurnFrameKind::Stun, d),
            ]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn split_reads_at_every_byte_give_the_same_messages() {
        let msgs = [stun(12), channel_data(1), channel_data(0), channel_data(3)];
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend(padded(m.clone()));
        }
        let mut f = TurnStreamFramer::new();
        let mut got = Vec::new();
        for byte in &stream {
            f.push(std::slice::from_ref(byte));
            got.extend(drain(&mut f).into_iter().map(|(_, m)| m));
        }
        assert_eq!(got, msgs.to_vec());
    }

    #[test]
    fn a_message_waits_for_its_padding() {
        let m = channel_data(5);
        let mut f = TurnStreamFramer::new();
        f.push(&m);
        assert_eq!(f.pop(), Ok(None));
        f.push(&[0, 0, 0]);
        assert_eq!(f.pop(), Ok(Some((TurnFrameKind::ChannelData, m))));
    }

    #[test]
    fn garbage_fails_the_stream_for_good() {
        for bad in [
            &[0x80, 0, 0, 0][..],
            &[0xC0][..],
            // STUN without the cookie.
            &[0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4][..],
            // STUN length not a multiple of 4.
            &[0x00, 0x01, 0x00, 0x03, 0x21, 0x12, 0xA4, 0x42][..],
        ] {
            let mut f = TurnStreamFramer::new();
            f.push(&stun(4));
            f.push(bad);
            assert!(f.pop().unwrap().is_some());
            let e = f.pop().unwrap_err();
            f.push(&stun(0));
            assert_eq!(f.pop(), Err(e), "{bad:?}");
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn datagrams_are_checked_and_channel_data_padded_for_the_stream() {
        let s = stun(4);
        assert_eq!(
            datagram_to_stream(&s).unwrap(),
            (TurnFrameKind::Stun, Cow::Borrowed(&s[..]))
        );
        let c = channel_data(6);
        let (kind, out) = datagram_to_stream(&c).unwrap();
        assert_eq!(kind, TurnFrameKind::ChannelData);
        assert_eq!(out.as_ref(), &padded(c.clone())[..]);
        // Already padded over UDP: unchanged.
        let p = padded(c);
        assert_eq!(datagram_to_stream(&p).unwrap().1.len(), p.len());
        // Shorter than announced, empty, or not TURN at all.
        assert!(matches!(
            datagram_to_stream(&s[..s.len() - 4]),
            Err(TurnFramingError::Truncated { .. })
        ));
        assert!(datagram_to_stream(&[]).is_err());
        assert!(datagram_to_stream(&[0x40, 0x01]).is_err());
        assert!(datagram_to_stream(&[0x80; 24]).is_err());
    }
}
