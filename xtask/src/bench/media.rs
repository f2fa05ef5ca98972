//! Figure 3 of issue 9: concurrent media calls per core, next to baresip.
//!
//! The subject runs on one pinned core (`taskset -c 0`) and holds N calls, each with SRTP
//! keyed by SDES (keys in the SDP, so no DTLS handshakes), sending `docs/bots/voice.wav`
//! at 50 packets/s and receiving 50 packets/s from the reference answerer,
//! `peerline-bench-uas`, pinned to the other core with the same codec and SRTP. The
//! subjects:
//!
//! * Peerline: `peerline bot run` in load mode (one leg: play the WAV, call, hold, hang up).
//! * baresip 1.0: one process with `call_max_calls` raised, `ausrc aufile` from the same
//!   clip (repeated to cover the call: aufile does not loop), the player `aubridge`
//!   (ALSA's `null` PCM never blocks and its player threads spin), `mediaenc=srtp-mand`,
//!   one account per 250 calls (baresip 1.0 numbers an account's calls 1-255), the calls
//!   dialled through `ctrl_tcp` (`uanext` between accounts) and ended by SIGTERM to its
//!   PID (it hangs them up).
//!
//! For Opus the clip is upsampled to 48 kHz by the harness first, for both subjects.
//!
//! Late or lost frames are counted where the subject's streams are received, by the
//! answerer (sequence gaps + frames that came after their playout time, of the packets
//! expected, summed over the media reports of the ended calls), and for Peerline also
//! where the answerer's streams are received, by the subject (the bot's per-call
//! `packets_lost` and `late_frames`), both over whole calls. A step passes with all N
//! calls up with SRTP, < 0.5 % late+lost, and ≥ 90 % of 50 packets/s delivered per call.
//! (`peerline-bench-uas --mark-file` can sum live counters over the hold alone, but asking
//! every call's media for them at once loaded the answerer's driver enough to disturb
//! what it measured on this shared machine, so the figure uses whole calls.)
//! CPU is the subject's utime+stime (/proc/PID/stat) over the hold, in % of one core.
//! A failed step runs once more (the machine is shared); a subject stops climbing when
//! the retry fails too.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::process::Proc;
use super::signaling::{counter, last_counters};
use super::{Bench, Result};

/// Late+lost frames allowed, in percent of those expected.
pub const MAX_BAD_PERCENT: f64 = 0.5;
/// Packets per second each stream sends (20 ms ptime).
const PPS: f64 = 50.0;
/// A step also needs this share of `PPS` delivered per call (a sender that falls far
/// behind and skips ticks shows here, not in sequence gaps). Loose: the call time it is
/// divided by is read by the answerer's event loop (ACK to end), which lags a little.
const MIN_RATE_SHARE: f64 = 0.90;
/// New calls per second while filling up, for both subjects.
const FILL_RATE: u64 = 200;
/// Issue 9's targets.
const TARGET_PCMU: u64 = 2000;
const TARGET_OPUS: u64 = 300;
const TARGET_RATIO: f64 = 1.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Peerline,
    Baresip,
}

impl Subject {
    pub fn key(self) -> &'static str {
        match self {
            Self::Peerline => "peerline",
            Self::Baresip => "baresip",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::Peerline => "Peerline (`peerline bot run`, load mode)",
            Self::Baresip => "baresip 1.0 (ctrl_tcp dial, aufile)",
        }
    }
}

/// Media counters of one direction, summed over the calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quality {
    pub calls: u64,
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    /// Seconds of media summed over the calls (for the delivered rate).
    pub media_secs: f64,
}

impl Quality {
    /// Late+lost in percent of the packets expected (received + lost).
    pub fn bad_percent(&self) -> f64 {
        let expected = self.received + self.lost;
        if expected == 0 {
            return 100.0;
        }
        100.0 * (self.lost + self.late) as f64 / expected as f64
    }
    /// Packets that arrived or were lost per call-second (`PPS` when the sender kept up).
    pub fn rate(&self) -> f64 {
        if self.media_secs <= 0.0 {
            return 0.0;
        }
        (self.received + self.lost) as f64 / self.media_secs
    }
    fn ok(&self) -> bool {
        self.calls > 0
            && self.bad_percent() < MAX_BAD_PERCENT
            && self.rate() >= PPS * MIN_RATE_SHARE
    }
}

/// One step: N calls held by one subject with one codec.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub calls: u64,
    /// Calls up at the answerer (ACK seen) when the hold started.
    pub up: u64,
    /// Calls the answerer saw with SRTP.
    pub srtp_calls: u64,
    pub hold_secs: f64,
    /// The subject's CPU over the hold, % of one core.
    pub cpu_percent: Option<f64>,
    /// The answerer's CPU over the hold (the reference must not be the limit).
    pub ref_cpu_percent: Option<f64>,
    /// Run-queue wait over the hold (threads runnable but the core busy with something
    /// else: other engineers' builds share the machine), % of the hold, summed over threads.
    pub wait_percent: Option<f64>,
    pub ref_wait_percent: Option<f64>,
    /// The subject's streams, as the answerer received them (whole calls).
    pub at_reference: Quality,
    /// The answerer's streams, as the subject received them (Peerline only).
    pub at_subject: Option<Quality>,
    pub note: String,
}

impl Step {
    pub fn passed(&self) -> bool {
        self.up >= self.calls
            && self.srtp_calls >= self.calls
            && self.at_reference.ok()
            && self.at_subject.is_none_or(|q| q.ok())
    }
}

/// A subject's steps with one codec.
pub struct Ladder {
    pub subject: Subject,
    pub codec: &'static str,
    /// Which run (1-based) this ladder belongs to.
    pub run: u32,
    /// The first step this run tried (runs after the first start just below the first
    /// run's best).
    pub start: u64,
    pub steps: Vec<Step>,
}

impl Ladder {
    pub fn best(&self) -> Option<u64> {
        self.steps
            .iter()
            .filter(|s| s.passed())
            .map(|s| s.calls)
            .max()
    }
}

pub struct Media {
    /// Every run's ladders, one per subject and codec per run.
    pub ladders: Vec<Ladder>,
    pub runs: u32,
    pub hold_secs: u64,
    pub minutes: f64,
}

