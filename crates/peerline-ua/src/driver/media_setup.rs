//! What a call offers and answers with (codecs, SRTP, ICE per account) and starting its
//! media task.

use super::*;

impl Driver {
    /// What we offer or answer with. For an offer, keys follow `srtp_keying`; for an answer
    /// both kinds are available and the offer decides which is used.
    /// Whether SDES keys may go in SDP carried over `transport` (see
    /// `media.allow_sdes_without_tls`); logs a warning when they go in the clear.
    pub(super) fn sdes_allowed(&self, transport: Transport, account: Option<usize>) -> bool {
        if transport == Transport::Tls {
            return true;
        }
        if self.media_config(account).allow_sdes_without_tls {
            tracing::warn!(
                %transport,
                "SDES keys in SDP over unencrypted signaling (allow_sdes_without_tls)"
            );
            return true;
        }
        false
    }

    /// The `[media]` of `account`'s calls: its profile's, or the phone's.
    pub(super) fn media_config(&self, account: Option<usize>) -> &crate::config::MediaConfig {
        account
            .and_then(|i| self.config.accounts.get(i))
            .and_then(|a| a.media.as_ref())
            .unwrap_or(&self.config.media)
    }

    /// The `[ice]` of `account`'s calls: its profile's, or the phone's.
    pub(super) fn ice_config(&self, account: Option<usize>) -> &crate::ice_settings::IceSettings {
        account
            .and_then(|i| self.config.accounts.get(i))
            .and_then(|a| a.ice.as_ref())
            .unwrap_or(&self.config.ice)
    }

    /// The account an incoming request is for: the one whose AOR user is the
    /// Request-URI's user, else the To URI's.
    pub(super) fn account_of(&self, request: &Request) -> Option<usize> {
        let to_user = request
            .to_addr()
            .and_then(|a| rsip::Uri::try_from(a.uri.as_str()).ok())
            .and_then(|u| u.user().map(str::to_string));
        [request.uri.user().map(str::to_string), to_user]
            .into_iter()
            .flatten()
            .find_map(|user| {
                self.config
                    .accounts
                    .iter()
                    .position(|a| a.aor_parts().is_ok_and(|(u, _)| u == user))
            })
    }

    /// What we offer or answer with for a call of `account` whose signaling is
    /// `transport`.
    pub(super) fn capabilities_over(
        &self,
        answering: bool,
        transport: Transport,
        account: Option<usize>,
    ) -> LocalCapabilities {
        let mut caps = self.capabilities(answering, account);
        let sdes_wanted = !caps.crypto.is_empty();
        if sdes_wanted && !self.sdes_allowed(transport, account) {
            caps.crypto.clear();
        }
        caps
    }

    /// What we answer an offer in call `id` with (its signaling transport and account).
    pub(super) fn answer_capabilities(&self, id: CallId) -> LocalCapabilities {
        let (transport, account) = self
            .calls
            .get(&id)
            .map_or((Transport::Udp, None), |c| (c.transport, c.account));
        self.capabilities_over(true, transport, account)
    }

    pub(super) fn capabilities(
        &self,
        answering: bool,
        account: Option<usize>,
    ) -> LocalCapabilities {
        let media = self.media_config(account);
        let srtp = match media.srtp {
            SrtpMode::Mandatory => SrtpPolicy::Mandatory,
            SrtpMode::Optional => SrtpPolicy::Optional,
            SrtpMode::Off => SrtpPolicy::Off,
        };
        let on = media.srtp != SrtpMode::Off;
        let sdes = on && (answering || media.srtp_keying == SrtpKeying::Sdes);
        let dtls = on && (answering || media.srtp_keying == SrtpKeying::Dtls);
        let crypto = if sdes {
            // Fresh keys from the OS CSPRNG for every offer/answer (RFC 4568 §6.1).
            peerline_srtp::generate_crypto(
                &mut rand::rngs::OsRng,
                &[
                    peerline_srtp::SrtpSuite::AesCm128HmacSha1_80,
                    peerline_srtp::SrtpSuite::AesCm128HmacSha1_32,
                    peerline_srtp::SrtpSuite::AeadAes128Gcm,
                ],
                &peerline_srtp::SdesKeyOptions::default(),
            )
        } else {
            Vec::new()
        };
        LocalCapabilities {
            srtp,
            crypto,
            fingerprint: dtls.then(|| self.dtls_cert.fingerprint().clone()),
            codecs: media
                .codecs
                .iter()
                .map(|c| match c {
                    CodecName::Pcmu => SdpCodec::Pcmu,
                    CodecName::Pcma => SdpCodec::Pcma,
                    CodecName::G722 => SdpCodec::G722,
                    CodecName::Opus => SdpCodec::opus(),
                })
                .collect(),
            dtmf: media.dtmf,
            ptime: Some(media.ptime),
            rtcp_mux: media.rtcp_mux,
            username: self.config.identity.user.clone(),
            ..LocalCapabilities::default()
        }
    }

