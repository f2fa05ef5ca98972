//! `peerline-bench-uas`: a Peerline phone that answers every incoming call at once, for
//! `cargo xtask bench` (docs/benchmarks.md "Side by side"). It plays silence, records
//! nothing, and the caller hangs up. Every 200 ms it prints one line of counters to stdout:
//!
//! ```text
//! counters incoming=N answered=N established=N ended=N answer_errors=N
//! ```
//!
//! (`established` = `Event::Answered` seen, i.e. the ACK arrived), followed by the media
//! counters of the calls that have ended, summed (`cargo xtask bench media` judges the
//! caller's streams by them):
//!
//! ```text
//!   media_calls=N srtp_calls=N rx_packets=N rx_lost=N late=N missing=N concealed=N tx_packets=N auth_failures=N media_ms=N
//! ```
//!
//! (`rx_lost` from sequence numbers, `late` = frames that arrived after their playout
//! time, `missing` = frames absent at their playout time, `concealed` = frames played by
//! concealment, `media_ms` = ACK to end, summed). With `--mark-file PATH`, each time the
//! file's content changes to a new mark it reads every established call's live counters
//! (`Phone::call_stats`) and prints their sums, so a harness can take the difference over
//! a window of held calls:
//!
//! ```text
//! live mark=M at_ms=N calls=N rx_packets=N rx_lost=N late=N errors=N
//! ```
//!
//! (`at_ms` from the binary's start, read when the sums are complete). It runs until it is stopped by its PID or `--max-secs` pass.
//!
//! Options: `--listen IP:PORT` (SIP, default 127.0.0.1:5060), `--rtp-ports LOW-HIGH`,
//! `--codec PCMU|opus|…` (repeatable), `--srtp off|optional|mandatory` (default off, as
//! SIPp offers plain RTP), `--rtp-timeout SECS` (default 600, so held calls without media
//! from the caller stay up), `--max-secs SECS` (default 900), `--allow-sdes-without-tls
//! yes|no` (default no: SDES keys in SDP over UDP, for the media benchmark),
//! `--mark-file PATH` (polled every 100 ms).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerline_ua::{AudioSource, CallId, Config, Event, MediaOptions, MediaReport, Phone};

#[derive(Debug)]
struct Options {
    listen: String,
    rtp_ports: String,
    codecs: Vec<String>,
    srtp: String,
    rtp_timeout_secs: u64,
    max_secs: u64,
    allow_sdes_without_tls: bool,
    mark_file: Option<std::path::PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        listen: "127.0.0.1:5060".into(),
        rtp_ports: "30000-39999".into(),
        codecs: Vec::new(),
        srtp: "off".into(),
        rtp_timeout_secs: 600,
        max_secs: 900,
        allow_sdes_without_tls: false,
        mark_file: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--listen" => o.listen = value,
            "--rtp-ports" => o.rtp_ports = value,
            "--codec" => o.codecs.push(value),
            "--srtp" => o.srtp = value,
            "--rtp-timeout" => o.rtp_timeout_secs = number(&value)?,
            "--max-secs" => o.max_secs = number(&value)?,
            "--mark-file" => o.mark_file = Some(value.into()),
            "--allow-sdes-without-tls" => {
                o.allow_sdes_without_tls = match value.as_str() {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => return Err(format!("{flag}: yes or no")),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.codecs.is_empty() {
        o.codecs.push("PCMU".into());
    }
    Ok(o)
}

/// The phone's config: the SIP rate limiter is opened wide (one load generator is one
/// source, and 200 new requests/s from it would otherwise get 503).
fn config(o: &Options) -> Result<Config, String> {
    let codecs: Vec<String> = o.codecs.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        "[identity]\nuser = \"bench\"\n\
         [network]\nsip_listen = {:?}\nrtp_ports = {:?}\n\
         sip_rate_limit = 1000000.0\nsip_rate_burst = 1000000\n\
         [media]\ncodecs = [{}]\nsrtp = {:?}\nrtp_timeout_secs = {}\nallow_sdes_without_tls = {}\n",
        o.listen,
        o.rtp_ports,
        codecs.join(", "),
        o.srtp,
        o.rtp_timeout_secs,
        o.allow_sdes_without_tls
    );
    Config::parse(&text, Path::new("<peerline-bench-uas>")).map_err(|e| e.to_string())
}

#[derive(Default)]
struct Counters {
    incoming: AtomicU64,
    answered: AtomicU64,
    established: AtomicU64,
    ended: AtomicU64,
    answer_errors: AtomicU64,
    media_calls: AtomicU64,
    srtp_calls: AtomicU64,
    rx_packets: AtomicU64,
    rx_lost: AtomicU64,
    late: AtomicU64,
    missing: AtomicU64,
    concealed: AtomicU64,
    tx_packets: AtomicU64,
    auth_failures: AtomicU64,
    /// Milliseconds from the ACK to the end, summed over the calls with media.
    media_ms: AtomicU64,
}

impl Counters {
    fn line(&self) -> String {
        format!(
            "counters incoming={} answered={} established={} ended={} answer_errors={} \
             media_calls={} srtp_calls={} rx_packets={} rx_lost={} late={} missing={} \
             concealed={} tx_packets={} auth_failures={} media_ms={}",
            self.incoming.load(Ordering::Relaxed),
            self.answered.load(Ordering::Relaxed),
            self.established.load(Ordering::Relaxed),
            self.ended.load(Ordering::Relaxed),
            self.answer_errors.load(Ordering::Relaxed),
            self.media_calls.load(Ordering::Relaxed),
            self.srtp_calls.load(Ordering::Relaxed),
            self.rx_packets.load(Ordering::Relaxed),
            self.rx_lost.load(Ordering::Relaxed),
            self.late.load(Ordering::Relaxed),
            self.missing.load(Ordering::Relaxed),
            self.concealed.load(Ordering::Relaxed),
            self.tx_packets.load(Ordering::Relaxed),
            self.auth_failures.load(Ordering::Relaxed),
            self.media_ms.load(Ordering::Relaxed),
        )
    }

