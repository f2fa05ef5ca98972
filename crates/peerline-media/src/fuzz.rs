//! Entry points shared by the `cargo fuzz` target `rtp` and the corpus replay test.

use std::time::{Duration, Instant};

use crate::codec::{AudioDecoder, Codec};
use crate::dtmf::DtmfReceiver;
use crate::jitter::Playout;
use crate::rtp_io::{parse_rtp, Received, RtpReceiver, RtpReceiverConfig};

/// Drives the whole receive path with arbitrary bytes: first as one datagram, then
/// as a stream of length-prefixed datagrams (1 length byte each) arriving 7 ms apart
/// with a 20 ms playout cadence. Must never panic.
pub fn rtp_input(base: Instant, data: &[u8]) {
    let _ = parse_rtp(data);
    let _ = crate::rtcp::parse_compound(data);
    let mut rx = RtpReceiver::new(RtpReceiverConfig::pcmu(Some(101)));
    let mut dec = AudioDecoder::new(Codec::Pcmu, 20).ok();
    let mut dtmf = DtmfReceiver::new();
    let mut handle = |rx: &mut RtpReceiver, now: Instant, datagram: &[u8]| {
        if let Ok(Received::TelephoneEvent {
            timestamp,
            marker,
            payload,
        }) = rx.receive(now, datagram)
        {
            let _ = dtmf.handle(timestamp, marker, &payload);
        }
    };
    handle(&mut rx, base, data);

    let mut rest = data;
    let mut t = 0u64;
    let mut next_pop = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (datagram, tail) = tail.split_at(n);
        rest = tail;
        t += 7;
        handle(&mut rx, base + Duration::from_millis(t), datagram);
        while next_pop <= t {
            let p = rx.pop(base + Duration::from_millis(next_pop));
            if let (Some(d), false) = (dec.as_mut(), matches!(p, Playout::Buffering)) {
                let _ = d.play(&p);
            }
            next_pop += 20;
        }
    }
    for i in 0..30u64 {
        let _ = rx.pop(base + Duration::from_millis(next_pop + 20 * i));
    }
    let _ = rx.stats();
    let _ = rx.take_report_interval();
}
