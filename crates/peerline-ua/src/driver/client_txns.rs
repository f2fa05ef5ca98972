//! Our client transactions' outcomes: responses and timeouts of INVITE, BYE, REFER,
//! re-INVITE and PRACK; digest retries, the next target on failure (RFC 3263), PRACKs of
//! reliable provisional responses, and the 2xx that starts a call.

use super::*;

impl Driver {
    pub(super) async fn response(&mut self, key: TransactionKey, response: Response) {
        let code = response.status_code.code();
        if code >= 200 {
            if let Some(pending) = self.messages.remove(&key) {
                self.message_response(pending, &response);
                return;
            }
        }
        if let Some(i) = self
            .accounts
            .iter()
            .position(|a| a.register_key.as_ref() == Some(&key))
        {
            match located::unavailable(&response) {
                // 503: the next target, if there is one (RFC 3263 §4.3).
                Some(reason) if self.registrar_failover(i, reason, false) => return,
                Some(_) => {}
                None => {
                    if let Some(l) = self.accounts[i].registrar.as_mut() {
                        l.ok();
                    }
                }
            }
            if let Some(r) = self.accounts[i].registration.as_mut() {
                r.handle_response(Instant::now(), &response);
            }
            return;
        }
        let id = match self.call_of_txn(&key) {
            Some((id, ClientTxn::Invite)) => id,
            Some((id, ClientTxn::Refer)) => {
                if code >= 200 {
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.refer_key = None;
                        if code >= 300 {
                            call.transferring = false; // refused: the call stays up
                        }
                    }
                    self.emit(Event::Transfer {
                        call: id,
                        status: code,
                        target: None,
                        new_call: None,
                    });
                }
                return;
            }
            // A BYE or CANCEL answered (or refused): the call is over either way.
            Some((id, ClientTxn::Bye)) => {
                if code >= 200 {
                    self.end_call(id, EndReason::LocalHangup).await;
                }
                return;
            }
            Some((id, ClientTxn::Reinvite)) => {
                self.reinvite_response(id, response).await;
                return;
            }
            Some((id, ClientTxn::Prack)) => {
                // The PRACK's own response: a 2xx is just consumed (RFC 3262 §4).
                if let Some(call) = self.calls.get_mut(&id).filter(|_| code >= 200) {
                    call.prack_keys.retain(|k| *k != key);
                    if code >= 300 {
                        tracing::warn!(call_id = %call.call_id, "PRACK refused: {}", response.status_code);
                    }
                }
                return;
            }
            None => return, // e.g. the 200 to our CANCEL
        };
        match code {
            100 => {}
            101..=199 => {
                self.prack_provisional(id, &response);
                if code == 180 || code == 183 {
                    self.emit(Event::Ringing {
                        call: id,
                        status: code,
                    });
                }
            }
            200..=299 => self.invite_accepted(id, response).await,
            401 | 407 if self.retry_with_credentials(id, &response) => {}
            _ => {
                if let Some(fail) = located::unavailable(&response) {
                    if let Some(next) = self.proxy_failed(id, fail) {
                        if self.retry_invite_at(id, next) {
                            return;
                        }
                    }
                }
                let reason = response.status_code.to_string();
                let reason = reason
                    .split_once(' ')
                    .map(|(_, r)| r.to_string())
                    .unwrap_or(reason);
                let reason = match self.calls.get(&id).and_then(|c| c.ending.clone()) {
                    Some(r) => r,
                    None => EndReason::Rejected(code, reason),
                };
                self.end_call(id, reason).await;
            }
        }
    }

    /// Resends the INVITE with digest credentials after a 401/407 (RFC 3261 §22.2): same
    /// Call-ID and From tag, next CSeq, new branch. `false` when the call cannot retry.
    pub(super) fn retry_with_credentials(&mut self, id: CallId, response: &Response) -> bool {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.state != State::Calling {
            return false;
        }
        let (Some(digest), Some(invite)) = (call.digest.as_mut(), call.invite.as_ref()) else {
            return false;
        };
        if digest.handle_challenge(response).is_err() {
            return false;
        }
        let mut retry = crate::request_edit::next_attempt(invite, &branch);
        if digest.authorize(&mut retry, &mut self.rng).is_err() {
            return false;
        }
        let hop = call_target(call);
        self.resend_invite(id, retry, hop)
    }

    /// Sends `retry`, a new attempt of call `id`'s INVITE, to `hop` as a new transaction;
    /// on success it is the call's INVITE from now on, and `hop` its next hop.
    pub(super) fn resend_invite(&mut self, id: CallId, retry: Request, hop: Target) -> bool {
        let Ok(key) = self
            .endpoint
            .send_request_to(Instant::now(), retry.clone(), hop)
        else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.invite_key = Some(key);
            call.invite = Some(retry);
            call.next_hop = hop.addr;
            call.transport = hop.transport;
        }
        true
    }

    /// UAC, RFC 3262 §4: a reliable provisional response to our INVITE is PRACKed in its
    /// early dialog (Request-URI its Contact, Route from its Record-Route, next CSeq,
    /// `RAck`); retransmissions and out-of-order ones are not. One whose reliability is
    /// unusable (no valid RSeq) is treated as unreliable: the call goes on.
    pub(super) fn prack_provisional(&mut self, id: CallId, response: &Response) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(invite) = call
            .invite
            .as_ref()
            .filter(|_| call.state == State::Calling)
        else {
            return;
        };
        let invite_seq = cseq_number(invite);
        let tracker = match &mut call.uac_prack {
            Some(t) if t.invite_cseq() == invite_seq => t,
            slot => slot.insert(PrackTracker::new(invite_seq)),
        };
        let rack = match tracker.on_provisional(response) {
            Provisional::Prack(rack) => rack,
            Provisional::Unreliable => return,
            other => {
                tracing::info!(call_id = %call.call_id, "provisional {} not PRACKed: {other:?}", response.status_code);
                return;
            }
        };
        let mut early = match Dialog::uac(invite, response) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(call_id = %call.call_id, "reliable provisional without an early dialog: {e}");
                return;
            }
        };
        // The PRACK takes the next CSeq after the INVITE's and any earlier PRACK's.
        early.continue_local_seq(tracker.next_cseq() - 1);
        let hop = dialog_next_hop(&early).unwrap_or(call.next_hop);
        let sent_by = SocketAddr::new(
            local_ip_toward(hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string();
        let prack = early
            .request(Method::PRack, call.transport.via_token(), &sent_by, &branch)
            .map(|b| {
                b.header(make_header("RAck", &rack.to_string()))
                    .header(make_header("User-Agent", USER_AGENT))
            })
            .and_then(|b| b.build().map_err(DialogError::from));
        let prack = match prack {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(call_id = %call.call_id, "cannot build PRACK: {e}");
                return;
            }
        };
        let target = match call.transport {
            Transport::Udp => Target::udp(hop),
            t => Target::stream(hop, t, None),
        };
        match self.endpoint.send_request_to(Instant::now(), prack, target) {
            Ok(key) => call.prack_keys.push(key),
            Err(e) => tracing::warn!(call_id = %call.call_id, "cannot send PRACK: {e}"),
        }
    }

    pub(super) async fn invite_accepted(&mut self, id: CallId, response: Response) {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let transport = call.transport;
        let Some(invite) = call.invite.clone() else {
            return;
        };
        let same_dialog = call
            .dialog
            .as_ref()
            .is_some_and(|d| response.to_tag().as_deref() == Some(d.id.remote_tag.as_str()));
        if same_dialog {
            // A retransmitted 2xx: our ACK was lost; send it again.
            if let Some(ack) = call.ack.clone() {
                let hop = call.next_hop;
                self.send_raw(&ack, hop, transport).await;
            }
            return;
        }
        let invite_seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
        let mut dialog = match Dialog::uac(&invite, &response) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("2xx does not create a dialog: {e}");
                return;
            }
        };
        if let Some(tracker) = &call.uac_prack {
            // PRACKs went out in the early dialog: later requests continue after them.
            dialog.continue_local_seq(tracker.last_cseq());
        }
        let hop = dialog_next_hop(&dialog).unwrap_or(call.next_hop);
        let sent_by = SocketAddr::new(
            local_ip_toward(hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string();
        // ACK the 2xx (RFC 3261 §13.2.2.4): a request of its own, outside any transaction,
        // with the INVITE's CSeq number.
        let ack = match dialog.ack(invite_seq, transport.via_token(), &sent_by, &branch) {
            Ok(ack) => serialize(&SipMessage::Request(ack)),
            Err(e) => {
                tracing::warn!("cannot build ACK: {e}");
                return;
            }
        };
        if call.dialog.is_some() {
            // A 2xx from a second fork: acknowledge it and end that dialog at once.
            self.send_raw(&ack, hop, transport).await;
            let bye_branch = self.branch();
            let bye = dialog
                .request(Method::Bye, transport.via_token(), &sent_by, &bye_branch)
                .and_then(|b| b.build().map_err(DialogError::from));
            if let Ok(bye) = bye {
                let target = match transport {
                    Transport::Udp => Target::udp(hop),
                    t => Target::stream(hop, t, None),
                };
                let _ = self.endpoint.send_request_to(Instant::now(), bye, target);
            }
            return;
        }
        let negotiated = match (&call.offer, SessionDescription::parse_bytes(&response.body)) {
            (Some(offer), Ok(answer)) => {
                peerline_sdp::process_answer(offer, &answer).map_err(|e| e.to_string())
            }
            (_, Err(e)) => Err(format!("bad SDP answer: {e}")),
            (None, _) => Err("no offer".into()),
        };
        call.next_hop = hop;
        call.dialog = Some(dialog);
        call.ack = Some(ack.clone());
        call.state = State::Confirmed;
        self.send_raw(&ack, hop, transport).await;
        // RFC 4028 §7.2: the 2xx names the interval and the refresher (we are the UAC).
        if let Some(se) = response_session_expires(&response) {
            if let Some(call) = self.calls.get_mut(&id) {
                let we_refresh = se.refresher.unwrap_or(Refresher::Uac) == Refresher::Uac;
                call.session_timer = Some(SessionTimer::new(Instant::now(), se.secs, we_refresh));
                self.timer_calls.insert(id);
            }
        }
        self.emit(Event::Answered { call: id });
        if let Some(orig) = self.transferee_of.remove(&id) {
            self.notify_transfer(orig, 200, "OK");
            self.emit(Event::Transfer {
                call: orig,
                status: 200,
                target: None,
                new_call: Some(id),
            });
        }
        match negotiated {
            Ok(n) => {
                if n.remote_ice.is_none() {
                    self.ice_fall_back(id).await;
                }
                self.start_media(id, &n);
                // A hangup requested while the INVITE was pending ends the call now.
                if let Some(reason) = self.calls.get(&id).and_then(|c| c.ending.clone()) {
                    let _ = self.send_bye(id);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ending = Some(reason);
                    }
                }
            }
            Err(e) => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.ending = Some(EndReason::Negotiation(e));
                }
                let _ = self.send_bye(id);
            }
        }
    }

    /// The call and role of one of our client transactions (one pass over the calls).
    pub(super) fn call_of_txn(&self, key: &TransactionKey) -> Option<(CallId, ClientTxn)> {
        self.calls.iter().find_map(|(id, c)| {
            let role = if c.invite_key.as_ref() == Some(key) {
                ClientTxn::Invite
            } else if c.bye_key.as_ref() == Some(key) {
                ClientTxn::Bye
            } else if c.refer_key.as_ref() == Some(key) {
                ClientTxn::Refer
            } else if c.reinvite.as_ref().is_some_and(|r| &r.0 == key) {
                ClientTxn::Reinvite
            } else if c.prack_keys.contains(key) {
                ClientTxn::Prack
            } else {
                return None;
            };
            Some((*id, role))
        })
    }

    pub(super) async fn transaction_timeout(&mut self, key: TransactionKey) {
        let timeout_reason = match self.unreachable.remove(&key) {
            Some(why) => EndReason::Unreachable(why),
            None => EndReason::Timeout,
        };
        let txn = self.call_of_txn(&key);
        if let Some((id, ClientTxn::Refer)) = txn {
            if let Some(call) = self.calls.get_mut(&id) {
                call.refer_key = None;
                call.transferring = false;
            }
            self.emit(Event::Transfer {
                call: id,
                status: 408,
                target: None,
                new_call: None,
            });
            return;
        }
        if let Some(pending) = self.messages.remove(&key) {
            let why = match timeout_reason {
                EndReason::Unreachable(why) => why,
                _ => "no final response (Timer F)".to_string(),
            };
            let _ = pending.reply.send(Err(PhoneError::NoAnswer(why)));
            return;
        }
        if let Some(i) = self
            .accounts
            .iter()
            .position(|a| a.register_key.as_ref() == Some(&key))
        {
            // Timer F or a refused connection: register on the next target, if any.
            let fail = match timeout_reason {
                EndReason::Unreachable(_) => peerline_dns::FailReason::Transport,
                _ => peerline_dns::FailReason::Timeout,
            };
            // A TLS target that failed on its certificate is not replaced by a plain one:
            // an attacker who can present a bad certificate must not get a downgrade.
            let tls_only = matches!(&timeout_reason, EndReason::Unreachable(why) if why.contains("certificate"));
            if !self.registrar_failover(i, fail, tls_only) {
                if let Some(r) = self.accounts[i].registration.as_mut() {
                    // A failed connection (refused, TLS certificate) is reported with
                    // its reason rather than as a 408.
                    match timeout_reason {
                        EndReason::Unreachable(why) => {
                            r.handle_transport_failure(Instant::now(), why)
                        }
                        _ => r.handle_transaction_timeout(Instant::now()),
                    }
                }
            }
            return;
        }
        // Our re-INVITE got no answer: the dialog is considered gone (RFC 3261 §14.1).
        if let Some((id, ClientTxn::Reinvite)) = txn {
            if let Some(call) = self.calls.get_mut(&id) {
                call.reinvite = None;
                call.ending = Some(EndReason::Timeout);
            }
            if self.send_bye(id).is_err() {
                self.end_call(id, EndReason::Timeout).await;
            }
            return;
        }
        if let Some((id, role @ (ClientTxn::Invite | ClientTxn::Bye))) = txn {
            let is_bye = role == ClientTxn::Bye;
            let in_progress = self
                .calls
                .get(&id)
                .is_some_and(|c| matches!(c.state, State::Calling | State::Accepted));
            if is_bye || in_progress {
                if !is_bye && matches!(timeout_reason, EndReason::Unreachable(_)) {
                    // Sent over TCP only for its size: RFC 3261 §18.1.1 says retry over UDP.
                    let fallback = self.calls.get_mut(&id).filter(|c| c.udp_fallback).map(|c| {
                        c.udp_fallback = false;
                        c.next_hop
                    });
                    if let Some(hop) = fallback {
                        if self.retry_invite_at(id, Target::udp(hop)) {
                            return;
                        }
                    }
                }
                if !is_bye {
                    let fail = match timeout_reason {
                        EndReason::Unreachable(_) => peerline_dns::FailReason::Transport,
                        _ => peerline_dns::FailReason::Timeout,
                    };
                    if let Some(next) = self.proxy_failed(id, fail) {
                        if self.retry_invite_at(id, next) {
                            return;
                        }
                    }
                }
                self.end_call(id, timeout_reason).await;
            }
        }
    }

    /// Our INVITE of call `id` got no answer (Timer B), could not be sent, or got a 503:
    /// when it went to the account's outbound proxy, that target is avoided and the
    /// proxy's next target (RFC 3263 §4.3), if any, is returned and used from now on.
    pub(super) fn proxy_failed(
        &mut self,
        id: CallId,
        reason: peerline_dns::FailReason,
    ) -> Option<Target> {
        let c = self.calls.get(&id).filter(|c| c.outgoing)?;
        let (hop, transport) = (c.next_hop, c.transport);
        let mut next = None;
        for a in &mut self.accounts {
            if let Some(l) = a.proxy.as_mut().filter(|l| l.is_current(hop, transport)) {
                next = l.fail(reason, Instant::now()).or(next);
            }
        }
        next
    }

    /// RFC 3263 §4.3: the INVITE of call `id`, still unanswered, failed at its target;
    /// it is sent again as a new transaction (new branch, next CSeq, Via for the new
    /// transport) to `next`. `false` when the call cannot be retried.
    pub(super) fn retry_invite_at(&mut self, id: CallId, next: Target) -> bool {
        let branch = self.branch();
        let ip = local_ip_toward(next.addr, self.sip_addr.ip());
        let sent_by = SocketAddr::new(ip, self.listen_port(next.transport));
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(invite) = call
            .invite
            .as_ref()
            .filter(|_| call.state == State::Calling)
        else {
            return false;
        };
        let mut retry = crate::request_edit::next_attempt(invite, &branch);
        crate::request_edit::replace_top_via(
            &mut retry,
            &format!(
                "SIP/2.0/{} {sent_by};rport;branch={branch}",
                next.transport.via_token()
            ),
        );
        tracing::info!(call = id, to = %next.addr, transport = %next.transport, "INVITE to the next target");
        self.resend_invite(id, retry, next)
    }
}
