#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RTP sender/receiver and jitter buffer behaviour under simulated networks.

use std::time::{Duration, Instant};

use peerline_media::{
    parse_rtp, JitterBuffer, JitterConfig, Playout, PushOutcome, Received, RtpError, RtpReceiver,
    RtpReceiverConfig, RtpSender,
};

/// Tiny deterministic PRNG (xorshift64*) so simulations are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn sender_stamps_and_wraps() {
    let mut tx = RtpSender::new(0xDEAD_BEEF, 0, 8000, 65534, u32::MAX - 159);
    let p1 = parse_rtp(&tx.send_frame(&[0xFF; 160], 160).unwrap()).unwrap();
    let p2 = parse_rtp(&tx.send_frame(&[0xFF; 160], 160).unwrap()).unwrap();
    let p3 = parse_rtp(&tx.send_frame(&[0xFF; 160], 160).unwrap()).unwrap();
    assert_eq!(p1.header.version, 2);
    assert_eq!(p1.header.ssrc, 0xDEAD_BEEF);
    assert_eq!(p1.header.payload_type, 0);
    assert_eq!(
        [
            p1.header.sequence_number,
            p2.header.sequence_number,
            p3.header.sequence_number
        ],
        [65534, 65535, 0]
    );
    assert_eq!(
        [
            p1.header.timestamp,
            p2.header.timestamp,
            p3.header.timestamp
        ],
        [u32::MAX - 159, 0, 160]
    );
    assert!(p1.header.marker, "first packet starts a talkspurt");
    assert!(!p2.header.marker && !p3.header.marker);
    assert_eq!(p1.payload.len(), 160);

    tx.skip(800);
    let p4 = parse_rtp(&tx.send_frame(&[1, 2, 3], 160).unwrap()).unwrap();
    assert!(p4.header.marker, "marker after silence");
    assert_eq!(p4.header.timestamp, 320 + 800);
    assert_eq!(
        p4.header.sequence_number, 1,
        "skip does not consume sequence numbers"
    );
    assert_eq!(&p4.payload[..], &[1, 2, 3]);

    // Telephone events share the sequence space but carry their own timestamp.
    let ev = parse_rtp(&tx.send_raw(101, 5000, true, &[1, 0x8a, 0, 160]).unwrap()).unwrap();
    assert_eq!(ev.header.sequence_number, 2);
    assert_eq!(ev.header.payload_type, 101);
    assert_eq!(ev.header.timestamp, 5000);
    assert_eq!(tx.next_timestamp(), 320 + 800 + 160);
    assert_eq!(tx.stats().packets_sent, 5);
    assert_eq!(tx.stats().octets_sent, 160 * 3 + 3 + 4);
}

fn header(b0: u8) -> Vec<u8> {
    vec![b0, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7]
}

#[test]
fn parser_rejects_malformed() {
    assert_eq!(parse_rtp(&[0x80, 0, 0]), Err(RtpError::TooShort));
    assert_eq!(parse_rtp(&header(0x40)), Err(RtpError::BadVersion(1)));
    // CC=2 but no CSRCs.
    assert_eq!(parse_rtp(&header(0x82)), Err(RtpError::CsrcPastEnd));
    // Extension bit with no extension header.
    assert_eq!(parse_rtp(&header(0x90)), Err(RtpError::ExtensionPastEnd));
    // Extension claiming 10 words with 1 present.
    let mut p = header(0x90);
    p.extend_from_slice(&[0xBE, 0xDE, 0, 10, 0x10, 0xAA, 0, 0]);
    assert_eq!(parse_rtp(&p), Err(RtpError::ExtensionPastEnd));
    // One-byte element whose length runs past the extension (would make `rtp` panic).
    let mut p = header(0x90);
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x1F, 0xAA, 0, 0]);
    p.extend_from_slice(&[0u8; 4]);
    assert_eq!(parse_rtp(&p), Err(RtpError::BadExtensionElement));
    // Two-byte element running past the end.
    let mut p = header(0x90);
    p.extend_from_slice(&[0x10, 0x00, 0, 1, 0x01, 0x09, 0, 0]);
    assert_eq!(parse_rtp(&p), Err(RtpError::BadExtensionElement));
    // Padding bit with padding count 0, and larger than the payload.
    let mut p = header(0xA0);
    p.extend_from_slice(&[1, 2, 3, 0]);
    assert_eq!(parse_rtp(&p), Err(RtpError::BadPadding));
    let mut p = header(0xA0);
    p.extend_from_slice(&[1, 2, 3, 9]);
    assert_eq!(parse_rtp(&p), Err(RtpError::BadPadding));
    assert_eq!(parse_rtp(&header(0xA0)), Err(RtpError::BadPadding));
    // RTCP SR on the same port.
    let sr = [0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(parse_rtp(&sr), Err(RtpError::LooksLikeRtcp(200)));
}

