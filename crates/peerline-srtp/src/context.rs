//! One-direction SRTP/SRTCP contexts over libsrtp2, with drop counters.

use std::fmt;

use srtp::{Session, StreamPolicy};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::suite::SrtpSuite;

/// Which way a context works: we protect what we send, we unprotect what we receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Protects RTP/RTCP we send (our key).
    Outbound,
    /// Unprotects SRTP/SRTCP we receive (the peer's key).
    Inbound,
}

/// Counters of one context. Inbound contexts count what they drop, so a call can report
/// "tampered packets dropped: N, replays dropped: M".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// RTP + RTCP packets protected.
    pub protected: u64,
    /// RTP + RTCP packets unprotected (authenticated and decrypted).
    pub unprotected: u64,
    /// Packets dropped because the authentication tag did not verify.
    pub auth_failures: u64,
    /// Packets dropped as replays (duplicate or older than the window).
    pub replays: u64,
    /// Packets dropped as malformed or otherwise refused by libsrtp2.
    pub malformed: u64,
}

/// Per-context options beyond suite and key.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpOptions {
    /// Replay window in packets (libsrtp2 accepts 64..=32767); 0 = libsrtp's default (128).
    pub replay_window: u64,
    /// MKI bytes carried in every packet of this key (RFC 3711 §3.1), if the key has one.
    pub mki: Option<Vec<u8>>,
    /// Packets this key may protect (the SDES lifetime); `None` = libsrtp's 2^48 / 2^31.
    pub max_packets: Option<u64>,
}

impl Default for SrtpOptions {
    fn default() -> Self {
        SrtpOptions {
            replay_window: 1024,
            mki: None,
            max_packets: None,
        }
    }
}

impl fmt::Debug for SrtpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpOptions")
            .field("replay_window", &self.replay_window)
            .field("mki_len", &self.mki.as_ref().map(Vec::len))
            .field("max_packets", &self.max_packets)
            .finish()
    }
}

/// The longest MKI we carry (RFC 4568 allows 128 bytes; real peers use 1-4).
pub const MAX_MKI_LEN: usize = 16;
/// Largest packet we accept (a UDP payload).
pub const MAX_PACKET_LEN: usize = 65_507;

/// An SRTP + SRTCP context for one direction of one media stream (any SSRC).
///
/// Rekeying (re-INVITE with new `a=crypto`, a new DTLS handshake) = build a new context.
/// `Debug` shows the suite, direction and counters, never the key.
pub struct SrtpContext {
    suite: SrtpSuite,
    direction: Direction,
    session: Session,
    mki: Option<Vec<u8>>,
    max_packets: Option<u64>,
    stats: SrtpStats,
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("direction", &self.direction)
            .field("mki_len", &self.mki.as_ref().map(Vec::len))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn status_name(e: srtp::Error) -> String {
    e.to_string()
}

impl SrtpContext {
    /// A context for `suite` keyed with `master_key_salt` (key || salt, as in SDES `inline:`
    /// and in the DTLS-SRTP key export), with default options.
    pub fn new(suite: SrtpSuite, master_key_salt: &[u8], direction: Direction) -> Result<Self> {
        Self::with_options(suite, master_key_salt, direction, &SrtpOptions::default())
    }

