//! Connectivity for Peerline: the traffic ledger every packet is counted in, the RTP port
//! range admins can open or block, and (on `webrtc-ice`) ICE with STUN/TURN taken only from
//! the user's config.
//!
//! Everything here except the ICE driver is sans-IO: no sockets, no clocks.

pub mod ledger;
pub mod ports;

pub use ledger::{Direction, Ledger, LedgerEntry, TrafficClass};
pub use ports::{PortRange, PortRangeError};