#[test]
fn parser_accepts_valid_padding_csrc_extension() {
    let mut p = header(0xB1); // padding, extension, one CSRC
    p.extend_from_slice(&[0, 0, 0, 42]); // CSRC
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // id 1 len 1 + padding
    p.extend_from_slice(&[9, 8, 7]); // payload
    p.extend_from_slice(&[0, 0, 3]); // 3 padding bytes
    let pkt = parse_rtp(&p).unwrap();
    assert_eq!(pkt.header.csrc, vec![42]);
    assert_eq!(&pkt.payload[..], &[9, 8, 7]);
    assert_eq!(pkt.header.extensions.len(), 1);
    assert_eq!(pkt.header.ssrc, 7);
}

fn pcmu_rx() -> RtpReceiver {
    RtpReceiver::new(RtpReceiverConfig::pcmu(Some(101)))
}

#[test]
fn receiver_counts_loss_duplicates_reorder_and_malformed() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(1234, 0, 8000, 100, 0);
    let pkts: Vec<_> = (0..10)
        .map(|_| tx.send_frame(&[0xFF; 160], 160).unwrap())
        .collect();
    let mut rx = pcmu_rx();
    // Deliver 0,1,3,2,2,5,6,7,8,9 (4 lost, 2 duplicated, 2 reordered).
    for (i, idx) in [0usize, 1, 3, 2, 2, 5, 6, 7, 8, 9].iter().enumerate() {
        rx.receive(t0 + ms(20 * i as u64), &pkts[*idx]).unwrap();
    }
    assert!(rx.receive(t0, &[1, 2, 3]).is_err());
    let mut wrong_pt = pkts[0].to_vec();
    wrong_pt[1] = 18;
    assert_eq!(
        rx.receive(t0, &wrong_pt),
        Err(RtpError::UnknownPayloadType(18))
    );
    let s = rx.stats();
    assert_eq!(rx.remote_ssrc(), Some(1234));
    assert_eq!(s.packets_received, 9);
    assert_eq!(s.duplicates, 1);
    assert_eq!(s.packets_lost, 1);
    assert_eq!(s.reordered, 1);
    assert_eq!(s.malformed, 1);
    assert_eq!(s.unknown_payload_type, 1);
    assert_eq!(s.octets_received, 9 * 160);
    let (fraction, cumulative) = rx.take_report_interval();
    assert_eq!(cumulative, 1);
    assert_eq!(fraction, (256 / 10) as u8);
}

#[test]
fn jitter_is_zero_when_paced_and_measured_when_not() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(1, 0, 8000, 0, 0);
    let mut rx = pcmu_rx();
    for i in 0..200u64 {
        rx.receive(t0 + ms(20 * i), &tx.send_frame(&[0; 160], 160).unwrap())
            .unwrap();
    }
    assert!(rx.stats().jitter < 1e-6, "jitter {}", rx.stats().jitter);

    // Alternate 0 / 10 ms extra delay: |D| = 10 ms = 80 ticks each packet, so the
    // RFC 3550 estimator converges to 80.
    let mut tx = RtpSender::new(2, 0, 8000, 0, 0);
    let mut rx = pcmu_rx();
    for i in 0..400u64 {
        let extra = if i % 2 == 0 { 0 } else { 10 };
        rx.receive(
            t0 + ms(20 * i + extra),
            &tx.send_frame(&[0; 160], 160).unwrap(),
        )
        .unwrap();
    }
    let j = rx.stats().jitter;
    assert!((j - 80.0).abs() < 2.0, "jitter {j}");
    assert!((rx.stats().jitter_ms(8000) - 10.0).abs() < 0.3);
}

