//! SIP floods against a listening Peerline (issue 10): SIPp sends OPTIONS or INVITEs from
//! 127.0.0.2 while a legitimate call is placed from another phone on 127.0.0.1. The phone
//! (in this process) must stay up, set up the legitimate call during the flood, keep
//! answering afterwards, and keep the test process's resident memory under a cap.
//!
//! The floods run at the issue's 5,000 requests/s for its 60 s (`RATE`, `FLOOD_SECS`).
//! `rate_limit_answers_503_with_retry_after` checks the per-source limit
//! (`peerline_sip::rate_limit`, wired in the driver) with a plain UDP socket.
//! `PEERLINE_FLOOD_RATE=N` and `PEERLINE_FLOOD_SECS=N` override the rate and length of
//! every flood here, for measurements.
//!
//! Memory is read from `/proc/self/status` (VmRSS) every 100 ms; the phone runs in this
//! process, so this is the phone's memory plus the test's own (a few MiB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerline_interop::{MatrixEntry, Sipp, SippOptions, SippScenario, TestDir};
use peerline_ua::{AudioSource, CodecName, Event, Events, MediaOptions, Phone};
use sipp_support::{config, diag, finish_sipp, runtime, sipp_options};
use tokio::net::UdpSocket;

/// Flood length in seconds the issue asks for.
const FLOOD_SECS: u32 = 60;
/// Requests per second the issue asks for.
const RATE: u32 = 5_000;
/// Most the test process's VmRSS may grow over its value before the phones started.
/// Measured peaks of growth (debug build, 60 s at 5,000/s) are in docs/security.md; the
/// cap leaves more than 2x headroom.
const RSS_GROWTH_CAP_MIB: u64 = 128;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// The flood's length: `FLOOD_SECS` unless `PEERLINE_FLOOD_SECS` says otherwise.
fn flood_secs() -> u32 {
    env_u32("PEERLINE_FLOOD_SECS", FLOOD_SECS).max(LEGIT_AFTER_SECS as u32 + 1)
}
/// When the legitimate call is placed, seconds into the flood.
const LEGIT_AFTER_SECS: u64 = 5;

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples VmRSS every 100 ms on a thread of its own and keeps the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(vm_rss_kib()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(vm_rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed).max(vm_rss_kib())
    }
}

