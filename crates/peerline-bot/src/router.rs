//! Hands a phone's events to the task that owns each call. Events can arrive before
//! `Phone::call` has returned the call's id; those wait until the call is claimed.
//! Events of no call go to the leg: the account's registration state, and an inbox of
//! instant messages (kept in order until a step takes them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use peerline_ua::{CallId, Event, Events};
use tokio::sync::{mpsc, watch};

/// An event and when it was taken off the phone's queue.
#[derive(Debug)]
pub(crate) struct Routed {
    pub at: Instant,
    pub event: Event,
}

/// A call that arrived, with its event stream.
#[derive(Debug)]
pub(crate) struct Offered {
    pub call: CallId,
    pub from: String,
    pub at: Instant,
    pub events: mpsc::UnboundedReceiver<Routed>,
}

/// Where the phone's account stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Registration {
    /// No outcome yet (or no account).
    Pending,
    /// The registrar accepted the binding.
    Registered {
        /// The account's AOR.
        aor: String,
        /// Seconds granted.
        expires: u32,
    },
    /// The last attempt failed (the phone retries with back-off).
    Failed {
        /// The account's AOR.
        aor: String,
        /// The final status, 0 when there was none.
        code: u16,
        /// Why.
        reason: String,
    },
}

/// An instant message the phone received.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// From, as a name-addr.
    pub from: String,
    /// The text.
    pub body: String,
}

/// The messages a phone received, in order, until a step takes them.
pub(crate) type Inbox = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>;

#[derive(Default)]
struct State {
    calls: HashMap<CallId, mpsc::UnboundedSender<Routed>>,
    pending: HashMap<CallId, Vec<Routed>>,
}

/// The routing table of one phone.
#[derive(Clone)]
pub(crate) struct Router {
    state: Arc<Mutex<State>>,
    registration: Arc<watch::Sender<Registration>>,
    messages: mpsc::UnboundedSender<Message>,
    inbox: Inbox,
    /// Load mode: messages a call took off the inbox that were not for it, kept (oldest
    /// first, at most [`HELD_MAX`]) for the leg's other calls.
    held: Arc<Mutex<std::collections::VecDeque<Message>>>,
}

/// Messages held back for other calls at most; beyond, the oldest are dropped.
const HELD_MAX: usize = 10_000;

impl Router {
    /// Starts routing `events`; incoming calls come out of the returned receiver.
    pub(crate) fn start(mut events: Events) -> (Router, mpsc::UnboundedReceiver<Offered>) {
        let (messages, inbox) = mpsc::unbounded_channel();
        let router = Router {
            state: Arc::new(Mutex::new(State::default())),
            registration: Arc::new(watch::Sender::new(Registration::Pending)),
            messages,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
            held: Arc::default(),
        };
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let r = router.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                r.route(
                    Routed {
                        at: Instant::now(),
                        event,
                    },
                    &incoming_tx,
                );
            }
        });
        (router, incoming_rx)
    }

    /// The account's registration state, as it changes.
    pub(crate) fn registration(&self) -> watch::Receiver<Registration> {
        self.registration.subscribe()
    }

    /// The messages received and not yet taken.
    pub(crate) fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// Load mode, where many calls of a leg share its phone: the first message for which
    /// `want` holds, held back by another call or arriving by `deadline`; those that do
    /// not match are held for the leg's other calls. `None` at the deadline or when the
    /// phone stopped.
    pub(crate) async fn take_matching(
        &self,
        want: impl Fn(&Message) -> bool,
        deadline: Instant,
    ) -> Option<Message> {
        let inbox = self.inbox.clone();
        let find = async {
            loop {
                // Whoever holds the inbox checks the held messages first: one held by
                // the previous holder is seen by the next.
                let mut rx = inbox.lock().await;
                if let Some(m) = self.take_held(&want) {
                    return Some(m);
                }
                let m = rx.recv().await?;
                if want(&m) {
                    return Some(m);
                }
                if let Ok(mut held) = self.held.lock() {
                    if held.len() >= HELD_MAX {
                        held.pop_front();
                    }
                    held.push_back(m);
                }
                drop(rx);
            }
        };
        tokio::time::timeout_at(deadline.into(), find)
            .await
            .ok()
            .flatten()
    }

    fn take_held(&self, want: &impl Fn(&Message) -> bool) -> Option<Message> {
        let mut held = self.held.lock().ok()?;
        let i = held.iter().position(want)?;
        held.remove(i)
    }

    /// Load mode: how many messages wait for other calls, and the latest of them.
    pub(crate) fn held(&self) -> (usize, Option<Message>) {
        match self.held.lock() {
            Ok(h) => (h.len(), h.back().cloned()),
            Err(_) => (0, None),
        }
    }

    /// Events of no call: registration outcomes and messages.
    fn leg_event(&self, event: Event) {
        match event {
            Event::Registered { aor, expires } => {
                self.registration
                    .send_replace(Registration::Registered { aor, expires });
            }
            Event::RegistrationFailed { aor, code, reason } => {
                self.registration
                    .send_replace(Registration::Failed { aor, code, reason });
            }
            Event::Message { from, body, .. } => {
                let _ = self.messages.send(Message { from, body });
            }
            // Unregistered (at shutdown) changes no step's outcome.
            _ => {}
        }
    }

    fn route(&self, routed: Routed, incoming: &mpsc::UnboundedSender<Offered>) {
        let Some(call) = routed.event.call() else {
            self.leg_event(routed.event);
            return;
        };
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Event::Incoming { from, .. } = &routed.event {
            let (tx, rx) = mpsc::unbounded_channel();
            st.calls.insert(call, tx);
            let _ = incoming.send(Offered {
                call,
                from: from.clone(),
                at: routed.at,
                events: rx,
            });
            return;
        }
        let ended = matches!(routed.event, Event::Ended { .. });
        match st.calls.get(&call) {
            Some(tx) => {
                let _ = tx.send(routed);
                if ended {
                    st.calls.remove(&call);
                }
            }
            None => st.pending.entry(call).or_default().push(routed),
        }
    }

    /// The events of a call we placed, including any that came before this.
    pub(crate) fn claim(&self, call: CallId) -> mpsc::UnboundedReceiver<Routed> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut st) = self.state.lock() {
            let mut ended = false;
            for r in st.pending.remove(&call).unwrap_or_default() {
                ended |= matches!(r.event, Event::Ended { .. });
                let _ = tx.send(r);
            }
            if !ended {
                st.calls.insert(call, tx);
            }
        }
        rx
    }
}
