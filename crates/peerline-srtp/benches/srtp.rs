//! SRTP protect + unprotect throughput for 172-byte RTP packets (12-byte header + 160 bytes
//! of G.711 at 20 ms), one core. Target: ≥ 1,000,000 protect+unprotect pairs per second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use peerline_srtp::{Direction, SrtpContext, SrtpSuite};

fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xd5, 160));
    assert_eq!(p.len(), 172);
    p
}

fn contexts(suite: SrtpSuite) -> (SrtpContext, SrtpContext) {
    let key: Vec<u8> = (0..suite.key_salt_len() as u8).collect();
    (
        SrtpContext::new(suite, &key, Direction::Outbound).unwrap(),
        SrtpContext::new(suite, &key, Direction::Inbound).unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp_172B");
    g.throughput(Throughput::Elements(1));
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
        // Protect then unprotect, in place, one reused buffer: the per-packet work of a call
        // that both sends and receives (what a media task does per 20 ms frame and peer).
        let (mut tx, mut rx) = contexts(suite);
        let template = packet(0);
        let mut buf = Vec::with_capacity(256);
        let mut seq: u16 = 0;
        g.bench_function(format!("protect+unprotect/{suite}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                buf.clear();
                buf.extend_from_slice(&template);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                tx.protect_rtp_in_place(&mut buf).unwrap();
                rx.unprotect_rtp_in_place(&mut buf).unwrap();
                buf.len()
            })
        });
        assert_eq!(rx.stats().auth_failures, 0);

        let (mut tx, _) = contexts(suite);
        let mut seq: u16 = 0;
        g.bench_function(format!("protect/{suite}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                buf.clear();
                buf.extend_from_slice(&template);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                tx.protect_rtp_in_place(&mut buf).unwrap();
                buf.len()
            })
        });

        // The allocating API, for comparison.
        let (mut tx, mut rx) = contexts(suite);
        let mut seq: u16 = 0;
        g.bench_function(format!("protect+unprotect_alloc/{suite}"), |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    packet(seq)
                },
                |p| rx.unprotect_rtp(&tx.protect_rtp(&p).unwrap()).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