#[test]
fn ssrc_change_needs_probation() {
    let t0 = Instant::now();
    let mut a = RtpSender::new(1, 0, 8000, 0, 0);
    let mut b = RtpSender::new(2, 0, 8000, 500, 90_000);
    let mut rx = pcmu_rx();
    for _ in 0..5 {
        rx.receive(t0, &a.send_frame(&[0; 160], 160).unwrap())
            .unwrap();
    }
    // A single stray packet from another SSRC is dropped.
    assert_eq!(
        rx.receive(t0, &b.send_frame(&[0; 160], 160).unwrap()),
        Err(RtpError::UnexpectedSsrc(2))
    );
    rx.receive(t0, &a.send_frame(&[0; 160], 160).unwrap())
        .unwrap();
    assert_eq!(rx.remote_ssrc(), Some(1));
    // Three consecutive packets from the new source switch to it.
    assert!(rx
        .receive(t0, &b.send_frame(&[0; 160], 160).unwrap())
        .is_err());
    assert!(rx
        .receive(t0, &b.send_frame(&[0; 160], 160).unwrap())
        .is_err());
    assert!(rx
        .receive(t0, &b.send_frame(&[0; 160], 160).unwrap())
        .is_ok());
    assert_eq!(rx.remote_ssrc(), Some(2));
    let s = rx.stats();
    assert_eq!(s.ssrc_changes, 1);
    assert_eq!(s.foreign_ssrc, 3);
}

#[test]
fn telephone_events_bypass_jitter_buffer() {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(9, 0, 8000, 0, 0);
    let mut rx = pcmu_rx();
    let r = rx
        .receive(t0, &tx.send_raw(101, 0, true, &[5, 0x0a, 0, 160]).unwrap())
        .unwrap();
    assert!(matches!(
        r,
        Received::TelephoneEvent {
            timestamp: 0,
            marker: true,
            ..
        }
    ));
    assert!(rx.jitter_buffer().is_empty());
}

/// Drives sender -> network -> receiver with a 20 ms pop cadence and returns the
/// sequence of playout results (Frame timestamps or Missing) after buffering.
struct Sim {
    delays_ms: Vec<Option<u64>>,
    duplicate_every: Option<usize>,
}

fn run(sim: &Sim, rx: &mut RtpReceiver) -> Vec<Playout> {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(77, 0, 8000, 65000, u32::MAX - 3200);
    let mut in_flight: Vec<(u64, bytes::Bytes)> = Vec::new();
    for (i, d) in sim.delays_ms.iter().enumerate() {
        let mut payload = [0u8; 160];
        payload[0] = i as u8;
        let pkt = tx.send_frame(&payload, 160).unwrap();
        if let Some(d) = d {
            in_flight.push((20 * i as u64 + d, pkt.clone()));
            if sim.duplicate_every.is_some_and(|n| i % n == 0) {
                in_flight.push((20 * i as u64 + d + 3, pkt));
            }
        }
    }
    in_flight.sort_by_key(|(t, _)| *t);
    let end = 20 * sim.delays_ms.len() as u64 + 600;
    let mut out = Vec::new();
    let mut next_arrival = 0;
    // 1 ms simulation step; pop every 20 ms, offset by 5 ms from the send grid.
    for t in 0..end {
        while next_arrival < in_flight.len() && in_flight[next_arrival].0 <= t {
            let _ = rx.receive(t0 + ms(t), &in_flight[next_arrival].1);
            next_arrival += 1;
        }
        if t % 20 == 5 {
            out.push(rx.pop(t0 + ms(t)));
        }
    }
    out
}

fn frames(out: &[Playout]) -> Vec<u8> {
    out.iter()
        .filter_map(|p| match p {
            Playout::Frame(f) => Some(f.payload[0]),
            _ => None,
        })
        .collect()
}

