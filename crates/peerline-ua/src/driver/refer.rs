//! Call transfer: REFER and its NOTIFYs in both roles (RFC 3515), attended transfer and
//! INVITEs with `Replaces` (RFC 3891, RFC 5589).

use super::*;

impl Driver {
    /// Transferor, attended (RFC 5589 §7): REFER in `id`'s dialog whose `Refer-To` is
    /// the remote target of `consultation` with a `Replaces` naming that call as the
    /// target sees it (its tag is our remote tag).
    pub(super) fn send_attended_refer(
        &mut self,
        id: CallId,
        consultation: CallId,
    ) -> Result<(), PhoneError> {
        if id == consultation {
            return Err(PhoneError::Call(
                id,
                "a call cannot be transferred to itself",
            ));
        }
        let refer_to = match self.calls.get(&consultation) {
            Some(c) if c.state == State::Confirmed => match &c.dialog {
                Some(d) => {
                    let replaces = peerline_sip::replaces::Replaces {
                        call_id: d.id.call_id.clone(),
                        to_tag: d.id.remote_tag.clone(),
                        from_tag: d.id.local_tag.clone(),
                        early_only: false,
                    };
                    crate::transfer::attended_refer_to(&d.remote_target, &replaces)
                }
                None => return Err(PhoneError::Call(consultation, "no dialog")),
            },
            Some(_) => return Err(PhoneError::Call(consultation, "not an answered call")),
            None => return Err(PhoneError::Call(consultation, "no such call")),
        };
        self.send_refer(id, refer_to)
    }

    /// Transferor: REFER in the call's dialog (RFC 3515) with this `Refer-To` value.
    pub(super) fn send_refer(&mut self, id: CallId, refer_to: String) -> Result<(), PhoneError> {
        match self.calls.get(&id) {
            Some(c) if c.state == State::Confirmed && !c.transferring => {}
            Some(_) => {
                return Err(PhoneError::Call(
                    id,
                    "not an answered call, or already transferring",
                ))
            }
            None => return Err(PhoneError::Call(id, "no such call")),
        }
        let referred_by = self
            .accounts
            .first()
            .map(|a| a.config.aor.clone())
            .unwrap_or_else(|| format!("sip:{}@{}", self.config.identity.user, self.sip_addr));
        let headers = vec![
            make_header("Refer-To", &refer_to),
            make_header("Referred-By", &format!("<{referred_by}>")),
        ];
        let key = self.send_in_dialog(id, Method::Refer, headers, None)?;
        if let Some(call) = self.calls.get_mut(&id) {
            call.refer_key = Some(key);
            call.transferring = true;
        }
        Ok(())
    }

    /// Transferee: NOTIFY the transferor of our new call's status (sipfrag).
    pub(super) fn notify_transfer(&mut self, orig: CallId, code: u16, reason: &str) {
        let final_status = code >= 200;
        let body = crate::transfer::sipfrag(code, reason);
        let headers = crate::transfer::notify_headers(final_status);
        if let Err(e) = self.send_in_dialog(
            orig,
            Method::Notify,
            headers,
            Some(("message/sipfrag;version=2.0", body)),
        ) {
            tracing::info!(call = orig, "NOTIFY for the transfer not sent: {e}");
        }
    }

    /// Transferee: a REFER in a call's dialog. 202, then a call to the target with the
    /// call's media options, reported by NOTIFYs.
    pub(super) async fn incoming_refer(
        &mut self,
        id: CallId,
        key: &TransactionKey,
        request: &Request,
    ) {
        let now = Instant::now();
        let target = match crate::transfer::refer_target(request) {
            Ok(t) => t,
            Err(e) => {
                let resp = make_response_with_reason(request, 400, &e.reason(), None);
                let _ = self.endpoint.send_response(now, key, resp);
                return;
            }
        };
        let confirmed = self
            .calls
            .get(&id)
            .is_some_and(|c| c.state == State::Confirmed);
        if !confirmed {
            let resp = make_response_with_reason(request, 491, "Request Pending", None);
            let _ = self.endpoint.send_response(now, key, resp);
            return;
        }
        let _ = self
            .endpoint
            .send_response(now, key, make_response(request, 202, None));
        // RFC 3515 §2.4.4: the first NOTIFY right away.
        self.notify_transfer(id, 100, "Trying");
        let (options, account) = self
            .calls
            .get(&id)
            .map(|c| (c.media_options.clone(), c.account))
            .unwrap_or_default();
        let crate::transfer::ReferTarget {
            uri: target,
            replaces,
        } = target;
        let extra = replaces
            .map(|r| vec![make_header("Replaces", &r.to_header_value())])
            .unwrap_or_default();
        match self
            .start_call(&target, options.clone(), extra, account)
            .await
        {
            Ok(new_call) => {
                // The new call records to a file of its own (`talk.wav` → `talk.call7.wav`):
                // the old call may still be recording to the same name until its BYE.
                // Its media starts with the answer, which this task handles later.
                if let Some(c) = self.calls.get_mut(&new_call) {
                    c.media_options = options.replacement(new_call);
                }
                self.transferee_of.insert(new_call, id);
                self.emit(Event::Transfer {
                    call: id,
                    status: 100,
                    target: Some(target),
                    new_call: Some(new_call),
                });
            }
            Err(e) => {
                tracing::info!(call = id, "transfer to {target}: {e}");
                self.notify_transfer(id, 503, "Service Unavailable");
                self.emit(Event::Transfer {
                    call: id,
                    status: 503,
                    target: Some(target),
                    new_call: None,
                });
            }
        }
    }

