//! Errors of this crate. None of them ever carries key material.

use crate::context::Direction;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong: packet rejections (counted in [`crate::SrtpStats`]), keying errors
/// (which map to a `488 Not Acceptable Here` with the message as reason), DTLS errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ---- packets ----
    /// Authentication tag did not verify: tampered packet or wrong key. Dropped and counted.
    #[error("SRTP authentication failed (tampered packet or wrong key)")]
    AuthFailed,
    /// Packet index already seen or older than the replay window. Dropped and counted.
    #[error("replayed or too old SRTP packet")]
    Replay,
    /// Not an RTP/RTCP packet this context can process (too short, wrong version, bad MKI…).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// libsrtp2 refused the packet for another reason (its status name).
    #[error("libsrtp2 rejected the packet: {0}")]
    Libsrtp(String),
    /// `protect_*` called on an inbound context or `unprotect_*` on an outbound one.
    #[error("this SRTP context is {0:?} only")]
    WrongDirection(Direction),
    /// The master key reached the packet count of its lifetime: rekey (a new context).
    #[error("SRTP master key lifetime exhausted; a new key is needed")]
    KeyExhausted,

    // ---- keying ----
    /// Crypto suite unknown to us or to libsrtp2 (e.g. `F8_128_HMAC_SHA1_80`).
    #[error("unsupported SRTP crypto suite `{0}`")]
    UnsupportedSuite(String),
    /// Master key||salt of the wrong length for the suite.
    #[error("{suite}: master key||salt must be {expected} bytes, got {got}")]
    KeyLength {
        /// The suite.
        suite: &'static str,
        /// Required bytes.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The SDES key parameter is unusable (not `inline:`, bad base64, several keys…).
    #[error("SDES key parameter: {0}")]
    BadKeyParam(String),
    /// An MKI we cannot handle (too long, several master keys).
    #[error("unsupported MKI: {0}")]
    UnsupportedMki(String),
    /// A session parameter we will not honour, e.g. `UNENCRYPTED_SRTP` or `KDR=10`.
    #[error("unsupported SDES session parameter `{0}`")]
    UnsupportedSessionParam(String),
    /// The negotiated security is not the kind this call expects (e.g. SDES contexts asked
    /// for a DTLS call).
    #[error("wrong security mode: {0}")]
    WrongSecurity(&'static str),
    /// libsrtp2 refused to create a session (its status name).
    #[error("libsrtp2 could not create the session: {0}")]
    SessionCreate(String),

    // ---- DTLS ----
    /// Certificate generation or OpenSSL setup failed.
    #[error("DTLS setup: {0}")]
    DtlsSetup(String),
}
