//! Conversion between webrtc-ice candidates and `a=candidate` values ([`peerline_sdp::Candidate`]).

use std::sync::Arc;

use peerline_sdp::{Candidate as SdpCandidate, CandidateType as SdpType};
use webrtc_ice::candidate::candidate_base::unmarshal_candidate;
use webrtc_ice::candidate::{Candidate as IceCandidate, CandidateType as IceType};

/// The kind of a candidate (RFC 8445 §5.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// Our address as a configured STUN/TURN server saw it.
    Srflx,
    /// Learned from a connectivity check.
    Prflx,
    /// An address on a configured TURN server.
    Relay,
}

impl CandidateKind {
    /// `host`, `srflx`, `prflx`, `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Prflx => "prflx",
            Self::Relay => "relay",
        }
    }

    /// Whether media goes through a relay.
    pub fn is_relay(self) -> bool {
        self == Self::Relay
    }

    pub(crate) fn from_ice(t: IceType) -> Option<Self> {
        match t {
            IceType::Host => Some(Self::Host),
            IceType::ServerReflexive => Some(Self::Srflx),
            IceType::PeerReflexive => Some(Self::Prflx),
            IceType::Relay => Some(Self::Relay),
            IceType::Unspecified => None,
        }
    }

    /// The kind of an SDP candidate (`None` for unknown types).
    pub fn from_sdp(t: &SdpType) -> Option<Self> {
        match t {
            SdpType::Host => Some(Self::Host),
            SdpType::Srflx => Some(Self::Srflx),
            SdpType::Prflx => Some(Self::Prflx),
            SdpType::Relay => Some(Self::Relay),
            SdpType::Other(_) => None,
        }
    }

    fn to_sdp(self) -> SdpType {
        match self {
            Self::Host => SdpType::Host,
            Self::Srflx => SdpType::Srflx,
            Self::Prflx => SdpType::Prflx,
            Self::Relay => SdpType::Relay,
        }
    }
}

impl std::fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RTP component (RFC 8445 §2; with rtcp-mux, the only one).
pub const RTP_COMPONENT: u16 = 1;
/// The RTCP component, for a peer that does not multiplex RTP and RTCP (RFC 8839 §5.1.1).
pub const RTCP_COMPONENT: u16 = 2;

/// A candidate priority for `component` (RFC 8445 §5.1.2.1: `2^24 × type preference +
/// 2^8 × local preference + (256 − component ID)`): the type and local-preference terms of
/// `priority` with the component term of `component`. webrtc-ice 0.17 computes every
/// priority for component 1; its candidates gathered for component 2 get theirs from this.
pub fn component_priority(priority: u32, component: u16) -> u32 {
    let term = 256u32.saturating_sub(u32::from(component)) & 0xFF;
    (priority & !0xFF) | term
}

/// A webrtc-ice candidate as an `a=candidate` value. `None` for candidates SDP cannot carry
/// (unspecified type).
pub fn to_sdp_candidate(c: &dyn IceCandidate) -> Option<SdpCandidate> {
    to_sdp_candidate_for(c, RTP_COMPONENT)
}

/// A webrtc-ice candidate (which knows only component 1) as an `a=candidate` value of
/// `component`, with its priority recomputed for that component.
pub fn to_sdp_candidate_for(c: &dyn IceCandidate, component: u16) -> Option<SdpCandidate> {
    let kind = CandidateKind::from_ice(c.candidate_type())?;
    let (raddr, rport) = match c.related_address() {
        Some(r) => (Some(r.address), Some(r.port)),
        None => (None, None),
    };
    Some(SdpCandidate {
        foundation: c.foundation(),
        // webrtc-ice numbers every candidate component 1; one agent serves one component.
        component: u32::from(component),
        transport: c.network_type().network_short().to_uppercase(),
        priority: component_priority(c.priority(), component),
        address: c.address(),
        port: c.port(),
        typ: kind.to_sdp(),
        raddr,
        rport,
        extensions: Vec::new(),
    })
}

/// Why a remote `a=candidate` was not handed to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Another component than the agent's (each agent serves one component).
    Component(u32),
    /// Not UDP (ICE-TCP is not supported).
    Transport(String),
    /// Type we do not know.
    Type(String),
    /// Address is not an IP literal (FQDN/mDNS names are not resolved).
    Address(String),
    /// webrtc-ice refused it.
    Rejected(String),
}

/// An `a=candidate` value of component 1 as a webrtc-ice candidate for `add_remote_candidate`.
pub fn from_sdp_candidate(
    c: &SdpCandidate,
) -> Result<Arc<dyn IceCandidate + Send + Sync>, SkipReason> {
    from_sdp_candidate_for(c, RTP_COMPONENT)
}

