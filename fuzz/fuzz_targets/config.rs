//! `cargo fuzz run config`: see `fuzz/harness/config.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/config.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