#[test]
fn in_order_stream_plays_every_frame_once_in_order() {
    let mut rx = pcmu_rx();
    let sim = Sim {
        delays_ms: vec![Some(30); 100],
        duplicate_every: None,
    };
    let out = run(&sim, &mut rx);
    let f = frames(&out);
    assert_eq!(f, (0..100).map(|i| i as u8).collect::<Vec<_>>());
    let first = out
        .iter()
        .position(|p| matches!(p, Playout::Frame(_)))
        .unwrap();
    let last = out
        .iter()
        .rposition(|p| matches!(p, Playout::Frame(_)))
        .unwrap();
    assert!(
        out[first..=last]
            .iter()
            .all(|p| matches!(p, Playout::Frame(_))),
        "no gaps in a clean stream"
    );
    // Starts after the initial delay, not immediately.
    assert!(matches!(out[0], Playout::Buffering));
    let s = rx.jitter_buffer().stats();
    assert_eq!((s.late, s.duplicates), (0, 0));
    // After the stream stops: concealment for up to max_delay (300 ms = 15 frames),
    // then back to buffering.
    assert_eq!(s.missing, 15);
    assert!(out[last + 1..last + 16]
        .iter()
        .all(|p| matches!(p, Playout::Missing { .. })));
    assert!(matches!(out[last + 16], Playout::Buffering));
    assert!(!rx.jitter_buffer().is_playing());
}

#[test]
fn reordering_within_delay_is_repaired_and_duplicates_dropped() {
    let mut rx = pcmu_rx();
    let mut rng = Rng(42);
    // Each packet delayed 0..40 ms: reorders heavily (20 ms spacing).
    let delays = (0..300).map(|_| Some(rng.below(40))).collect();
    let sim = Sim {
        delays_ms: delays,
        duplicate_every: Some(7),
    };
    let out = run(&sim, &mut rx);
    let f = frames(&out);
    assert!(rx.stats().reordered > 20, "the simulation did reorder");
    assert!(rx.stats().duplicates > 30);
    // Played frames are strictly increasing (mod 256 payload counter) — no
    // duplicate and no out-of-order playout.
    for w in f.windows(2) {
        assert_ne!(w[0], w[1], "duplicate played");
        assert!(
            w[1].wrapping_sub(w[0]) < 128,
            "out of order: {} then {}",
            w[0],
            w[1]
        );
    }
    let js = rx.jitter_buffer().stats();
    assert!(f.len() >= 290, "played {} of 300 (stats {js:?})", f.len());
}

#[test]
fn loss_yields_missing_frames_for_exactly_the_lost_ones() {
    let mut rx = pcmu_rx();
    let mut delays = vec![Some(10); 60];
    for i in [10, 11, 30, 45] {
        delays[i] = None;
    }
    let out = run(
        &Sim {
            delays_ms: delays,
            duplicate_every: None,
        },
        &mut rx,
    );
    let first = out
        .iter()
        .position(|p| matches!(p, Playout::Frame(_)))
        .unwrap();
    let played: Vec<Option<u8>> = out[first..first + 60]
        .iter()
        .map(|p| match p {
            Playout::Frame(f) => Some(f.payload[0]),
            _ => None,
        })
        .collect();
    for (i, p) in played.iter().enumerate() {
        if [10, 11, 30, 45].contains(&i) {
            assert_eq!(*p, None, "slot {i} should be concealed");
            assert!(matches!(out[first + i], Playout::Missing { .. }));
        } else {
            assert_eq!(*p, Some(i as u8), "slot {i}");
        }
    }
    assert_eq!(rx.stats().packets_lost, 4);
}

#[test]
fn adaptive_delay_grows_with_jitter_and_losses_stay_low() {
    let mut rx = pcmu_rx();
    let mut rng = Rng(7);
    // Mostly 10 ms, with spikes to 100 ms on 10% of packets.
    let delays = (0..1000)
        .map(|_| {
            Some(if rng.below(10) == 0 {
                100
            } else {
                10 + rng.below(10)
            })
        })
        .collect();
    let out = run(
        &Sim {
            delays_ms: delays,
            duplicate_every: None,
        },
        &mut rx,
    );
    let jb = rx.jitter_buffer();
    let target = jb.target_delay();
    assert!(
        target >= ms(40),
        "target {target:?} should follow the jitter"
    );
    assert!(target <= ms(300));
    let f = frames(&out);
    // Late packets early on make the buffer grow; overall most frames play.
    assert!(f.len() > 900, "played {}", f.len());
    let s = jb.stats();
    assert!(s.late < 60, "late {}", s.late);
    assert!(jb.playout_delay() > ms(10));
}