    /// Like [`SrtpContext::new`] with explicit options.
    pub fn with_options(
        suite: SrtpSuite,
        master_key_salt: &[u8],
        direction: Direction,
        options: &SrtpOptions,
    ) -> Result<Self> {
        if master_key_salt.len() != suite.key_salt_len() {
            return Err(Error::KeyLength {
                suite: suite.sdes_name(),
                expected: suite.key_salt_len(),
                got: master_key_salt.len(),
            });
        }
        if let Some(m) = &options.mki {
            if m.is_empty() || m.len() > MAX_MKI_LEN {
                return Err(Error::UnsupportedMki(format!(
                    "MKI length {} (we handle 1..={MAX_MKI_LEN} bytes)",
                    m.len()
                )));
            }
        }
        let window = match options.replay_window {
            0 => 0,
            w => w.clamp(64, 0x7fff),
        };
        // libsrtp copies the key into its own (expanded) state; our copy is wiped on drop.
        let key = Zeroizing::new(master_key_salt.to_vec());
        let policy = StreamPolicy {
            rtp: suite.rtp_policy(),
            rtcp: suite.rtcp_policy(),
            key: &key,
            window_size: window,
            allow_repeat_tx: false,
            encrypt_extension_headers: &[],
        };
        let session = match direction {
            Direction::Outbound => Session::with_outbound_template(policy),
            Direction::Inbound => Session::with_inbound_template(policy),
        }
        .map_err(|e| Error::SessionCreate(status_name(e)))?;
        Ok(SrtpContext {
            suite,
            direction,
            session,
            mki: options.mki.clone(),
            max_packets: options.max_packets,
            stats: SrtpStats::default(),
        })
    }

    /// The suite.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Counters so far.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// RTP -> SRTP into a new buffer.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(packet.len() + 16 + 16 + MAX_MKI_LEN);
        buf.extend_from_slice(packet);
        self.protect_rtp_in_place(&mut buf)?;
        Ok(buf)
    }

    /// SRTP -> RTP into a new buffer. Failures are counted (see [`SrtpStats`]).
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>> {
        let mut buf = packet.to_vec();
        self.unprotect_rtp_in_place(&mut buf)?;
        Ok(buf)
    }

