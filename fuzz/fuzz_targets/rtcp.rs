//! `cargo fuzz run rtcp`: see `fuzz/harness/rtcp.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/rtcp.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