    /// With `[ice] enabled`: gathers a call's candidates before its offer or answer;
    /// with `rtcp_component`, for component 2 (RTCP without rtcp-mux) too.
    pub(super) async fn prepare_ice(
        &self,
        controlling: bool,
        toward: IpAddr,
        account: Option<usize>,
        rtcp_component: bool,
    ) -> Option<PreparedIce> {
        let ice = self.ice_config(account);
        if !ice.enabled {
            return None;
        }
        let range = self.rtp_ports;
        let bound = self.sip_addr.ip();
        let tls = &self.config.tls;
        match call_ice::prepare(ice, controlling, range, bound, toward, rtcp_component, tls).await {
            Ok(p) => Some(p),
            Err(e) => {
                // No usable candidate (or the agent refused): the call goes on with plain
                // RTP, as with a peer without ICE; MediaUp then reports no ICE path.
                tracing::warn!("{e}; this call uses plain RTP");
                None
            }
        }
    }

    /// Our offer had ICE, the answer has none: plain RTP on the default candidate's socket.
    pub(super) async fn ice_fall_back(&mut self, id: CallId) {
        let Some(prepared) = self.calls.get_mut(&id).and_then(|c| c.ice.take()) else {
            return;
        };
        let base = prepared.base;
        if let Some(rtcp) = prepared.rtcp {
            rtcp.close().await;
        }
        let result = call_ice::fall_back_to_plain(prepared.session, base).await;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.ice_local = None;
        match result {
            Ok(sockets) => call.rtp = Some(sockets),
            Err(e) => {
                call.ending = Some(EndReason::Media(format!(
                    "peer without ICE, and {base} cannot be rebound for plain RTP: {e}"
                )))
            }
        }
    }

    /// Where our media will be: the ICE default candidate (its attributes go in `caps`),
    /// or a plain RTP socket bound in the port range on `ip`.
    pub(super) async fn media_address(
        &mut self,
        ice: Option<&PreparedIce>,
        caps: &mut LocalCapabilities,
        ip: IpAddr,
    ) -> Result<(Option<media::MediaSockets>, SocketAddr), PhoneError> {
        match ice {
            Some(p) => {
                caps.ice = Some(p.local.clone());
                Ok((None, p.advertised))
            }
            None => {
                let rtp = media::bind_rtp(ip, &mut self.rtp_ports).await?;
                let addr = rtp.rtp.local_addr()?;
                Ok((Some(rtp), addr))
            }
        }
    }

    /// Starts the call's media task; when it cannot start (the reason is in
    /// `call.ending`), the call is torn down like a media failure: BYE once the dialog is
    /// confirmed, rather than left up without media (nothing would ever end it).
    pub(super) fn start_media(&mut self, id: CallId, negotiated: &peerline_sdp::Negotiated) {
        self.launch_media(id, negotiated);
        if let Some(call) = self.calls.get(&id) {
            if call.media.is_none() {
                let why = call
                    .ending
                    .as_ref()
                    .map_or_else(|| "media did not start".to_string(), |e| e.to_string());
                tracing::warn!(call = id, "{why}");
                let _ = self.notices_tx.send((id, Notice::Failed(why)));
            }
        }
    }

