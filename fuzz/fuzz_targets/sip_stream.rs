#![no_main]
//! Fuzz the TCP/TLS stream framer (Content-Length framing, CRLF keep-alives) and the
//! endpoint's stream path; the first byte picks the chunk size.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peerline_sip::fuzz_stream(data);
});