/// The steps of each codec.
fn plan(smoke: bool) -> Vec<(&'static str, Vec<u64>)> {
    if smoke {
        vec![("PCMU", vec![5]), ("opus", vec![5])]
    } else {
        vec![
            ("PCMU", vec![100, 250, 500, 750, 1000, 1500, 2000, 3000]),
            ("opus", vec![10, 25, 50, 100, 200, 300, 400, 600]),
        ]
    }
}

/// Where a later run's ladder starts: the plan's step just below the first run's best, so
/// the runs after the first spend their time near the limit rather than climbing to it
/// again. `None` (nothing passed in the first run): from the bottom.
fn start_step(steps: &[u64], first_best: Option<u64>) -> u64 {
    let lowest = steps.first().copied().unwrap_or(0);
    first_best.map_or(lowest, |best| {
        steps
            .iter()
            .copied()
            .filter(|&s| s < best)
            .max()
            .unwrap_or(lowest)
    })
}

/// Runs the ladders `bench.runs` times (once with `--smoke`).
pub fn measure(bench: &Bench) -> Result<Media> {
    let started = Instant::now();
    let hold_secs = if bench.smoke { 3 } else { 10 };
    let runs = if bench.smoke { 1 } else { bench.runs.max(1) };
    let dir = bench.work.join("media");
    // Fresh: a step's files (its mark file above all) must not survive from a last run.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The clip at each codec's rate, so neither subject resamples it per call (baresip
    // resamples in its audio pipeline; Peerline decodes a WAV once per process and rate).
    let clip8 =
        std::fs::read(clip_path()).map_err(|e| format!("{}: {e}", clip_path().display()))?;
    let clip48 = dir.join("voice-48k.wav");
    std::fs::write(&clip48, upsampled_wav(&clip8, 6)?)
        .map_err(|e| format!("{}: {e}", clip48.display()))?;
    let mut ladders: Vec<Ladder> = Vec::new();
    for run in 1..=runs {
        for (codec, steps) in plan(bench.smoke) {
            let clip = if codec == "opus" {
                clip48.clone()
            } else {
                clip_path()
            };
            let mut pair = [Subject::Peerline, Subject::Baresip].map(|subject| {
                let first_best = ladders
                    .iter()
                    .find(|l| l.run == 1 && l.subject == subject && l.codec == codec)
                    .and_then(Ladder::best);
                Ladder {
                    subject,
                    codec,
                    run,
                    start: if run == 1 {
                        steps.first().copied().unwrap_or(0)
                    } else {
                        start_step(&steps, first_best)
                    },
                    steps: Vec::new(),
                }
            });
            let run_dir = dir.join(format!("run{run}"));
            climb(bench, &run_dir, codec, &steps, &clip, hold_secs, &mut pair);
            ladders.extend(pair);
        }
    }
    Ok(Media {
        ladders,
        runs,
        hold_secs,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    })
}

/// One run of one codec: both subjects climb side by side from their start steps until
/// each fails a step (after one retry).
fn climb(
    bench: &Bench,
    dir: &Path,
    codec: &'static str,
    steps: &[u64],
    clip: &Path,
    hold_secs: u64,
    pair: &mut [Ladder; 2],
) {
    for &n in steps {
        for ladder in pair.iter_mut() {
            if n < ladder.start || ladder.steps.last().is_some_and(|s| !s.passed()) {
                continue;
            }
            println!(
                "bench: media run {}, {} {codec}, {n} calls",
                ladder.run,
                ladder.subject.key()
            );
            let step_dir = dir.join(format!("{}-{codec}-{n}", ladder.subject.key()));
            let ctx = StepCtx {
                bench,
                dir: &step_dir,
                codec,
                calls: n,
                hold_secs,
                clip,
            };
            let run = |attempt: u32| {
                let dir = step_dir.join(format!("try{attempt}"));
                let ctx = StepCtx { dir: &dir, ..ctx };
                match ladder.subject {
                    Subject::Peerline => peerline_step(&ctx),
                    Subject::Baresip => baresip_step(&ctx),
                }
                .unwrap_or_else(|e| Step {
                    calls: n,
                    note: format!("harness error: {e}"),
                    ..Step::default()
                })
            };
            // A failed step runs once more (a burst of other load on the shared machine
            // can fail one); the second result stands, the first is noted.
            let mut step = run(1);
            if !step.passed() {
                println!("bench:   failed ({}), once more", step.note);
                let mut first = format!(
                    "first try: {} up, {:.3} % late+lost at the answerer",
                    step.up,
                    step.at_reference.bad_percent()
                );
                if !step.note.is_empty() {
                    let _ = write!(first, " ({})", step.note);
                }
                step = run(2);
                step.note = if step.note.is_empty() {
                    first
                } else {
                    format!("{}; {first}", step.note)
                };
            }
            println!(
                "bench:   {} up, cpu {}, at answerer {:.3} % late+lost {:.1} pps, {} {}",
                step.up,
                step.cpu_percent
                    .map_or("?".to_string(), |c| format!("{c:.0} %")),
                step.at_reference.bad_percent(),
                step.at_reference.rate(),
                if step.passed() { "passed" } else { "FAILED" },
                step.note
            );
            ladder.steps.push(step);
        }
        if pair
            .iter()
            .all(|l| l.steps.last().is_some_and(|s| !s.passed()))
        {
            break;
        }
    }
}

#[derive(Clone, Copy)]
struct StepCtx<'a> {
    bench: &'a Bench,
    dir: &'a Path,
    codec: &'static str,
    calls: u64,
    hold_secs: u64,
    clip: &'a Path,
}

impl StepCtx<'_> {
    /// The clip's sample rate (and baresip's source and player rates).
    fn srate(&self) -> u32 {
        if self.codec == "opus" {
            48_000
        } else {
            8_000
        }
    }

    fn fill_secs(&self) -> u64 {
        self.calls.div_ceil(FILL_RATE)
    }
}

/// What the answerer received from the subject, from its counters line.
fn reference_quality(line: &str) -> Quality {
    Quality {
        calls: counter(line, "media_calls"),
        received: counter(line, "rx_packets"),
        lost: counter(line, "rx_lost"),
        late: counter(line, "late"),
        media_secs: counter(line, "media_ms") as f64 / 1000.0,
    }
}

