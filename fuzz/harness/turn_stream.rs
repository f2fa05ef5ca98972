//! Harness for the `turn_stream` fuzz target, shared with the corpus replay test in
//! `crates/peerline-net/tests/fuzz_corpus_turn_stream.rs` (included there by `#[path]`).
//!
//! The bytes are a TURN-over-TCP/TLS stream as the loopback bridge reads it from the server
//! (`peerline_net::ice::turn_stream_framer`): pushed in reads of every size the first byte
//! picks, each popped empty; the messages that come out are the same whatever the read
//! sizes; the buffer stays bounded. The bytes are also a datagram from the agent's TURN
//! client (`datagram_to_stream`): whatever it accepts, a fresh framer gives back exactly.

use peerline_net::ice::turn_stream_framer::{
    datagram_to_stream, TurnFrameKind, TurnStreamFramer, MAX_BUFFERED, READ_CHUNK,
};

type Frames = Vec<(TurnFrameKind, Vec<u8>)>;

/// Pushes `data` in reads of `chunk` bytes, popping after each; returns the frames and
/// whether the stream ended in a framing error.
fn frame(data: &[u8], chunk: usize) -> (Frames, bool) {
    let mut f = TurnStreamFramer::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.clamp(1, READ_CHUNK)) {
        f.push(piece);
        loop {
            match f.pop() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        assert!(f.buffered() <= MAX_BUFFERED, "buffer {}", f.buffered());
    }
    (out, false)
}

/// Must never panic on any input.
pub fn run(data: &[u8]) {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let whole = frame(data, data.len().max(1));
    for size in [1, chunk, 3, READ_CHUNK] {
        assert_eq!(frame(data, size), whole, "read size {size}");
    }
    if let Ok((kind, bytes)) = datagram_to_stream(data) {
        assert_eq!(bytes.len() % 4, 0);
        let (frames, failed) = frame(&bytes, bytes.len());
        assert!(!failed);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, kind);
        assert!(data.starts_with(&frames[0].1));
    }
}
