//! Changing an established session: our re-INVITEs (hold, resume, session refresh) and
//! their answers, the peer's re-INVITEs, RFC 4028 session timers and RFC 3262 PRACK timers.

use super::ice_restart::{self, start_ice_restart};
use super::*;

impl Driver {
    /// Sends a hold (`hold`) or resume re-offer in the dialog (RFC 3264 §8, RFC 6337).
    pub(super) fn send_reinvite(&mut self, id: CallId, hold: bool) -> Result<(), PhoneError> {
        let previous = self.reoffer_base(id)?;
        let offer = if hold {
            peerline_sdp::hold(&previous, peerline_sdp::HoldMode::SendOnly)
        } else {
            peerline_sdp::resume(&previous)
        };
        self.send_reoffer(id, offer, hold)
    }

    /// Our last SDP, if the call can take a re-offer now (established, none pending).
    pub(super) fn reoffer_base(&self, id: CallId) -> Result<SessionDescription, PhoneError> {
        let Some(call) = self.calls.get(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.state != State::Confirmed {
            return Err(PhoneError::Call(id, "not established"));
        }
        if call.reinvite.is_some() {
            return Err(PhoneError::Call(id, "a re-INVITE is already in progress"));
        }
        call.local_sdp
            .clone()
            .ok_or(PhoneError::Call(id, "no dialog"))
    }

    /// Sends `offer` in a re-INVITE; `hold` is the hold state it asks for.
    pub(super) fn send_reoffer(
        &mut self,
        id: CallId,
        offer: SessionDescription,
        hold: bool,
    ) -> Result<(), PhoneError> {
        let branch = self.branch();
        let Some(call) = self.calls.get(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let sent_by = self.via_sent_by(call.next_hop);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return Err(PhoneError::Call(id, "no dialog"));
        };
        let request = dialog
            .request(
                Method::Invite,
                call.transport.via_token(),
                &sent_by,
                &branch,
            )
            .map_err(sip_err)?
            .header(make_header("Allow", ALLOW))
            .header(make_header("User-Agent", USER_AGENT))
            .body("application/sdp", offer.to_string().into_bytes())
            .build()
            .map_err(sip_err)?;
        // RFC 4028 §7.4: a re-INVITE in a timed session is a refresh and says who keeps
        // refreshing ("uac": us, the sender of this request).
        let mut request = request;
        if let Some(t) = &call.session_timer {
            let refresher = if t.we_refresh() { "uac" } else { "uas" };
            request.headers.push(make_header(
                "Session-Expires",
                &format!("{};refresher={refresher}", t.secs()),
            ));
        }
        let key = self
            .endpoint
            .send_request_to(Instant::now(), request, call_target(call))
            .map_err(sip_err)?;
        call.reinvite = Some((key, offer, hold));
        Ok(())
    }

    /// The answer to our re-INVITE.
    pub(super) async fn reinvite_response(&mut self, id: CallId, response: Response) {
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((_, offer, hold)) = call.reinvite.take() else {
            return;
        };
        // Our ICE restart's agent: it takes over if the answer has the peer's new ICE.
        let restart = call.pending_ice.take();
        match code {
            200..=299 => {
                let seq = response.cseq().map(|c| c.seq).unwrap_or(1);
                let hop = call.next_hop;
                let transport = call.transport;
                let sent_by = SocketAddr::new(
                    local_ip_toward(hop, self.sip_addr.ip()),
                    self.sip_addr.port(),
                )
                .to_string();
                let ack = call
                    .dialog
                    .as_ref()
                    .and_then(|d| d.ack(seq, transport.via_token(), &sent_by, &branch).ok())
                    .map(|a| serialize(&SipMessage::Request(a)));
                let negotiated = SessionDescription::parse_bytes(&response.body)
                    .map_err(|e| e.to_string())
                    .and_then(|answer| {
                        peerline_sdp::process_answer(&offer, &answer).map_err(|e| e.to_string())
                    });
                if let Some(t) = call.session_timer.as_mut() {
                    let we = response_session_expires(&response)
                        .and_then(|se| se.refresher)
                        .map(|r| r == Refresher::Uac);
                    t.refreshed(Instant::now(), we);
                }
                let restarted = restart.is_some();
                if let Ok(n) = &negotiated {
                    call.local_sdp = Some(offer);
                    call.on_hold = hold;
                    if let Some(m) = &call.media {
                        m.command(media::MediaCommand::Update {
                            remote: n.remote_rtp,
                            send: n.direction.sends(),
                            receive: n.direction.receives(),
                        });
                    }
                    rekey_if_changed(call, &n.security);
                    if let Some(p) = restart {
                        start_ice_restart(call, p, n.remote_ice.clone(), n.rtcp_mux);
                    }
                } else if let Some(p) = restart {
                    tokio::spawn(p.close());
                }
                if let Some(ack) = ack {
                    self.send_raw(&ack, hop, transport).await;
                }
                match negotiated {
                    Ok(_) if restarted => {}
                    Ok(_) => self.emit(Event::Hold {
                        call: id,
                        held: hold,
                    }),
                    Err(e) => {
                        tracing::warn!("re-INVITE answer unusable: {e}; ending the call");
                        if let Some(call) = self.calls.get_mut(&id) {
                            call.ending = Some(EndReason::Negotiation(e));
                        }
                        let _ = self.send_bye(id);
                    }
                }
            }
            _ if restart.is_some() => {
                // A refused or crossed ICE restart: the old pair stays; the address
                // check tries again later if an address is still gone.
                if let Some(p) = restart {
                    tokio::spawn(p.close());
                }
                tracing::info!(
                    call = id,
                    "ICE restart re-INVITE got {code}; pair unchanged"
                );
                if matches!(code, 408 | 481) {
                    call.ending = Some(EndReason::Rejected(code, "re-INVITE failed".into()));
                    let _ = self.send_bye(id);
                }
            }
            491 => {
                // Glare (RFC 3261 §14.1): retry after a random back-off, longer for the
                // owner of the Call-ID.
                let ms = if call.outgoing {
                    self.rng.gen_range(2100..=4000)
                } else {
                    self.rng.gen_range(0..=2000)
                };
                call.reinvite_retry = Some(hold);
                let tx = self.notices_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let _ = tx.send((id, Notice::RetryReinvite));
                });
            }
            408 | 481 => {
                // The dialog is gone (RFC 3261 §14.1).
                call.ending = Some(EndReason::Rejected(code, "re-INVITE failed".into()));
                let _ = self.send_bye(id);
            }
            _ => {
                // The session stays as it was.
                tracing::info!("re-INVITE refused with {code}; session unchanged");
            }
        }
    }

    /// A re-INVITE from the peer (RFC 3261 §14.2): answer its offer and update the media.
    pub(super) async fn incoming_reinvite(
        &mut self,
        id: CallId,
        key: TransactionKey,
        request: Request,
    ) {
        let now = Instant::now();
        let mut caps = self.answer_capabilities(id);
        let session_id = self.session_id;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let respond = |ep: &mut Endpoint, code: u16, reason: &str| {
            let resp = make_response_with_reason(&request, code, reason, None);
            let _ = ep.send_response(now, &key, resp);
        };
        if let Some(Err(e)) = call.dialog.as_mut().map(|d| d.on_request(&request)) {
            respond(&mut self.endpoint, e.status_code(), &e.to_string());
            return;
        }
        if call.reinvite.is_some() || call.state != State::Confirmed {
            respond(&mut self.endpoint, 491, "Request Pending");
            return;
        }
        let offer = match SessionDescription::parse_bytes(&request.body) {
            Ok(o) if !request.body.is_empty() => o,
            Ok(_) => {
                respond(&mut self.endpoint, 488, "Offerless Re-INVITE Not Supported");
                return;
            }
            Err(e) => {
                respond(&mut self.endpoint, 400, &format!("Bad SDP: {e}"));
                return;
            }
        };
        let Some(mut local) = call.rtp_addr else {
            respond(&mut self.endpoint, 488, "No Media Session");
            return;
        };
        // New ICE credentials in the offer: the peer restarts ICE, and so do we.
        let restart = call.media.is_some() && ice_restart::offer_restarts_ice(call, &offer);
        let (controlling, toward, account) = (call.outgoing, call.next_hop.ip(), call.account);
        let prepared = if restart {
            let rtcp_component = !peerline_sdp::answer_multiplexes_rtcp(&offer, caps.rtcp_mux);
            match self
                .prepare_ice(controlling, toward, account, rtcp_component)
                .await
            {
                Some(p) => Some(p),
                None => {
                    respond(&mut self.endpoint, 488, "ICE Restart Failed");
                    return;
                }
            }
        } else {
            None
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.on_hold {
            caps.direction = peerline_sdp::Direction::SendOnly;
        }
        caps.ice = match &prepared {
            Some(p) => {
                call.turn.extend(&p.turn);
                local = p.advertised;
                Some(p.local.clone())
            }
            // The same ICE attributes again: no ICE restart.
            None => call.ice_local.clone(),
        };
        let version = call
            .local_sdp
            .as_ref()
            .map(|s| s.origin.session_version + 1)
            .unwrap_or(2);
        let (answer, negotiated) =
            match peerline_sdp::create_answer(&offer, &caps, local, session_id, version) {
                Ok(a) => a,
                Err(e) => {
                    respond(&mut self.endpoint, e.sip_status(), &e.to_string());
                    return;
                }
            };
        let mut ok = make_response(&request, 200, None);
        if let Some(c) = call.dialog.as_ref().and_then(|d| d.local_contact.clone()) {
            ok.headers.push(make_header("Contact", &format!("<{c}>")));
        }
        peer_refresh(call, &request, &mut ok);
        ok.headers.push(make_header("Allow", ALLOW));
        ok.headers
            .push(make_header("Content-Type", "application/sdp"));
        ok.body = answer.to_string().into_bytes();
        if self.endpoint.send_response(now, &key, ok).is_err() {
            return;
        }
        call.local_sdp = Some(answer);
        if let Some(p) = prepared {
            start_ice_restart(call, p, negotiated.remote_ice.clone(), negotiated.rtcp_mux);
        }
        if let Some(m) = &call.media {
            m.command(media::MediaCommand::Update {
                remote: negotiated.remote_rtp,
                send: negotiated.direction.sends(),
                receive: negotiated.direction.receives(),
            });
        }
        // New SDES keys of ours go into use once the ACK says the offerer has our
        // answer (its packets with the old key may still come: the old inbound key
        // stays usable); an UPDATE has no ACK, so at once.
        if request.method == Method::Invite {
            call.pending_rekey = Some(negotiated.security.clone());
        } else {
            rekey_if_changed(call, &negotiated.security);
        }
        self.emit(Event::RemoteUpdate {
            call: id,
            send: negotiated.direction.sends(),
            receive: negotiated.direction.receives(),
        });
    }

    /// A PRACK (RFC 3262 §3): 200 when its RAck acknowledges a reliable provisional
    /// response of the call's INVITE (then retransmissions stop), 481 otherwise.
    pub(super) fn incoming_prack(&mut self, request: &Request) -> u16 {
        let (Some(rack), Some(call_id), Some(to_tag)) =
            (Rack::of(request), request.call_id(), request.to_tag())
        else {
            return 481;
        };
        let Some(&id) = self.by_call_id.get(call_id) else {
            return 481;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return 481;
        };
        let invite_cseq = call.invite.as_ref().map(cseq_number).unwrap_or(0);
        let acked = call.local_tag == to_tag
            && call
                .prack
                .as_mut()
                .is_some_and(|rel| rel.acknowledge(&rack, invite_cseq));
        if !acked {
            return 481;
        }
        if let Some(d) = call.dialog.as_mut() {
            let _ = d.on_request(request); // keeps the remote CSeq in order
        }
        if !call.prack.as_ref().is_some_and(|r| r.is_pending()) {
            self.prack_calls.remove(&id);
        }
        200
    }

    /// Retransmits due reliable provisional responses; after 64*T1 without a PRACK the
    /// INVITE is rejected with 500 (RFC 3262 §3 says a 5xx).
    pub(super) async fn prack_timers(&mut self, now: Instant) {
        let due = due_calls(&self.calls, &self.prack_calls, now, |c| {
            c.prack.as_ref()?.poll_timeout()
        });
        for id in due {
            let Some(call) = self.calls.get_mut(&id) else {
                self.prack_calls.remove(&id);
                continue;
            };
            let action = call.prack.as_mut().and_then(|r| r.handle_timeout(now));
            match action {
                Some(PrackTimeout::Retransmit(resp)) => {
                    if let Some(key) = call.invite_key.clone() {
                        let _ = self.endpoint.send_response(now, &key, resp);
                    }
                }
                Some(PrackTimeout::GiveUp) => {
                    self.prack_calls.remove(&id);
                    tracing::info!(call = id, "no PRACK for our reliable 180 within 64*T1");
                    let _ = self.reject(id, 500, EndReason::Timeout).await;
                }
                None => {}
            }
        }
    }

    /// RFC 4028 timers that are due: as refresher, a re-INVITE (carrying
    /// `Session-Expires;refresher=uac`); otherwise, or when our refresh went unanswered,
    /// the session has expired and is ended with BYE.
    pub(super) async fn session_timers(&mut self, now: Instant) {
        let due = due_calls(&self.calls, &self.timer_calls, now, |c| {
            c.session_timer.as_ref().map(SessionTimer::poll_timeout)
        });
        for id in due {
            let action = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.session_timer.as_mut())
                .and_then(|t| t.handle_timeout(now));
            match action {
                Some(TimerAction::Refresh) => {
                    let on_hold = self.calls.get(&id).is_some_and(|c| c.on_hold);
                    if let Err(e) = self.send_reinvite(id, on_hold) {
                        tracing::info!(call = id, "session refresh not sent: {e}");
                    }
                }
                Some(TimerAction::Expired) => {
                    tracing::info!(call = id, "session expired (RFC 4028): no refresh");
                    self.timer_calls.remove(&id);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ending = Some(EndReason::SessionExpired);
                    }
                    if self.send_bye(id).is_err() {
                        self.end_call(id, EndReason::SessionExpired).await;
                    }
                }
                None => {}
            }
        }
    }
}
