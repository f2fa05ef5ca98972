//! For tests that run a Peerline phone inside a lab namespace as the test binary started
//! again there (`ice_call_nat.rs`, `baresip_ice_nat.rs`, `sip_nat.rs`): the helper's runtime and logs,
//! waiting for events, and the JSON the helper reports.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use peerline_ua::{Event, Events, Ledger, PathReport};
use serde_json::{json, Value};

/// The helper's runtime; with `RUST_LOG` set, its logs go to stderr (e.g.
/// `RUST_LOG=peerline_ua=debug,webrtc_ice=debug,turn=debug`).
pub fn runtime() -> tokio::runtime::Runtime {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The phone's next event within `secs`, logged under `what`.
pub async fn next(events: &mut Events, secs: u64, what: &str) -> Result<Event, String> {
    match tokio::time::timeout(Duration::from_secs(secs), events.recv()).await {
        Ok(Some(e)) => {
            eprintln!("{what}: {e:?}");
            Ok(e)
        }
        Ok(None) => Err(format!("{what}: the phone stopped")),
        Err(_) => Err(format!("{what}: nothing within {secs} s")),
    }
}

/// Waits (20 s at most) for the phone's account to register; a refusal is the error.
pub async fn registered(events: &mut Events) -> Result<(), String> {
    loop {
        match next(events, 20, "registered").await? {
            Event::Registered { .. } => return Ok(()),
            Event::RegistrationFailed { code, reason, .. } => {
                return Err(format!("registration failed: {code} {reason}"))
            }
            _ => {}
        }
    }
}

/// A path report as JSON (null without ICE).
pub fn path_json(p: Option<&PathReport>) -> Value {
    p.and_then(|p| serde_json::from_str(&p.to_json()).ok())
        .unwrap_or(Value::Null)
}

/// A call's traffic ledger as JSON rows: remote, class, sent or received, bytes.
pub fn ledger_json(ledger: &Ledger) -> Value {
    let rows: Vec<Value> = ledger
        .entries()
        .map(|e| {
            json!({
                "remote": e.remote.to_string(),
                "class": e.class.name(),
                "sent": e.direction == peerline_net::Direction::Sent,
                "bytes": e.counter.bytes,
            })
        })
        .collect();
    json!(rows)
}

/// Seconds of a `freq` tone in the WAV at `path` (0 if unreadable).
pub fn tone_secs(path: &Path, freq: f32) -> f32 {
    peerline_audio::read_wav(path)
        .map(|a| peerline_media::tone_seconds(&a.samples, a.sample_rate, freq, 0.5))
        .unwrap_or(0.0)
}