    /// RTCP -> SRTCP into a new buffer.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(packet.len() + 4 + 16 + 16 + MAX_MKI_LEN);
        buf.extend_from_slice(packet);
        self.protect_rtcp_in_place(&mut buf)?;
        Ok(buf)
    }

    /// SRTCP -> RTCP into a new buffer. Failures are counted.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>> {
        let mut buf = packet.to_vec();
        self.unprotect_rtcp_in_place(&mut buf)?;
        Ok(buf)
    }

    /// RTP -> SRTP in place (the buffer grows by the tag, and the MKI if any).
    /// On error the buffer content is unspecified.
    pub fn protect_rtp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.check_protect(buf, 12)?;
        if buf.first().map(|b| b >> 6) != Some(2) {
            return Err(Error::Malformed("not RTP version 2"));
        }
        self.session
            .protect(buf)
            .map_err(|e| Error::Libsrtp(status_name(e)))?;
        self.insert_mki(buf, self.suite.rtp_tag_len());
        self.stats.protected += 1;
        Ok(())
    }

    /// RTCP -> SRTCP in place.
    pub fn protect_rtcp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.check_protect(buf, 8)?;
        if buf.first().map(|b| b >> 6) != Some(2) {
            return Err(Error::Malformed("not RTCP version 2"));
        }
        self.session
            .protect_rtcp(buf)
            .map_err(|e| Error::Libsrtp(status_name(e)))?;
        self.insert_mki(buf, self.suite.rtcp_tag_len());
        self.stats.protected += 1;
        Ok(())
    }

    /// SRTP -> RTP in place. Authentication failures and replays are counted and returned
    /// as [`Error::AuthFailed`] / [`Error::Replay`]; the caller just drops the packet.
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let r = self.unprotect_inner(buf, false);
        self.count(r)
    }

    /// SRTCP -> RTCP in place; failures counted as for RTP.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let r = self.unprotect_inner(buf, true);
        self.count(r)
    }

    fn check_protect(&self, buf: &[u8], min: usize) -> Result<()> {
        if self.direction != Direction::Outbound {
            return Err(Error::WrongDirection(self.direction));
        }
        if buf.len() < min {
            return Err(Error::Malformed("packet too short"));
        }
        if buf.len() > MAX_PACKET_LEN - 64 {
            return Err(Error::Malformed("packet too long"));
        }
        if let Some(max) = self.max_packets {
            if self.stats.protected >= max {
                return Err(Error::KeyExhausted);
            }
        }
        Ok(())
    }

    fn unprotect_inner(&mut self, buf: &mut Vec<u8>, rtcp: bool) -> Result<()> {
        if self.direction != Direction::Inbound {
            return Err(Error::WrongDirection(self.direction));
        }
        let (header, tag) = if rtcp {
            // header + SSRC, E|index, tag.
            (8 + 4, self.suite.rtcp_tag_len())
        } else {
            (12, self.suite.rtp_tag_len())
        };
        let mki_len = self.mki.as_ref().map_or(0, Vec::len);
        if buf.len() < header + tag + mki_len {
            return Err(Error::Malformed("packet too short"));
        }
        if buf.len() > MAX_PACKET_LEN {
            return Err(Error::Malformed("packet too long"));
        }
        if buf.first().map(|b| b >> 6) != Some(2) {
            return Err(Error::Malformed("not version 2"));
        }
        self.strip_mki(buf, tag)?;
        let r = if rtcp {
            self.session.unprotect_rtcp(buf)
        } else {
            self.session.unprotect(buf)
        };
        r.map_err(|e| match e {
            srtp::Error::AUTH_FAIL => Error::AuthFailed,
            srtp::Error::REPLAY_FAIL | srtp::Error::REPLAY_OLD => Error::Replay,
            other => Error::Libsrtp(status_name(other)),
        })
    }

    fn count(&mut self, r: Result<()>) -> Result<()> {
        match &r {
            Ok(()) => self.stats.unprotected += 1,
            Err(Error::AuthFailed) => self.stats.auth_failures += 1,
            Err(Error::Replay) => self.stats.replays += 1,
            Err(Error::WrongDirection(_)) => {}
            Err(_) => self.stats.malformed += 1,
        }
        r
    }

    /// Where the MKI sits: before the HMAC tag for AES-CM (RFC 3711 §3.1, §3.4), at the very
    /// end for AEAD, whose tag is part of the ciphertext (RFC 7714 §6, §7).
    fn mki_offset(&self, len: usize, tag: usize, mki_len: usize) -> usize {
        if self.suite.is_aead() {
            len - mki_len
        } else {
            len - tag - mki_len
        }
    }

    fn insert_mki(&self, buf: &mut Vec<u8>, tag: usize) {
        if let Some(mki) = &self.mki {
            let at = if self.suite.is_aead() {
                buf.len()
            } else {
                buf.len().saturating_sub(tag)
            };
            buf.splice(at..at, mki.iter().copied());
        }
    }

    fn strip_mki(&self, buf: &mut Vec<u8>, tag: usize) -> Result<()> {
        if let Some(mki) = &self.mki {
            let at = self.mki_offset(buf.len(), tag, mki.len());
            if buf.get(at..at + mki.len()) != Some(mki.as_slice()) {
                return Err(Error::Malformed("unknown MKI"));
            }
            buf.drain(at..at + mki.len());
        }
        Ok(())
    }
}

/// The two contexts of one call's media stream: outbound (our key), inbound (the peer's).
#[derive(Debug)]
pub struct SrtpPair {
    /// Protects what we send.
    pub outbound: SrtpContext,
    /// Unprotects what we receive.
    pub inbound: SrtpContext,
}

impl SrtpPair {
    /// Both contexts for one suite: `local` keys what we send, `remote` what we receive.
    pub fn new(suite: SrtpSuite, local_key_salt: &[u8], remote_key_salt: &[u8]) -> Result<Self> {
        Ok(SrtpPair {
            outbound: SrtpContext::new(suite, local_key_salt, Direction::Outbound)?,
            inbound: SrtpContext::new(suite, remote_key_salt, Direction::Inbound)?,
        })
    }

    /// Sum of both contexts' counters.
    pub fn stats(&self) -> SrtpStats {
        let (a, b) = (self.outbound.stats(), self.inbound.stats());
        SrtpStats {
            protected: a.protected + b.protected,
            unprotected: a.unprotected + b.unprotected,
            auth_failures: a.auth_failures + b.auth_failures,
            replays: a.replays + b.replays,
            malformed: a.malformed + b.malformed,
        }
    }
}
