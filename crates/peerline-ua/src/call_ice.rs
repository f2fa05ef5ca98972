//! ICE for one call, on the phone's side: gathering before the offer or answer, the
//! default candidate for `c=`/`m=`, and the fall-back to plain RTP when the peer's answer
//! has no ICE attributes.

use std::net::SocketAddr;
use std::time::Duration;

use peerline_net::{
    with_rtcp_component, IceSession, PortRange, TurnTraffic, RTCP_COMPONENT, RTP_COMPONENT,
};
use peerline_sdp::{CandidateType, IceParams};

use crate::ice_settings::IceSettings;
use tokio::net::UdpSocket;

use crate::media::MediaSockets;

/// A call's gathered ICE agent, before the offer or answer is sent.
pub(crate) struct PreparedIce {
    /// The agent (moved into the media task once the peer's SDP is in).
    pub session: IceSession,
    /// The agent for component 2 (RTCP), when the peer may not multiplex RTCP.
    pub rtcp: Option<IceSession>,
    /// Our ufrag, pwd and candidates (of both components) for the SDP (kept for answers
    /// to re-INVITEs).
    pub local: IceParams,
    /// The default candidate: the `c=`/`m=` address.
    pub advertised: SocketAddr,
    /// The socket address behind it, rebound for plain RTP if the peer has no ICE.
    pub base: SocketAddr,
    /// Both agents' TURN bridge counters, for the call's ledger (readable after the
    /// agents are closed).
    pub turn: TurnTraffic,
}

impl PreparedIce {
    /// Closes both agents (a restart that is not used, a call that ends first).
    pub async fn close(self) {
        if let Some(rtcp) = self.rtcp {
            rtcp.close().await;
        }
        self.session.close().await;
    }

    /// The component-2 agent when RTCP gets its own component (`rtcp_mux` was not
    /// agreed); with rtcp-mux it is not needed and is closed in the background.
    pub fn take_rtcp(&mut self, rtcp_mux: bool) -> Option<IceSession> {
        let rtcp = self.rtcp.take()?;
        if rtcp_mux {
            tokio::spawn(async move { rtcp.close().await });
            return None;
        }
        Some(rtcp)
    }
}

/// Gathers this call's candidates (host; srflx and relay only from the configured
/// servers). `controlling` is true for the offerer (RFC 8445 §6.1.1). With
/// `rtcp_component`, a second agent gathers component 2 (RTCP) with the same credentials
/// (RFC 5761 §5.1.3: an offer carries both components so that an answerer without
/// rtcp-mux can use them; an answer without rtcp-mux needs them).
pub(crate) async fn prepare(
    settings: &IceSettings,
    controlling: bool,
    port_range: PortRange,
    bound: std::net::IpAddr,
    toward: std::net::IpAddr,
    rtcp_component: bool,
    tls: &crate::config::TlsConfig,
) -> Result<PreparedIce, String> {
    let config = settings.agent_config(controlling, port_range, bound, toward, tls)?;
    let (session, rtcp) = peerline_net::gather_components(config, rtcp_component)
        .await
        .map_err(|e| format!("ICE: {e}"))?;
    let (advertised, base) = default_candidate(session.local_params(), RTP_COMPONENT)
        .ok_or_else(|| "ICE: no host or srflx candidate for c=/m=".to_string())?;
    let local = match &rtcp {
        Some(r) => {
            let rtcp_default = default_candidate(r.local_params(), RTCP_COMPONENT);
            with_rtcp_component(
                session.local_params(),
                r.local_params(),
                rtcp_default.map(|(advertised, _)| advertised),
            )
        }
        None => session.local_params().clone(),
    };
    let mut turn = session.turn_traffic();
    if let Some(r) = &rtcp {
        turn.extend(&r.turn_traffic());
    }
    Ok(PreparedIce {
        session,
        rtcp,
        local,
        advertised,
        base,
        turn,
    })
}

