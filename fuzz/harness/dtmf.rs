//! Harness for the `dtmf` fuzz target, shared with the corpus replay test in
//! `crates/peerline-media/tests/fuzz_corpus_dtmf.rs` (included there by `#[path]`).
//!
//! RFC 4733 telephone-event payloads: `TelephoneEvent::parse` must round-trip through
//! `to_bytes`; the same bytes read as a stream of packets must keep `DtmfReceiver`
//! consistent (at most one key per packet, at most two updates per packet).

use peerline_media::{DtmfReceiver, TelephoneEvent};

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    if let Ok(ev) = TelephoneEvent::parse(data) {
        let back = TelephoneEvent::parse(&ev.to_bytes());
        assert_eq!(back.ok(), Some(ev), "telephone-event round trip");
        assert!(ev.volume <= 63);
    }
    // The stream: records of [ts_hi, ts_lo, flags, len, payload(len ≤ 8)]; the timestamp
    // is kept 16-bit so events repeat and go backwards often.
    let mut rx = DtmfReceiver::new();
    let mut rest = data;
    let mut presses = 0usize;
    while let [ts_hi, ts_lo, flags, len, tail @ ..] = rest {
        let n = usize::from(*len % 9).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        let ts = u32::from(u16::from_be_bytes([*ts_hi, *ts_lo]));
        if let Ok(updates) = rx.handle(ts, flags & 1 != 0, payload) {
            assert!(updates.len() <= 2, "at most began + ended per packet");
            presses += 1;
        }
    }
    assert!(
        rx.keys().chars().count() <= presses,
        "more keys than packets"
    );
}
