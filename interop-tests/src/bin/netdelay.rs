//! `netdelay`: a userspace delay/jitter injector on NFQUEUE, for kernels without
//! `sch_netem` (issue 10).
//!
//! ```text
//! netdelay --queue N [--delay-ms BASE] [--jitter-ms J] [--max-queued M]
//! ```
//!
//! Binds netfilter queue `N` (in the network namespace it runs in) and gives every packet
//! that an `iptables … -j NFQUEUE --queue-num N` rule sends it its ACCEPT verdict after
//! `BASE + U(0, J)` milliseconds (uniform). Verdicts are given in due order, not arrival
//! order, so packets are reordered as netem reorders them. At most `M` packets are held
//! (default 2048); a packet beyond that is accepted at once and counted as an overflow.
//! Packets are not modified (only the first 64 bytes are copied to userspace).
//!
//! Prints `netdelay: ready queue=N` once bound, and on SIGTERM or SIGINT accepts what it
//! still holds and prints its counters on one line:
//! `netdelay: packets=… delayed=… overflow=… max_delay_ms=… mean_delay_ms=… max_held=…`.
//! The rule should use `--queue-bypass`, so traffic flows if this program is not running.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

#[derive(Debug, Clone, Copy)]
struct Args {
    queue: u16,
    delay_ms: u32,
    jitter_ms: u32,
    max_queued: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        queue: 0,
        delay_ms: 0,
        jitter_ms: 200,
        max_queued: 2048,
    };
    let mut queue = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--queue" => queue = Some(value.parse().map_err(bad)?),
            "--delay-ms" => a.delay_ms = value.parse().map_err(bad)?,
            "--jitter-ms" => a.jitter_ms = value.parse().map_err(bad)?,
            "--max-queued" => a.max_queued = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    a.queue = queue.ok_or("--queue N is required")?;
    if a.delay_ms.saturating_add(a.jitter_ms) > 60_000 {
        return Err("delay + jitter above 60 s".into());
    }
    Ok(a)
}

#[derive(Debug, Default)]
struct Counters {
    packets: u64,
    delayed: u64,
    overflow: u64,
    max_delay: Duration,
    total_delay: Duration,
    max_held: usize,
    verdict_errors: u64,
}

impl Counters {
    fn line(&self) -> String {
        let mean_ms = if self.delayed == 0 {
            0.0
        } else {
            self.total_delay.as_secs_f64() * 1000.0 / self.delayed as f64
        };
        format!(
            "netdelay: packets={} delayed={} overflow={} max_delay_ms={:.1} mean_delay_ms={:.1} max_held={} verdict_errors={}",
            self.packets,
            self.delayed,
            self.overflow,
            self.max_delay.as_secs_f64() * 1000.0,
            mean_ms,
            self.max_held,
            self.verdict_errors
        )
    }
}

/// A held packet: when it arrived, and the message to give its verdict to.
struct Held {
    arrived: Instant,
    msg: nfq::Message,
}

fn accept(q: &mut nfq::Queue, held: Held, c: &mut Counters, counted: bool) {
    let waited = held.arrived.elapsed();
    let mut msg = held.msg;
    msg.set_verdict(nfq::Verdict::Accept);
    if q.verdict(msg).is_err() {
        c.verdict_errors += 1;
    }
    if counted {
        c.delayed += 1;
        c.total_delay += waited;
        c.max_delay = c.max_delay.max(waited);
    }
}

fn run(args: Args, stop: &AtomicBool) -> Result<Counters, String> {
    let mut q = nfq::Queue::open().map_err(|e| format!("open netlink: {e}"))?;
    q.bind(args.queue)
        .map_err(|e| format!("bind queue {}: {e}", args.queue))?;
    // Only the headers are looked at (not even those): keep the copies small.
    q.set_copy_range(args.queue, 64)
        .map_err(|e| format!("copy range: {e}"))?;
    let kernel_max = u32::try_from(args.max_queued.saturating_mul(2)).unwrap_or(u32::MAX);
    q.set_queue_max_len(args.queue, kernel_max)
        .map_err(|e| format!("queue max len: {e}"))?;
    // If this program falls behind, the kernel accepts rather than drops.
    q.set_fail_open(args.queue, true)
        .map_err(|e| format!("fail open: {e}"))?;
    q.set_nonblocking(true);
    println!("netdelay: ready queue={}", args.queue);

    let mut rng = rand::thread_rng();
    let mut c = Counters::default();
    // Due time and a sequence number (two packets can be due at the same instant).
    let mut held: BTreeMap<(Instant, u64), Held> = BTreeMap::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Take everything the kernel has for us now.
        loop {
            match q.recv() {
                Ok(msg) => {
                    c.packets += 1;
                    let now = Instant::now();
                    let h = Held { arrived: now, msg };
                    if held.len() >= args.max_queued {
                        c.overflow += 1;
                        accept(&mut q, h, &mut c, false);
                        continue;
                    }
                    let ms = if args.jitter_ms == 0 {
                        f64::from(args.delay_ms)
                    } else {
                        f64::from(args.delay_ms) + rng.gen_range(0.0..f64::from(args.jitter_ms))
                    };
                    let due = now + Duration::from_secs_f64(ms / 1000.0);
                    seq += 1;
                    held.insert((due, seq), h);
                    c.max_held = c.max_held.max(held.len());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
        let now = Instant::now();
        while let Some(entry) = held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let h = entry.remove();
            accept(&mut q, h, &mut c, true);
        }
        // 1 ms granularity: packets come out at most about 1 ms after their due time.
        std::thread::sleep(Duration::from_millis(1));
    }
    // Stopping: accept whatever is still held, at once (counted as delayed by what it waited).
    while let Some((_, h)) = held.pop_first() {
        accept(&mut q, h, &mut c, true);
    }
    let _ = q.unbind(args.queue);
    Ok(c)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netdelay: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    // SIGTERM/SIGINT are caught by a small tokio runtime on its own thread; the queue loop
    // polls the flag it sets.
    let flag = Arc::clone(&stop);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netdelay: runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let signals = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    });
    let (mut term, mut int) = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("netdelay: signals: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let waiter = std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        flag.store(true, Ordering::Relaxed);
    });
    let result = run(args, &stop);
    match result {
        Ok(c) => {
            println!("{}", c.line());
            drop(waiter);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netdelay: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
