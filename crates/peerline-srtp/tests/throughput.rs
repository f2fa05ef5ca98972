//! Packets per CPU-second for protect + unprotect of 172-byte RTP packets, measured in CPU
//! time of this thread (robust on a shared machine, unlike wall time). Run with
//! `cargo test --release -p peerline-srtp --test throughput -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use peerline_srtp::{Direction, SrtpContext, SrtpSuite};

/// CPU time this thread has run (Linux `/proc/thread-self/schedstat`, first field, ns).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        s.split_whitespace().next()?.parse().ok()?,
    ))
}

fn rate(suite: SrtpSuite, unprotect: bool, n: u32) -> Option<f64> {
    let key: Vec<u8> = (0..suite.key_salt_len() as u8).collect();
    let mut tx = SrtpContext::new(suite, &key, Direction::Outbound).unwrap();
    let mut rx = SrtpContext::new(suite, &key, Direction::Inbound).unwrap();
    let mut template = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
    template.extend_from_slice(&[0xd5; 160]);
    let mut buf = Vec::with_capacity(256);
    let t0 = thread_cpu()?;
    for i in 0..n {
        buf.clear();
        buf.extend_from_slice(&template);
        buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        tx.protect_rtp_in_place(&mut buf).unwrap();
        if unprotect {
            rx.unprotect_rtp_in_place(&mut buf).unwrap();
        }
    }
    let cpu = thread_cpu()? - t0;
    Some(f64::from(n) / cpu.as_secs_f64())
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn packets_per_cpu_second() {
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        2_000_000
    };
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
        let both = rate(suite, true, n);
        let protect = rate(suite, false, n);
        match (both, protect) {
            (Some(b), Some(p)) => println!(
                "{suite}: protect+unprotect {b:.0} pkt/s, protect only {p:.0} pkt/s (per CPU-second)"
            ),
            _ => println!("no /proc/thread-self/schedstat: cannot measure CPU time"),
        }
    }
    println!("libsrtp {}", peerline_srtp::libsrtp_version());
}