#[test]
fn adaptive_delay_shrinks_when_network_calms() {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_delay_ms: 200,
        ..JitterConfig::new(8000, 20)
    });
    let t0 = Instant::now();
    let mut popped = 0;
    for i in 0..500u64 {
        let p = packet(1, i as u16, (i * 160) as u32, false);
        jb.push(t0 + ms(20 * i + 5), &p);
        if matches!(jb.pop(t0 + ms(20 * i + 10)), Playout::Frame(_)) {
            popped += 1;
        }
    }
    assert_eq!(
        jb.target_delay(),
        ms(u64::from(JitterConfig::new(8000, 20).min_delay_ms)),
        "target falls to min_delay"
    );
    assert!(
        jb.playout_delay() < ms(90),
        "delay should converge down, is {:?}",
        jb.playout_delay()
    );
    assert!(jb.stats().dropped_to_shrink > 0);
    assert!(popped > 450);
}

fn packet(ssrc: u32, seq: u16, ts: u32, marker: bool) -> peerline_media::RtpPacket {
    let mut p = peerline_media::RtpPacket::default();
    p.header.version = 2;
    p.header.ssrc = ssrc;
    p.header.sequence_number = seq;
    p.header.timestamp = ts;
    p.header.marker = marker;
    p.payload = bytes::Bytes::from(vec![seq as u8; 160]);
    p
}

#[test]
fn too_late_and_duplicate_packets_are_dropped() {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_delay_ms: 20,
        min_delay_ms: 20,
        ..JitterConfig::new(8000, 20)
    });
    let t0 = Instant::now();
    assert_eq!(jb.push(t0, &packet(1, 0, 0, true)), PushOutcome::Accepted);
    assert_eq!(jb.push(t0, &packet(1, 0, 0, true)), PushOutcome::Duplicate);
    assert!(matches!(jb.pop(t0 + ms(20)), Playout::Frame(f) if f.seq == 0));
    assert!(matches!(
        jb.pop(t0 + ms(40)),
        Playout::Missing { timestamp: 160 }
    ));
    // Seq 1 arrives after its slot was concealed with the buffer empty: it was late, not
    // lost, so its slot was kept and it plays (the delay grew by one frame).
    assert_eq!(
        jb.push(t0 + ms(45), &packet(1, 1, 160, false)),
        PushOutcome::Accepted
    );
    assert_eq!(
        jb.push(t0 + ms(45), &packet(1, 2, 320, false)),
        PushOutcome::Accepted
    );
    assert!(matches!(jb.pop(t0 + ms(60)), Playout::Frame(f) if f.seq == 1));
    assert!(matches!(jb.pop(t0 + ms(80)), Playout::Frame(f) if f.seq == 2));
    // Seq 4 is here before seq 3: seq 3's slot is a gap, concealed and passed, so seq 3
    // arriving after it is too late.
    assert_eq!(
        jb.push(t0 + ms(85), &packet(1, 4, 640, false)),
        PushOutcome::Accepted
    );
    assert!(matches!(
        jb.pop(t0 + ms(100)),
        Playout::Missing { timestamp: 480 }
    ));
    assert_eq!(
        jb.push(t0 + ms(105), &packet(1, 3, 480, false)),
        PushOutcome::TooLate
    );
    assert!(matches!(jb.pop(t0 + ms(120)), Playout::Frame(f) if f.seq == 4));
    let s = jb.stats();
    assert_eq!(
        (s.late, s.duplicates, s.missing, s.played, s.underflows),
        (1, 1, 2, 4, 1)
    );
    assert!(jb.target_delay() > ms(20), "late packet bumps the target");
}

