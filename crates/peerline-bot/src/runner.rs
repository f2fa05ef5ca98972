//! Runs legs: one [`Phone`] per leg, steps in order, every wait bounded.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerline_ua::{
    AudioSource, CallId, Config, EndReason, Event, MediaOptions, MediaReport, Phone,
};
use tokio::sync::{mpsc, watch};

use crate::audio;
use crate::results::{CallRecord, RunResult, Status, StepResult};
use crate::router::{Offered, Routed, Router};
use crate::scenario::{
    Action, AudioCheck, Expectation, Leg, Part, Scenario, Source, Step, Template,
};
use crate::BotError;

mod leg_steps;
mod transfer_steps;

use transfer_steps::Referral;

/// What every leg of a run shares.
pub(crate) struct Shared {
    pub scenario: Arc<Scenario>,
    /// `${leg.NAME.uri}`.
    pub uris: HashMap<String, String>,
    /// `${leg.NAME.addr}`.
    pub addrs: HashMap<String, String>,
    /// When the run started.
    pub t0: Instant,
    /// When the run must end (`timeout`).
    pub deadline: Instant,
}

/// A started phone for a leg.
pub(crate) struct LegPhone {
    pub phone: Phone,
    pub router: Router,
    pub incoming: mpsc::UnboundedReceiver<Offered>,
}

/// The phone config of a leg.
pub(crate) fn leg_config(scenario: &Scenario, leg: &Leg) -> Result<Config, BotError> {
    let mut t = format!(
        "[identity]\nuser = {:?}\n[network]\nsip_listen = \"{}\"\n",
        leg.user, leg.listen
    );
    if let Some(p) = &leg.rtp_ports {
        t.push_str(&format!("rtp_ports = {p:?}\n"));
    }
    t.push_str("[media]\n");
    if let Some(c) = &leg.codecs {
        let names: Vec<String> = c.iter().map(|c| format!("{c:?}")).collect();
        t.push_str(&format!("codecs = [{}]\n", names.join(", ")));
    }
    if let Some(p) = leg.ptime {
        t.push_str(&format!("ptime = {p}\n"));
    }
    for (k, v) in &leg.media {
        t.push_str(&format!("{k} = {v:?}\n"));
    }
    if leg.allow_sdes_without_tls {
        t.push_str("allow_sdes_without_tls = true\n");
    }
    if let Some(a) = &leg.account {
        t.push_str(&a.config);
    }
    if let Some(a) = &leg.auth {
        t.push_str(a);
    }
    Config::parse(&t, &scenario.path).map_err(|e| BotError::Phone {
        leg: leg.name.clone(),
        message: e.to_string(),
    })
}

/// Starts one phone per leg.
/// Where each leg's phone listens.
pub(crate) struct Addresses {
    pub uris: HashMap<String, String>,
    pub addrs: HashMap<String, String>,
}

pub(crate) async fn start_phones(
    scenario: &Scenario,
) -> Result<(Vec<LegPhone>, Addresses), BotError> {
    let mut phones = Vec::new();
    let mut uris = HashMap::new();
    let mut addrs = HashMap::new();
    for leg in &scenario.legs {
        let config = leg_config(scenario, leg)?;
        let (phone, events) = match Phone::start(config).await {
            Ok(p) => p,
            Err(e) => {
                for p in &phones {
                    let p: &LegPhone = p;
                    p.phone.shutdown().await;
                }
                return Err(BotError::Phone {
                    leg: leg.name.clone(),
                    message: e.to_string(),
                });
            }
        };
        uris.insert(leg.name.clone(), phone.uri(&leg.user));
        addrs.insert(leg.name.clone(), phone.sip_addr().to_string());
        let (router, incoming) = Router::start(events);
        phones.push(LegPhone {
            phone,
            router,
            incoming,
        });
    }
    Ok((phones, Addresses { uris, addrs }))
}

static RECORDING: AtomicU64 = AtomicU64::new(0);

fn temp_recording() -> PathBuf {
    std::env::temp_dir().join(format!(
        "peerline-bot-{}-{}.wav",
        std::process::id(),
        RECORDING.fetch_add(1, Ordering::Relaxed)
    ))
}

struct Ended {
    reason: EndReason,
    media: Box<MediaReport>,
    at: Instant,
}

struct PendingAudio {
    result: usize,
    check: AudioCheck,
    offset: Duration,
    within: Duration,
    need: Duration,
}

