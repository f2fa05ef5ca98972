//! A call's life from our side: placing it, answering, rejecting, hanging up, in-dialog
//! requests (BYE and the rest), and its end (media stopped, ledger merged, event sent).

use super::*;

impl Driver {
    /// A new outgoing call to `target`; `extra` headers go into its INVITE (the
    /// `Replaces` of an attended transfer).
    pub(super) async fn start_call(
        &mut self,
        target: &str,
        media: MediaOptions,
        extra: Vec<rsip::Header>,
        account: Option<usize>,
    ) -> Result<CallId, PhoneError> {
        let OutOfDialog {
            dest,
            transport,
            ip,
            route,
            aor,
            digest,
            account,
        } = self.out_of_dialog(target, account).await?;
        let media_config = self.media_config(account);
        if media_config.srtp == SrtpMode::Mandatory
            && media_config.srtp_keying == SrtpKeying::Sdes
            && !self.sdes_allowed(transport, account)
        {
            return Err(PhoneError::BadTarget(
                target.into(),
                format!(
                    "SRTP is mandatory with SDES keying, and SDES keys would travel in clear \
                     over {transport}: call over TLS, use DTLS keying, or set \
                     media.allow_sdes_without_tls"
                ),
            ));
        }
        let mut caps = self.capabilities_over(false, transport, account);
        // Component 2 too, so that an answerer without rtcp-mux can use it (RFC 5761 §5.1.3).
        let ice = self.prepare_ice(true, ip, account, true).await;
        let (rtp, rtp_addr) = self.media_address(ice.as_ref(), &mut caps, ip).await?;
        let offer = peerline_sdp::create_offer(&caps, rtp_addr, self.session_id, 1);
        let call_id = peerline_sip::message::new_call_id(&mut self.rng, &ip.to_string());
        let local_tag = peerline_sip::message::new_tag(&mut self.rng);
        let user = aor
            .as_deref()
            .and_then(|a| rsip::Uri::try_from(a).ok())
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_else(|| self.config.identity.user.clone());
        let local = SocketAddr::new(ip, self.listen_port(transport));
        // Behind a NAT, through the registrar or outbound proxy: the public address it saw.
        let nat_contact = self.nat_contact_addr(dest, transport);
        let contact_at = nat_contact.unwrap_or(local);
        let our_contact = located::contact_uri_for(&user, contact_at, transport);
        let from_uri = aor.unwrap_or_else(|| our_contact.clone());
        let branch = self.branch();
        let sent_by = local.to_string();
        let mut builder = RequestBuilder::new(Method::Invite, target)
            .via(transport.via_token(), &sent_by, &branch)
            .from(
                &from_uri,
                self.config.identity.display_name.as_deref(),
                &local_tag,
            )
            .to(target, None)
            .call_id(&call_id)
            .cseq(1)
            .contact(&our_contact);
        if let Some(r) = &route {
            builder = builder.route(&format!("<{};lr>", contact_uri(r)));
        }
        for h in extra {
            builder = builder.header(h);
        }
        let mut invite = builder
            .header(make_header("Allow", ALLOW))
            .header(make_header("Supported", &SUPPORTED.join(", ")))
            .header(make_header("User-Agent", USER_AGENT))
            .body("application/sdp", offer.to_string().into_bytes())
            .build()
            .map_err(sip_err)?;
        // RFC 3261 §18.1.1: a request larger than 1300 bytes (path MTU unknown) goes over
        // TCP instead of UDP; if the connection is refused it is retried over UDP. Not when
        // the call goes through a registrar or proxy that sees us behind a NAT on our UDP
        // flow: it could not reach our TCP Contact for the dialog's later requests (a BYE
        // to us), while the UDP flow's binding is registered and kept alive. A large
        // INVITE then goes as a fragmented UDP datagram, as other softphones send it.
        let mut transport = transport;
        let mut udp_fallback = false;
        if transport == Transport::Udp
            && nat_contact.is_none()
            && serialize(&SipMessage::Request(invite.clone())).len() > UDP_REQUEST_LIMIT
        {
            transport = Transport::Tcp;
            udp_fallback = true;
            crate::request_edit::replace_top_via(
                &mut invite,
                &format!("SIP/2.0/TCP {sent_by};rport;branch={branch}"),
            );
            crate::request_edit::replace_header(
                &mut invite,
                "Contact",
                &format!(
                    "<{}>",
                    located::contact_uri_for(&user, local, Transport::Tcp)
                ),
            );
        }
        let hop = match transport {
            Transport::Udp => Target::udp(dest),
            t => Target::stream(dest, t, None),
        };
        let key = self
            .endpoint
            .send_request_to(Instant::now(), invite.clone(), hop)
            .map_err(sip_err)?;
        let id = self.next_call;
        self.next_call += 1;
        self.by_call_id.insert(call_id.clone(), id);
        self.calls.insert(
            id,
            Call {
                state: State::Calling,
                call_id,
                local_tag,
                dialog: None,
                next_hop: dest,
                transport,
                invite_key: Some(key),
                invite: Some(invite),
                local_sdp: Some(offer.clone()),
                outgoing: true,
                offer: Some(offer),
                remote_offer: None,
                rtp,
                rtp_addr: Some(rtp_addr),
                media_options: media,
                media: None,
                ack: None,
                bye_key: None,
                ending: None,
                reinvite: None,
                reinvite_retry: None,
                on_hold: false,
                digest,
                ice_local: ice.as_ref().map(|p| p.local.clone()),
                ice_remote: None,
                pending_ice: None,
                turn: ice.as_ref().map(|p| p.turn.clone()).unwrap_or_default(),
                ice_restarted_at: None,
                prack: None,
                uac_prack: None,
                prack_keys: Vec::new(),
                refer_key: None,
                transferring: false,
                sdes: None,
                udp_fallback,
                uas_timer: None,
                session_timer: None,
                pending_rekey: None,
                ice,
                account,
            },
        );
        Ok(id)
    }

