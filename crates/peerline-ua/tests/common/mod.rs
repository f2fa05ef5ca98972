//! Shared by the phone's loopback tests: a config on 127.0.0.1, bounded event waits,
//! tone media options.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use peerline_ua::{AudioSource, Config, Event, Events, MediaOptions};

/// A phone named `user` listening on 127.0.0.1 (any port), defaults otherwise.
pub fn config(user: &str) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}

/// The first event `pick` accepts, within 5 s; panics naming `what` otherwise.
pub async fn wait_for<T>(
    events: &mut Events,
    what: &str,
    pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    wait_within(events, what, 5, pick).await
}

/// The first event `pick` accepts, within `secs`; panics naming `what` otherwise.
pub async fn wait_within<T>(
    events: &mut Events,
    what: &str,
    secs: u64,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let r = tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(ev) = events.recv().await {
            if let Some(t) = pick(&ev) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match r {
        Ok(Some(t)) => t,
        _ => panic!("timed out waiting for {what}"),
    }
}

/// Play a tone of `hz`, and record what arrives to `record` if given.
pub fn tone(hz: f32, record: Option<PathBuf>) -> MediaOptions {
    MediaOptions {
        source: AudioSource::Tone(hz),
        record,
    }
}