#[test]
fn ssrc_change_and_timestamp_jump_reset() {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_delay_ms: 20,
        min_delay_ms: 20,
        ..JitterConfig::new(8000, 20)
    });
    let t0 = Instant::now();
    jb.push(t0, &packet(1, 0, 0, true));
    jb.push(t0, &packet(1, 1, 160, false));
    assert_eq!(
        jb.push(t0, &packet(2, 900, 777_777, true)),
        PushOutcome::AcceptedAfterReset
    );
    assert_eq!(jb.len(), 1);
    assert_eq!(jb.stats().ssrc_resets, 1);
    assert!(matches!(jb.pop(t0 + ms(20)), Playout::Frame(f) if f.seq == 900));
    // Same SSRC, timestamp jumps 10 s ahead: reset and re-buffer.
    assert_eq!(
        jb.push(t0 + ms(25), &packet(2, 901, 777_777 + 80_000, false)),
        PushOutcome::AcceptedAfterReset
    );
    assert!(!jb.is_playing());
    assert!(matches!(jb.pop(t0 + ms(40)), Playout::Buffering));
    assert!(matches!(jb.pop(t0 + ms(60)), Playout::Frame(f) if f.seq == 901));
    assert_eq!(jb.stats().resets, 2);
}

#[test]
fn talkspurt_after_silence_resyncs() {
    let mut jb = JitterBuffer::new(JitterConfig {
        initial_delay_ms: 20,
        min_delay_ms: 20,
        ..JitterConfig::new(8000, 20)
    });
    let t0 = Instant::now();
    for i in 0..5u64 {
        jb.push(
            t0 + ms(20 * i),
            &packet(1, i as u16, (160 * i) as u32, i == 0),
        );
        jb.pop(t0 + ms(20 * i + 20));
    }
    // 200 ms of silence suppression, then a marked packet.
    jb.pop(t0 + ms(120));
    let ts = 160 * 15;
    jb.push(t0 + ms(300), &packet(1, 5, ts, true));
    let p = jb.pop(t0 + ms(300));
    assert!(matches!(&p, Playout::Frame(f) if f.seq == 5), "got {p:?}");
    assert_eq!(jb.stats().resyncs, 1);
}

#[test]
fn overflow_is_bounded() {
    let mut jb = JitterBuffer::new(JitterConfig {
        max_packets: 50,
        ..JitterConfig::new(8000, 20)
    });
    let t0 = Instant::now();
    for i in 0..500u32 {
        jb.push(t0, &packet(1, i as u16, i * 160, false));
    }
    assert_eq!(jb.len(), 50);
    assert_eq!(jb.stats().overflow, 450);
}

/// A PCMU "call": 440 Hz encoded, packetized, sent over a network with jitter, 3% loss
/// and duplicates, received, buffered, decoded with concealment; the far end hears
/// 440 Hz.
#[test]
fn pcmu_call_carries_the_tone_end_to_end() {
    use peerline_media::{detect_tone, dominant_frequency, AudioDecoder, AudioEncoder, Codec};
    let t0 = Instant::now();
    let mut rng = Rng(2024);
    let mut tone = peerline_media::ToneGenerator::new(440.0, 0.3, 8000);
    let mut enc = AudioEncoder::new(Codec::Pcmu).unwrap();
    let mut tx = RtpSender::new(0x1111, 0, 8000, 40000, 123_456);
    let mut net: Vec<(u64, bytes::Bytes)> = Vec::new();
    for i in 0..150u64 {
        let pcm = tone.samples(160);
        let pkt = tx.send_frame(&enc.encode(&pcm).unwrap(), 160).unwrap();
        if rng.below(100) < 3 {
            continue;
        }
        let at = 20 * i + 20 + rng.below(30);
        if rng.below(100) < 5 {
            net.push((at + 1, pkt.clone()));
        }
        net.push((at, pkt));
    }
    net.sort_by_key(|(t, _)| *t);
    let mut rx = pcmu_rx();
    let mut dec = AudioDecoder::new(Codec::Pcmu, 20).unwrap();
    let mut heard = Vec::new();
    let mut next = 0;
    for t in 0..3300u64 {
        while next < net.len() && net[next].0 <= t {
            let _ = rx.receive(t0 + ms(t), &net[next].1);
            next += 1;
        }
        if t % 20 == 0 {
            let p = rx.pop(t0 + ms(t));
            if !matches!(p, Playout::Buffering) {
                heard.extend(dec.play(&p));
            }
        }
    }
    assert!(heard.len() >= 150 * 160, "heard {} samples", heard.len());
    let f = dominant_frequency(&heard[..8000], 8000);
    assert!((f - 440.0).abs() < 2.0, "dominant {f}");
    assert!(detect_tone(&heard[..8000], 8000, 440.0) > 0.7);
    assert!(detect_tone(&heard[..8000], 8000, 1000.0) < 0.01);
    let s = rx.stats();
    assert!(s.packets_lost >= 1 && s.duplicates >= 1, "{s:?}");
    assert!(dec.concealed() >= s.packets_lost);
}