struct CallCtx {
    id: CallId,
    events: mpsc::UnboundedReceiver<Routed>,
    outgoing: bool,
    started: Instant,
    setup_deadline: Option<Instant>,
    setup_expired: Option<Duration>,
    ringing: Option<u16>,
    answered: Option<Instant>,
    media_up: Option<Instant>,
    held: Option<bool>,
    dtmf: String,
    ended: Option<Ended>,
    closed: bool,
    recording: Option<(PathBuf, bool)>,
    audio: Vec<PendingAudio>,
    ok: bool,
    /// Transferor: the statuses of our transfer (REFER response, then NOTIFYs).
    transfer: Vec<u16>,
    /// Transferee: the remote party's REFER and our call to its target.
    referral: Option<Referral>,
}

impl CallCtx {
    fn new(
        id: CallId,
        events: mpsc::UnboundedReceiver<Routed>,
        outgoing: bool,
        started: Instant,
        recording: Option<(PathBuf, bool)>,
    ) -> Self {
        Self {
            id,
            events,
            outgoing,
            started,
            setup_deadline: None,
            setup_expired: None,
            ringing: None,
            answered: None,
            media_up: None,
            held: None,
            dtmf: String::new(),
            ended: None,
            closed: false,
            recording,
            audio: Vec::new(),
            ok: true,
            transfer: Vec::new(),
            referral: None,
        }
    }

    fn apply(&mut self, r: Routed) {
        match r.event {
            Event::Ringing { status, .. } => self.ringing = Some(status),
            Event::Answered { .. } => {
                self.answered.get_or_insert(r.at);
            }
            Event::MediaUp { .. } => {
                self.media_up.get_or_insert(r.at);
            }
            Event::Hold { held, .. } => self.held = Some(held),
            Event::Dtmf { digit, .. } => self.dtmf.push(digit),
            Event::Ended { reason, media, .. } => {
                self.ended = Some(Ended {
                    reason,
                    media,
                    at: r.at,
                })
            }
            Event::Transfer {
                status,
                target,
                new_call,
                ..
            } => self.transfer_event(status, target, new_call, r.at),
            // Incoming, remote media updates and account events change no step's outcome.
            _ => {}
        }
    }

    /// Processes events until `done` holds (true), the call ends or `deadline` passes
    /// (false). Cancels an outgoing call that is not answered by its setup deadline.
    async fn wait(
        &mut self,
        phone: &Phone,
        deadline: Instant,
        mut done: impl FnMut(&CallCtx) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.ended.is_some() || self.closed {
                return false;
            }
            let mut until = deadline;
            if self.answered.is_none() {
                if let Some(sd) = self.setup_deadline {
                    if Instant::now() >= sd {
                        if self.setup_expired.is_none() {
                            self.setup_expired = Some(sd.duration_since(self.started));
                            let _ =
                                tokio::time::timeout(Duration::from_secs(2), phone.hangup(self.id))
                                    .await;
                        }
                    } else {
                        until = until.min(sd);
                    }
                }
            }
            match tokio::time::timeout_at(until.into(), self.events.recv()).await {
                Ok(Some(r)) => self.apply(r),
                Ok(None) => self.closed = true,
                Err(_) if Instant::now() >= deadline => return done(self),
                Err(_) => {}
            }
        }
    }

    /// The call's state, in words.
    fn state(&self) -> String {
        if let Some(e) = &self.ended {
            return match (&e.reason, self.setup_expired) {
                (_, Some(t)) => format!(
                    "not answered within the call's timeout of {} s; cancelled",
                    t.as_secs_f64()
                ),
                (r, None) => format!("call ended: {r}"),
            };
        }
        if self.closed {
            return "the phone stopped".into();
        }
        if self.answered.is_some() {
            "answered".into()
        } else if let Some(s) = self.ringing {
            format!("ringing ({s})")
        } else {
            "no response yet".into()
        }
    }
}

