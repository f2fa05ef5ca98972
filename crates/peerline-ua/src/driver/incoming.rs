//! Requests from the network: dispatch by method, in-dialog matching, digest checks, and
//! new INVITEs (checks, ringing, reliable provisional responses).

use super::*;

impl Driver {
    pub(super) async fn sip_event(&mut self, ev: SipEvent) {
        match ev {
            SipEvent::IncomingRequest {
                key,
                request,
                source,
            } => self.incoming_request(key, request, source).await,
            SipEvent::Response { key, response } => self.response(key, response).await,
            SipEvent::TransactionTimeout { key } => self.transaction_timeout(key).await,
            SipEvent::Ack { request, .. } => {
                let id = request
                    .call_id()
                    .and_then(|c| self.by_call_id.get(c).copied());
                if let Some(call) = id.and_then(|id| self.calls.get_mut(&id)) {
                    if let Some(security) = call.pending_rekey.take() {
                        rekey_if_changed(call, &security);
                    }
                    if call.state == State::Accepted {
                        call.state = State::Confirmed;
                        let id = id.unwrap_or_default();
                        if call.ending.is_some() {
                            // Media failed before the ACK: the BYE waited for it.
                            if self.send_bye(id).is_err() {
                                self.end_call(id, EndReason::Media("media failed".into()))
                                    .await;
                            }
                        } else {
                            self.emit(Event::Answered { call: id });
                        }
                    }
                }
            }
            SipEvent::Cancelled { invite_key, .. } => {
                let id = self
                    .calls
                    .iter()
                    .find(|(_, c)| c.invite_key.as_ref() == Some(&invite_key))
                    .map(|(id, _)| *id);
                if let Some(id) = id {
                    if let Some(call) = self.calls.get(&id) {
                        if let Some(invite) = &call.invite {
                            let resp = make_response(invite, 487, Some(&call.local_tag));
                            let _ = self
                                .endpoint
                                .send_response(Instant::now(), &invite_key, resp);
                        }
                    }
                    self.end_call(id, EndReason::Cancelled).await;
                }
            }
        }
    }

    /// `[auth]`: whether `request` (an INVITE or MESSAGE) may go on. When it may not, it
    /// has been answered: 401 with fresh challenges (`stale=true` for an expired nonce).
    pub(super) fn authenticated(
        &mut self,
        key: &TransactionKey,
        request: &Request,
        source: SocketAddr,
        to_tag: Option<&str>,
    ) -> bool {
        let now = Instant::now();
        match self
            .gate
            .authenticate(now, &mut self.rng, request, source, to_tag)
        {
            Ok(()) => true,
            Err(resp) => {
                let _ = self.endpoint.send_response(now, key, resp);
                false
            }
        }
    }

    /// A call of ours still ringing (UAS, no dialog yet) whose early dialog `request`
    /// belongs to: same Call-ID, our tag in To, the caller's tag in From.
    pub(super) fn early_dialog_of(&self, request: &Request) -> Option<CallId> {
        let id = *self.by_call_id.get(request.call_id()?)?;
        let call = self.calls.get(&id)?;
        let to_tag = request.to_tag()?;
        let invite = call.invite.as_ref()?;
        (call.state == State::Ringing
            && call.dialog.is_none()
            && to_tag == call.local_tag
            && request.from_tag() == invite.from_tag())
        .then_some(id)
    }

    pub(super) fn find_dialog(&self, request: &Request) -> Option<CallId> {
        let id = *self.by_call_id.get(request.call_id()?)?;
        let call = self.calls.get(&id)?;
        call.dialog
            .as_ref()
            .is_some_and(|d| d.matches_request(request))
            .then_some(id)
    }