    /// Adds an ended call's media counters.
    fn add_media(&self, m: &MediaReport, held: Option<Duration>) {
        if m.codec.is_none() || (m.sent.packets_sent == 0 && m.received.packets_received == 0) {
            return;
        }
        let add = |c: &AtomicU64, v: u64| {
            c.fetch_add(v, Ordering::Relaxed);
        };
        add(&self.media_calls, 1);
        add(&self.srtp_calls, u64::from(m.srtp.is_some()));
        add(&self.rx_packets, m.received.packets_received);
        add(&self.rx_lost, m.received.packets_lost);
        add(&self.late, m.jitter.late);
        add(&self.missing, m.jitter.missing);
        add(&self.concealed, m.concealed_frames);
        add(&self.tx_packets, m.sent.packets_sent);
        add(&self.auth_failures, m.srtp_auth_failures);
        add(
            &self.media_ms,
            held.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        );
    }
}

async fn serve(o: Options) -> Result<(), String> {
    let (phone, mut events) = Phone::start(config(&o)?).await.map_err(|e| e.to_string())?;
    println!("listening on {}", phone.sip_addr());
    let counters = Arc::new(Counters::default());
    let printer = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                println!("{}", counters.line());
            }
        })
    };
    // When each call was established, for `media_ms`.
    let mut since: HashMap<CallId, Instant> = HashMap::new();
    // The established calls, for `--mark-file`.
    let live: Arc<Mutex<HashSet<CallId>>> = Arc::default();
    let marker = o.mark_file.clone().map(|path| {
        let (phone, live) = (phone.clone(), live.clone());
        tokio::spawn(watch_marks(path, phone, live))
    });
    let answering = async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Incoming { call, .. } => {
                    counters.incoming.fetch_add(1, Ordering::Relaxed);
                    let (phone, counters) = (phone.clone(), counters.clone());
                    tokio::spawn(async move {
                        let media = MediaOptions {
                            source: AudioSource::Silence,
                            record: None,
                        };
                        let counter = match phone.answer(call, media).await {
                            Ok(()) => &counters.answered,
                            Err(_) => &counters.answer_errors,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    });
                }
                Event::Answered { call } => {
                    counters.established.fetch_add(1, Ordering::Relaxed);
                    since.insert(call, Instant::now());
                    if let Ok(mut l) = live.lock() {
                        l.insert(call);
                    }
                }
                Event::Ended { call, media, .. } => {
                    counters.ended.fetch_add(1, Ordering::Relaxed);
                    let held = since.remove(&call).map(|t| t.elapsed());
                    if let Ok(mut l) = live.lock() {
                        l.remove(&call);
                    }
                    counters.add_media(&media, held);
                }
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(o.max_secs), answering).await;
    printer.abort();
    if let Some(m) = marker {
        m.abort();
    }
    println!("{}", counters.line());
    phone.shutdown().await;
    Ok(())
}

/// Polls `path` every 100 ms; for each new content (a mark), sums the live counters of
/// the established calls and prints them on one `live` line.
async fn watch_marks(path: std::path::PathBuf, phone: Phone, live: Arc<Mutex<HashSet<CallId>>>) {
    let started = Instant::now();
    let mut last = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let Ok(mark) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        let mark = mark.trim().to_string();
        if mark.is_empty() || mark == last {
            continue;
        }
        last = mark.clone();
        let calls: Vec<CallId> = live
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default();
        // All at once: a call whose media does not answer costs its own 2 s timeout, not
        // everyone's.
        let mut asks = tokio::task::JoinSet::new();
        for call in calls.iter().copied() {
            let phone = phone.clone();
            asks.spawn(async move { phone.call_stats(call).await });
        }
        let (mut rx, mut lost, mut late, mut errors) = (0u64, 0u64, 0u64, 0u64);
        while let Some(answer) = asks.join_next().await {
            match answer {
                Ok(Ok(s)) => {
                    rx += s.packets_received;
                    lost += s.packets_lost;
                    late += s.late_frames;
                }
                _ => errors += 1,
            }
        }
        println!(
            "live mark={mark} at_ms={} calls={} rx_packets={rx} rx_lost={lost} late={late} errors={errors}",
            started.elapsed().as_millis(),
            calls.len()
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(|o| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(serve(o))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerline-bench-uas: {e}");
            ExitCode::from(2)
        }
    }
}
