//! `cargo fuzz run nat_behaviour`: see `fuzz/harness/nat_behaviour.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/nat_behaviour.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
