//! `peerline-bench-latency`: two Peerline phones in one process on loopback, for
//! `cargo xtask bench` figures 5 and 7 (docs/benchmarks.md). Each run starts two fresh
//! phones and prints one line per figure to stdout:
//!
//! ```text
//! pdd run=N dial_to_pair_ms=F dial_to_first_rtp_ms=F
//! m2e run=N a_to_b_ms=F b_to_a_ms=F one_way_ms=F onsets=N
//! ```
//!
//! * **Post-dial delay with ICE** (`pdd`): both phones with `[ice] enabled` (host
//!   candidates only); the caller dials (`Phone::call`, which gathers before it sends
//!   the INVITE), the callee answers at once; from the dial to the caller's selected pair
//!   (`Event::MediaUp`) and to the first RTP packet the caller received (its
//!   `call_stats`, polled every millisecond).
//! * **Mouth-to-ear** (`m2e`): PCMU at 20 ms ptime, no ICE, SRTP as configured by
//!   default. Each phone plays a train of 1 kHz bursts (0.5 s silence, 0.5 s cosine, so
//!   every burst starts at its peak) and records what it hears. A phone's source and its
//!   recording run on the same 20 ms tick, so in each recording a burst's onset sits at
//!   (the sender's onset + the delay that way + the offset between the two phones'
//!   media clocks). The offsets cancel in the sum of both ways: the round trip, exact to
//!   the sample (125 µs); half of it is the one-way mouth-to-ear delay (jitter buffer,
//!   packetisation, tick phase; no sound card). The per-way figures still hold the clock
//!   offset and are printed for reference only.
//!
//! Options: `--runs N` (default 5), `--dir DIR` (WAV files; default a temp dir),
//! `--talk-secs S` (each mouth-to-ear call, default 6).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use peerline_media::onset::{burst_train, onsets};
use peerline_ua::{AudioSource, Config, Event, Events, MediaOptions, Phone};

/// 8 kHz (PCMU): 0.5 s of silence, 0.5 s of burst.
const RATE: u32 = 8000;
const HALF: usize = RATE as usize / 2;
const PERIOD: usize = 2 * HALF;
/// A burst's peak, and the onset threshold in the recording (µ-law keeps it within 3 %).
const AMPLITUDE: f32 = 0.5;
const LEVEL: i16 = 8000;

struct Options {
    runs: u32,
    dir: PathBuf,
    talk_secs: u64,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        runs: 5,
        dir: std::env::temp_dir().join(format!("peerline-bench-latency-{}", std::process::id())),
        talk_secs: 6,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--runs" => o.runs = u32::try_from(number(value)?).map_err(|e| e.to_string())?,
            "--dir" => o.dir = PathBuf::from(value),
            "--talk-secs" => o.talk_secs = number(value)?.max(3),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn config(user: &str, ice: bool) -> Result<Config, String> {
    let text = format!(
        "[identity]\nuser = {user:?}\n[network]\nsip_listen = \"127.0.0.1:0\"\n\
         [media]\ncodecs = [\"PCMU\"]\nptime = 20\n[ice]\nenabled = {ice}\n"
    );
    Config::parse(&text, Path::new("<peerline-bench-latency>")).map_err(|e| e.to_string())
}

/// Answers every incoming call at once with `media`.
fn answer_all(
    phone: Phone,
    mut events: Events,
    media: MediaOptions,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Incoming { call, .. } => {
                    let _ = phone.answer(call, media.clone()).await;
                }
                Event::Ended { .. } => break,
                _ => {}
            }
        }
    })
}