    pub(super) async fn incoming_request(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: SocketAddr,
    ) {
        let now = Instant::now();
        let respond = |ep: &mut Endpoint, code: u16, reason: Option<&str>| {
            let resp = match reason {
                Some(r) => make_response_with_reason(&request, code, r, None),
                None => make_response(&request, code, None),
            };
            let _ = ep.send_response(now, &key, resp);
        };
        match request.method {
            Method::Invite if request.to_tag().is_none() => {
                self.incoming_invite(key, request, source).await
            }
            Method::Options => {
                let mut resp = make_response(&request, 200, None);
                resp.headers.push(make_header("Allow", ALLOW));
                resp.headers.push(make_header("Accept", "application/sdp"));
                let _ = self.endpoint.send_response(now, &key, resp);
            }
            Method::Bye => match self.find_dialog(&request) {
                Some(id) => {
                    let checked = self
                        .calls
                        .get_mut(&id)
                        .and_then(|c| c.dialog.as_mut())
                        .map(|d| d.on_request(&request));
                    if let Some(Err(e @ DialogError::OutOfOrder { .. })) = checked {
                        respond(
                            &mut self.endpoint,
                            e.status_code(),
                            Some("CSeq Out Of Order"),
                        );
                        return;
                    }
                    respond(&mut self.endpoint, 200, None);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.ending.get_or_insert(EndReason::RemoteHangup);
                    }
                    self.end_call(id, EndReason::RemoteHangup).await;
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Invite => match self.find_dialog(&request) {
                Some(id) => self.incoming_reinvite(id, key, request).await,
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Info => match self.find_dialog(&request) {
                // RFC 6086: legacy INFO (no Info-Package) is accepted; DTMF in it is
                // reported like RFC 4733 digits. Unknown packages get 469.
                Some(id) => {
                    if peerline_sip::message::header_value(&request, "Info-Package").is_some() {
                        let mut resp =
                            make_response_with_reason(&request, 469, "Bad Info Package", None);
                        resp.headers.push(make_header("Recv-Info", ""));
                        let _ = self.endpoint.send_response(now, &key, resp);
                        return;
                    }
                    respond(&mut self.endpoint, 200, None);
                    let ct =
                        peerline_sip::message::header_value(&request, "Content-Type").unwrap_or("");
                    if let Some(digit) = crate::info::dtmf_digit(ct, &request.body) {
                        self.emit(Event::Dtmf { call: id, digit });
                    }
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Update => match self.find_dialog(&request) {
                // RFC 3311: an offer in a confirmed dialog is answered like a re-INVITE's,
                // in the 200; without a body it only refreshes the session.
                Some(id) if !request.body.is_empty() => {
                    self.incoming_reinvite(id, key, request).await
                }
                Some(id) => {
                    let mut ok = make_response(&request, 200, None);
                    if let Some(call) = self.calls.get_mut(&id) {
                        if let Some(c) = call.dialog.as_ref().and_then(|d| d.local_contact.clone())
                        {
                            ok.headers.push(make_header("Contact", &format!("<{c}>")));
                        }
                        peer_refresh(call, &request, &mut ok);
                    }
                    let _ = self.endpoint.send_response(now, &key, ok);
                }
                // The early dialog of a call still ringing here (our To tag): without an
                // offer the UPDATE is just accepted; an offer before the answer is
                // refused, since the session cannot change without the user (RFC 3311
                // §5.2 allows refusing it).
                None if self.early_dialog_of(&request).is_some() => {
                    if request.body.is_empty() {
                        respond(&mut self.endpoint, 200, None);
                    } else {
                        respond(
                            &mut self.endpoint,
                            488,
                            Some("Offer In Early Dialog Not Supported"),
                        );
                    }
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Refer => match self.find_dialog(&request) {
                Some(id) => self.incoming_refer(id, &key, &request).await,
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Notify => match self.find_dialog(&request) {
                Some(id) => {
                    let code = self.incoming_notify(id, &request).await;
                    respond(&mut self.endpoint, code, None);
                }
                None => respond(&mut self.endpoint, 481, None),
            },
            Method::Message => {
                // RFC 3428: accepted in or outside a dialog; the user reads it from the event.
                if request.to_tag().is_none() && !self.authenticated(&key, &request, source, None) {
                    return;
                }
                respond(&mut self.endpoint, 200, None);
                let (from, to, content_type, body) = crate::messaging::incoming(&request);
                self.emit(Event::Message {
                    from,
                    to,
                    content_type,
                    body,
                });
            }
            Method::PRack => {
                let code = self.incoming_prack(&request);
                let reason = (code == 481).then_some("No Matching Reliable Provisional Response");
                respond(&mut self.endpoint, code, reason);
            }
            _ => {
                let mut resp = make_response(&request, 405, None);
                resp.headers.push(make_header("Allow", ALLOW));
                let _ = self.endpoint.send_response(now, &key, resp);
            }
        }
    }

    pub(super) async fn incoming_invite(
        &mut self,
        key: TransactionKey,
        request: Request,
        source: SocketAddr,
    ) {
        let now = Instant::now();
        let local_tag = peerline_sip::message::new_tag(&mut self.rng);
        if !self.authenticated(&key, &request, source, Some(&local_tag)) {
            return;
        }
        if let Err(resp) = self.gate.admit_call(&request, source, Some(&local_tag)) {
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        // RFC 3261 §8.2.2.3: refuse extensions we do not support, naming them.
        let unsupported: Vec<String> = peerline_sip::message::header_values(&request, "Require")
            .into_iter()
            .flat_map(peerline_sip::syntax::split_list)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && !SUPPORTED.contains(&t.to_ascii_lowercase().as_str()))
            .collect();
        if !unsupported.is_empty() {
            let mut resp = make_response(&request, 420, Some(&local_tag));
            resp.headers
                .push(make_header("Unsupported", &unsupported.join(", ")));
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        if request.contact().is_none() {
            // RFC 3261 §8.1.1.8: a dialog-creating request must carry a Contact.
            let resp = make_response_with_reason(
                &request,
                400,
                "Missing Contact Header",
                Some(&local_tag),
            );
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        let offer = match SessionDescription::parse_bytes(&request.body) {
            Ok(o) if !request.body.is_empty() => o,
            Ok(_) => {
                // Offerless INVITE (offer in 2xx, answer in ACK) is not supported yet.
                let resp =
                    make_response_with_reason(&request, 488, "Offer Required", Some(&local_tag));
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
            Err(e) => {
                let resp = make_response_with_reason(
                    &request,
                    400,
                    &format!("Bad SDP: {e}"),
                    Some(&local_tag),
                );
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
        };
        let from = request
            .from_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let account = self.account_of(&request);
        // RFC 4028 §9: an interval below our minimum is refused with 422 and Min-SE.
        let uas_timer = match uas_negotiate(&request, MIN_SE) {
            UasTimer::TooSmall { min_se } => {
                let mut resp = make_response(&request, 422, Some(&local_tag));
                resp.headers
                    .push(make_header("Min-SE", &min_se.to_string()));
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
            UasTimer::Use { expires, require } => Some((expires, require)),
            UasTimer::None => None,
        };
        // RFC 3891: an INVITE with `Replaces` takes the place of one of our calls.
        let replaced = match self.replaced_by(&request) {
            Ok(r) => r,
            Err((code, phrase)) => {
                let resp = make_response_with_reason(&request, code, &phrase, Some(&local_tag));
                let _ = self.endpoint.send_response(now, &key, resp);
                return;
            }
        };
        let transport = self
            .endpoint
            .target_of(&key)
            .map(|t| t.transport)
            .unwrap_or(Transport::Udp);
        // An offer we could never answer (mandatory SRTP against plain RTP, no common
        // codec, SDES over unencrypted signaling…) is refused now with the status the
        // answer would get (488 mostly), rather than ringing a call that cannot be taken.
        let caps = self.capabilities_over(true, transport, account);
        let probe = SocketAddr::new(self.sip_addr.ip(), 9);
        if let Err(e) = peerline_sdp::create_answer(&offer, &caps, probe, self.session_id, 1) {
            tracing::info!("incoming offer refused before ringing: {e}");
            let resp = make_response_with_reason(
                &request,
                e.sip_status(),
                &e.to_string(),
                Some(&local_tag),
            );
            let _ = self.endpoint.send_response(now, &key, resp);
            return;
        }
        // The 180 creates an early dialog: it carries our Contact (RFC 3261 §12.1.1).
        let mut ringing = make_response(&request, 180, Some(&local_tag));
        let ip = local_ip_toward(source, self.sip_addr.ip());
        ringing.headers.push(make_header(
            "Contact",
            &self.contact_for(source, ip, transport),
        ));
        // RFC 3262: when the caller requires 100rel, the 180 goes reliably (Require,
        // RSeq) and is retransmitted until its PRACK.
        let mut prack = None;
        if wants_100rel(&request) == Want100rel::Required {
            let t1 = peerline_sip::Config::default().t1;
            let mut rel = ReliableProvisionals::new(self.rng.gen_range(1..=(1u32 << 31)), t1);
            if let Ok(r) = rel.send(now, ringing.clone()) {
                ringing = r;
                prack = Some(rel);
            }
        }
        let _ = self.endpoint.send_response(now, &key, ringing);
        let id = self.next_call;
        self.next_call += 1;
        if prack.is_some() {
            self.prack_calls.insert(id);
        }
        let call_id = request.call_id().unwrap_or_default().to_string();
        self.by_call_id.insert(call_id.clone(), id);
        let to = request.uri.to_string();
        self.calls.insert(
            id,
            Call {
                state: State::Ringing,
                call_id,
                local_tag,
                dialog: None,
                // Responses and in-dialog requests go back to where the INVITE came from
                // unless the dialog names an address (RFC 3581 symmetric signaling).
                next_hop: source,
                transport,
                invite_key: Some(key),
                invite: Some(request),
                offer: None,
                remote_offer: Some(offer),
                rtp: None,
                rtp_addr: None,
                media_options: MediaOptions::default(),
                media: None,
                ack: None,
                bye_key: None,
                ending: None,
                local_sdp: None,
                reinvite: None,
                reinvite_retry: None,
                on_hold: false,
                digest: None,
                outgoing: false,
                ice: None,
                ice_local: None,
                ice_remote: None,
                pending_ice: None,
                turn: peerline_net::TurnTraffic::default(),
                ice_restarted_at: None,
                prack,
                uac_prack: None,
                prack_keys: Vec::new(),
                refer_key: None,
                transferring: false,
                sdes: None,
                udp_fallback: false,
                uas_timer,
                session_timer: None,
                pending_rekey: None,
                account,
            },
        );
        match replaced {
            Some(old) => self.replace_call(old, id, from).await,
            None => self.emit(Event::Incoming { call: id, from, to }),
        }
    }
}
