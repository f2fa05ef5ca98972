//! SIP messages (on rsip), sans-IO transactions and dialogs, digest auth.
//!
//! * [`parse_message`] turns a datagram into an [`rsip::SipMessage`] after strict
//!   validation; [`error_response`] builds the 400/501/505 for a bad request.
//! * [`message`] has header accessors ([`MessageExt`]), [`serialize`], and builders.
//! * [`transaction::Endpoint`] is the RFC 3261 §17 transaction layer (UDP), sans-IO.
//! * [`auth`] computes digest `Authorization` headers; [`dialog`] tracks dialogs.
//!
//! Nothing here does I/O or reads the clock: time is passed in as `Instant`s and
//! randomness as a `rand::RngCore`.

pub mod auth;
pub mod auth_guard;
pub mod dialog;
pub mod error;
pub mod lint;
pub mod log_redact;
pub mod message;
pub mod nat;
pub mod parse;
pub mod prack;
pub mod prescan;
pub mod rate_limit;
pub mod register;
pub mod replaces;
pub mod session_timer;
pub mod syntax;
pub mod transaction;
pub mod transport;

pub use error::{BuildError, ParseError};
pub use message::{serialize, MessageExt};
pub use parse::{error_response, parse_message, parse_message_with, Limits};

/// Fuzzing entry point: parse, and on error build the error response; must never panic.
pub fn fuzz_parse(data: &[u8]) {
    let _ = prescan::prescan(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = log_redact::redact_credentials(text);
        let _ = prack::Rack::parse(text);
        let _ = prack::parse_rseq(text);
        let _ = session_timer::SessionExpires::parse(text);
        if let Ok(r) = replaces::Replaces::parse(text) {
            let _ = replaces::Replaces::parse(&r.to_header_value());
        }
        if let Some((_, headers)) = replaces::split_uri_headers(text) {
            for (_, v) in headers {
                let _ = replaces::Replaces::parse(&v);
            }
        }
    }
    match parse_message(data) {
        Ok(msg) => {
            let bytes = serialize(&msg);
            let _ = parse_message(&bytes);
            let _ = msg.top_via();
            let _ = msg.cseq();
            let _ = msg.to_tag();
            let _ = msg.contact_uri();
        }
        Err(e) => {
            if let Some(r) = error_response(data, &e) {
                let _ = serialize(&r.into());
            }
        }
    }
}
/// Fuzzing entry point for stream transports: the first byte picks a chunk size, the
/// rest is fed to a [`transport::StreamFramer`] in chunks; every framed message goes
/// through a TCP [`Endpoint`] and [`lint::lint`]. Must never panic.
pub fn fuzz_stream(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut framer = transport::StreamFramer::default();
    let mut ep = Endpoint::new(Config::default());
    let now = std::time::Instant::now();
    let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 5060));
    for part in rest.chunks(chunk) {
        framer.push(part);
        while let Some(frame) = framer.poll() {
            match frame {
                Ok(transport::Frame::Message(m)) => {
                    let _ = lint::lint(&m);
                    ep.handle_stream_message(now, ConnectionId(1), Transport::Tcp, peer, &m);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
    while ep.poll_transmit().is_some() {}
    ep.handle_timeout(now + std::time::Duration::from_secs(64));
}

pub use transaction::{Config, Endpoint, Event, Target, TransactionKey, Transmit};
pub use transport::{ConnectionId, StreamFramer, Transport};