/// `peerline-bench-uas` with the codec, SDES-SRTP mandatory, pinned to the answerer core.
fn start_answerer(ctx: &StepCtx, rtp_ports: &str) -> Result<(Proc, String)> {
    std::fs::create_dir_all(ctx.dir).map_err(|e| format!("{}: {e}", ctx.dir.display()))?;
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--rtp-ports",
        rtp_ports,
        "--codec",
        ctx.codec,
        "--srtp",
        "mandatory",
        "--allow-sdes-without-tls",
        "yes",
        // A subject killed at its bound sends no BYE: its calls end by RTP timeout.
        "--rtp-timeout",
        "5",
        "--max-secs",
        "900",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut uas = Proc::spawn(
        "answerer",
        &ctx.bench.binary("peerline-bench-uas"),
        &args,
        ctx.dir,
        ctx.bench.answerer_cpu,
    )?;
    let addr = uas.wait_line("listening on ", Duration::from_secs(20))?;
    Ok((uas, addr))
}

/// Polls until `f()` is true or `limit` passes (one poll per 100 ms); whether it became true.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    for _ in 0..=(limit.as_millis() / 100) {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    f()
}

/// What the hold measured: CPU and run-queue wait of the subject and the answerer (% of
/// one core), and the hold's length.
struct Held {
    cpu: Option<f64>,
    ref_cpu: Option<f64>,
    /// Time runnable but waiting for the core (other load on it), % of the hold.
    wait: Option<f64>,
    ref_wait: Option<f64>,
    secs: f64,
}

fn hold(ctx: &StepCtx, subject: &Proc, answerer: &Proc) -> Held {
    let t0 = Instant::now();
    let (s0, a0) = (subject.cpu_secs().ok(), answerer.cpu_secs().ok());
    let (w0, r0) = (
        subject.runqueue_wait_secs().ok(),
        answerer.runqueue_wait_secs().ok(),
    );
    sleep(Duration::from_secs(ctx.hold_secs));
    let (s1, a1) = (subject.cpu_secs().ok(), answerer.cpu_secs().ok());
    let (w1, r1) = (
        subject.runqueue_wait_secs().ok(),
        answerer.runqueue_wait_secs().ok(),
    );
    let secs = t0.elapsed().as_secs_f64();
    let pct = |a: Option<f64>, b: Option<f64>| Some(100.0 * (b? - a?) / secs);
    Held {
        cpu: pct(s0, s1),
        ref_cpu: pct(a0, a1),
        wait: pct(w0, w1),
        ref_wait: pct(r0, r1),
        secs,
    }
}

/// RTP port ranges: two ports per call and some room.
fn ports(low: u64, calls: u64) -> String {
    let high = (low + 2 * calls + 200).min(65_000);
    format!("{low}-{high}")
}

fn load_scenario(ctx: &StepCtx, target: &str, wait_secs: u64, timeout: u64) -> String {
    format!(
        "# Written by cargo xtask bench media.\n\
         name = \"bench media {codec} {n}\"\n\
         timeout = {timeout}\n\n\
         [load]\n\
         leg = \"caller\"\n\
         calls = {n}\n\
         concurrency = {n}\n\
         rate = {FILL_RATE}\n\n\
         [[leg]]\n\
         name = \"caller\"\n\
         listen = \"127.0.0.1:0\"\n\
         rtp_ports = \"{ports}\"\n\
         codecs = [\"{codec}\"]\n\
         srtp = \"mandatory\"\n\
         srtp_keying = \"sdes\"\n\
         allow_sdes_without_tls = true\n\
         steps = [\n\
         \x20 {{ play = {{ wav = {clip:?} }} }},\n\
         \x20 {{ call = \"sip:media@{target}\", timeout = 30 }},\n\
         \x20 {{ expect = \"answered\", within = 30 }},\n\
         \x20 {{ wait = {wait_secs} }},\n\
         \x20 \"hangup\",\n\
         ]\n",
        codec = ctx.codec,
        n = ctx.calls,
        ports = ports(30_000, ctx.calls),
        clip = ctx.clip.display().to_string(),
    )
}

/// Sums `"key": NUMBER` over every call record of the bot's JSON (the keys are the
/// per-call fields of `CallRecord`, found nowhere else in the file).
fn sum_field(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let mut total = 0.0;
    for (at, _) in json.match_indices(&pat) {
        let rest = json[at + pat.len()..].trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
            .unwrap_or(rest.len());
        if let Ok(v) = rest[..end].parse::<f64>() {
            total += v;
        }
    }
    total
}

/// The bot JSON's `"calls"` array (the per-call records), before `"load"`.
fn calls_part(json: &str) -> &str {
    let start = json.find("\"calls\":").unwrap_or(0);
    let end = json
        .rfind("\"load\":")
        .filter(|&e| e > start)
        .unwrap_or(json.len());
    &json[start..end]
}

/// What the bot received from the answerer, from its JSON results.
fn bot_quality(json: &str) -> Quality {
    let json = calls_part(json);
    Quality {
        calls: json.matches("\"outgoing\":").count() as u64,
        received: sum_field(json, "packets_received") as u64,
        lost: sum_field(json, "packets_lost") as u64,
        late: sum_field(json, "late_frames") as u64,
        media_secs: sum_field(json, "duration_secs"),
    }
}

