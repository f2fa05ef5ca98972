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
}

impl Router {
    /// Starts routing `events`; incoming calls come out of the returned receiver.
    pub(crate) fn start(mut events: Events) -> (Router, mpsc::UnboundedReceiver<Offered>) {
        let (messages, inbox) = mpsc::unbounded_channel();
        let router = Router {
            state: Arc::new(Mutex::new(State::default())),
            registration: Arc::new(watch::Sender::new(Registration::Pending)),
            messages,
            inbox: Arc::new(tokio::sync::Mutex::new(inbox)),
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