    pub(super) fn launch_media(&mut self, id: CallId, negotiated: &peerline_sdp::Negotiated) {
        let media_config = self.media_config(self.calls.get(&id).and_then(|c| c.account));
        let ptime = media_config.ptime;
        let rtp_timeout = Duration::from_secs(media_config.rtp_timeout_secs);
        let (ssrc, seq, ts) = (self.rng.gen(), self.rng.gen(), self.rng.gen());
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let path = match (call.ice.take(), &negotiated.remote_ice) {
            (Some(mut p), Some(remote)) => {
                call.ice_remote = Some(remote.clone());
                // Component 2 only serves RTCP when rtcp-mux was not agreed.
                let rtcp = p.take_rtcp(negotiated.rtcp_mux).map(Box::new);
                if negotiated.rtcp_mux {
                    call.ice_local = call.ice_local.as_ref().map(|l| l.rtp_component_only());
                }
                media::MediaPath::Ice {
                    session: Box::new(p.session),
                    remote: remote.clone(),
                    rtcp,
                }
            }
            (Some(_), None) => {
                // invite_accepted falls back to plain RTP before this; an answer we sent
                // with ICE always answers an offer with ICE.
                call.ending = Some(EndReason::Media("ICE: the peer's SDP has no ICE".into()));
                return;
            }
            (None, _) => match call.rtp.take() {
                Some(s) => media::MediaPath::Plain(s),
                None => {
                    call.ending = Some(EndReason::Media("no media socket".into()));
                    return;
                }
            },
        };
        let ice = matches!(path, media::MediaPath::Ice { .. });
        let codec = match negotiated.codec {
            SdpCodec::Pcmu => peerline_media::Codec::Pcmu,
            SdpCodec::Pcma => peerline_media::Codec::Pcma,
            SdpCodec::Opus(_) => peerline_media::Codec::Opus,
            SdpCodec::G722 => peerline_media::Codec::G722,
            _ => {
                call.ending = Some(EndReason::Media(format!(
                    "codec {} has no encoder",
                    negotiated.codec.encoding_name()
                )));
                return;
            }
        };
        let security = match &negotiated.security {
            peerline_sdp::Security::None => media::MediaSecurity::None,
            s @ peerline_sdp::Security::Sdes { .. } => {
                match peerline_srtp::sdes_pair_from_security(s) {
                    Ok(pair) => {
                        call.sdes = Some(s.clone());
                        media::MediaSecurity::Sdes(Box::new(pair))
                    }
                    Err(e) => {
                        call.ending = Some(EndReason::Negotiation(format!("SDES keys: {e}")));
                        return;
                    }
                }
            }
            peerline_sdp::Security::Dtls {
                remote_fingerprints,
                local_setup,
            } => match peerline_srtp::DtlsRole::from_setup(*local_setup) {
                Some(role) => media::MediaSecurity::Dtls {
                    cert: self.dtls_cert.clone(),
                    role,
                    remote_fingerprints: remote_fingerprints.clone(),
                },
                None => {
                    call.ending = Some(EndReason::Negotiation(format!(
                        "unusable DTLS a=setup:{}",
                        local_setup.as_str()
                    )));
                    return;
                }
            },
        };
        let params = MediaParams {
            security,
            codec,
            send_pt: negotiated.send_pt,
            recv_pt: negotiated.recv_pt,
            dtmf_pt: negotiated.telephone_event.map(|t| t.recv_pt),
            dtmf_send_pt: negotiated.telephone_event.map(|t| t.send_pt),
            send: negotiated.direction.sends(),
            receive: negotiated.direction.receives(),
            remote: negotiated.remote_rtp,
            remote_rtcp: if negotiated.rtcp_mux {
                None
            } else {
                Some(negotiated.remote_rtcp.unwrap_or_else(|| {
                    SocketAddr::new(
                        negotiated.remote_rtp.ip(),
                        negotiated.remote_rtp.port().saturating_add(1),
                    )
                }))
            },
            cname: format!("{}@{}", self.config.identity.user, self.sip_addr.ip()),
            ptime_ms: ptime,
            rtp_timeout,
            ssrc,
            initial_seq: seq,
            initial_timestamp: ts,
        };
        let local = call.rtp_addr.unwrap_or(negotiated.remote_rtp);
        let mut options = call.media_options.clone();
        // A sound-card call without device names uses the config's `[audio]` ones.
        if let AudioSource::Device { input, output } = &mut options.source {
            if input.is_none() {
                input.clone_from(&self.config.audio.input);
            }
            if output.is_none() {
                output.clone_from(&self.config.audio.output);
            }
        }
        call.media = Some(media::start(
            path,
            params,
            options,
            self.notices_tx.clone(),
            id,
        ));
        // With ICE, media is up once the checks selected a pair (Notice::IceConnected).
        if !ice {
            self.emit(Event::MediaUp {
                call: id,
                local,
                remote: negotiated.remote_rtp,
                codec: codec.name(),
                path: None,
            });
        }
    }
}
