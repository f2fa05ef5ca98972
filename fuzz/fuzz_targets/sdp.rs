//! Fuzz the SDP parser, serializer and offer/answer: `cargo fuzz run sdp`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = peerline_sdp::fuzz_check(data) {
        panic!("{e}");
    }
});
