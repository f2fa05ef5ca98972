//! Two components for one media stream: RTP on component 1 and RTCP on component 2, for a
//! peer that does not multiplex them (RFC 8445 §2, RFC 8839 §5.1.1, RFC 5761 §5.1.3).
//!
//! webrtc-ice 0.17 gathers and checks one component per agent (it numbers everything
//! component 1), so component 2 is a second agent: the same config (port range, STUN/TURN
//! servers, role) and the same local ufrag/pwd, on its own sockets. The number "2" only
//! appears in the SDP (`a=candidate` component field, priorities computed for it); on the
//! wire a check carries USERNAME, PRIORITY and the role, never the component, and each
//! agent's checks go between its own sockets and the peer's component-2 candidates.
//! Known differences from one agent running two components: each agent has its own
//! tie-breaker (a role conflict could be resolved differently per component), the PRIORITY
//! attribute of the second agent's checks is computed for component 1 (one higher than
//! RFC 8445 §7.1.1 asks; the peer only uses it for a peer-reflexive candidate's priority),
//! and the two components' checks are not paced as one check list.

use peerline_sdp::IceParams;

use super::{IceConfig, IceError, IceSession, RTCP_COMPONENT, RTP_COMPONENT};

/// Gathers component 1 and, when `rtcp` is true, component 2 at the same time, with one
/// pair of credentials. Component 2 failing to gather is not fatal: it is logged and
/// `None` is returned for it (RTCP then goes over component 1's pair).
pub async fn gather_components(
    config: IceConfig,
    rtcp: bool,
) -> Result<(IceSession, Option<IceSession>), IceError> {
    if !rtcp {
        return Ok((IceSession::gather(config).await?, None));
    }
    let credentials = (
        webrtc_ice::rand::generate_ufrag(),
        webrtc_ice::rand::generate_pwd(),
    );
    let (first, second) = tokio::join!(
        IceSession::gather_component(config.clone(), RTP_COMPONENT, Some(credentials.clone())),
        IceSession::gather_component(config, RTCP_COMPONENT, Some(credentials)),
    );
    let first = first?;
    let second = match second {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("ICE component 2 (RTCP): {e}; RTCP goes over component 1");
            None
        }
    };
    Ok((first, second))
}

/// Our ICE attributes for both components: component 1's credentials and candidates plus
/// component 2's candidates (`rtcp_default`, if any, becomes `a=rtcp`).
pub fn with_rtcp_component(
    rtp: &IceParams,
    rtcp: &IceParams,
    rtcp_default: Option<std::net::SocketAddr>,
) -> IceParams {
    let mut out = rtp.clone();
    out.candidates.extend(
        rtcp.candidates
            .iter()
            .filter(|c| c.component == u32::from(RTCP_COMPONENT))
            .cloned(),
    );
    out.end_of_candidates = rtp.end_of_candidates && rtcp.end_of_candidates;
    out.rtcp = rtcp_default;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_sdp::{Candidate, CandidateType};

    fn cand(component: u32, port: u16) -> Candidate {
        Candidate {
            foundation: "1".into(),
            component,
            transport: "UDP".into(),
            priority: 2130706432 - component,
            address: "192.0.2.1".into(),
            port,
            typ: CandidateType::Host,
            raddr: None,
            rport: None,
            extensions: Vec::new(),
        }
    }

    #[test]
    fn both_components_in_one_set_of_attributes() {
        let rtp = IceParams {
            ufrag: "uuuu".into(),
            pwd: "pppppppppppppppppppppp".into(),
            candidates: vec![cand(1, 4000)],
            end_of_candidates: true,
            ..IceParams::default()
        };
        let rtcp = IceParams {
            candidates: vec![cand(2, 4001)],
            end_of_candidates: false,
            ..rtp.clone()
        };
        let both = with_rtcp_component(&rtp, &rtcp, Some("192.0.2.1:4001".parse().unwrap()));
        assert_eq!(both.ufrag, "uuuu");
        assert_eq!(
            both.candidates
                .iter()
                .map(|c| (c.component, c.port))
                .collect::<Vec<_>>(),
            vec![(1, 4000), (2, 4001)]
        );
        assert!(!both.end_of_candidates, "component 2 did not finish");
        assert!(both.has_rtcp_component());
        assert_eq!(both.rtp_component_only().candidates, rtp.candidates);
        assert_eq!(both.rtp_component_only().rtcp, None);
    }
}