    pub(super) async fn answer(
        &mut self,
        id: CallId,
        options: MediaOptions,
    ) -> Result<(), PhoneError> {
        let mut caps = self.answer_capabilities(id);
        let session_id = self.session_id;
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.state != State::Ringing {
            return Err(PhoneError::Call(id, "not ringing"));
        }
        let (Some(invite), Some(offer), Some(key)) = (
            call.invite.clone(),
            call.remote_offer.clone(),
            call.invite_key.clone(),
        ) else {
            return Err(PhoneError::Call(id, "no offer to answer"));
        };
        let toward = call.next_hop;
        let ip = local_ip_toward(toward, self.sip_addr.ip());
        // ICE only when the offer has it: a peer without ICE gets plain RTP as before.
        let ice = if offers_ice(&offer) {
            let account = self.calls.get(&id).and_then(|c| c.account);
            let rtcp_component = !peerline_sdp::answer_multiplexes_rtcp(&offer, caps.rtcp_mux);
            self.prepare_ice(false, ip, account, rtcp_component).await
        } else {
            None
        };
        let (rtp, rtp_addr) = self.media_address(ice.as_ref(), &mut caps, ip).await?;
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let (answer, negotiated) =
            match peerline_sdp::create_answer(&offer, &caps, rtp_addr, session_id, 1) {
                Ok(a) => a,
                Err(e) => {
                    let reason = e.to_string();
                    let resp = make_response_with_reason(
                        &invite,
                        e.sip_status(),
                        &reason,
                        Some(&call.local_tag),
                    );
                    let _ = self.endpoint.send_response(Instant::now(), &key, resp);
                    self.end_call(id, EndReason::Negotiation(reason)).await;
                    return Err(PhoneError::Call(id, "offer not acceptable (488 sent)"));
                }
            };
        let transport = call.transport;
        let contact = self.contact_for(toward, ip, transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let mut dialog =
            Dialog::uas(&invite, &call.local_tag, &contact_uri(&contact)).map_err(sip_err)?;
        dialog.confirm();
        if let Some(hop) = dialog_next_hop(&dialog) {
            call.next_hop = hop;
        }
        call.dialog = Some(dialog);
        let mut ok = make_response(&invite, 200, Some(&call.local_tag));
        if let Some((expires, require)) = call.uas_timer {
            ok.headers
                .push(make_header("Session-Expires", &expires.to_header_value()));
            if require {
                ok.headers.push(make_header("Require", "timer"));
            }
            call.session_timer = Some(SessionTimer::new(
                Instant::now(),
                expires.secs,
                expires.refresher == Some(Refresher::Uas),
            ));
        }
        ok.headers.push(make_header("Contact", &contact));
        ok.headers.push(make_header("Allow", ALLOW));
        ok.headers.push(make_header("Server", USER_AGENT));
        ok.headers
            .push(make_header("Content-Type", "application/sdp"));
        ok.body = answer.to_string().into_bytes();
        call.local_sdp = Some(answer);
        self.endpoint
            .send_response(Instant::now(), &key, ok)
            .map_err(sip_err)?;
        if let Some(rel) = call.prack.as_mut() {
            rel.finish(); // kept: a late PRACK for what we sent is still answered 200
        }
        self.prack_calls.remove(&id);
        if call.session_timer.is_some() {
            self.timer_calls.insert(id);
        }
        call.state = State::Accepted;
        call.media_options = options;
        call.rtp_addr = Some(rtp_addr);
        call.rtp = rtp;
        call.ice_local = ice.as_ref().map(|p| p.local.clone());
        if let Some(p) = &ice {
            call.turn.extend(&p.turn);
        }
        call.ice = ice;
        self.start_media(id, &negotiated);
        Ok(())
    }

    pub(super) async fn reject(
        &mut self,
        id: CallId,
        status: u16,
        reason: EndReason,
    ) -> Result<(), PhoneError> {
        let Some(call) = self.calls.get(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.state != State::Ringing || !(300..700).contains(&status) {
            return Err(PhoneError::Call(
                id,
                "not ringing, or not a final error status",
            ));
        }
        if let (Some(invite), Some(key)) = (&call.invite, &call.invite_key) {
            let resp = make_response(invite, status, Some(&call.local_tag));
            let _ = self.endpoint.send_response(Instant::now(), key, resp);
        }
        self.end_call(id, reason).await;
        Ok(())
    }

    pub(super) async fn hangup(&mut self, id: CallId) -> Result<(), PhoneError> {
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        match call.state {
            State::Ringing => return self.reject(id, 486, EndReason::LocalHangup).await,
            State::Calling => {
                call.ending = Some(EndReason::Cancelled);
                call.state = State::Terminating;
                if let Some(key) = call.invite_key.clone() {
                    // Before any provisional response a CANCEL may not be sent yet (RFC 3261
                    // §9.1); the endpoint refuses it then and the INVITE simply times out.
                    if self.endpoint.cancel(Instant::now(), &key).is_err() {
                        self.end_call(id, EndReason::Cancelled).await;
                    }
                }
            }
            State::Accepted | State::Confirmed => {
                call.ending = Some(EndReason::LocalHangup);
                self.send_bye(id)?;
            }
            State::Terminating => {}
        }
        Ok(())
    }

    pub(super) fn with_media(
        &self,
        id: CallId,
        command: media::MediaCommand,
    ) -> Result<(), PhoneError> {
        match self.calls.get(&id).and_then(|c| c.media.as_ref()) {
            Some(m) => {
                m.command(command);
                Ok(())
            }
            None => Err(PhoneError::Call(id, "no media running")),
        }
    }

    pub(super) fn via_sent_by(&self, hop: SocketAddr) -> String {
        SocketAddr::new(
            local_ip_toward(hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string()
    }

    pub(super) fn send_bye(&mut self, id: CallId) -> Result<(), PhoneError> {
        if let Some(call) = self.calls.get_mut(&id) {
            call.state = State::Terminating;
        }
        let key = self.send_in_dialog(id, Method::Bye, Vec::new(), None)?;
        if let Some(call) = self.calls.get_mut(&id) {
            call.bye_key = Some(key);
            // RFC 3261 §15.1.1: the session is over once the BYE is handed to its
            // transaction: stop sending and listening now, not when the 200 arrives.
            if let Some(m) = call.media.as_mut() {
                m.halt();
            }
        }
        Ok(())
    }

    /// Sends a request in the call's dialog (next CSeq, route set, remote target).
    pub(super) fn send_in_dialog(
        &mut self,
        id: CallId,
        method: Method,
        headers: Vec<rsip::Header>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<TransactionKey, PhoneError> {
        let branch = self.branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let sent_by = SocketAddr::new(
            local_ip_toward(call.next_hop, self.sip_addr.ip()),
            self.sip_addr.port(),
        )
        .to_string();
        let Some(dialog) = call.dialog.as_mut() else {
            return Err(PhoneError::Call(id, "no dialog"));
        };
        let mut builder = dialog
            .request(method, call.transport.via_token(), &sent_by, &branch)
            .map_err(sip_err)?
            .header(make_header("User-Agent", USER_AGENT));
        for h in headers {
            builder = builder.header(h);
        }
        if let Some((content_type, bytes)) = body {
            builder = builder.body(content_type, bytes);
        }
        let request = builder.build().map_err(sip_err)?;
        self.endpoint
            .send_request_to(Instant::now(), request, call_target(call))
            .map_err(sip_err)
    }

    pub(super) async fn end_call(&mut self, id: CallId, reason: EndReason) {
        self.prack_calls.remove(&id);
        self.timer_calls.remove(&id);
        if let Some(orig) = self.transferee_of.remove(&id) {
            // Our call to the transfer target ended before it was answered.
            let (code, phrase) = crate::transfer::status_of(&reason);
            self.notify_transfer(orig, code, &phrase);
            self.emit(Event::Transfer {
                call: orig,
                status: code,
                target: None,
                new_call: Some(id),
            });
        }
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        self.by_call_id.remove(&call.call_id);
        let mut report = match call.media.take() {
            Some(m) => m.stop().await,
            None => MediaReport::default(),
        };
        // What went through the call's TURN bridges (allocation, permissions, relayed
        // media), now that its agents are closed: rows (server, turn, sent/received).
        call.turn.record_into(&mut report.ledger);
        self.ledger.merge(&report.ledger);
        let reason = call.ending.take().unwrap_or(reason);
        self.emit(Event::Ended {
            call: id,
            reason,
            media: Box::new(report),
        });
    }

    pub(super) async fn notice(&mut self, id: CallId, notice: Notice) {
        match notice {
            Notice::Dtmf(digit) => self.emit(Event::Dtmf { call: id, digit }),
            Notice::IceConnected { path, codec } => self.emit(Event::MediaUp {
                call: id,
                local: path.local_addr,
                remote: path.remote_addr,
                codec,
                path: Some(path),
            }),
            Notice::Failed(reason) => {
                if let Some(call) = self.calls.get_mut(&id) {
                    // A reason set when media could not start (negotiation) is kept.
                    call.ending
                        .get_or_insert_with(|| EndReason::Media(reason.clone()));
                    // RFC 3261 §15: the callee sends no BYE before the ACK for its 2xx;
                    // the ACK's arrival sends it (or Timer H ends the call).
                    if !call.outgoing && call.state == State::Accepted {
                        return;
                    }
                    let established = matches!(call.state, State::Accepted | State::Confirmed);
                    if !established || self.send_bye(id).is_err() {
                        self.end_call(id, EndReason::Media(reason)).await;
                    }
                }
            }
            Notice::RetryReinvite => {
                let hold = self
                    .calls
                    .get_mut(&id)
                    .and_then(|c| c.reinvite_retry.take());
                if let Some(hold) = hold {
                    if let Err(e) = self.send_reinvite(id, hold) {
                        tracing::warn!("re-INVITE retry failed: {e}");
                    }
                }
            }
            Notice::Timeout => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.ending = Some(EndReason::RtpTimeout);
                    if matches!(call.state, State::Accepted | State::Confirmed) {
                        // RFC 3261 §15.1.1: the session ends when the BYE is sent. A peer
                        // we have not heard for the whole timeout is unlikely to answer
                        // soon: stop the media now, the BYE transaction runs on its own.
                        if let Err(e) = self.send_bye(id) {
                            tracing::debug!(call = id, "BYE after the RTP timeout: {e}");
                        }
                        self.end_call(id, EndReason::RtpTimeout).await;
                    }
                }
            }
        }
    }
}
