//! `cargo fuzz run dtmf`: see `fuzz/harness/dtmf.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/dtmf.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
