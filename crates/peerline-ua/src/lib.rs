//! The phone: accounts, registration, calls, call state, events, config and profiles.

pub mod config;

pub use config::{CodecName, Config, ConfigError};