/// The default candidate (RFC 8839 §4.2.1.2): what `c=`/`m=` carry, so a peer without ICE
/// still reaches us. A server-reflexive candidate if there is one (it works through a NAT
/// with endpoint-independent mapping), else the highest-priority host candidate. Never a
/// relay: falling back to plain RTP from a TURN allocation is not implemented.
/// For `component` 1 it goes in `c=`/`m=`, for 2 in `a=rtcp`.
/// Returns (the address to advertise, the local socket address behind it).
pub(crate) fn default_candidate(
    params: &IceParams,
    component: u16,
) -> Option<(SocketAddr, SocketAddr)> {
    let best = |typ: CandidateType| {
        params
            .candidates
            .iter()
            .filter(|c| c.component == u32::from(component) && c.typ == typ)
            .max_by_key(|c| c.priority)
    };
    let c = best(CandidateType::Srflx).or_else(|| best(CandidateType::Host))?;
    let advertised = SocketAddr::new(c.address.parse().ok()?, c.port);
    let base = match (&c.raddr, c.rport) {
        (Some(ip), Some(port)) if c.typ == CandidateType::Srflx => {
            SocketAddr::new(ip.parse().ok()?, port)
        }
        _ => advertised,
    };
    Some((advertised, base))
}

/// The peer answered without ICE: close the agent and take over the default candidate's
/// socket address for plain RTP (the peer sends to what our `c=`/`m=` said). The agent
/// releases its sockets asynchronously, so the bind is retried for up to a second. The
/// port may be odd (the agent picks any port of the range): RTCP then shares it, as our
/// offer asked with `a=rtcp-mux`.
pub(crate) async fn fall_back_to_plain(
    session: IceSession,
    base: SocketAddr,
) -> std::io::Result<MediaSockets> {
    session.close().await;
    drop(session);
    let mut last = None;
    for _ in 0..50 {
        match UdpSocket::bind(base).await {
            Ok(rtp) => return Ok(MediaSockets { rtp, rtcp: None }),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("cannot rebind the default candidate")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_sdp::Candidate;

    fn cand(
        typ: CandidateType,
        addr: &str,
        port: u16,
        prio: u32,
        rel: Option<(&str, u16)>,
    ) -> Candidate {
        Candidate {
            foundation: "1".into(),
            component: 1,
            transport: "UDP".into(),
            priority: prio,
            address: addr.into(),
            port,
            typ,
            raddr: rel.map(|r| r.0.into()),
            rport: rel.map(|r| r.1),
            extensions: Vec::new(),
        }
    }

    #[test]
    fn default_is_srflx_then_best_host_never_relay() {
        let mut p = IceParams {
            ufrag: "u".into(),
            pwd: "p".into(),
            options: Vec::new(),
            candidates: vec![
                cand(CandidateType::Host, "10.0.0.2", 40000, 100, None),
                cand(CandidateType::Host, "10.0.1.2", 40002, 200, None),
                cand(
                    CandidateType::Relay,
                    "203.0.113.1",
                    50000,
                    5,
                    Some(("198.51.100.2", 40004)),
                ),
            ],
            end_of_candidates: true,
            lite: false,
            rtcp: None,
        };
        let host: SocketAddr = "10.0.1.2:40002".parse().unwrap();
        assert_eq!(default_candidate(&p, RTP_COMPONENT), Some((host, host)));
        p.candidates.push(cand(
            CandidateType::Srflx,
            "198.51.100.2",
            61000,
            50,
            Some(("0.0.0.0", 40006)),
        ));
        assert_eq!(
            default_candidate(&p, RTP_COMPONENT),
            Some((
                "198.51.100.2:61000".parse().unwrap(),
                "0.0.0.0:40006".parse().unwrap()
            ))
        );
        p.candidates.clear();
        assert_eq!(default_candidate(&p, RTP_COMPONENT), None);
    }
}
