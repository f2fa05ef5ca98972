//! Harness for the `nat_behaviour` fuzz target, shared with the corpus replay test in
//! `crates/peerline-net/tests/fuzz_corpus_nat_behaviour.rs` (included there by `#[path]`).
//!
//! The datagram goes through the Binding-answer parser of the RFC 5780 NAT behaviour tests
//! (`peerline_net::nat_behaviour::parse_answer`: XOR-MAPPED-/MAPPED-ADDRESS,
//! OTHER-ADDRESS, RESPONSE-ORIGIN) and the address-attribute decoder, then into a
//! `NatProbe` at every test of its sequence: the probe's transaction ids are the
//! datagram's own, so a well-formed answer moves it on, and it arrives from each address
//! an RFC 5780 server answers from (and one it never does).

use std::net::SocketAddr;
use std::time::Instant;

use peerline_net::nat_behaviour::{
    decode_address, likely_path, parse_answer, NatProbe, NatProbeConfig,
};

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    let _ = parse_answer(data);
    let _ = decode_address(data);
    let mut id = [0u8; 12];
    if let Some(t) = data.get(8..20) {
        id.copy_from_slice(t);
    }
    let server = SocketAddr::from(([203, 0, 113, 1], 3478));
    let sources = [
        server,
        SocketAddr::from(([203, 0, 113, 2], 3479)),
        SocketAddr::from(([203, 0, 113, 1], 3479)),
        SocketAddr::from(([203, 0, 113, 2], 3478)),
        SocketAddr::from(([198, 51, 100, 7], 9)),
    ];
    for from in sources {
        let local = SocketAddr::from(([10, 0, 1, 2], 31000));
        let mut p = NatProbe::new(server, Some(local), [id; 5], NatProbeConfig::default());
        let now = Instant::now();
        p.start(now);
        for _ in 0..6 {
            while p.poll_transmit().is_some() {}
            p.handle_datagram(now, from, data);
            if p.is_done() {
                break;
            }
            if let Some(t) = p.poll_timeout() {
                p.handle_timeout(t);
            }
        }
        let _ = likely_path(p.report(), true);
        let _ = likely_path(p.report(), false);
    }
}
