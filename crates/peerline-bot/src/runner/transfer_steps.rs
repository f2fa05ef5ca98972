//! Blind transfer (RFC 3515 REFER) in bots. The transferor leg's `transfer` step asks the
//! phone to send REFER and judges the transfer's final status. The transferee's phone
//! follows a REFER by itself (202, a new call to the target, NOTIFYs); once that call is
//! answered the leg follows it: it becomes the leg's call (`expect_transfer` waits for
//! this; any later step takes it up too), and the old call's bookkeeping is closed.

use std::time::{Duration, Instant};

use peerline_ua::{AudioSource, CallId, EndReason, MediaOptions};

use super::{CallCtx, Ended, LegRun};
use crate::scenario::{Step, Template};

/// Transferee: the REFER received on a call and our call to its target.
#[derive(Debug, Clone)]
pub(super) struct Referral {
    /// The `Refer-To` target.
    pub target: Option<String>,
    /// Our call to the target.
    pub new_call: Option<CallId>,
    /// When the REFER was followed (the new call's start).
    pub placed: Instant,
    /// The new call's latest status: 100, 180, 200, or its failure (≥ 300).
    pub status: u16,
}

/// Where a transfer we asked for stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The REFER itself was refused (or not answered: 408); the call stays up.
    Refused(u16),
    /// The transferee's call to the target reached this final status (NOTIFY sipfrag).
    Final(u16),
    /// Not decided yet.
    Pending,
}

/// The outcome from the statuses in the order the phone reported them: first the REFER's
/// final response (202), then the NOTIFYed statuses of the transferee's call.
pub(super) fn outcome(statuses: &[u16]) -> Outcome {
    let mut accepted = false;
    for &s in statuses {
        if !accepted {
            if s >= 300 {
                return Outcome::Refused(s);
            }
            // 202 (or 200 from older peers); a NOTIFY 100 overtaking the 202 means the
            // same, and the 202 after it is then skipped below.
            accepted = true;
        } else if s >= 200 && s != 202 {
            return Outcome::Final(s);
        }
    }
    Outcome::Pending
}

fn list(statuses: &[u16]) -> String {
    if statuses.is_empty() {
        return "none".into();
    }
    let s: Vec<String> = statuses.iter().map(u16::to_string).collect();
    s.join(", ")
}

impl CallCtx {
    /// Records an [`peerline_ua::Event::Transfer`] about this call.
    pub(super) fn transfer_event(
        &mut self,
        status: u16,
        target: Option<String>,
        new_call: Option<CallId>,
        at: Instant,
    ) {
        if target.is_none() && new_call.is_none() {
            self.transfer.push(status); // we are the transferor
            return;
        }
        match self.referral.as_mut() {
            // A REFER's first report names its target: a new referral.
            Some(r) if target.is_none() => {
                r.status = status;
                if new_call.is_some() {
                    r.new_call = new_call;
                }
            }
            _ => {
                self.referral = Some(Referral {
                    target,
                    new_call,
                    placed: at,
                    status,
                })
            }
        }
    }
}

impl LegRun {
    /// If the leg's call was transferred (our call to the `Refer-To` target answered),
    /// closes the old call (the transferor ends it with BYE; we do if it does not within
    /// 5 s) and makes the new call the leg's call. Returns the target and the new call.
    pub(super) async fn follow_transfer(&mut self) -> Option<(String, CallId)> {
        let (new_call, placed, target) = {
            let r = self.call.as_ref()?.referral.as_ref()?;
            if !(200..300).contains(&r.status) {
                return None;
            }
            (r.new_call?, r.placed, r.target.clone().unwrap_or_default())
        };
        let phone = self.phone.clone();
        let mut old = self.call.take()?;
        old.wait(&phone, Instant::now() + Duration::from_secs(5), |c| {
            c.ended.is_some()
        })
        .await;
        if old.ended.is_none() && !old.closed {
            let _ = tokio::time::timeout(Duration::from_secs(5), phone.hangup(old.id)).await;
            old.wait(&phone, Instant::now() + Duration::from_secs(5), |c| {
                c.ended.is_some()
            })
            .await;
        }
        // The phone places the new call with the old call's media options, except that it
        // records to a file of its own beside the old one's (`talk.wav` →
        // `talk.call7.wav`, MediaOptions::replacement); the old one's is judged now.
        let recording = old.recording.as_ref().and_then(|(p, temp)| {
            let options = MediaOptions {
                source: AudioSource::Silence,
                record: Some(p.clone()),
            };
            options.replacement(new_call).record.map(|p| (p, *temp))
        });
        self.call = Some(old);
        self.end_call();
        let events = self.router.claim(new_call);
        self.call = Some(CallCtx::new(new_call, events, true, placed, recording));
        Some((target, new_call))
    }

