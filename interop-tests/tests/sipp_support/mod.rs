//! Shared pieces of the interop tests that drive the phone (the SIPp, baresip, Kamailio and
//! flood tests): a runtime, waiting for an event, a phone on loopback with its own
//! RTP port block, an answering task for Peerline-as-UAS, a per-call event router for
//! Peerline-as-UAC, and SIPp runs with a message trace for the failure messages.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerline_interop::{alloc_port_block, tails, Sipp, SippOptions, SippStats, TestDir};
use peerline_ua::{
    AudioSource, CallId, CodecName, Config, EndReason, Event, Events, MediaOptions, MediaReport,
    Phone,
};
use tokio::sync::mpsc;

/// Ports in the phone's own RTP block: even ports only are used, one per call, rotating,
/// so this allows 100 calls at once.
pub const RTP_BLOCK: u16 = 200;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A phone config on 127.0.0.1 (SIP port chosen by the kernel), with an RTP port block of
/// its own from the harness allocator so it never collides with the peers' ports. SIPp's
/// scenarios offer and answer plain RTP, so SRTP is off.
pub fn config(codecs: &[CodecName]) -> Config {
    let low = alloc_port_block(RTP_BLOCK).unwrap();
    let high = low + RTP_BLOCK - 1;
    let codecs: Vec<String> = codecs.iter().map(|c| format!("\"{}\"", c.name())).collect();
    let text = format!(
        "[identity]\nuser = \"peerline\"\n\
         [network]\nsip_listen = \"127.0.0.1:0\"\nrtp_ports = \"{low}-{high}\"\n\
         [media]\ncodecs = [{}]\nsrtp = \"off\"\n",
        codecs.join(", ")
    );
    Config::parse(&text, Path::new("<sipp test>")).unwrap()
}

/// One finished call as the phone reported it.
#[derive(Debug)]
pub struct Ended {
    pub call: CallId,
    pub reason: EndReason,
    pub media: MediaReport,
    /// Digits from `Event::Dtmf` for this call, in order.
    pub dtmf: String,
    /// When `Event::Incoming` arrived, and when `Event::Ended`.
    pub incoming_at: Option<Instant>,
    pub ended_at: Instant,
}

/// What the answering task does with each incoming call.
#[derive(Debug, Clone)]
pub enum AnswerMode {
    /// Answer at once with these media options.
    Now(MediaOptions),
    /// Answer after a delay (e.g. to let a PRACK exchange finish first).
    After(Duration, MediaOptions),
    /// Leave it ringing (the caller cancels, or it times out).
    Never,
}

impl AnswerMode {
    pub fn silence() -> Self {
        Self::Now(MediaOptions {
            source: AudioSource::Silence,
            record: None,
        })
    }
}

#[derive(Debug, Default)]
struct UasState {
    incoming: u64,
    answer_errors: Vec<String>,
    ended: Vec<Ended>,
    dtmf: HashMap<CallId, String>,
    incoming_at: HashMap<CallId, Instant>,
}

/// Peerline as UAS: a task that answers every `Event::Incoming` and keeps every `Ended`.
pub struct AutoAnswer {
    state: Arc<Mutex<UasState>>,
    task: tokio::task::JoinHandle<()>,
}

