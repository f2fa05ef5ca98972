//! Harness for the `config` fuzz target, shared with the corpus replay test in
//! `crates/peerline-ua/tests/fuzz_corpus_config.rs` (included there by `#[path]`).
//!
//! The phone's TOML configuration: `Config::parse` must return a config or an error
//! naming a line inside the text; an accepted config satisfies its own checks.

use std::path::Path;

use peerline_ua::{Config, ConfigError};

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, Path::new("fuzz.toml")) {
        Ok(c) => {
            assert!(
                !c.media.codecs.is_empty(),
                "accepted a config without codecs"
            );
            assert!(
                (10..=120).contains(&c.media.ptime),
                "accepted ptime {}",
                c.media.ptime
            );
            assert!(!c.identity.user.is_empty(), "accepted an empty user");
        }
        Err(ConfigError::Invalid { line, message, .. }) => {
            let lines = text.lines().count().max(1);
            assert!(
                line >= 1 && line <= lines + 1,
                "line {line} of {lines}: {message}"
            );
        }
        Err(ConfigError::Read { .. }) => panic!("parse() does not read files"),
    }
}
