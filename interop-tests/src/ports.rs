//! Port allocation that avoids collisions between peers of one test and between test
//! binaries running at the same time.
//!
//! Blocks are handed out from 10000..30000 (below Linux's ephemeral range 32768..), starting
//! at an offset derived from the PID, and a block is only returned if every port in it can
//! be bound right now on 127.0.0.1 for both UDP and TCP. baresip's `sip_listen P` binds
//! UDP+TCP on P and TLS on P+1, so ask for blocks of at least 2 for it.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

const LOW: u32 = 10_000;
const HIGH: u32 = 30_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn block_is_free(base: u16, len: u16) -> bool {
    (0..len).all(|i| {
        let Some(p) = base.checked_add(i) else {
            return false;
        };
        UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
            && TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
    })
}

/// Reserve `len` consecutive ports (UDP and TCP free on 127.0.0.1 when checked) and return
/// the first. A gap of 2 ports is left after every block.
pub fn alloc_port_block(len: u16) -> Result<u16> {
    let len = len.max(1);
    let stride = u32::from(len) + 2;
    let span = HIGH - LOW;
    // First call: start at a PID-dependent offset so parallel test binaries spread out.
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() % 500) * 37 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    // Bounded: at most one pass over the range.
    for _ in 0..(span / stride + 1) {
        let off = NEXT.fetch_add(stride, Ordering::SeqCst) % span;
        let base = LOW + off;
        if base + stride >= HIGH {
            continue;
        }
        let Ok(base) = u16::try_from(base) else {
            continue;
        };
        if block_is_free(base, len) {
            return Ok(base);
        }
    }
    Err(Error::NoFreePort { len })
}

/// One free port (UDP and TCP) on 127.0.0.1.
pub fn free_udp_port() -> Result<u16> {
    alloc_port_block(1)
}