/// An `a=candidate` value of `component` as a webrtc-ice candidate for the agent serving
/// that component. The agent knows only component 1 (the number never goes on the wire:
/// checks carry USERNAME, PRIORITY and the role, not the component), so the candidate is
/// handed over as component 1 with the peer's priority unchanged.
pub fn from_sdp_candidate_for(
    c: &SdpCandidate,
    component: u16,
) -> Result<Arc<dyn IceCandidate + Send + Sync>, SkipReason> {
    if c.component != u32::from(component) {
        return Err(SkipReason::Component(c.component));
    }
    if !c.transport.eq_ignore_ascii_case("udp") {
        return Err(SkipReason::Transport(c.transport.clone()));
    }
    if CandidateKind::from_sdp(&c.typ).is_none() {
        return Err(SkipReason::Type(c.typ.as_str().to_owned()));
    }
    if c.ip().is_none() {
        return Err(SkipReason::Address(c.address.clone()));
    }
    // Only the fields webrtc-ice's parser understands, in the order it expects.
    let mut s = format!(
        "{} 1 udp {} {} {} typ {}",
        c.foundation,
        c.priority,
        c.address,
        c.port,
        c.typ.as_str()
    );
    if let (Some(a), Some(p)) = (&c.raddr, c.rport) {
        s.push_str(&format!(" raddr {a} rport {p}"));
    }
    match unmarshal_candidate(&s) {
        Ok(ic) => Ok(Arc::new(ic)),
        Err(e) => Err(SkipReason::Rejected(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerline_sdp::Attribute;

    fn sdp(v: &str) -> SdpCandidate {
        match Attribute::parse(&format!("candidate:{v}")).unwrap() {
            Attribute::Candidate(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sdp_to_ice_and_back() {
        for line in [
            "1 1 UDP 2130706431 192.0.2.10 16384 typ host",
            "2 1 UDP 1694498815 198.51.100.7 40000 typ srflx raddr 192.0.2.10 rport 16384",
            "3 1 UDP 16777215 203.0.113.1 50000 typ relay raddr 198.51.100.7 rport 40000",
            "4 1 udp 1862270975 198.51.100.9 40002 typ prflx raddr 0.0.0.0 rport 0",
        ] {
            let c = sdp(line);
            let ic = from_sdp_candidate(&c).unwrap();
            let back = to_sdp_candidate(ic.as_ref()).unwrap();
            assert_eq!(back.foundation, c.foundation, "{line}");
            assert_eq!(back.priority, c.priority, "{line}");
            assert_eq!(back.address, c.address, "{line}");
            assert_eq!(back.port, c.port, "{line}");
            assert_eq!(back.typ, c.typ, "{line}");
            assert_eq!(back.component, 1);
            assert_eq!(back.transport, "UDP");
            if c.typ != SdpType::Host {
                assert_eq!(back.raddr, c.raddr, "{line}");
                assert_eq!(back.rport, c.rport, "{line}");
            }
            // And the SDP text parses again to the same candidate.
            assert_eq!(sdp(&back.to_string()), back);
        }
    }

    #[test]
    fn component_priorities_follow_rfc_8445() {
        // Host, local preference 65535: 2^24 × 126 + 2^8 × 65535 + (256 − component).
        let host1 = (1 << 24) * 126 + (1 << 8) * 65535 + 255;
        assert_eq!(host1, 2130706431);
        assert_eq!(component_priority(host1, 1), host1);
        assert_eq!(component_priority(host1, 2), 2130706430);
        // srflx (type preference 100), local preference 65535.
        let srflx1 = (1 << 24) * 100 + (1 << 8) * 65535 + 255;
        assert_eq!(component_priority(srflx1, 2), srflx1 - 1);
        // Relay (type preference 0) keeps its local preference.
        assert_eq!(component_priority(16777215, 2), 16777214);
        assert_eq!(component_priority(0, 256), 0);
    }

    #[test]
    fn a_component_2_candidate_goes_to_the_rtcp_agent_only() {
        let c = sdp("7 2 UDP 2130706430 192.0.2.10 16385 typ host");
        assert_eq!(from_sdp_candidate(&c).err(), Some(SkipReason::Component(2)));
        let ic = from_sdp_candidate_for(&c, RTCP_COMPONENT).unwrap();
        assert_eq!(ic.addr(), "192.0.2.10:16385".parse().unwrap());
        assert_eq!(ic.priority(), 2130706430, "the peer's priority is kept");
        // And our own candidate of the RTCP agent goes out as component 2.
        let back = to_sdp_candidate_for(ic.as_ref(), RTCP_COMPONENT).unwrap();
        assert_eq!((back.component, back.priority), (2, 2130706430));
        let c1 = sdp("7 1 UDP 2130706431 192.0.2.10 16384 typ host");
        assert_eq!(
            from_sdp_candidate_for(&c1, RTCP_COMPONENT).err(),
            Some(SkipReason::Component(1))
        );
    }

    #[test]
    fn extensions_are_dropped_not_fatal() {
        let c = sdp("1 1 UDP 2130706431 192.0.2.10 16384 typ host generation 0 network-id 1");
        let ic = from_sdp_candidate(&c).unwrap();
        assert_eq!(ic.addr(), "192.0.2.10:16384".parse().unwrap());
    }

    #[test]
    fn unusable_candidates_are_skipped_with_a_reason() {
        assert_eq!(
            from_sdp_candidate(&sdp("1 2 UDP 2130706430 192.0.2.10 16385 typ host")).err(),
            Some(SkipReason::Component(2))
        );
        assert!(matches!(
            from_sdp_candidate(&sdp(
                "1 1 TCP 2130706431 192.0.2.10 9 typ host tcptype active"
            )),
            Err(SkipReason::Transport(_))
        ));
        assert!(matches!(
            from_sdp_candidate(&sdp("1 1 UDP 2130706431 abcd.local 16384 typ host")),
            Err(SkipReason::Address(_))
        ));
        assert!(matches!(
            from_sdp_candidate(&sdp("1 1 UDP 2130706431 192.0.2.1 16384 typ weird")),
            Err(SkipReason::Type(_))
        ));
    }
}
