#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Per-frame / per-packet cost of the media hot paths. Figures and the derived
//! per-call CPU share are in docs/benchmarks.md ("Media micro-benchmarks").
//!
//! `cargo bench -p peerline-media -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use peerline_media::{
    parse_compound, parse_rtp, sine, AudioDecoder, AudioEncoder, Codec, JitterBuffer, JitterConfig,
    NtpTime, OpusEncoder, OpusSettings, RtcpState, RtpReceiver, RtpReceiverConfig, RtpSender,
};

fn codecs(c: &mut Criterion) {
    // Opus, 48 kHz mono, 20 ms, default settings (32 kbit/s, complexity 5, FEC on).
    let pcm48 = sine(440.0, 0.3, 48000, 960 * 50);
    let mut enc = AudioEncoder::new(Codec::Opus).unwrap();
    let mut i = 0;
    c.bench_function("opus_encode_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % 50;
            black_box(enc.encode(&pcm48[i * 960..(i + 1) * 960]).unwrap())
        })
    });
    let mut enc = OpusEncoder::new(OpusSettings::default()).unwrap();
    let packets: Vec<Vec<u8>> = pcm48.chunks(960).map(|f| enc.encode(f).unwrap()).collect();
    let mut dec = AudioDecoder::new(Codec::Opus, 20).unwrap();
    let mut i = 0;
    c.bench_function("opus_decode_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            black_box(dec.decode(&packets[i]))
        })
    });

    for (codec, name) in [(Codec::Pcmu, "pcmu"), (Codec::G722, "g722")] {
        let n = codec.samples_per_frame(20);
        let pcm = sine(440.0, 0.3, codec.pcm_rate(), n);
        let mut enc = AudioEncoder::new(codec).unwrap();
        c.bench_function(&format!("{name}_encode_20ms"), |b| {
            b.iter(|| black_box(enc.encode(black_box(&pcm)).unwrap()))
        });
        let payload = AudioEncoder::new(codec).unwrap().encode(&pcm).unwrap();
        let mut dec = AudioDecoder::new(codec, 20).unwrap();
        c.bench_function(&format!("{name}_decode_20ms"), |b| {
            b.iter(|| black_box(dec.decode(black_box(&payload))))
        });
    }
}

fn rtp(c: &mut Criterion) {
    let payload = vec![0x55u8; 160];
    let mut tx = RtpSender::new(0x1234_5678, 0, 8000, 1, 1000);
    c.bench_function("rtp_packetize", |b| {
        b.iter(|| black_box(tx.send_frame(black_box(&payload), 160).unwrap()))
    });
    let datagram = tx.send_frame(&payload, 160).unwrap();
    c.bench_function("rtp_parse", |b| {
        b.iter(|| black_box(parse_rtp(black_box(&datagram)).unwrap()))
    });

    // Jitter buffer: one push + one pop per packet, steady 20 ms stream.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(JitterConfig::new(8000, 20));
    let mut tx = RtpSender::new(0x1234_5678, 0, 8000, 1, 1000);
    let mut k = 0u64;
    c.bench_function("jitter_push_pop", |b| {
        b.iter(|| {
            let pkt = parse_rtp(&tx.send_frame(&payload, 160).unwrap()).unwrap();
            let now = t0 + Duration::from_millis(20 * k);
            k += 1;
            black_box(jb.push(now, &pkt));
            black_box(jb.pop(now))
        })
    });
    // The same through RtpReceiver (parse, SSRC/sequence/jitter stats, buffer, pop).
    let mut rx = RtpReceiver::new(RtpReceiverConfig::pcmu(Some(101)));
    let mut tx = RtpSender::new(0x1234_5678, 0, 8000, 1, 1000);
    let mut k = 0u64;
    c.bench_function("rtp_receive_pop", |b| {
        b.iter(|| {
            let d = tx.send_frame(&payload, 160).unwrap();
            let now = t0 + Duration::from_millis(20 * k);
            k += 1;
            let _ = black_box(rx.receive(now, &d));
            black_box(rx.pop(now))
        })
    });
}

fn rtcp(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut tx = RtpSender::new(0x1111, 0, 8000, 1, 1000);
    let mut rx = RtpReceiver::new(RtpReceiverConfig::pcmu(None));
    let mut peer = RtpSender::new(0x2222, 0, 8000, 1, 1000);
    for i in 0..10u64 {
        let _ = tx.send_frame(&[0u8; 160], 160).unwrap();
        let d = peer.send_frame(&[0u8; 160], 160).unwrap();
        let _ = rx.receive(t0 + Duration::from_millis(20 * i), &d);
    }
    let mut state = RtcpState::new("bench@peerline");
    let ntp = NtpTime(0xE000_0000_0000_0000);
    c.bench_function("rtcp_build_report", |b| {
        b.iter(|| black_box(state.build_report(t0, ntp, 0x1111, Some(&tx), Some(&mut rx))))
    });
    let report = state.build_report(t0, ntp, 0x1111, Some(&tx), Some(&mut rx));
    c.bench_function("rtcp_parse", |b| {
        b.iter(|| black_box(parse_compound(black_box(&report)).unwrap()))
    });
    let mut other = RtcpState::new("peer@peerline");
    c.bench_function("rtcp_handle", |b| {
        b.iter(|| black_box(other.handle(t0, ntp, 0x2222, black_box(&report)).unwrap()))
    });
}

criterion_group!(benches, codecs, rtp, rtcp);
criterion_main!(benches);