fn peerline_step(ctx: &StepCtx) -> Result<Step> {
    let (mut uas, addr) = start_answerer(ctx, &ports(20_000, ctx.calls))?;
    // Each call waits long enough for the last to come up, the hold, and some slack.
    let wait_secs = ctx.fill_secs() + ctx.hold_secs + 8;
    let timeout = wait_secs + ctx.fill_secs() + 60;
    let scenario = ctx.dir.join("load.toml");
    std::fs::write(&scenario, load_scenario(ctx, &addr, wait_secs, timeout))
        .map_err(|e| format!("{}: {e}", scenario.display()))?;
    let json = ctx.dir.join("results.json");
    let args = vec![
        "bot".to_string(),
        "run".to_string(),
        scenario.display().to_string(),
        "--json".to_string(),
        json.display().to_string(),
    ];
    let mut bot = Proc::spawn(
        "subject",
        &ctx.bench.binary("peerline"),
        &args,
        ctx.dir,
        ctx.bench.caller_cpu,
    )?;
    let all_up = wait_until(Duration::from_secs(ctx.fill_secs() + 7), || {
        counter(&last_counters(&uas), "established") >= ctx.calls
    });
    let up = counter(&last_counters(&uas), "established");
    let held = hold(ctx, &bot, &uas);
    let mut note = String::new();
    if !all_up {
        let _ = write!(note, "only {up} of {} calls up; ", ctx.calls);
    }
    if bot.wait_exit(Duration::from_secs(timeout + 10)).is_none() {
        bot.stop();
        note.push_str("the bot did not finish within its bound and was stopped; ");
    }
    // Every call ended at the answerer (BYE, or RTP timeout after a stop).
    let ended_all = wait_until(Duration::from_secs(15), || {
        let c = last_counters(&uas);
        counter(&c, "ended") >= counter(&c, "established")
    });
    if !ended_all {
        note.push_str("not every call had ended at the answerer; ");
    }
    sleep(Duration::from_millis(300));
    let line = last_counters(&uas);
    uas.stop();
    let at_subject = match std::fs::read_to_string(&json) {
        Ok(text) => {
            let q = bot_quality(&text);
            let failed = super::signaling::load_field(&text, "failed").unwrap_or(0.0);
            if failed > 0.0 {
                let _ = write!(note, "bot: {failed} calls failed; ");
            }
            Some(q)
        }
        Err(e) => {
            let _ = write!(note, "no bot results ({e}); ");
            Some(Quality::default())
        }
    };
    Ok(Step {
        calls: ctx.calls,
        up,
        srtp_calls: counter(&line, "srtp_calls"),
        hold_secs: held.secs,
        cpu_percent: held.cpu,
        ref_cpu_percent: held.ref_cpu,
        wait_percent: held.wait,
        ref_wait_percent: held.ref_wait,
        at_reference: reference_quality(&line),
        at_subject,
        note: note.trim_end_matches("; ").to_string(),
    })
}

/// The clip's PCM data repeated to last at least `secs` (baresip's aufile stops at the end
/// of its file; Peerline loops the clip itself).
fn repeated_wav(clip: &[u8], secs: u64) -> Result<Vec<u8>> {
    let fmt = chunk(clip, b"fmt ").ok_or("the clip has no fmt chunk")?;
    let data = chunk(clip, b"data").ok_or("the clip has no data chunk")?;
    if fmt.len() < 16 || data.is_empty() {
        return Err("the clip's fmt or data chunk is too short".into());
    }
    let byte_rate = u32::from_le_bytes([fmt[8], fmt[9], fmt[10], fmt[11]]) as u64;
    let want = byte_rate.saturating_mul(secs).max(data.len() as u64);
    let copies = want.div_ceil(data.len() as u64);
    let body_len = data.len() as u64 * copies;
    let body_len = u32::try_from(body_len).map_err(|_| "repeated clip too long")?;
    let mut out = Vec::with_capacity(body_len as usize + 44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + body_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&fmt[..16]);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&body_len.to_le_bytes());
    for _ in 0..copies {
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// The body of a RIFF chunk.
fn chunk<'a>(wav: &'a [u8], id: &[u8; 4]) -> Option<&'a [u8]> {
    if wav.get(..4)? != b"RIFF" || wav.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    // At most 64 chunks.
    for _ in 0..64 {
        let head = wav.get(at..at + 8)?;
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let body = wav.get(at + 8..at + 8 + len)?;
        if &head[..4] == id {
            return Some(body);
        }
        at += 8 + len + (len & 1);
    }
    None
}

/// baresip 1.0 numbers an account's calls 1-255 (`assign_linenum`); each account gets
/// at most this many, the next `uanext`.
const CALLS_PER_ACCOUNT: u64 = 250;

/// One account per `CALLS_PER_ACCOUNT` calls, all on the one SIP port.
fn baresip_accounts(calls: u64, sip_port: u16, codec: &str) -> String {
    (0..calls.div_ceil(CALLS_PER_ACCOUNT).max(1))
        .map(|k| {
            format!(
                "<sip:bench{k}@127.0.0.1:{sip_port}>;regint=0;answermode=manual;audio_codecs={codec};mediaenc=srtp-mand\n"
            )
        })
        .collect()
}

/// Dials baresip refused for want of a line number (its per-account call limit).
fn count_refused(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter(|l| l.contains("could not assign linenumber"))
        .count() as u64
}

/// A 16-bit mono clip upsampled `factor` times by linear interpolation (8 kHz → 48 kHz for
/// Opus), as a WAV file.
fn upsampled_wav(clip: &[u8], factor: u32) -> Result<Vec<u8>> {
    let fmt = chunk(clip, b"fmt ").ok_or("the clip has no fmt chunk")?;
    let data = chunk(clip, b"data").ok_or("the clip has no data chunk")?;
    if fmt.len() < 16 || factor == 0 {
        return Err("the clip's fmt chunk is too short".into());
    }
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    if channels != 1 || bits != 16 {
        return Err(format!(
            "the clip is {channels} channels of {bits} bits, not 16-bit mono"
        ));
    }
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut out = Vec::with_capacity(samples.len() * factor as usize);
    for (i, &a) in samples.iter().enumerate() {
        let b = samples.get(i + 1).copied().unwrap_or(a);
        for k in 0..factor {
            let v = f64::from(a) + (f64::from(b) - f64::from(a)) * f64::from(k) / f64::from(factor);
            out.push(v.round() as i16);
        }
    }
    let new_rate = rate * factor;
    let body: Vec<u8> = out.iter().flat_map(|s| s.to_le_bytes()).collect();
    let body_len = u32::try_from(body.len()).map_err(|_| "upsampled clip too long")?;
    let mut wav = Vec::with_capacity(body.len() + 44);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + body_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&new_rate.to_le_bytes());
    wav.extend_from_slice(&(new_rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&body_len.to_le_bytes());
    wav.extend_from_slice(&body);
    Ok(wav)
}

