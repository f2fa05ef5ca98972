//! `cargo fuzz run srtp_unprotect`: see `fuzz/harness/srtp_unprotect.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/srtp_unprotect.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
