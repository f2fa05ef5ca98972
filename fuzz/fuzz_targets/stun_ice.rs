//! `cargo fuzz run stun_ice`: see `fuzz/harness/stun_ice.rs` (shared with the corpus replay test).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/stun_ice.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
