//! Media encryption for Peerline: SRTP/SRTCP on libsrtp2, SDES keying (RFC 4568) and sans-IO
//! DTLS-SRTP (RFC 5763/5764) on OpenSSL, plus RFC 7983 demultiplexing.
//!
//! Nothing here opens a socket or reads a clock: the per-call media task feeds datagrams,
//! `Instant`s and an RNG in, and sends what comes out. Keys never appear in `Debug`,
//! `Display` or errors.

mod context;
mod demux;
mod dtls;
mod error;
mod sdes;
mod suite;

pub use context::{
    Direction, SrtpContext, SrtpOptions, SrtpPair, SrtpStats, MAX_MKI_LEN, MAX_PACKET_LEN,
};
pub use demux::{classify, classify_packet, PacketKind};
pub use dtls::{DtlsCert, DtlsConfig, DtlsEndpoint, DtlsEvent, DtlsRole, DtlsSrtpKeys};
pub use error::{Error, Result};
pub use sdes::{generate_crypto, sdes_pair, sdes_pair_from_security, SdesKey, SdesKeyOptions};
pub use suite::SrtpSuite;

/// The libsrtp2 version string (for `peerline doctor` and benchmark reports).
pub fn libsrtp_version() -> &'static str {
    srtp::get_version_string()
}