/// Counts `"type":"NAME"` events in ctrl_tcp's netstring stream.
pub fn count_event(text: &str, name: &str) -> u64 {
    text.matches(&format!("\"type\":\"{name}\"")).count() as u64
}

/// A free TCP port on 127.0.0.1 (the kernel's choice).
fn free_tcp_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port: {e}"))
}

fn baresip_config(ctx: &StepCtx, wav: &Path, sip_port: u16, ctrl_port: u16) -> String {
    [
        "# Written by cargo xtask bench media.".to_string(),
        "poll_method epoll".into(),
        format!("sip_listen 127.0.0.1:{sip_port}"),
        "net_interface 127.0.0.1".into(),
        format!("rtp_ports {}", ports(40_000, ctx.calls)),
        // ALSA's `null` PCM never blocks, so baresip's player threads spin on it (one
        // core full at 5 calls); aubridge's player is clocked at ptime and discards.
        "audio_player aubridge,nil".into(),
        "audio_alert aubridge,nil".into(),
        format!("audio_source aufile,{}", wav.display()),
        format!("ausrc_srate {}", ctx.srate()),
        format!("auplay_srate {}", ctx.srate()),
        "ausrc_channels 1".into(),
        "auplay_channels 1".into(),
        format!("call_max_calls {}", ctx.calls + 10),
        format!("ctrl_tcp_listen 127.0.0.1:{ctrl_port}"),
        "module_path /usr/lib/baresip/modules".into(),
        "module g711.so".into(),
        "module opus.so".into(),
        "module aufile.so".into(),
        "module aubridge.so".into(),
        "module srtp.so".into(),
        "module ctrl_tcp.so".into(),
        "module menu.so".into(),
        "module account.so".into(),
    ]
    .join("\n")
        + "\n"
}

fn baresip_step(ctx: &StepCtx) -> Result<Step> {
    let (mut uas, addr) = start_answerer(ctx, &ports(20_000, ctx.calls))?;
    let cfg = ctx.dir.join("baresip");
    std::fs::create_dir_all(&cfg).map_err(|e| format!("{}: {e}", cfg.display()))?;
    let clip = std::fs::read(ctx.clip).map_err(|e| format!("{}: {e}", ctx.clip.display()))?;
    // Longer than any call of the step.
    let life = ctx.fill_secs() + ctx.hold_secs + 60;
    let wav = cfg.join("clip-repeated.wav");
    std::fs::write(&wav, repeated_wav(&clip, life + 30)?)
        .map_err(|e| format!("{}: {e}", wav.display()))?;
    let sip_port = free_tcp_port()?;
    let ctrl_port = free_tcp_port()?;
    let codec = if ctx.codec == "opus" {
        "opus/48000/2"
    } else {
        "PCMU"
    };
    let files: [(&str, String); 3] = [
        ("config", baresip_config(ctx, &wav, sip_port, ctrl_port)),
        ("accounts", baresip_accounts(ctx.calls, sip_port, codec)),
        ("contacts", String::new()),
    ];
    for (name, text) in files {
        let p = cfg.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let args = vec![
        "-f".to_string(),
        cfg.display().to_string(),
        "-t".into(),
        life.to_string(),
    ];
    let mut baresip = Proc::spawn(
        "subject",
        Path::new("baresip"),
        &args,
        ctx.dir,
        ctx.bench.caller_cpu,
    )?;
    let ctrl = SocketAddr::from(([127, 0, 0, 1], ctrl_port));
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect_timeout(&ctrl, Duration::from_millis(200)) {
            stream = Some(s);
            break;
        }
        if baresip.try_status().is_some() {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    let Some(mut stream) = stream else {
        baresip.stop();
        uas.stop();
        return Err(format!(
            "baresip's ctrl_tcp did not accept on {ctrl} (see {})",
            ctx.dir.join("subject.stderr.log").display()
        ));
    };
    // Drain its events (a full socket would stall it) and count established calls.
    let events = Arc::new(EventLog::default());
    let reader = {
        let events = events.clone();
        let mut rx = stream
            .try_clone()
            .map_err(|e| format!("ctrl_tcp socket: {e}"))?;
        let _ = rx.set_read_timeout(Some(Duration::from_millis(200)));
        let bound = Duration::from_secs(life + 60);
        std::thread::spawn(move || events.drain(&mut rx, bound))
    };
    let t0 = Instant::now();
    let mut dial_errors = 0u64;
    for i in 0..ctx.calls {
        let due = Duration::from_secs_f64(i as f64 / FILL_RATE as f64);
        if let Some(d) = due.checked_sub(t0.elapsed()) {
            sleep(d);
        }
        // The next account takes the next CALLS_PER_ACCOUNT calls.
        if i > 0 && i % CALLS_PER_ACCOUNT == 0 {
            let body = format!("{{\"command\":\"uanext\",\"params\":\"\",\"token\":\"ua{i}\"}}");
            if stream
                .write_all(format!("{}:{},", body.len(), body).as_bytes())
                .is_err()
            {
                dial_errors += 1;
            }
        }
        let body = format!(
            "{{\"command\":\"dial\",\"params\":\"sip:media{i}@{addr}\",\"token\":\"{i}\"}}"
        );
        if stream
            .write_all(format!("{}:{},", body.len(), body).as_bytes())
            .is_err()
        {
            dial_errors += 1;
        }
    }
    let all_up = wait_until(Duration::from_secs(ctx.fill_secs() + 7), || {
        counter(&last_counters(&uas), "established") >= ctx.calls
    });
    let up = counter(&last_counters(&uas), "established");
    let held = hold(ctx, &baresip, &uas);
    let mut note = String::new();
    if !all_up {
        let _ = write!(note, "only {up} of {} calls up; ", ctx.calls);
    }
    if dial_errors > 0 {
        let _ = write!(note, "{dial_errors} dial commands not written; ");
    }
    if baresip.try_status().is_some() {
        note.push_str("baresip exited during the step; ");
    }
    // SIGTERM: baresip hangs every call up (BYE) and exits; bounded, then SIGKILL.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &baresip.pid().to_string()])
        .status();
    if baresip
        .wait_exit(Duration::from_secs(20 + ctx.calls / 100))
        .is_none()
    {
        baresip.stop();
        note.push_str("baresip did not exit within its bound after SIGTERM and was killed; ");
    }
    events.stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let ended_all = wait_until(Duration::from_secs(15), || {
        let c = last_counters(&uas);
        counter(&c, "ended") >= counter(&c, "established")
    });
    if !ended_all {
        note.push_str("not every call had ended at the answerer; ");
    }
    sleep(Duration::from_millis(300));
    let line = last_counters(&uas);
    uas.stop();
    let refused = count_refused(&baresip.stdout_text());
    if refused > 0 {
        let _ = write!(
            note,
            "baresip refused {refused} dials with `call: could not assign linenumber`; "
        );
    }
    let _ = write!(
        note,
        "baresip's ctrl_tcp: {} CALL_ESTABLISHED, {} CALL_CLOSED",
        events.established.load(Ordering::Relaxed),
        events.closed.load(Ordering::Relaxed)
    );
    Ok(Step {
        calls: ctx.calls,
        up,
        srtp_calls: counter(&line, "srtp_calls"),
        hold_secs: held.secs,
        cpu_percent: held.cpu,
        ref_cpu_percent: held.ref_cpu,
        wait_percent: held.wait,
        ref_wait_percent: held.ref_wait,
        at_reference: reference_quality(&line),
        at_subject: None,
        note,
    })
}

/// Events read from baresip's ctrl_tcp connection.
#[derive(Default)]
struct EventLog {
    established: AtomicU64,
    closed: AtomicU64,
    stop: AtomicBool,
}

impl EventLog {
    /// Reads until `stop`, EOF or `bound`; counts events by netstring (a netstring split
    /// across reads is kept until it is whole).
    fn drain(&self, rx: &mut TcpStream, bound: Duration) {
        let start = Instant::now();
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 65536];
        // One read per 200 ms at least (the read timeout), bounded by `bound`.
        for _ in 0..=(bound.as_millis() / 10) {
            if self.stop.load(Ordering::Relaxed) || start.elapsed() >= bound {
                break;
            }
            match rx.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(_) => continue,
            }
            let (whole, rest) = split_netstrings(&pending);
            self.established
                .fetch_add(count_event(&whole, "CALL_ESTABLISHED"), Ordering::Relaxed);
            self.closed
                .fetch_add(count_event(&whole, "CALL_CLOSED"), Ordering::Relaxed);
            pending = rest;
        }
    }
}

