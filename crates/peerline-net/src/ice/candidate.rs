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

/// A webrtc-ice candidate as an `a=candidate` value. `None` for candidates SDP cannot carry
/// (unspecified type).
pub fn to_sdp_candidate(c: &dyn IceCandidate) -> Option<SdpCandidate> {
    let kind = CandidateKind::from_ice(c.candidate_type())?;
    let (raddr, rport) = match c.related_address() {
        Some(r) => (Some(r.address), Some(r.port)),
        None => (None, None),
    };
    Some(SdpCandidate {
        foundation: c.foundation(),
        // webrtc-ice numbers the RTP component 1, as SDP does; rtcp-mux keeps one component.
        component: u32::from(c.component()),
        transport: c.network_type().network_short().to_uppercase(),
        priority: c.priority(),
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
    /// Component other than 1 (we use rtcp-mux: one component).
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

/// An `a=candidate` value as a webrtc-ice candidate for `add_remote_candidate`.
pub fn from_sdp_candidate(
    c: &SdpCandidate,
) -> Result<Arc<dyn IceCandidate + Send + Sync>, SkipReason> {
    if c.component != 1 {
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
