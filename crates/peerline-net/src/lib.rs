//! Connectivity for Peerline: the traffic ledger every packet is counted in, the RTP port
//! range admins can open or block, and ICE ([`ice`], on `webrtc-ice`) with STUN/TURN taken
//! only from the user's config.
//!
//! Everything here except the ICE driver is sans-IO: no sockets, no clocks. The ICE
//! session is async (tokio) and belongs to the IO side: the phone's per-call media task.

pub mod ice;
pub mod ledger;
pub mod nat_behaviour;
pub mod ports;

pub use ice::{
    component_priority, gather_components, probe_allocate, rest_credentials, with_rtcp_component,
    CandidateKind, Connected, IceConfig, IceError, IceSession, PathReport, StunServer,
    TurnBridgeStats, TurnCredential, TurnServer, TurnTlsConfig, TurnTraffic, TurnTransport,
    DEFAULT_REST_LABEL, DEFAULT_REST_TTL, DEFAULT_TURNS_PORT, RTCP_COMPONENT, RTP_COMPONENT,
};
pub use ledger::{Direction, Ledger, LedgerEntry, TrafficClass};
pub use ports::{PortRange, PortRangeError};