/// How a leg ends its steps: wait for the call to end until `release` is true.
pub(crate) struct LegRun {
    shared: Arc<Shared>,
    leg: usize,
    phone: Phone,
    router: Router,
    incoming: mpsc::UnboundedReceiver<Offered>,
    call_index: u64,
    source: Source,
    record: Option<PathBuf>,
    call: Option<CallCtx>,
    pub results: Vec<StepResult>,
    pub calls: Vec<CallRecord>,
    release: watch::Receiver<bool>,
    failed: bool,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl LegRun {
    pub(crate) fn new(
        shared: Arc<Shared>,
        leg: usize,
        phone: Phone,
        router: Router,
        incoming: mpsc::UnboundedReceiver<Offered>,
        call_index: u64,
        release: watch::Receiver<bool>,
    ) -> Self {
        Self {
            shared,
            leg,
            phone,
            router,
            incoming,
            call_index,
            source: Source::Silence,
            record: None,
            call: None,
            results: Vec::new(),
            calls: Vec::new(),
            release,
            failed: false,
        }
    }

    fn leg_name(&self) -> String {
        self.shared.scenario.legs[self.leg].name.clone()
    }

    /// Every step passed (so far).
    pub(crate) fn ok(&self) -> bool {
        !self.failed && self.results.iter().all(|r| r.status != Status::Failed)
    }

    /// Runs the leg's steps, then ends its call (see [`LegRun::finish`]).
    pub(crate) async fn run_steps_only(&mut self) {
        let scenario = self.shared.scenario.clone();
        let steps = &scenario.legs[self.leg].steps;
        self.run_steps(steps, String::new()).await;
        // Steps after a failure are listed as skipped.
        let done: Vec<String> = self.results.iter().map(|r| r.step.clone()).collect();
        for (i, s) in steps.iter().enumerate() {
            let path = (i + 1).to_string();
            if !done.contains(&path) {
                let r = StepResult {
                    leg: self.leg_name(),
                    step: path,
                    line: s.line,
                    action: s.action.to_string(),
                    status: Status::Skipped,
                    expected: String::new(),
                    observed: "not run: an earlier step failed".into(),
                    at_secs: 0.0,
                    duration_secs: 0.0,
                    passes: 0,
                    failures: 0,
                };
                self.results.push(r);
            }
        }
    }

    /// Waits for the call to end (until released; at once after a failure), hangs it up
    /// if it is still up, and judges the audio of its `expect_audio` steps.
    pub(crate) async fn finish(&mut self) {
        self.follow_transfer().await;
        if let Some(call) = self.call.as_mut() {
            if call.ended.is_none() && !call.closed && !self.failed {
                let deadline = self.shared.deadline;
                loop {
                    if *self.release.borrow() || call.ended.is_some() || call.closed {
                        break;
                    }
                    tokio::select! {
                        r = self.release.changed() => if r.is_err() { break },
                        e = call.events.recv() => match e {
                            Some(e) => call.apply(e),
                            None => call.closed = true,
                        },
                        _ = tokio::time::sleep_until(deadline.into()) => break,
                    }
                }
            }
            if call.ended.is_none() && !call.closed {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), self.phone.hangup(call.id)).await;
                let until = Instant::now() + Duration::from_secs(5);
                call.wait(&self.phone, until, |c| c.ended.is_some()).await;
            }
        }
        self.end_call();
    }

    fn run_steps<'a>(&'a mut self, steps: &'a [Step], prefix: String) -> Boxed<'a, bool> {
        Box::pin(async move {
            for (i, step) in steps.iter().enumerate() {
                let path = format!("{prefix}{}", i + 1);
                if !self.step(step, &path).await {
                    self.failed = true;
                    return false;
                }
            }
            true
        })
    }

    fn resolve(&self, t: &Template) -> String {
        let mut s = String::new();
        for p in &t.0 {
            match p {
                Part::Text(x) => s.push_str(x),
                Part::Row(col) => {
                    if let Some(rows) = &self.shared.scenario.rows {
                        let row = &rows.rows[(self.call_index as usize) % rows.rows.len().max(1)];
                        if let Some(i) = rows.columns.iter().position(|c| c == col) {
                            s.push_str(row.get(i).map(String::as_str).unwrap_or(""));
                        }
                    }
                }
                Part::LegUri(leg) => {
                    s.push_str(self.shared.uris.get(leg).map(String::as_str).unwrap_or(""))
                }
                Part::LegAddr(leg) => {
                    s.push_str(self.shared.addrs.get(leg).map(String::as_str).unwrap_or(""))
                }
                Part::CallIndex => s.push_str(&self.call_index.to_string()),
            }
        }
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        step: &Step,
        path: &str,
        started: Instant,
        passed: bool,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> bool {
        let r = StepResult {
            leg: self.leg_name(),
            step: path.to_string(),
            line: step.line,
            action: step.action.to_string(),
            status: if passed {
                Status::Passed
            } else {
                Status::Failed
            },
            expected: expected.into(),
            observed: observed.into(),
            at_secs: started.duration_since(self.shared.t0).as_secs_f64(),
            duration_secs: started.elapsed().as_secs_f64(),
            passes: u64::from(passed),
            failures: u64::from(!passed),
        };
        self.results.push(r);
        if !passed {
            if let Some(c) = self.call.as_mut() {
                c.ok = false;
            }
        }
        passed
    }

    fn media_options(&mut self) -> MediaOptions {
        let source = match &self.source {
            Source::Silence => AudioSource::Silence,
            Source::Tone(hz) => AudioSource::Tone(*hz),
            Source::Wav(p) => AudioSource::Wav(p.clone()),
            Source::None => AudioSource::NoRtp,
        };
        MediaOptions {
            source,
            record: self.recording().map(|(p, _)| p),
        }
    }

    fn recording(&self) -> Option<(PathBuf, bool)> {
        match &self.record {
            Some(p) => Some((p.clone(), false)),
            None if self.shared.scenario.legs[self.leg].needs_recording => {
                Some((temp_recording(), true))
            }
            None => None,
        }
    }

    fn deadline(&self, within: Duration) -> Instant {
        (Instant::now() + within).min(self.shared.deadline)
    }

    /// Ends the bookkeeping of the current call once it is over: its record, and the
    /// verdicts of its `expect_audio` steps.
    fn end_call(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let mut ok = call.ok;
        if !call.audio.is_empty() {
            let audio = call.recording.as_ref().map(|(p, _)| {
                peerline_audio::read_wav(p).map_err(|e| format!("{}: {e}", p.display()))
            });
            for pa in &call.audio {
                let verdict = match (&audio, call.media_up) {
                    (_, None) => audio::Verdict {
                        passed: false,
                        observed: "no media".into(),
                    },
                    (Some(Ok(a)), Some(_)) => {
                        let rate = a.sample_rate.max(1);
                        let from = (pa.offset.as_secs_f64() * f64::from(rate)) as usize;
                        let to = from + (pa.within.as_secs_f64() * f64::from(rate)) as usize;
                        let window = a
                            .samples
                            .get(from.min(a.samples.len())..to.min(a.samples.len()))
                            .unwrap_or(&[]);
                        audio::judge(&pa.check, window, rate, pa.need)
                    }
                    (Some(Err(e)), _) => audio::Verdict {
                        passed: false,
                        observed: format!("could not read the recording: {e}"),
                    },
                    (None, _) => audio::Verdict {
                        passed: false,
                        observed: "the call was not recorded".into(),
                    },
                };
                if let Some(r) = self.results.get_mut(pa.result) {
                    r.observed = verdict.observed;
                    r.status = if verdict.passed {
                        Status::Passed
                    } else {
                        Status::Failed
                    };
                    r.passes = u64::from(verdict.passed);
                    r.failures = u64::from(!verdict.passed);
                }
                ok &= verdict.passed;
            }
        }
        if let Some((p, true)) = &call.recording {
            let _ = std::fs::remove_file(p);
        }
        let (reason, media, end) = match &call.ended {
            Some(e) => (e.reason.to_string(), Some(&e.media), e.at),
            None => ("not ended".to_string(), None, Instant::now()),
        };
        let received = media.map(|m| m.received).unwrap_or_default();
        let expected = received.packets_received + received.packets_lost;
        self.calls.push(CallRecord {
            leg: self.leg_name(),
            index: self.call_index,
            outgoing: call.outgoing,
            start_secs: call
                .started
                .saturating_duration_since(self.shared.t0)
                .as_secs_f64(),
            setup_ms: match (call.outgoing, call.answered) {
                (true, Some(a)) => {
                    Some(a.saturating_duration_since(call.started).as_secs_f64() * 1000.0)
                }
                _ => None,
            },
            duration_secs: end.saturating_duration_since(call.started).as_secs_f64(),
            ok,
            end_reason: reason,
            codec: media.and_then(|m| m.codec).map(str::to_string),
            packets_received: received.packets_received,
            packets_lost: received.packets_lost,
            packets_sent: media.map(|m| m.sent.packets_sent).unwrap_or(0),
            late_frames: media.map(|m| m.jitter.late).unwrap_or(0),
            loss_percent: if expected > 0 {
                100.0 * received.packets_lost as f64 / expected as f64
            } else {
                0.0
            },
            jitter_ms: media.map(|m| m.jitter_ms).unwrap_or(0.0),
            concealed_frames: media.map(|m| m.concealed_frames).unwrap_or(0),
            mos: media.and_then(|m| m.mos).map(f64::from),
            rtt_ms: media.and_then(|m| m.rtt_ms),
        });
    }

    async fn step(&mut self, step: &Step, path: &str) -> bool {
        // A call transferred since the last step: its successor is the leg's call now.
        self.follow_transfer().await;
        let started = Instant::now();
        let timeout = step.timeout;
        macro_rules! need_call {
            ($expected:expr) => {
                match self.call.as_ref() {
                    Some(_) => {}
                    None => {
                        return self.push(step, path, started, false, $expected, "there is no call")
                    }
                }
            };
        }
        match &step.action {
            Action::Call {
                target,
                setup_timeout,
            } => {
                self.end_call();
                let target = self.resolve(target);
                let media = self.media_options();
                let recording = media.record.clone().map(|p| {
                    let temp = self.record.is_none();
                    (p, temp)
                });
                let expected = format!("INVITE sent to {target}");
                match tokio::time::timeout(timeout, self.phone.call(&target, media)).await {
                    Ok(Ok(id)) => {
                        let events = self.router.claim(id);
                        let mut c = CallCtx::new(id, events, true, started, recording);
                        c.setup_deadline = Some(started + *setup_timeout);
                        self.call = Some(c);
                        self.push(
                            step,
                            path,
                            started,
                            true,
                            expected,
                            format!("call {id} placed"),
                        )
                    }
                    Ok(Err(e)) => self.push(step, path, started, false, expected, e.to_string()),
                    Err(_) => self.push(
                        step,
                        path,
                        started,
                        false,
                        expected,
                        format!(
                            "the phone did not take the call within {} s",
                            timeout.as_secs_f64()
                        ),
                    ),
                }
            }
            Action::Expect {
                what: Expectation::Incoming,
                within,
            } => {
                self.end_call();
                let expected = format!("a call within {} s", within.as_secs_f64());
                let dl = self.deadline(*within);
                match tokio::time::timeout_at(dl.into(), self.incoming.recv()).await {
                    Ok(Some(o)) => {
                        let from = o.from.clone();
                        self.call = Some(CallCtx::new(o.call, o.events, false, o.at, None));
                        self.push(
                            step,
                            path,
                            started,
                            true,
                            expected,
                            format!("call from {from}"),
                        )
                    }
                    Ok(None) => {
                        self.push(step, path, started, false, expected, "the phone stopped")
                    }
                    Err(_) => self.push(
                        step,
                        path,
                        started,
                        false,
                        expected,
                        format!(
                            "no call within {} s",
                            dl.saturating_duration_since(started).as_secs_f64()
                        ),
                    ),
                }
            }
            Action::Expect { what, within } => {
                let expected = match what {
                    Expectation::Ringing => "ringing (180 or 183)".to_string(),
                    Expectation::Answered => "answered (200)".to_string(),
                    Expectation::Status(s) => format!("status {s}"),
                    Expectation::Incoming => String::new(),
                };
                let expected = format!("{expected} within {} s", within.as_secs_f64());
                need_call!(expected);
                let dl = self.deadline(*within);
                let what = *what;
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                let ok = call
                    .wait(&phone, dl, |c| match what {
                        Expectation::Ringing => c.ringing.is_some(),
                        Expectation::Answered | Expectation::Status(200) => c.answered.is_some(),
                        Expectation::Status(s @ (180 | 183)) => c.ringing == Some(s),
                        Expectation::Status(s) => matches!(&c.ended, Some(Ended { reason: EndReason::Rejected(code, _), .. }) if *code == s),
                        Expectation::Incoming => false,
                    })
                    .await;
                let mut observed = call.state();
                if !ok && call.ended.is_none() && !call.closed {
                    observed = format!(
                        "{observed} after {} s",
                        started.elapsed().as_secs_f64().min(within.as_secs_f64())
                    );
                }
                if ok && matches!(what, Expectation::Answered | Expectation::Status(200)) {
                    if let Some(a) = call.answered {
                        observed = format!(
                            "answered after {:.0} ms",
                            a.saturating_duration_since(call.started).as_secs_f64() * 1000.0
                        );
                    }
                }
                self.push(step, path, started, ok, expected, observed)
            }
            Action::Answer => {
                need_call!("answered");
                let media = self.media_options();
                let recording = media.record.clone().map(|p| (p, self.record.is_none()));
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                call.recording = recording;
                let id = call.id;
                match tokio::time::timeout(timeout, self.phone.answer(id, media)).await {
                    Ok(Ok(())) => self.push(step, path, started, true, "answered", "200 OK sent"),
                    Ok(Err(e)) => {
                        let state = self.call.as_ref().map(CallCtx::state).unwrap_or_default();
                        self.push(
                            step,
                            path,
                            started,
                            false,
                            "answered",
                            format!("{e} ({state})"),
                        )
                    }
                    Err(_) => self.push(
                        step,
                        path,
                        started,
                        false,
                        "answered",
                        "the phone did not answer in time",
                    ),
                }
            }
            Action::Reject { status } => {
                let expected = format!("call refused with {status}");
                need_call!(expected);
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                match tokio::time::timeout(timeout, phone.reject(call.id, *status)).await {
                    Ok(Ok(())) => {
                        let dl = Instant::now() + timeout;
                        call.wait(&phone, dl, |c| c.ended.is_some()).await;
                        let observed = call.state();
                        self.end_call();
                        self.push(step, path, started, true, expected, observed)
                    }
                    Ok(Err(e)) => self.push(step, path, started, false, expected, e.to_string()),
                    Err(_) => self.push(
                        step,
                        path,
                        started,
                        false,
                        expected,
                        "the phone did not reject in time",
                    ),
                }
            }
            Action::Play(source) => {
                self.source = source.clone();
                self.push(
                    step,
                    path,
                    started,
                    true,
                    "source set",
                    format!("{source} for the next call"),
                )
            }
            Action::Record(t) => {
                let p = PathBuf::from(self.resolve(t));
                let observed = format!("the next call records to {}", p.display());
                self.record = Some(p);
                self.push(step, path, started, true, "recording set", observed)
            }
            Action::SendDtmf { digits } => {
                let digits = self.resolve(digits);
                let expected = format!("digits {digits} sent");
                need_call!(expected);
                let id = self.call.as_ref().map(|c| c.id).unwrap_or_default();
                match tokio::time::timeout(timeout, self.phone.send_dtmf(id, &digits)).await {
                    Ok(Ok(())) => {
                        // Each digit takes 100 ms and a 60 ms pause (peerline-ua): let them
                        // go out before the next step.
                        let dl =
                            Instant::now() + Duration::from_millis(180 * digits.len() as u64 + 60);
                        let phone = self.phone.clone();
                        if let Some(call) = self.call.as_mut() {
                            call.wait(&phone, dl.min(self.shared.deadline), |_| false)
                                .await;
                        }
                        self.push(step, path, started, true, expected, "sent")
                    }
                    Ok(Err(e)) => self.push(step, path, started, false, expected, e.to_string()),
                    Err(_) => self.push(
                        step,
                        path,
                        started,
                        false,
                        expected,
                        "the phone did not send in time",
                    ),
                }
            }
            Action::ExpectDtmf { digits, within } => {
                let want = self.resolve(digits).to_ascii_uppercase();
                let expected = format!("digits {want} within {} s", within.as_secs_f64());
                need_call!(expected);
                let dl = self.deadline(*within);
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                let n = want.chars().count();
                call.wait(&phone, dl, |c| c.dtmf.chars().count() >= n).await;
                let got: String = call.dtmf.chars().take(n).collect();
                call.dtmf = call.dtmf.chars().skip(n).collect();
                let ok = got == want;
                let observed = if got.is_empty() {
                    format!("no digits ({})", call.state())
                } else {
                    format!("digits {got}")
                };
                self.push(step, path, started, ok, expected, observed)
            }
            Action::OnDtmf {
                branches,
                other,
                none,
                within,
            } => {
                let keys: Vec<&str> = branches.iter().map(|(k, _)| k.as_str()).collect();
                let expected = format!(
                    "one of {} within {} s",
                    keys.join(", "),
                    within.as_secs_f64()
                );
                need_call!(expected);
                let dl = self.deadline(*within);
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                // Digits until they name a branch, or can no longer become one.
                let decided = |c: &CallCtx| {
                    !c.dtmf.is_empty()
                        && (keys.contains(&c.dtmf.as_str())
                            || !keys.iter().any(|k| k.starts_with(c.dtmf.as_str())))
                };
                call.wait(&phone, dl, decided).await;
                let got = std::mem::take(&mut call.dtmf);
                let state = call.state();
                let (chosen, label): (Option<&Vec<Step>>, String) =
                    match branches.iter().find(|(k, _)| *k == got) {
                        Some((k, b)) => (Some(b), k.clone()),
                        None if got.is_empty() => (none.as_ref(), "timeout".into()),
                        None => (other.as_ref(), "other".into()),
                    };
                let observed = if got.is_empty() {
                    format!("no digits ({state})")
                } else {
                    format!("digits {got}")
                };
                match chosen {
                    Some(b) => {
                        self.push(
                            step,
                            path,
                            started,
                            true,
                            expected,
                            format!("{observed}: branch {label}"),
                        );
                        self.run_steps(b, format!("{path}.{label}.")).await
                    }
                    None => self.push(step, path, started, false, expected, observed),
                }
            }
            Action::ExpectAudio {
                check,
                duration,
                within,
            } => {
                let expected = format!(
                    "{check} for {} s within {} s",
                    duration.as_secs_f64(),
                    within.as_secs_f64()
                );
                need_call!(expected);
                let dl = self.deadline(*within);
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                if call.media_up.is_none() {
                    call.wait(&phone, dl, |c| c.media_up.is_some()).await;
                }
                let Some(up) = call.media_up else {
                    let observed = format!("no media ({})", call.state());
                    return self.push(step, path, started, false, expected, observed);
                };
                let from = Instant::now();
                let window = dl.saturating_duration_since(from);
                call.wait(&phone, dl, |_| false).await;
                call.audio.push(PendingAudio {
                    result: self.results.len(),
                    check: check.clone(),
                    offset: from.saturating_duration_since(up),
                    within: window,
                    need: *duration,
                });
                // Judged when the call ends (recordings are written then).
                self.push(
                    step,
                    path,
                    started,
                    true,
                    expected,
                    "pending: judged when the call ends",
                )
            }
            Action::Wait(d) => {
                let dl = self.deadline(*d);
                let phone = self.phone.clone();
                match self.call.as_mut() {
                    Some(c) => {
                        c.wait(&phone, dl, |_| false).await;
                    }
                    None => tokio::time::sleep_until(dl.into()).await,
                }
                self.push(
                    step,
                    path,
                    started,
                    true,
                    format!("{} s", d.as_secs_f64()),
                    "waited",
                )
            }
            Action::Hold | Action::Resume => {
                let hold = matches!(step.action, Action::Hold);
                let expected = if hold {
                    "on hold (re-INVITE accepted)"
                } else {
                    "resumed (re-INVITE accepted)"
                };
                need_call!(expected);
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                call.held = None;
                let r = if hold {
                    phone.hold(call.id).await
                } else {
                    phone.resume(call.id).await
                };
                if let Err(e) = r {
                    return self.push(step, path, started, false, expected, e.to_string());
                }
                let dl = Instant::now() + timeout;
                let ok = call.wait(&phone, dl, |c| c.held == Some(hold)).await;
                let observed = if ok {
                    "accepted".to_string()
                } else {
                    format!(
                        "not accepted within {} s ({})",
                        timeout.as_secs_f64(),
                        call.state()
                    )
                };
                self.push(step, path, started, ok, expected, observed)
            }
            Action::Mute | Action::Unmute => {
                let mute = matches!(step.action, Action::Mute);
                let expected = if mute { "muted" } else { "unmuted" };
                need_call!(expected);
                let id = self.call.as_ref().map(|c| c.id).unwrap_or_default();
                match self.phone.mute(id, mute).await {
                    Ok(()) => self.push(step, path, started, true, expected, expected),
                    Err(e) => self.push(step, path, started, false, expected, e.to_string()),
                }
            }
            Action::Hangup => {
                need_call!("call ended by us");
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                if call.ended.is_some() {
                    // The call is over either way: hangup only makes sure of it.
                    let observed = format!("already over: {}", call.state());
                    self.end_call();
                    return self.push(step, path, started, true, "call ended", observed);
                }
                let _ = tokio::time::timeout(timeout, phone.hangup(call.id)).await;
                let dl = Instant::now() + timeout;
                let ok = call.wait(&phone, dl, |c| c.ended.is_some()).await;
                let observed = call.state();
                self.end_call();
                self.push(step, path, started, ok, "call ended", observed)
            }
            Action::ExpectHangup { within } => {
                let expected = format!(
                    "the remote party hangs up within {} s",
                    within.as_secs_f64()
                );
                need_call!(expected);
                let dl = self.deadline(*within);
                let phone = self.phone.clone();
                let Some(call) = self.call.as_mut() else {
                    return false;
                };
                call.wait(&phone, dl, |c| c.ended.is_some()).await;
                let ok = matches!(
                    &call.ended,
                    Some(Ended {
                        reason: EndReason::RemoteHangup | EndReason::Cancelled,
                        ..
                    })
                );
                let observed = if call.ended.is_some() {
                    call.state()
                } else {
                    format!(
                        "{} after {} s",
                        call.state(),
                        started.elapsed().as_secs_f64().min(within.as_secs_f64())
                    )
                };
                if call.ended.is_some() {
                    self.end_call();
                }
                self.push(step, path, started, ok, expected, observed)
            }
            Action::Register { within } => self.register_step(step, path, started, *within).await,
            Action::SendMessage { to, text, status } => {
                self.send_message_step(step, path, started, to, text, *status)
                    .await
            }
            Action::ExpectMessage { text, from, within } => {
                self.expect_message_step(step, path, started, text, from.as_ref(), *within)
                    .await
            }
            Action::Transfer {
                target,
                status,
                within,
            } => {
                self.transfer_step(step, path, started, target, *status, *within)
                    .await
            }
            Action::ExpectTransfer { target, within } => {
                self.expect_transfer_step(step, path, started, target.as_ref(), *within)
                    .await
            }
            Action::Loop { count, steps } => {
                self.push(
                    step,
                    path,
                    started,
                    true,
                    format!("{count} iterations"),
                    "started",
                );
                for i in 0..*count {
                    if !self.run_steps(steps, format!("{path}.{}.", i + 1)).await {
                        return false;
                    }
                }
                true
            }
        }
    }
}

