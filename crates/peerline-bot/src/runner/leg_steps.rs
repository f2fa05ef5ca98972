//! Steps about the leg rather than its call: `register` (the account's registration
//! outcome), `send_message` and `expect_message` (SIP MESSAGE, RFC 3428).

use std::time::{Duration, Instant};

use peerline_ua::PhoneError;

use super::LegRun;
use crate::router::{Message, Registration};
use crate::scenario::{Step, Template, TextMatch};

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A message in words, for `observed`.
fn describe(m: &Message) -> String {
    format!("message {:?} from {}", m.body, m.from)
}

impl LegRun {
    /// `within`, or less when the run's timeout comes first.
    fn bounded(&self, within: Duration, started: Instant) -> Duration {
        within.min(self.shared.deadline.saturating_duration_since(started))
    }

    /// Waits for the account's first registration outcome (or takes the current one).
    pub(super) async fn register_step(
        &mut self,
        step: &Step,
        path: &str,
        started: Instant,
        within: Duration,
    ) -> bool {
        let aor = self.shared.scenario.legs[self.leg]
            .account
            .as_ref()
            .map(|a| a.aor.clone())
            .unwrap_or_default();
        let expected = format!("{aor} registered within {} s", secs(within));
        let dl = self.deadline(within);
        let mut state = self.router.registration();
        let outcome =
            tokio::time::timeout_at(dl.into(), state.wait_for(|r| *r != Registration::Pending))
                .await
                .map(|r| r.map(|r| r.clone()));
        let (ok, observed) = match outcome {
            Ok(Ok(Registration::Registered { expires, .. })) => {
                (true, format!("registered for {expires} s"))
            }
            Ok(Ok(Registration::Failed {
                code: 0, reason, ..
            })) => (
                false,
                format!("registration failed: no response from the registrar ({reason})"),
            ),
            Ok(Ok(Registration::Failed { code, reason, .. })) => {
                (false, format!("registration failed: {code} {reason}"))
            }
            Ok(Ok(Registration::Pending)) | Ok(Err(_)) => {
                (false, "the phone stopped before registering".to_string())
            }
            Err(_) => (
                false,
                format!(
                    "no registration outcome within {} s",
                    secs(self.bounded(within, started))
                ),
            ),
        };
        self.push(step, path, started, ok, expected, observed)
    }

    /// Sends a MESSAGE and checks its final status (any 2xx unless `status` is given).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_message_step(
        &mut self,
        step: &Step,
        path: &str,
        started: Instant,
        to: &Template,
        text: &Template,
        status: Option<u16>,
    ) -> bool {
        let (to, text) = (self.resolve(to), self.resolve(text));
        let expected = match status {
            Some(s) => format!("MESSAGE to {to} answered {s}"),
            None => format!("MESSAGE to {to} answered 2xx"),
        };
        let timeout = step.timeout;
        let sent = tokio::time::timeout(timeout, self.phone.send_message(&to, &text)).await;
        let (code, observed) = match sent {
            Ok(Ok(code)) => (Some(code), format!("{code}")),
            Ok(Err(PhoneError::Refused(code, reason))) => (Some(code), reason),
            Ok(Err(e)) => (None, e.to_string()),
            Err(_) => (
                None,
                format!("no final response within {} s", secs(timeout)),
            ),
        };
        let ok = match (status, code) {
            (Some(want), Some(got)) => want == got,
            (None, Some(got)) => (200..300).contains(&got),
            (_, None) => false,
        };
        self.push(step, path, started, ok, expected, observed)
    }

    /// Takes the next message (queued or arriving within `within`) and checks it.
    pub(super) async fn expect_message_step(
        &mut self,
        step: &Step,
        path: &str,
        started: Instant,
        text: &TextMatch,
        from: Option<&Template>,
        within: Duration,
    ) -> bool {
        let want = match text {
            TextMatch::Any => TextMatch::Any,
            TextMatch::Exact(t) => TextMatch::Exact(Template::text(self.resolve(t))),
            TextMatch::Contains(t) => TextMatch::Contains(Template::text(self.resolve(t))),
        };
        let from = from.map(|f| self.resolve(f));
        let mut expected = format!("message {want}");
        if let Some(f) = &from {
            expected.push_str(&format!(" from {f}"));
        }
        expected.push_str(&format!(" within {} s", secs(within)));
        let dl = self.deadline(within);
        if self.shared.scenario.load.is_some() {
            // The leg's calls share its phone: each takes the first message that matches
            // its own expectation and leaves the others to the other calls.
            let matches = |m: &Message| {
                let text_ok = match &want {
                    TextMatch::Any => true,
                    TextMatch::Exact(t) => m.body == t.to_string(),
                    TextMatch::Contains(t) => m.body.contains(&t.to_string()),
                };
                text_ok && from.as_ref().is_none_or(|f| m.from.contains(f.as_str()))
            };
            let (ok, observed) = match self.router.take_matching(matches, dl).await {
                Some(m) => (true, describe(&m)),
                None => {
                    let (n, last) = self.router.held();
                    let mut o = format!(
                        "no matching message within {} s",
                        secs(self.bounded(within, started))
                    );
                    if let Some(m) = last {
                        o.push_str(&format!(
                            "; {n} other(s) waiting for the other calls, the latest: {}",
                            describe(&m)
                        ));
                    }
                    (false, o)
                }
            };
            return self.push(step, path, started, ok, expected, observed);
        }
        let inbox = self.router.inbox();
        let got =
            tokio::time::timeout_at(dl.into(), async { inbox.lock().await.recv().await }).await;
        let (ok, observed) = match got {
            Ok(Some(m)) => {
                let text_ok = match &want {
                    TextMatch::Any => true,
                    TextMatch::Exact(t) => m.body == t.to_string(),
                    TextMatch::Contains(t) => m.body.contains(&t.to_string()),
                };
                let from_ok = from.as_ref().is_none_or(|f| m.from.contains(f.as_str()));
                (text_ok && from_ok, describe(&m))
            }
            Ok(None) => (false, "the phone stopped".to_string()),
            Err(_) => (
                false,
                format!(
                    "no message within {} s",
                    secs(self.bounded(within, started))
                ),
            ),
        };
        self.push(step, path, started, ok, expected, observed)
    }
}
