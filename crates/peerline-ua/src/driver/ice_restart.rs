//! ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1). When an address under a call's host
//! candidates goes away (the laptop changed networks), or on request, a fresh agent
//! gathers new candidates and a re-INVITE offers them with new credentials; a peer's
//! re-offer with new credentials is answered the same way. Media keeps flowing on the old
//! pair until the new one is selected, then moves to it (keys and DTLS association stay).
//! Both sides keep their roles: the caller stays controlling. A call whose RTCP has its
//! own component (no rtcp-mux) restarts both components' agents.

use super::*;

/// How often calls with ICE are checked for a vanished local address.
pub(super) const ADDRESS_CHECK: Duration = Duration::from_secs(1);
/// The least time between two restarts of one call.
const RESTART_SPACING: Duration = Duration::from_secs(5);

impl Driver {
    /// Our side restarts ICE: a fresh agent, its candidates in a re-INVITE.
    pub(super) async fn restart_ice(&mut self, id: CallId) -> Result<(), PhoneError> {
        self.reoffer_base(id)?;
        let Some(call) = self.calls.get(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        if call.ice_remote.is_none() || call.media.is_none() {
            return Err(PhoneError::Call(id, "the call does not use ICE"));
        }
        if call.pending_ice.is_some() {
            return Err(PhoneError::Call(
                id,
                "an ICE restart is already in progress",
            ));
        }
        let (controlling, toward, account) = (call.outgoing, call.next_hop.ip(), call.account);
        // RTCP keeps its own component if it has one now (rtcp-mux was not agreed).
        let rtcp_component = call
            .ice_local
            .as_ref()
            .is_some_and(peerline_sdp::IceParams::has_rtcp_component);
        let Some(prepared) = self
            .prepare_ice(controlling, toward, account, rtcp_component)
            .await
        else {
            return Err(PhoneError::Call(id, "ICE restart: no candidates gathered"));
        };
        // The call may have changed while the agent gathered.
        let previous = self.reoffer_base(id)?;
        let offer = peerline_sdp::ice_restart(&previous, &prepared.local, prepared.advertised);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(PhoneError::Call(id, "no such call"));
        };
        let hold = call.on_hold;
        call.ice_restarted_at = Some(Instant::now());
        call.turn.extend(&prepared.turn);
        call.pending_ice = Some(prepared);
        tracing::info!(call = id, "ICE restart: re-offering new candidates");
        let sent = self.send_reoffer(id, offer, hold);
        if sent.is_err() {
            if let Some(p) = self.calls.get_mut(&id).and_then(|c| c.pending_ice.take()) {
                tokio::spawn(p.close());
            }
        }
        sent
    }

    /// Restarts ICE on every established call whose host candidates include an address
    /// this machine no longer has.
    pub(super) async fn check_ice_addresses(&mut self) {
        let now = Instant::now();
        let gone: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.state == State::Confirmed
                    && c.reinvite.is_none()
                    && c.pending_ice.is_none()
                    && c.ice_remote.is_some()
                    && c.ice_restarted_at
                        .is_none_or(|t| now.duration_since(t) >= RESTART_SPACING)
            })
            .filter(|(_, c)| c.ice_local.as_ref().is_some_and(host_address_gone))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            tracing::info!(call = id, "an address under the call's candidates is gone");
            if let Err(e) = self.restart_ice(id).await {
                tracing::warn!(call = id, "ICE restart: {e}");
                if let Some(c) = self.calls.get_mut(&id) {
                    c.ice_restarted_at = Some(now);
                }
            }
        }
    }
}

/// Hands the restart's agent to the media task with the peer's new ICE attributes (an
/// answer without them leaves the old pair in place).
pub(super) fn start_ice_restart(
    call: &mut Call,
    mut prepared: PreparedIce,
    remote: Option<peerline_sdp::RemoteIce>,
    rtcp_mux: bool,
) {
    match (remote, call.media.as_ref()) {
        (Some(remote), Some(m)) => {
            let rtcp = prepared.take_rtcp(rtcp_mux).map(Box::new);
            call.rtp_addr = Some(prepared.advertised);
            call.ice_local = Some(if rtcp_mux {
                prepared.local.rtp_component_only()
            } else {
                prepared.local
            });
            call.ice_remote = Some(remote.clone());
            m.command(media::MediaCommand::IceRestart {
                session: Box::new(prepared.session),
                remote,
                rtcp,
            });
        }
        _ => {
            tracing::info!("ICE restart: no ICE in the peer's SDP; pair unchanged");
            tokio::spawn(prepared.close());
        }
    }
}

/// The peer's offer carries ICE credentials other than the ones in use: it restarts ICE.
pub(super) fn offer_restarts_ice(call: &Call, offer: &SessionDescription) -> bool {
    let Some(current) = call.ice_remote.as_ref() else {
        return false;
    };
    let ufrag = offer
        .media
        .iter()
        .find(|m| m.kind == peerline_sdp::MediaKind::Audio && m.port != 0)
        .and_then(|m| m.ice_ufrag())
        .or_else(|| offer.ice_ufrag());
    ufrag.is_some_and(|u| u != current.ufrag)
}

/// Whether an address of `ice`'s host candidates can no longer be bound here.
fn host_address_gone(ice: &peerline_sdp::IceParams) -> bool {
    ice.candidates
        .iter()
        .filter(|c| c.typ == peerline_sdp::CandidateType::Host)
        .filter_map(|c| c.address.parse::<IpAddr>().ok())
        .any(|ip| {
            matches!(std::net::UdpSocket::bind((ip, 0)),
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(addr: &str) -> peerline_sdp::Candidate {
        peerline_sdp::Candidate {
            foundation: "1".into(),
            component: 1,
            transport: "UDP".into(),
            priority: 1,
            address: addr.into(),
            port: 9,
            typ: peerline_sdp::CandidateType::Host,
            raddr: None,
            rport: None,
            extensions: vec![],
        }
    }

    #[test]
    fn a_vanished_host_address_is_noticed() {
        let ice = |addrs: &[&str]| peerline_sdp::IceParams {
            candidates: addrs.iter().map(|a| host(a)).collect(),
            ..peerline_sdp::IceParams::default()
        };
        assert!(!host_address_gone(&ice(&["127.0.0.1"])));
        // TEST-NET-2 is on no interface of a test machine.
        assert!(host_address_gone(&ice(&["127.0.0.1", "198.51.100.77"])));
        assert!(!host_address_gone(&ice(&[])));
    }
}