    /// Transferor: a NOTIFY for our REFER's implicit subscription. A 2xx sipfrag ends
    /// our call (the transferee is now talking to the target).
    pub(super) async fn incoming_notify(&mut self, id: CallId, request: &Request) -> u16 {
        let is_refer = peerline_sip::message::header_value(request, "Event")
            .or_else(|| peerline_sip::message::header_value(request, "o"))
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
        let transferring = self.calls.get(&id).is_some_and(|c| c.transferring);
        if !is_refer || !transferring {
            return 481; // no such subscription (RFC 6665 §4.1.3)
        }
        let Some(status) = crate::transfer::sipfrag_status(&request.body) else {
            return 400;
        };
        self.emit(Event::Transfer {
            call: id,
            status,
            target: None,
            new_call: None,
        });
        if status >= 200 {
            if let Some(call) = self.calls.get_mut(&id) {
                call.transferring = false;
            }
        }
        if (200..300).contains(&status) {
            if let Some(call) = self.calls.get_mut(&id) {
                call.ending = Some(EndReason::Transferred);
            }
            if self.send_bye(id).is_err() {
                self.end_call(id, EndReason::Transferred).await;
            }
        }
        200
    }

    /// The call an incoming INVITE's `Replaces` names, when RFC 3891 §3 lets it replace
    /// it; `Err` is the status to refuse the INVITE with.
    pub(super) fn replaced_by(&self, request: &Request) -> Result<Option<CallId>, (u16, String)> {
        use peerline_sip::replaces::{uas_verdict, MatchedDialog, Replaces, ReplacesVerdict};
        let values = peerline_sip::message::header_values(request, "Replaces");
        let value = match values.as_slice() {
            [] => return Ok(None),
            [v] => *v,
            _ => return Err((400, "More Than One Replaces Header".into())),
        };
        let replaces = Replaces::parse(value).map_err(|e| (400, format!("Bad Replaces: {e}")))?;
        let found = self.by_call_id.get(&replaces.call_id).and_then(|&id| {
            let call = self.calls.get(&id)?;
            let remote_tag = match (&call.dialog, &call.invite) {
                (Some(d), _) => d.id.remote_tag.clone(),
                (None, Some(invite)) if !call.outgoing => {
                    invite.from_tag().unwrap_or_default().to_string()
                }
                _ => return None, // our INVITE has no answer with a tag yet
            };
            if !replaces.matches(&call.call_id, &call.local_tag, &remote_tag) {
                return None;
            }
            let state = match call.state {
                _ if call.ending.is_some() => MatchedDialog::Terminated,
                State::Terminating => MatchedDialog::Terminated,
                State::Confirmed | State::Accepted => MatchedDialog::Confirmed,
                State::Calling => MatchedDialog::EarlyOutgoing,
                State::Ringing => MatchedDialog::EarlyIncoming,
            };
            Some((id, state))
        });
        match uas_verdict(&replaces, found.map(|(_, s)| s)) {
            ReplacesVerdict::Replace => Ok(found.map(|(id, _)| id)),
            ReplacesVerdict::Refuse(code, phrase) => Err((code, phrase.into())),
        }
    }

    /// Target of an attended transfer: answer `new` (an INVITE with `Replaces`) with the
    /// media options of `old` (see [`MediaOptions::replacement`]), then end `old` (BYE,
    /// or CANCEL while it is early).
    pub(super) async fn replace_call(&mut self, old: CallId, new: CallId, from: String) {
        let options = self
            .calls
            .get(&old)
            .map(|c| c.media_options.replacement(new))
            .unwrap_or_default();
        self.emit(Event::Replaced {
            call: new,
            replaced: old,
            from,
        });
        if let Err(e) = self.answer(new, options).await {
            tracing::info!(call = new, "replacing call {old} failed: {e}");
            return;
        }
        let Some(call) = self.calls.get_mut(&old) else {
            return;
        };
        match call.state {
            State::Calling => {
                let _ = self.hangup(old).await;
            }
            State::Confirmed | State::Accepted => {
                if self.send_bye(old).is_err() {
                    self.end_call(old, EndReason::Replaced).await;
                }
            }
            State::Ringing | State::Terminating => {}
        }
        if let Some(call) = self.calls.get_mut(&old) {
            call.ending = Some(EndReason::Replaced);
        }
    }
}
