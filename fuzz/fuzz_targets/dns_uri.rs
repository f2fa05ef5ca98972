//! Fuzz the RFC 3263 URI parser and location over canned records: `cargo fuzz run dns_uri`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = peerline_dns::fuzz_check(data) {
        panic!("{e}");
    }
});