impl AutoAnswer {
    pub fn start(phone: Phone, mut events: Events, mode: AnswerMode) -> Self {
        let state = Arc::new(Mutex::new(UasState::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    Event::Incoming { call, .. } => {
                        {
                            let mut s = st.lock().unwrap();
                            s.incoming += 1;
                            s.incoming_at.insert(call, Instant::now());
                        }
                        let answer = match &mode {
                            AnswerMode::Now(m) => Some((Duration::ZERO, m.clone())),
                            AnswerMode::After(d, m) => Some((*d, m.clone())),
                            AnswerMode::Never => None,
                        };
                        if let Some((delay, media)) = answer {
                            let phone = phone.clone();
                            let st = st.clone();
                            let run = async move {
                                if !delay.is_zero() {
                                    tokio::time::sleep(delay).await;
                                }
                                if let Err(e) = phone.answer(call, media).await {
                                    st.lock()
                                        .unwrap()
                                        .answer_errors
                                        .push(format!("call {call}: {e}"));
                                }
                            };
                            if delay.is_zero() {
                                run.await;
                            } else {
                                tokio::spawn(run);
                            }
                        }
                    }
                    Event::Dtmf { call, digit } => {
                        st.lock().unwrap().dtmf.entry(call).or_default().push(digit);
                    }
                    Event::Ended {
                        call,
                        reason,
                        media,
                    } => {
                        let mut s = st.lock().unwrap();
                        let dtmf = s.dtmf.remove(&call).unwrap_or_default();
                        let incoming_at = s.incoming_at.remove(&call);
                        s.ended.push(Ended {
                            call,
                            reason,
                            media: *media,
                            dtmf,
                            incoming_at,
                            ended_at: Instant::now(),
                        });
                    }
                    _ => {}
                }
            }
        });
        Self { state, task }
    }

    pub fn incoming(&self) -> u64 {
        self.state.lock().unwrap().incoming
    }

    pub fn ended_count(&self) -> usize {
        self.state.lock().unwrap().ended.len()
    }

    pub fn answer_errors(&self) -> Vec<String> {
        self.state.lock().unwrap().answer_errors.clone()
    }

    /// Bounded wait until `n` calls have ended; returns whether they did.
    pub async fn wait_ended(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.ended_count() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the task (after the phone's shutdown) and hands back every ended call.
    pub async fn finish(self) -> Vec<Ended> {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        std::mem::take(&mut self.state.lock().unwrap().ended)
    }
}

/// Counts of end reasons, e.g. `{"remote hangup": 500}`, for messages.
pub fn reasons(ended: &[Ended]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in ended {
        *m.entry(e.reason.to_string()).or_insert(0) += 1;
    }
    m
}

/// Peerline as UAC with many calls at once: routes each event to its call's channel.
/// Events that arrive before the caller asks for its call's channel are kept in it.
#[derive(Clone, Default)]
pub struct Router {
    chans: Arc<Mutex<RouterChans>>,
}

#[derive(Default)]
struct RouterChans {
    senders: HashMap<CallId, mpsc::UnboundedSender<Event>>,
    receivers: HashMap<CallId, mpsc::UnboundedReceiver<Event>>,
}

impl Router {
    /// Spawns the routing task over the phone's events.
    pub fn start(mut events: Events) -> Self {
        let router = Self::default();
        let r = router.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let call = match &ev {
                    Event::Incoming { call, .. }
                    | Event::Ringing { call, .. }
                    | Event::Answered { call }
                    | Event::MediaUp { call, .. }
                    | Event::Dtmf { call, .. }
                    | Event::Ended { call, .. } => *call,
                    #[allow(unreachable_patterns)]
                    _ => continue,
                };
                let tx = r.sender(call);
                let _ = tx.send(ev);
            }
        });
        router
    }

    fn sender(&self, call: CallId) -> mpsc::UnboundedSender<Event> {
        let mut c = self.chans.lock().unwrap();
        if let Some(tx) = c.senders.get(&call) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        c.senders.insert(call, tx.clone());
        c.receivers.insert(call, rx);
        tx
    }

    /// The events of one call (call once per call).
    pub fn events(&self, call: CallId) -> mpsc::UnboundedReceiver<Event> {
        let _ = self.sender(call);
        let mut c = self.chans.lock().unwrap();
        c.receivers.remove(&call).expect("events(call) asked twice")
    }

    /// Forgets a finished call.
    pub fn forget(&self, call: CallId) {
        self.chans.lock().unwrap().senders.remove(&call);
    }
}

/// Bounded wait on one call's events for the first one `pick` accepts.
pub async fn next_on<T>(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    limit: Duration,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(limit, async {
        while let Some(ev) = rx.recv().await {
            if let Some(t) = pick(ev) {
                return Some(t);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Bounded wait on a phone's event stream for the first event `pick` accepts.
pub async fn next_event<T>(
    events: &mut Events,
    limit: Duration,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(limit, async {
        while let Some(ev) = events.recv().await {
            if let Some(t) = pick(ev) {
                return Some(t);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// SIPp options with its RTP port (`-mp`) taken from the harness allocator (SIPp's default
/// 6000 could be busy), and optionally a full message trace (small scenarios only).
pub fn sipp_options(opts: SippOptions, dir: &TestDir, trace_messages: bool) -> SippOptions {
    let mp = alloc_port_block(4).unwrap();
    let opts = opts.args(["-mp".to_string(), mp.to_string()]);
    if trace_messages {
        opts.args([
            "-trace_msg".to_string(),
            "-message_file".to_string(),
            messages_path(dir).display().to_string(),
        ])
    } else {
        opts
    }
}

pub fn messages_path(dir: &TestDir) -> PathBuf {
    dir.path().join("sipp_messages.log")
}

/// The SIPp message trace (up to the last `max` bytes), for failure messages and reports.
pub fn messages(dir: &TestDir, max: usize) -> String {
    let text = std::fs::read_to_string(messages_path(dir)).unwrap_or_default();
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// SIPp's logs and message trace, for a panic message.
pub fn diag(sipp: &Sipp, dir: &TestDir) -> String {
    format!(
        "{}\n--- SIPp messages ---\n{}",
        tails(&[sipp.process()], 30),
        messages(dir, 6000)
    )
}

/// Waits (bounded) for SIPp to exit by itself, then reads its stat CSV.
pub fn finish_sipp(sipp: &mut Sipp, dir: &TestDir, limit: Duration) -> (Option<i32>, SippStats) {
    let code = sipp.wait(limit).ok().and_then(|s| s.code());
    if code.is_none() {
        sipp.stop();
    }
    let stats = sipp
        .stats()
        .unwrap_or_else(|e| panic!("no SIPp stats: {e}\n{}", diag(sipp, dir)));
    (code, stats)
}
