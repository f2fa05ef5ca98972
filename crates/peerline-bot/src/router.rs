//! Hands a phone's events to the task that owns each call. Events can arrive before
//! `Phone::call` has returned the call's id; those wait until the call is claimed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use peerline_ua::{CallId, Event, Events};
use tokio::sync::mpsc;

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

#[derive(Default)]
struct State {
    calls: HashMap<CallId, mpsc::UnboundedSender<Routed>>,
    pending: HashMap<CallId, Vec<Routed>>,
}

/// The routing table of one phone.
#[derive(Clone)]
pub(crate) struct Router {
    state: Arc<Mutex<State>>,
}

impl Router {
    /// Starts routing `events`; incoming calls come out of the returned receiver.
    pub(crate) fn start(mut events: Events) -> (Router, mpsc::UnboundedReceiver<Offered>) {
        let router = Router {
            state: Arc::new(Mutex::new(State::default())),
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

    fn route(&self, routed: Routed, incoming: &mpsc::UnboundedSender<Offered>) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        // Registration events concern no call: nothing to route.
        let Some(call) = routed.event.call() else {
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
