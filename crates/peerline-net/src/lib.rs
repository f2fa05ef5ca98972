//! ICE (webrtc-ice), STUN/TURN config, relay policy and the traffic ledger.