/// Runs every leg once, together; the result of the whole scenario.
pub(crate) async fn run_once(scenario: Arc<Scenario>) -> Result<RunResult, BotError> {
    let t0 = Instant::now();
    let (phones, a) = start_phones(&scenario).await?;
    let shared = Arc::new(Shared {
        scenario: scenario.clone(),
        uris: a.uris,
        addrs: a.addrs,
        t0,
        deadline: t0 + scenario.timeout,
    });
    let (release_tx, release_rx) = watch::channel(false);
    let release_tx = Arc::new(release_tx);
    let done = Arc::new(AtomicUsize::new(0));
    let legs = scenario.legs.len();
    let mut tasks = Vec::new();
    let mut handles = Vec::new();
    for (i, lp) in phones.into_iter().enumerate() {
        handles.push(lp.phone.clone());
        let mut run = LegRun::new(
            shared.clone(),
            i,
            lp.phone,
            lp.router,
            lp.incoming,
            0,
            release_rx.clone(),
        );
        let (done, release_tx) = (done.clone(), release_tx.clone());
        tasks.push(tokio::spawn(async move {
            run.run_steps_only().await;
            if done.fetch_add(1, Ordering::SeqCst) + 1 == legs {
                let _ = release_tx.send(true);
            }
            run.finish().await;
            (run.results, run.calls)
        }));
    }
    let mut steps = Vec::new();
    let mut calls = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok((r, c)) => {
                steps.extend(r);
                calls.extend(c);
            }
            Err(e) => {
                for h in &handles {
                    h.shutdown().await;
                }
                return Err(BotError::Phone {
                    leg: scenario.legs[i].name.clone(),
                    message: format!("the leg's task failed: {e}"),
                });
            }
        }
    }
    for h in &handles {
        h.shutdown().await;
    }
    calls.sort_by(|a, b| a.start_secs.total_cmp(&b.start_secs));
    Ok(RunResult {
        scenario: scenario.name.clone(),
        file: scenario.path.display().to_string(),
        passed: steps.iter().all(|s| s.status != Status::Failed),
        duration_secs: t0.elapsed().as_secs_f64(),
        steps,
        calls,
        load: None,
    })
}