/// The whole netstrings at the front of `buf` (their bodies joined by newlines) and what
/// is left after them.
fn split_netstrings(buf: &[u8]) -> (String, Vec<u8>) {
    let mut out = String::new();
    let mut at = 0usize;
    while let Some(colon) = buf[at..].iter().position(|&b| b == b':') {
        let Some(len) = std::str::from_utf8(&buf[at..at + colon])
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            // Not a netstring: drop what was read so far rather than stall.
            return (out, Vec::new());
        };
        let body = at + colon + 1;
        if buf.len() <= body + len {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[body..body + len]));
        out.push('\n');
        at = body + len + 1;
    }
    (out, buf[at..].to_vec())
}

/// `media …` lines for `media-results.txt` (tests parse them).
pub fn results_text(m: &Media) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.1}"));
    for l in &m.ladders {
        for st in &l.steps {
            let _ = writeln!(
                s,
                "media run={} subject={} codec={} calls={} up={} srtp_calls={} hold_secs={:.1} cpu_percent={} ref_cpu_percent={} wait_percent={} ref_wait_percent={} ref_bad_percent={:.3} ref_pps={:.1} subject_bad_percent={} passed={}",
                l.run,
                l.subject.key(),
                l.codec,
                st.calls,
                st.up,
                st.srtp_calls,
                st.hold_secs,
                opt(st.cpu_percent),
                opt(st.ref_cpu_percent),
                opt(st.wait_percent),
                opt(st.ref_wait_percent),
                st.at_reference.bad_percent(),
                st.at_reference.rate(),
                st.at_subject
                    .map_or("none".to_string(), |q| format!("{:.3}", q.bad_percent())),
                u8::from(st.passed())
            );
        }
        let _ = writeln!(
            s,
            "media_best run={} subject={} codec={} calls={}",
            l.run,
            l.subject.key(),
            l.codec,
            l.best().unwrap_or(0)
        );
    }
    for codec in ["PCMU", "opus"] {
        for subject in [Subject::Peerline, Subject::Baresip] {
            if let Some(b) = median_best(m, subject, codec) {
                let _ = writeln!(
                    s,
                    "media_median subject={} codec={codec} runs={} calls={b}",
                    subject.key(),
                    m.runs
                );
            }
        }
    }
    s
}

/// Each run's best step for a subject and codec, in run order (0 where no step passed).
fn run_bests(m: &Media, subject: Subject, codec: &str) -> Vec<u64> {
    m.ladders
        .iter()
        .filter(|l| l.subject == subject && l.codec == codec)
        .map(|l| l.best().unwrap_or(0))
        .collect()
}

