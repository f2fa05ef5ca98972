//! NAT behaviour discovery (RFC 5780) against the configured STUN servers, with
//! `peerline_net::nat_behaviour` (sans-IO tests and their tokio driver), and the call path
//! it makes likely.

use std::net::SocketAddr;
use std::time::Duration;

use peerline_net::nat_behaviour::{self, likely_path, NatProbeConfig, NatReport};
use peerline_net::StunServer;
use serde::Serialize;

use super::DoctorOptions;
use crate::config::Config;

/// What the RFC 5780 tests found.
#[derive(Debug, Clone, Serialize)]
pub struct NatCheck {
    /// The STUN server used (`None`: none configured).
    pub server: Option<String>,
    /// Whether a Binding answer came back (UDP gets out); `None`: not tried.
    pub udp: Option<bool>,
    /// Whether the server does RFC 5780 (OTHER-ADDRESS, CHANGE-REQUEST).
    pub rfc5780: bool,
    /// Our socket's address toward the server.
    pub local_address: Option<String>,
    /// Our address as the server saw it.
    pub mapped_address: Option<String>,
    /// The server's OTHER-ADDRESS.
    pub other_address: Option<String>,
    /// Whether there is a NAT (mapped address differs from the local one).
    pub behind_nat: Option<bool>,
    /// `endpoint-independent`, `address-dependent` or `address-and-port-dependent`.
    pub mapping: Option<String>,
    /// Same values as `mapping`.
    pub filtering: Option<String>,
    /// Whether a host we never sent to can reach us at `mapped_address`: RFC 5780 §4.4
    /// test II (the server answers from its other IP and port) came through. `None`: the
    /// filtering test did not run.
    pub reachable_from_outside: Option<bool>,
    /// `direct`, `srflx-hole-punching`, `relay-needed` or `unknown`.
    pub likely_path: String,
    /// The likely path in words.
    pub path_detail: String,
    /// What happened, in words (e.g. why the behaviour is unknown).
    pub result: String,
}

impl NatCheck {
    fn not_run(server: Option<String>, result: String) -> Self {
        Self {
            server,
            udp: None,
            rfc5780: false,
            local_address: None,
            mapped_address: None,
            other_address: None,
            behind_nat: None,
            mapping: None,
            filtering: None,
            reachable_from_outside: None,
            likely_path: "unknown".into(),
            path_detail: "unknown: NAT behaviour not determined".into(),
            result,
        }
    }

    fn of(server: &StunServer, r: &NatReport, turn_configured: bool) -> Self {
        let path = likely_path(r, turn_configured);
        let result = if !r.udp_ok {
            "no Binding answer: UDP does not get out (or the server is down)".to_string()
        } else if let Some(why) = &r.unsupported {
            why.clone()
        } else {
            "RFC 5780 tests complete".to_string()
        };
        Self {
            server: Some(server.to_string()),
            udp: Some(r.udp_ok),
            rfc5780: r.other_address.is_some() && r.unsupported.is_none(),
            local_address: r.local.map(|a| a.to_string()),
            mapped_address: r.mapped.map(|a| a.to_string()),
            other_address: r.other_address.map(|a| a.to_string()),
            behind_nat: r.behind_nat,
            mapping: r.mapping.map(|b| b.as_str().to_string()),
            filtering: r.filtering.map(|b| b.as_str().to_string()),
            reachable_from_outside: r
                .filtering
                .map(|b| b == nat_behaviour::Behaviour::EndpointIndependent),
            likely_path: path.kind.as_str().into(),
            path_detail: path.detail,
            result,
        }
    }

    fn complete(&self) -> bool {
        self.mapping.is_some() && self.filtering.is_some()
    }
}

/// The server's address, IPv4 first.
async fn resolve(s: &StunServer) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((s.host.as_str(), s.port))
        .await
        .map_err(|e| format!("{}: {e}", s.host))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{}: no address", s.host))
}

/// Runs the tests against each configured STUN server in turn until one classifies both
/// mapping and filtering; otherwise reports the first server's outcome.
pub(super) async fn check_nat(
    servers: &[StunServer],
    turn_configured: bool,
    config: &Config,
    options: &DoctorOptions,
) -> NatCheck {
    let probe = NatProbeConfig {
        test_timeout: options
            .server_timeout
            .clamp(Duration::from_millis(300), Duration::from_secs(2)),
        ..NatProbeConfig::default()
    };
    let mut first: Option<NatCheck> = None;
    for s in servers {
        let check = match resolve(s).await {
            Ok(addr) => {
                match nat_behaviour::discover(addr, config.network.rtp_ports, probe).await {
                    Ok(r) => NatCheck::of(s, &r, turn_configured),
                    Err(e) => NatCheck::not_run(Some(s.to_string()), format!("error: {e}")),
                }
            }
            Err(e) => NatCheck::not_run(Some(s.to_string()), format!("error: {e}")),
        };
        if check.complete() {
            return check;
        }
        if first.is_none() {
            first = Some(check);
        }
    }
    first.unwrap_or_else(|| {
        NatCheck::not_run(
            None,
            "no STUN server configured ([ice] stun): NAT behaviour not checked".into(),
        )
    })
}
