//! SDP model (RFC 8866) and RFC 3264 offer/answer for Peerline.
//!
//! * [`SessionDescription::parse`] / [`SessionDescription::to_string`] — parse and
//!   serialize (CRLF output, LF input accepted). Known attributes are typed
//!   ([`Attribute`]); unknown ones are kept verbatim and in order.
//! * [`create_offer`], [`create_answer`], [`process_answer`], [`hold`], [`resume`] —
//!   offer/answer for one audio stream, yielding [`Negotiated`].
//!
//! No IO, no clock, no randomness: session ids, versions and keys are passed in.

mod attribute;
mod codec;
mod error;
mod fuzzing;
mod model;
mod negotiate;
mod parse;

pub use attribute::{
    Attribute, Candidate, CandidateType, Crypto, Direction, Fingerprint, Fmtp, KeyParam, Lifetime,
    Mki, RemoteCandidate, Rtcp, Rtpmap, Setup,
};
pub use codec::{payload_encoding, Codec, OpusParams};
pub use error::{ParseError, Problem};
pub use fuzzing::fuzz_check;
pub use model::{
    AddrType, Bandwidth, Connection, Limits, MediaDescription, MediaKind, Origin,
    SessionDescription, Timing,
};
pub use negotiate::{
    answer_multiplexes_rtcp, create_answer, create_offer, hold, ice_restart, next_version,
    process_answer, resume, CodecPreference, HoldMode, IceParams, LocalCapabilities, Negotiated,
    NegotiationError, RemoteIce, Security, SrtpPolicy, TelephoneEvent,
};