/// Clock drift (RFC 3550 leaves it to the receiver): the sender's clock runs 1 % fast or
/// 1 % slow against ours for 60 s. The buffer must keep the delay bounded by dropping
/// (fast sender) or concealing (slow sender) frames, never drifting to its cap or to empty.
#[test]
fn clock_drift_keeps_the_delay_bounded() {
    for (name, sender_period_us) in [("fast sender", 19_800u64), ("slow sender", 20_200)] {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, 20));
        let t0 = Instant::now();
        let mut next_pop = 0u64; // our 20 ms playout clock, in µs
        let mut frames = 0u64;
        let mut max_delay = Duration::ZERO;
        for i in 0..3000u64 {
            let arrival = i * sender_period_us;
            while next_pop <= arrival {
                let at = t0 + Duration::from_micros(next_pop);
                if matches!(jb.pop(at), Playout::Frame(_)) {
                    frames += 1;
                }
                if i > 100 {
                    max_delay = max_delay.max(jb.playout_delay());
                }
                next_pop += 20_000;
            }
            let p = packet(7, i as u16, (i * 160) as u32, i == 0);
            jb.push(t0 + Duration::from_micros(arrival), &p);
        }
        let s = jb.stats();
        assert!(
            max_delay <= ms(200),
            "{name}: delay grew to {max_delay:?} ({s:?})"
        );
        // 60 s at 50 frames/s minus what drift forces us to drop or conceal (~1 %).
        assert!(
            frames >= 2900,
            "{name}: only {frames} frames played ({s:?})"
        );
        if sender_period_us < 20_000 {
            assert!(s.dropped_to_shrink + s.overflow > 0, "{name}: {s:?}");
        } else {
            assert!(s.missing > 0, "{name}: {s:?}");
        }
    }
}

/// A burst of loss while the buffer is empty: each period is concealed once (the
/// underflows stand for the lost frames), and the frame after the burst plays at once,
/// so the loss adds no delay.
#[test]
fn burst_loss_with_an_empty_buffer_is_concealed_once_and_adds_no_delay() {
    let mut jb = JitterBuffer::new(JitterConfig::new(8000, 20));
    let t0 = Instant::now();
    let mut kinds = Vec::new();
    for i in 0..40u64 {
        // Frames 10..15 are lost; each other arrives 21 ms before its pop (the floor is
        // one frame, so pop i plays frame i).
        if !(10..15).contains(&i) {
            jb.push(
                t0 + ms(20 * i + 19),
                &packet(3, i as u16, (i * 160) as u32, i == 0),
            );
        }
        kinds.push(match jb.pop(t0 + ms(20 * i + 40)) {
            Playout::Frame(f) => format!("F{}", f.seq),
            Playout::Missing { timestamp } => format!("M{}", timestamp / 160),
            Playout::Buffering => "B".into(),
        });
    }
    let expect: Vec<String> = (0..39)
        .map(|i| {
            if (10..15).contains(&i) {
                format!("M{i}")
            } else {
                format!("F{i}")
            }
        })
        .collect();
    assert_eq!(kinds[0], "F0", "{kinds:?}");
    assert_eq!(&kinds[..39], &expect[..], "{kinds:?}");
    let s = jb.stats();
    assert_eq!((s.missing, s.underflows, s.late), (5, 5, 0), "{s:?}");
    assert!(jb.playout_delay() < ms(25), "{:?}", jb.playout_delay());
}
