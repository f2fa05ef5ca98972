#![no_main]
//! Fuzz the SIP datagram parser, serializer round trip and error-response builder.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    peerline_sip::fuzz_parse(data);
});
