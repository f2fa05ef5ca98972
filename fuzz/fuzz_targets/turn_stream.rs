//! `cargo fuzz run turn_stream`: see `fuzz/harness/turn_stream.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/turn_stream.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
