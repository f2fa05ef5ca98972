//! The phone: config, the tokio driver that owns the SIP and RTP sockets, calls and events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), peerline_ua::PhoneError> {
//! use peerline_ua::{AudioSource, Config, Event, MediaOptions, Phone};
//! let (phone, mut events) = Phone::start(Config::default()).await?;
//! let call = phone
//!     .call("sip:bob@127.0.0.1:5070", MediaOptions { source: AudioSource::Tone(440.0), record: None })
//!     .await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Ended { reason, .. } = event {
//!         println!("call {call} ended: {reason}");
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod account;
mod call_ice;
pub mod config;
pub mod doctor;
mod driver;
pub mod ice_settings;
mod incoming_gate;
pub mod incoming_policy;
mod info;
mod located;
pub mod location;
pub mod media;
mod media_socket;
mod messaging;
mod phone;
pub mod profiles;
mod request_edit;
mod rtcp_component;
mod transfer;
mod wav_cache;

pub use account::AccountConfig;
pub use config::{CodecName, Config, ConfigError, SrtpKeying, SrtpMode};
pub use ice_settings::IceSettings;
pub use incoming_gate::SecurityStats;
pub use media::{AudioSource, LiveStats, MediaOptions, MediaReport};
pub use peerline_net::{CandidateKind, Ledger, PathReport};
pub use phone::{CallId, EndReason, Event, Events, Phone, PhoneError};