/// Waits at most `limit` for an event `f` picks.
async fn wait_for<T>(
    events: &mut Events,
    limit: Duration,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(limit, async {
        while let Some(ev) = events.recv().await {
            if let Some(t) = f(&ev) {
                return Some(t);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Alice, and Bob answering every call with `bob_media` (the task ends with his call).
async fn two_phones(
    ice: bool,
    bob_media: MediaOptions,
) -> Result<(Phone, Events, Phone, tokio::task::JoinHandle<()>), String> {
    let (alice, ae) = Phone::start(config("alice", ice)?)
        .await
        .map_err(|e| e.to_string())?;
    let (bob, be) = Phone::start(config("bob", ice)?)
        .await
        .map_err(|e| e.to_string())?;
    let answering = answer_all(bob.clone(), be, bob_media);
    Ok((alice, ae, bob, answering))
}

/// One post-dial-delay measurement: (dial → pair, dial → first RTP received).
async fn post_dial_delay() -> Result<(f64, f64), String> {
    let bob_media = MediaOptions {
        source: AudioSource::Tone(1000.0),
        record: None,
    };
    let (alice, mut ae, bob, answering) = two_phones(true, bob_media).await?;
    let dialled = Instant::now();
    let result = async {
        let call = alice
            .call(
                &bob.uri("bob"),
                MediaOptions {
                    source: AudioSource::Tone(440.0),
                    record: None,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut pair = None;
        let limit = dialled + Duration::from_secs(10);
        loop {
            if Instant::now() > limit {
                return Err("no RTP within 10 s of dialling".to_string());
            }
            if pair.is_none() {
                if let Ok(Some(ev)) =
                    tokio::time::timeout(Duration::from_millis(1), ae.recv()).await
                {
                    match ev {
                        Event::MediaUp { path: Some(_), .. } => pair = Some(dialled.elapsed()),
                        Event::MediaUp { path: None, .. } => {
                            return Err("media up without ICE".into())
                        }
                        Event::Ended { reason, .. } => {
                            return Err(format!("call ended: {reason:?}"))
                        }
                        _ => {}
                    }
                }
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if let Ok(stats) = alice.call_stats(call).await {
                if stats.packets_received > 0 {
                    let first = dialled.elapsed();
                    let _ = alice.hangup(call).await;
                    let pair = pair.unwrap_or(first);
                    return Ok((ms(pair), ms(first)));
                }
            }
        }
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), answering).await;
    alice.shutdown().await;
    bob.shutdown().await;
    result
}

/// Where the bursts start in a recording, as offsets within the period (samples).
fn onset_phases(path: &Path) -> Result<Vec<usize>, String> {
    let audio = peerline_audio::read_wav(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if audio.sample_rate != RATE {
        return Err(format!(
            "{}: recorded at {} Hz, not {RATE}",
            path.display(),
            audio.sample_rate
        ));
    }
    // Skip the first period: the jitter buffer settles on the first packets.
    Ok(onsets(&audio.samples, LEVEL, HALF / 2)
        .into_iter()
        .filter(|&i| i >= PERIOD)
        .map(|i| (i + PERIOD - HALF) % PERIOD)
        .collect())
}

fn median(v: &mut [usize]) -> Option<usize> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// One mouth-to-ear measurement: (A→B, B→A, one way) in ms, and the onsets used.
async fn mouth_to_ear(
    dir: &Path,
    run: u32,
    talk: Duration,
) -> Result<(f64, f64, f64, usize), String> {
    let train = dir.join("bursts.wav");
    let (rec_a, rec_b) = (
        dir.join(format!("a{run}.wav")),
        dir.join(format!("b{run}.wav")),
    );
    let bob_media = MediaOptions {
        source: AudioSource::Wav(train.clone()),
        record: Some(rec_b.clone()),
    };
    let (alice, mut ae, bob, answering) = two_phones(false, bob_media).await?;
    let result = async {
        let call = alice
            .call(
                &bob.uri("bob"),
                MediaOptions {
                    source: AudioSource::Wav(train.clone()),
                    record: Some(rec_a.clone()),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        wait_for(&mut ae, Duration::from_secs(10), |e| {
            matches!(e, Event::MediaUp { .. }).then_some(())
        })
        .await
        .ok_or("no media within 10 s")?;
        tokio::time::sleep(talk).await;
        alice.hangup(call).await.map_err(|e| e.to_string())?;
        wait_for(&mut ae, Duration::from_secs(10), |e| {
            matches!(e, Event::Ended { .. }).then_some(())
        })
        .await
        .ok_or("the call did not end within 10 s")?;
        Ok::<(), String>(())
    }
    .await;
    // The callee's recording is complete once its side has ended too.
    let _ = tokio::time::timeout(Duration::from_secs(10), answering).await;
    alice.shutdown().await;
    bob.shutdown().await;
    result?;
    let (mut ab, mut ba) = (onset_phases(&rec_b)?, onset_phases(&rec_a)?);
    let used = ab.len().min(ba.len());
    let (Some(ab_m), Some(ba_m)) = (median(&mut ab), median(&mut ba)) else {
        return Err(format!(
            "no burst found in {} or {}",
            rec_a.display(),
            rec_b.display()
        ));
    };
    let round_trip = (ab_m + ba_m) % PERIOD;
    let to_ms = |samples: usize| samples as f64 * 1000.0 / f64::from(RATE);
    Ok((to_ms(ab_m), to_ms(ba_m), to_ms(round_trip) / 2.0, used))
}

async fn run(o: Options) -> Result<(), String> {
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let periods = o.talk_secs as usize + 2;
    let train = burst_train(RATE, 1000.0, AMPLITUDE, HALF, HALF, periods);
    peerline_audio::write_wav(o.dir.join("bursts.wav"), RATE, &train).map_err(|e| e.to_string())?;
    let mut failures = 0;
    for run in 1..=o.runs {
        match post_dial_delay().await {
            Ok((pair, first)) => {
                println!("pdd run={run} dial_to_pair_ms={pair:.1} dial_to_first_rtp_ms={first:.1}")
            }
            Err(e) => {
                failures += 1;
                println!("pdd run={run} error={e:?}");
            }
        }
        match mouth_to_ear(&o.dir, run, Duration::from_secs(o.talk_secs)).await {
            Ok((ab, ba, one_way, n)) => {
                println!("m2e run={run} a_to_b_ms={ab:.3} b_to_a_ms={ba:.3} one_way_ms={one_way:.3} onsets={n}")
            }
            Err(e) => {
                failures += 1;
                println!("m2e run={run} error={e:?}");
            }
        }
    }
    if failures > 0 {
        return Err(format!("{failures} measurement(s) failed"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(|o| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(run(o))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerline-bench-latency: {e}");
            ExitCode::from(2)
        }
    }
}