/// The median over the runs of the best step (the lower middle for an even count).
pub fn median_best(m: &Media, subject: Subject, codec: &str) -> Option<u64> {
    let mut v = run_bests(m, subject, codec);
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

fn figure_line(m: &Media, codec: &str) -> String {
    let target = if codec == "opus" {
        TARGET_OPUS
    } else {
        TARGET_PCMU
    };
    let top = plan(false)
        .into_iter()
        .find(|(c, _)| *c == codec)
        .and_then(|(_, steps)| steps.last().copied());
    let capped = |subject: Subject| {
        m.ladders.iter().any(|l| {
            l.subject == subject
                && l.codec == codec
                && l.steps
                    .last()
                    .is_some_and(|s| s.passed() && Some(s.calls) == top)
        })
    };
    let (Some(pb), Some(bb)) = (
        median_best(m, Subject::Peerline, codec),
        median_best(m, Subject::Baresip, codec),
    ) else {
        return "not measured".into();
    };
    let runs = |subject| {
        run_bests(m, subject, codec)
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!(
        "**{codec}+SRTP: Peerline {pb} calls, baresip {bb} calls on one core** (median over \
         {} run(s); each run's best: Peerline {}, baresip {}) — target ≥ {target}: **{}**",
        m.runs,
        runs(Subject::Peerline),
        runs(Subject::Baresip),
        if pb >= target { "met" } else { "missed" }
    );
    if bb > 0 {
        let r = pb as f64 / bb as f64;
        let _ = write!(
            s,
            "; ratio {r:.2}×, target ≥ {TARGET_RATIO}×: **{}**",
            if r >= TARGET_RATIO { "met" } else { "missed" }
        );
    } else {
        s.push_str("; no baresip step passed, no ratio");
    }
    for subject in [Subject::Peerline, Subject::Baresip] {
        if capped(subject) {
            let _ = write!(
                s,
                " ({} passed the top step: capped by the ladder, not measured to its limit)",
                subject.key()
            );
        }
    }
    s.push('.');
    s
}

/// The figure as a section of docs/benchmarks.md.
pub fn markdown(m: &Media, machine: &str, when: &str, smoke: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Concurrent media calls per core, next to baresip (figure 3 of issue 9)\n"
    );
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench media{}` ({when}; {machine}) in {:.1} minutes; the \
         machine is shared with other engineers' builds, so CPU figures are noisy.\n",
        if smoke { " --smoke" } else { "" },
        m.minutes
    );
    let _ = writeln!(
        s,
        "Each step: a fresh answerer (`peerline-bench-uas`, pinned to core 1, same codec, \
         SDES-SRTP mandatory, sending silence at 50 packets/s per call) and a fresh subject \
         pinned to core 0 placing N calls at {FILL_RATE} calls/s, each sending \
         docs/bots/voice.wav (2 s, 8 kHz, looped; for Opus the harness upsamples it to \
         48 kHz first, so neither subject resamples; baresip's aufile gets the clip repeated \
         to cover the call, as it does not loop) at 50 packets/s with SRTP (SDES keys in the \
         SDP, `AES_CM_128_HMAC_SHA1_80`), then holding all N for {} s. baresip 1.0 numbers \
         an account's calls 1-255, so it gets one account per {CALLS_PER_ACCOUNT} calls \
         (`uanext` between them) in its one process; its player is `aubridge` (ALSA's \
         `null` PCM never blocks and spins a core at 5 calls). CPU = the subject's \
         utime+stime over the hold, in % of one core; run-queue wait = time its threads \
         were runnable but the core ran something else (summed /proc/PID/task/*/schedstat), \
         in % of the hold: a measure of the other load on the pinned core. Late+lost = sequence gaps + frames \
         that arrived after their playout time, in % of the packets expected, over the \
         whole of every call (fill, hold, hang-up: the hold is at least 10 s of each call's \
         20-30 s): the subject's streams by the answerer (its media reports of ended calls, \
         summed), the answerer's streams by the Peerline bot (its JSON per call; baresip's \
         own receive counters are not read). A step passes with all N calls up with SRTP, \
         < {MAX_BAD_PERCENT} % late+lost on each side measured and ≥ {:.1} packets/s per \
         call delivered to the answerer (ACK to end); a failed step runs \
         once more, and a subject stops when the retry fails too. The ladders run {} \
         time(s); runs after the first start each subject at the step just below its first \
         run's best, and a run where that start fails counts 0 in the median.\n",
        m.hold_secs,
        PPS * MIN_RATE_SHARE,
        m.runs
    );
    for codec in ["PCMU", "opus"] {
        let _ = writeln!(s, "{}\n", figure_line(m, codec));
    }
    let _ = writeln!(
        s,
        "| run | subject | codec | calls | up (SRTP) | subject CPU (run-queue wait) | answerer CPU (run-queue wait) | late+lost at answerer | packets/s per call at answerer | late+lost at subject | verdict | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.0} %"));
    for l in &m.ladders {
        for st in &l.steps {
            let q = &st.at_reference;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} ({}) | {} ({}) | {} ({}) | {:.3} % ({} lost, {} late of {}) | {:.1} | {} | {} | {} |",
                l.run,
                l.subject.label(),
                l.codec,
                st.calls,
                st.up,
                st.srtp_calls,
                pct(st.cpu_percent),
                pct(st.wait_percent),
                pct(st.ref_cpu_percent),
                pct(st.ref_wait_percent),
                q.bad_percent(),
                q.lost,
                q.late,
                q.received + q.lost,
                q.rate(),
                st.at_subject.map_or("not read".to_string(), |q| format!(
                    "{:.3} % ({} lost, {} late)",
                    q.bad_percent(),
                    q.lost,
                    q.late
                )),
                if st.passed() { "pass" } else { "**fail**" },
                st.note.replace('|', "/")
            );
        }
    }
    s
}

/// Where the clip is, for tests and the docs.
pub fn clip_path() -> PathBuf {
    super::super::workspace_root().join("docs/bots/voice.wav")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_runs_start_just_below_the_first_run_s_best() {
        let steps = [100, 250, 500, 750];
        assert_eq!(start_step(&steps, Some(500)), 250);
        assert_eq!(start_step(&steps, Some(750)), 500);
        assert_eq!(start_step(&steps, Some(100)), 100);
        assert_eq!(start_step(&steps, None), 100);
    }

    #[test]
    fn the_figure_is_the_median_of_the_runs_bests() {
        let step = |calls, passed: bool| Step {
            calls,
            up: calls,
            srtp_calls: calls,
            at_reference: Quality {
                calls: if passed { calls } else { 0 },
                received: 1000,
                media_secs: 20.0,
                ..Quality::default()
            },
            ..Step::default()
        };
        let ladder = |run, steps: Vec<Step>| Ladder {
            subject: Subject::Peerline,
            codec: "PCMU",
            run,
            start: 0,
            steps,
        };
        let m = Media {
            ladders: vec![
                ladder(1, vec![step(250, true), step(500, true), step(750, false)]),
                ladder(2, vec![step(250, false)]),
                ladder(3, vec![step(250, true), step(500, true), step(750, true)]),
            ],
            runs: 3,
            hold_secs: 10,
            minutes: 1.0,
        };
        assert!(m.ladders[0].steps[1].passed() && !m.ladders[0].steps[2].passed());
        assert_eq!(run_bests(&m, Subject::Peerline, "PCMU"), vec![500, 0, 750]);
        assert_eq!(median_best(&m, Subject::Peerline, "PCMU"), Some(500));
        assert_eq!(median_best(&m, Subject::Baresip, "PCMU"), None);
        assert!(
            results_text(&m).contains("media_median subject=peerline codec=PCMU runs=3 calls=500")
        );
    }

    #[test]
    fn reads_the_answerer_s_counters() {
        let line = "incoming=5 answered=5 established=5 ended=5 answer_errors=0 media_calls=5 srtp_calls=5 rx_packets=3998 rx_lost=2 late=3 missing=23 concealed=23 tx_packets=4019 auth_failures=0 media_ms=80000";
        let q = reference_quality(line);
        assert_eq!(q.calls, 5);
        assert_eq!((q.received, q.lost, q.late), (3998, 2, 3));
        assert!((q.bad_percent() - 0.125).abs() < 1e-9);
        assert!((q.rate() - 50.0).abs() < 1e-9);
        assert!(q.ok());
        assert_eq!(Quality::default().bad_percent(), 100.0);
    }

    #[test]
    fn sums_the_bot_s_call_records() {
        let json = r#"{"duration_secs": 30.0, "steps": [{"duration_secs": 1.0}], "calls": [
          {"leg": "caller", "outgoing": true, "duration_secs": 10.5, "packets_received": 500, "packets_lost": 1, "packets_sent": 510, "late_frames": 2},
          {"leg": "caller", "outgoing": true, "duration_secs": 9.5, "packets_received": 480, "packets_lost": 0, "packets_sent": 490, "late_frames": 0}
        ], "load": {"succeeded": 2, "failed": 0}}"#;
        let q = bot_quality(json);
        assert_eq!(q.calls, 2);
        assert_eq!((q.received, q.lost, q.late), (980, 1, 2));
        assert_eq!(q.media_secs, 20.0);
        assert_eq!(sum_field(json, "duration_secs"), 51.0);
        assert_eq!(sum_field(json, "absent"), 0.0);
    }

    #[test]
    fn counts_ctrl_tcp_events_across_reads() {
        let a = br#"{"event":true,"type":"CALL_ESTABLISHED","id":"1"}"#;
        let b = br#"{"response":true,"ok":true,"token":"0"}"#;
        let mut stream = Vec::new();
        stream.extend_from_slice(format!("{}:", a.len()).as_bytes());
        stream.extend_from_slice(a);
        stream.push(b',');
        stream.extend_from_slice(format!("{}:", b.len()).as_bytes());
        stream.extend_from_slice(b);
        stream.push(b',');
        let split = stream.len() - 5;
        let (whole, rest) = split_netstrings(&stream[..split]);
        assert_eq!(count_event(&whole, "CALL_ESTABLISHED"), 1);
        assert!(!rest.is_empty());
        let mut next = rest;
        next.extend_from_slice(&stream[split..]);
        let (whole, rest) = split_netstrings(&next);
        assert!(whole.contains("\"token\":\"0\""));
        assert!(rest.is_empty());
        assert_eq!(split_netstrings(b"garbage:x").1, Vec::<u8>::new());
    }

    #[test]
    fn baresip_accounts_and_refusals() {
        let a = baresip_accounts(600, 5080, "PCMU");
        assert_eq!(a.lines().count(), 3);
        assert!(a.starts_with("<sip:bench0@127.0.0.1:5080>;regint=0;answermode=manual;audio_codecs=PCMU;mediaenc=srtp-mand\n"));
        assert_eq!(baresip_accounts(5, 5080, "PCMU").lines().count(), 1);
        let out = "ua: using best effort AF\n\x1b[31mcall: could not assign linenumber\n\x1b[31mcall: could not assign linenumber\nCall established\n";
        assert_eq!(count_refused(out), 2);
    }

    #[test]
    fn upsamples_the_clip_for_opus() {
        let clip = std::fs::read(clip_path()).unwrap();
        let up = upsampled_wav(&clip, 6).unwrap();
        let fmt = chunk(&up, b"fmt ").unwrap();
        assert_eq!(u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]), 48_000);
        assert_eq!(
            chunk(&up, b"data").unwrap().len(),
            6 * chunk(&clip, b"data").unwrap().len()
        );
        // Every 6th sample is an original one.
        let orig = chunk(&clip, b"data").unwrap();
        let data = chunk(&up, b"data").unwrap();
        assert_eq!(&data[12 * 100..12 * 100 + 2], &orig[2 * 100..2 * 100 + 2]);
    }

    #[test]
    fn repeats_a_wav_clip() {
        let clip = std::fs::read(clip_path()).unwrap();
        let data = chunk(&clip, b"data").unwrap().len();
        let long = repeated_wav(&clip, 5).unwrap();
        let body = chunk(&long, b"data").unwrap();
        // 8 kHz 16-bit mono: 16,000 bytes a second, 2 s clip → 3 copies for 5 s.
        assert_eq!(body.len(), 3 * data);
        assert_eq!(
            chunk(&long, b"fmt ").unwrap(),
            &chunk(&clip, b"fmt ").unwrap()[..16]
        );
        assert!(repeated_wav(b"not a wav", 5).is_err());
    }

    #[test]
    fn a_step_passes_only_with_every_call_up_with_srtp_and_clean_media() {
        let good = Quality {
            calls: 10,
            received: 5000,
            lost: 0,
            late: 0,
            media_secs: 100.0,
        };
        let mut st = Step {
            calls: 10,
            up: 10,
            srtp_calls: 10,
            at_reference: good,
            at_subject: Some(good),
            ..Step::default()
        };
        assert!(st.passed());
        st.srtp_calls = 9;
        assert!(!st.passed());
        st.srtp_calls = 10;
        st.at_subject = Some(Quality { late: 30, ..good });
        assert!(!st.passed());
        st.at_subject = None;
        st.at_reference = Quality {
            media_secs: 200.0,
            ..good
        };
        assert!(!st.passed(), "25 packets/s is a sender that fell behind");
    }
}