    /// `transfer`: REFER, then the final status within `within`.
    pub(super) async fn transfer_step(
        &mut self,
        step: &Step,
        path: &str,
        started: Instant,
        target: &Template,
        status: Option<u16>,
        within: Duration,
    ) -> bool {
        let target = self.resolve(target);
        let expected = format!(
            "transfer to {target} ending {} within {} s",
            status.map_or("2xx".to_string(), |s| s.to_string()),
            within.as_secs_f64()
        );
        let phone = self.phone.clone();
        let Some(call) = self.call.as_mut() else {
            return self.push(step, path, started, false, expected, "there is no call");
        };
        call.transfer.clear();
        match tokio::time::timeout(step.timeout, phone.transfer(call.id, &target)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.push(step, path, started, false, expected, e.to_string()),
            Err(_) => {
                let observed = "the phone did not send the REFER in time";
                return self.push(step, path, started, false, expected, observed);
            }
        }
        let dl = self.deadline(within);
        let Some(call) = self.call.as_mut() else {
            return false;
        };
        call.wait(&phone, dl, |c| outcome(&c.transfer) != Outcome::Pending)
            .await;
        let seen = list(&call.transfer);
        let transferred = matches!(
            call.ended,
            Some(Ended {
                reason: EndReason::Transferred,
                ..
            })
        );
        let (got, observed) = match outcome(&call.transfer) {
            Outcome::Refused(s) => (
                Some(s),
                format!("REFER refused with {s}; the call stays up"),
            ),
            Outcome::Final(s) => (Some(s), format!("ended {s} (statuses: {seen})")),
            Outcome::Pending if transferred => (Some(200), format!("transferred ({seen})")),
            Outcome::Pending => (
                None,
                format!(
                    "no final status within {} s ({}; statuses: {seen})",
                    dl.saturating_duration_since(started).as_secs_f64(),
                    call.state()
                ),
            ),
        };
        let ok = match (status, got) {
            (Some(want), Some(got)) => want == got,
            (None, Some(got)) => (200..300).contains(&got),
            (_, None) => false,
        };
        if got.is_some_and(|s| (200..300).contains(&s)) {
            // Transferred: the phone ends our call (BYE).
            let until = (Instant::now() + Duration::from_secs(5)).min(self.shared.deadline);
            call.wait(&phone, until, |c| c.ended.is_some()).await;
        }
        if call.ended.is_some() {
            self.end_call();
        }
        self.push(step, path, started, ok, expected, observed)
    }

    /// `expect_transfer`: a REFER arrives and our call to its target is answered; that
    /// call becomes the leg's call.
    pub(super) async fn expect_transfer_step(
        &mut self,
        step: &Step,
        path: &str,
        started: Instant,
        target: Option<&Template>,
        within: Duration,
    ) -> bool {
        let want = target.map(|t| self.resolve(t));
        let expected = match &want {
            Some(t) => format!(
                "transferred to {t} (our call to it answered) within {} s",
                within.as_secs_f64()
            ),
            None => format!(
                "transferred (our call to the target answered) within {} s",
                within.as_secs_f64()
            ),
        };
        let dl = self.deadline(within);
        let phone = self.phone.clone();
        let Some(call) = self.call.as_mut() else {
            return self.push(step, path, started, false, expected, "there is no call");
        };
        call.wait(&phone, dl, |c| {
            c.referral.as_ref().is_some_and(|r| r.status >= 200)
        })
        .await;
        let Some(r) = call.referral.clone() else {
            let observed = format!(
                "no REFER within {} s ({})",
                dl.saturating_duration_since(started).as_secs_f64(),
                call.state()
            );
            return self.push(step, path, started, false, expected, observed);
        };
        let to = r.target.clone().unwrap_or_default();
        if r.status >= 300 {
            let observed = format!(
                "referred to {to}, but our call to it failed with {}; the old call stays up",
                r.status
            );
            return self.push(step, path, started, false, expected, observed);
        }
        if r.status < 200 {
            let observed = format!(
                "referred to {to}; our call to it not answered within {} s (last status {})",
                dl.saturating_duration_since(started).as_secs_f64(),
                r.status
            );
            return self.push(step, path, started, false, expected, observed);
        }
        let Some((to, new_call)) = self.follow_transfer().await else {
            let observed = format!("referred to {to}, but the phone named no new call");
            return self.push(step, path, started, false, expected, observed);
        };
        let ok = want.as_ref().is_none_or(|w| *w == to);
        let observed = format!(
            "referred to {to}; our call {new_call} to it answered after {:.0} ms",
            r.placed.elapsed().as_secs_f64() * 1000.0
        );
        self.push(step, path, started, ok, expected, observed)
    }
}

#[cfg(test)]
mod tests {
    use super::{outcome, Outcome};

    #[test]
    fn outcome_from_refer_response_and_notifies() {
        assert_eq!(outcome(&[]), Outcome::Pending);
        assert_eq!(outcome(&[202]), Outcome::Pending);
        assert_eq!(outcome(&[202, 100, 180]), Outcome::Pending);
        assert_eq!(outcome(&[202, 100, 180, 200]), Outcome::Final(200));
        assert_eq!(outcome(&[202, 100, 486]), Outcome::Final(486));
        assert_eq!(outcome(&[200, 100, 503]), Outcome::Final(503));
        // A NOTIFY 100 that overtook the 202: the 202 is not a final status of the call.
        assert_eq!(outcome(&[100, 202, 180]), Outcome::Pending);
        assert_eq!(outcome(&[100, 202, 200]), Outcome::Final(200));
        // The REFER refused or unanswered.
        assert_eq!(outcome(&[405]), Outcome::Refused(405));
        assert_eq!(outcome(&[408]), Outcome::Refused(408));
    }
}