const OPTIONS_FLOOD: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="OPTIONS flood">
  <send>
    <![CDATA[

      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "flood" <sip:flood@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="503" optional="true" next="done"/>
  <recv response="200" timeout="1000" ontimeout="done"/>
  <label id="done"/>
</scenario>
"#;

const INVITE_FLOOD: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE flood">
  <send start_txn="invite">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "flood" <sip:flood@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:flood@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=flood 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true" response_txn="invite"/>
  <recv response="180" optional="true" response_txn="invite"/>
  <recv response="503" optional="true" next="ack" response_txn="invite"/>
  <recv response="486" timeout="2000" ontimeout="done" response_txn="invite"/>
  <label id="ack"/>
  <send ack_txn="invite">
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "flood" <sip:flood@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
"#;

/// What the callee's user does: refuse every flood call with 486, answer the one
/// legitimate call (any other caller) with a tone.
fn callee(bob: Phone, mut events: Events) -> (tokio::task::JoinHandle<()>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let task = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Incoming { call, from, .. } => {
                    c.incoming.fetch_add(1, Ordering::Relaxed);
                    if from.contains("flood") {
                        let _ = bob.reject(call, 486).await;
                    } else {
                        let media = MediaOptions {
                            source: AudioSource::Tone(1000.0),
                            record: None,
                        };
                        if bob.answer(call, media).await.is_ok() {
                            c.legit_answered.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Event::Ended { .. } => {
                    c.ended.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    (task, counters)
}

#[derive(Debug, Default)]
struct Counters {
    incoming: AtomicU64,
    ended: AtomicU64,
    legit_answered: AtomicBool,
}

/// One OPTIONS request to the phone from a fresh socket; the status code it answers.
async fn options_status(to: std::net::SocketAddr, n: u32) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let from = sock.local_addr().ok()?;
    let req = format!(
        "OPTIONS sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKprobe{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{from}>;tag=p{n}\r\nTo: <sip:bob@{to}>\r\n\
         Call-ID: probe-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), to).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..len]);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

struct FloodFigures {
    rate: u32,
    secs: u32,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    rss_after_kib: u64,
    legit_setup: Duration,
    incoming: u64,
    sipp: peerline_interop::SippStats,
    sipp_secs: f64,
}

fn flood(test: &str, scenario_name: &str, xml: &str, rate: u32) -> FloodFigures {
    let rate = env_u32("PEERLINE_FLOOD_RATE", rate);
    let flood_secs = flood_secs();
    let open_limit = (rate * flood_secs + 1000).to_string();
    let dir = TestDir::new(test).unwrap();
    let scenario = dir.write(&format!("{scenario_name}.xml"), xml).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let rss_before_kib = vm_rss_kib();
        let sampler = RssSampler::start();
        let (bob, bob_events) = Phone::start(config(&[CodecName::Pcmu])).await.unwrap();
        let (alice, mut alice_events) = Phone::start(config(&[CodecName::Pcmu])).await.unwrap();
        let (callee_task, counters) = callee(bob.clone(), bob_events);
        let bob_addr = bob.sip_addr();

        // The flood comes from its own address (as an attacker's would): the per-source
        // rate limit must hold it back while the legitimate caller on 127.0.0.1 passes.
        let opts = SippOptions::new("flood", SippScenario::File(scenario))
            .local_ip("127.0.0.2")
            .remote(&bob_addr.to_string())
            .service("bob")
            .rate(rate)
            .calls(rate * flood_secs)
            .timeout(Duration::from_secs(u64::from(flood_secs) + 20))
            .args([
                "-rp",
                "1000",
                // SIPp keeps a call open when the phone drops its request (most of a
                // flood): the limit must hold every call of the flood, or SIPp stops
                // creating calls when it is reached.
                "-l",
                &open_limit,
                "-nr",
                "-max_recv_loops",
                "5000",
            ]);
        let t0 = Instant::now();
        let mut sipp = Sipp::start(sipp_options(opts, &dir, false), &dir).unwrap();

        // Legitimate calls placed early in the flood and again near its end (when the
        // phone has absorbed most of it), each must be answered within 10 s.
        let mut placements = vec![LEGIT_AFTER_SECS];
        let late = u64::from(flood_secs).saturating_sub(8);
        if late > LEGIT_AFTER_SECS + 5 {
            placements.push(late);
        }
        let mut legit = Vec::new();
        for at in placements {
            let wait = Duration::from_secs(at).saturating_sub(t0.elapsed());
            tokio::time::sleep(wait).await;
            assert!(
                sipp.process_mut().is_running(),
                "SIPp stopped early\n{}",
                diag(&sipp, &dir)
            );
            let placed = Instant::now();
            let media = MediaOptions {
                source: AudioSource::Tone(440.0),
                record: None,
            };
            let call = alice.call(&bob.uri("bob"), media).await.unwrap();
            let answered = tokio::time::timeout(Duration::from_secs(10), async {
                while let Some(ev) = alice_events.recv().await {
                    match ev {
                        Event::Answered { call: c } if c == call => return Ok(()),
                        Event::Ended {
                            call: c, reason, ..
                        } if c == call => return Err(reason.to_string()),
                        _ => {}
                    }
                }
                Err("events closed".to_string())
            })
            .await;
            let setup = placed.elapsed();
            let during_flood = t0.elapsed() < Duration::from_secs(u64::from(flood_secs));
            let ok = matches!(answered, Ok(Ok(())));
            if ok {
                tokio::time::sleep(Duration::from_millis(500)).await;
                alice.hangup(call).await.unwrap();
            }
            legit.push((at, setup, ok, during_flood, format!("{answered:?}")));
        }
        let legit_setup = legit.iter().map(|l| l.1).max().unwrap_or_default();
        let legit_ok = legit.iter().all(|l| l.2);
        let during_flood = legit.iter().all(|l| l.3);

        // SIPp has sent everything after flood_secs; give its last calls 3 s, then stop it
        // (its stat file is written every second).
        let rest = Duration::from_secs(u64::from(flood_secs) + 3).saturating_sub(t0.elapsed());
        let (code, stats) = finish_sipp(&mut sipp, &dir, rest.max(Duration::from_secs(1)));
        let sipp_secs = t0.elapsed().as_secs_f64();
        // The phone is still up and answering, from a source that did not flood.
        let mut after = None;
        for n in 0..10 {
            after = options_status(bob_addr, n).await;
            if after.is_some() {
                break;
            }
        }
        let ledger_ok = bob.ledger().await.is_ok();
        let rss_peak_kib = sampler.finish();
        let rss_after_kib = vm_rss_kib();
        let incoming = counters.incoming.load(Ordering::Relaxed);
        alice.shutdown().await;
        bob.shutdown().await;
        callee_task.abort();
        eprintln!(
            "{scenario_name}: SIPp exit {code:?} {stats:?} in {sipp_secs:.1} s; \
             legit calls (placed at s, setup, ok, during flood, result) {legit:?}; \
             phone saw {incoming} INVITEs; VmRSS before {} MiB, peak {} MiB, after {} MiB",
            rss_before_kib / 1024,
            rss_peak_kib / 1024,
            rss_after_kib / 1024
        );
        // Figures first (they go to docs/security.md), then the verdicts.
        assert!(
            legit_ok,
            "legitimate call not set up during the flood: {legit:?}\n{}",
            diag(&sipp, &dir)
        );
        assert!(
            during_flood,
            "the flood ended before the legitimate calls were set up: {legit:?}"
        );
        assert_eq!(after, Some(200), "phone does not answer after the flood");
        assert!(ledger_ok, "phone does not answer commands after the flood");
        FloodFigures {
            rate,
            secs: flood_secs,
            rss_before_kib,
            rss_peak_kib,
            rss_after_kib,
            legit_setup,
            incoming,
            sipp: stats,
            sipp_secs,
        }
    })
}

fn check_memory(f: &FloodFigures) {
    let growth_mib = f.rss_peak_kib.saturating_sub(f.rss_before_kib) / 1024;
    assert!(
        growth_mib <= RSS_GROWTH_CAP_MIB,
        "VmRSS grew by {growth_mib} MiB (cap {RSS_GROWTH_CAP_MIB} MiB): before {} KiB, peak {} KiB",
        f.rss_before_kib,
        f.rss_peak_kib
    );
}

fn options_flood(test: &str, rate: u32) {
    let entry = MatrixEntry::new("sipp", &format!("options-flood-{rate}"), "udp");
    let f = flood(test, "options_flood", OPTIONS_FLOOD, rate);
    check_memory(&f);
    // SIPp sent the whole flood (each "call" is one OPTIONS).
    assert!(
        f.sipp.total_created >= u64::from(f.rate * f.secs) * 9 / 10,
        "SIPp created only {} requests in {:.1} s: {:?}",
        f.sipp.total_created,
        f.sipp_secs,
        f.sipp
    );
    assert!(f.legit_setup < Duration::from_secs(10));
    assert!(f.rss_after_kib > 0);
    entry.pass();
}

fn invite_flood(test: &str, rate: u32) {
    let entry = MatrixEntry::new("sipp", &format!("invite-flood-{rate}"), "udp");
    let f = flood(test, "invite_flood", INVITE_FLOOD, rate);
    check_memory(&f);
    assert!(
        f.sipp.total_created >= u64::from(f.rate * f.secs) * 9 / 10,
        "SIPp created only {} INVITEs in {:.1} s: {:?}",
        f.sipp.total_created,
        f.sipp_secs,
        f.sipp
    );
    assert!(f.incoming > 0, "the phone saw none of the INVITEs");
    assert!(f.legit_setup < Duration::from_secs(10));
    entry.pass();
}

/// The issue's rate and length. The rate limit runs before parsing and before the
/// transaction layer, so a limited request costs a prescan and creates no server
/// transaction (answered by a stateless 503 or dropped).
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn options_flood_5000_per_s_phone_stays_up_and_a_call_gets_through() {
    options_flood(
        "options_flood_5000_per_s_phone_stays_up_and_a_call_gets_through",
        RATE,
    );
}

/// The issue's rate and length for INVITEs.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn invite_flood_5000_per_s_phone_stays_up_and_a_call_gets_through() {
    invite_flood(
        "invite_flood_5000_per_s_phone_stays_up_and_a_call_gets_through",
        RATE,
    );
}

/// Per-source rate limiting: one source sending OPTIONS as fast as it can gets its burst
/// answered with 200, then `503 Service Unavailable` with `Retry-After`; another source
/// is still served normally meanwhile.
#[test]
fn rate_limit_answers_503_with_retry_after() {
    let rt = runtime();
    rt.block_on(async {
        let (bob, _events) = Phone::start(config(&[CodecName::Pcmu])).await.unwrap();
        let to = bob.sip_addr();
        // The flooding source has an address of its own; "another source" is 127.0.0.1.
        let sock = Arc::new(UdpSocket::bind("127.0.0.2:0").await.unwrap());
        let from = sock.local_addr().unwrap();
        // Read answers while sending, so our own receive buffer never overflows.
        let rx = sock.clone();
        let reader = tokio::spawn(async move {
            let mut ok = 0u32;
            let mut limited = Vec::new();
            let mut buf = vec![0u8; 4096];
            while let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_secs(2), rx.recv_from(&mut buf)).await
            {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                if text.starts_with("SIP/2.0 200") {
                    ok += 1;
                } else if text.starts_with("SIP/2.0 503") {
                    limited.push(text);
                }
            }
            (ok, limited)
        });
        // 3,000 OPTIONS over about 3 s: well above any sane per-source rate, yet paced so
        // the kernel's socket buffers do not drop them before the phone sees them.
        let sent = 3000u32;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for n in 0..sent {
            tick.tick().await;
            let req = format!(
                "OPTIONS sip:bob@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKrl{n}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:flood@{from}>;tag=f{n}\r\nTo: <sip:bob@{to}>\r\n\
                 Call-ID: rl-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            sock.send_to(req.as_bytes(), to).await.unwrap();
        }
        // Meanwhile-ish: another source is served right after the flood.
        let other = options_status(to, 1).await;
        let (ok, limited) = reader.await.unwrap();
        eprintln!(
            "rate limit: {sent} sent, {ok} x 200, {} x 503",
            limited.len()
        );
        assert!(ok >= 1, "the first requests (the burst) are served");
        // The driver's default is 200/s with a burst of 400: about 1,000 in 3 s.
        assert!(ok < sent / 2, "{ok} of {sent} requests in 3 s were served");
        assert!(!limited.is_empty(), "no 503 for a flooding source");
        // A 503 at most about once a second per source; the rest are dropped unanswered,
        // so a flood with a forged source is not reflected packet for packet.
        assert!(
            limited.len() <= 5,
            "{} answers of 503 in 3 s",
            limited.len()
        );
        assert!(
            ok + (limited.len() as u32) < sent,
            "every request was answered"
        );
        for r in &limited {
            let retry = r
                .lines()
                .find_map(|l| l.strip_prefix("Retry-After:"))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string());
            let secs: u32 = retry
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("503 without a numeric Retry-After: {r}"));
            assert!(secs >= 1, "{r}");
        }
        assert_eq!(other, Some(200), "another source is refused too");
        bob.shutdown().await;
    });
}
