//! STUN and TURN checks with what `peerline-net` offers: an ICE gathering
//! ([`IceSession::gather`]) with exactly one configured server, bounded by a short
//! timeout. A server-reflexive candidate is a STUN answer; a relay candidate is a TURN
//! allocation that worked (with static or shared-secret credentials, resolved when the
//! session gathers). Without one, a bare Allocate ([`probe_allocate`]) tells why.

use std::net::IpAddr;
use std::time::SystemTime;

use peerline_net::{probe_allocate, IceConfig, IceSession, StunServer, TurnServer};
use peerline_sdp::CandidateType;

use super::{DoctorOptions, ServerCheck};
use crate::config::Config;

fn ice_config(config: &Config, options: &DoctorOptions, host: &str) -> IceConfig {
    IceConfig {
        port_range: config.network.rtp_ports,
        gather_timeout: options.server_timeout,
        // A server on loopback (a test, a local coturn) is reached from loopback.
        include_loopback: host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        ..IceConfig::default()
    }
}

/// Gathers with `ice` and returns the distinct addresses of candidates of type `typ`, or
/// the gathering error.
async fn gather(ice: IceConfig, typ: CandidateType) -> Result<Vec<String>, String> {
    let session = IceSession::gather(ice).await.map_err(|e| e.to_string())?;
    let mut found: Vec<String> = Vec::new();
    for c in &session.local_params().candidates {
        let addr = if c.address.contains(':') {
            format!("[{}]:{}", c.address, c.port)
        } else {
            format!("{}:{}", c.address, c.port)
        };
        if c.typ == typ && !found.contains(&addr) {
            found.push(addr);
        }
    }
    session.close().await;
    Ok(found)
}

/// One Binding request per STUN server: our server-reflexive address, or the error.
pub(super) async fn check_stun(
    servers: &[StunServer],
    config: &Config,
    options: &DoctorOptions,
) -> Vec<ServerCheck> {
    let mut out = Vec::new();
    for s in servers {
        let ice = IceConfig {
            stun_servers: vec![s.clone()],
            ..ice_config(config, options, &s.host)
        };
        out.push(match gather(ice, CandidateType::Srflx).await {
            Ok(found) if !found.is_empty() => ServerCheck {
                server: s.to_string(),
                ok: true,
                address: found.first().cloned(),
                result: format!("our server-reflexive address: {}", found.join(", ")),
            },
            Ok(_) => ServerCheck {
                server: s.to_string(),
                ok: false,
                address: None,
                result: format!(
                    "no Binding answer within {} ms",
                    options.server_timeout.as_millis()
                ),
            },
            Err(e) => ServerCheck {
                server: s.to_string(),
                ok: false,
                address: None,
                result: format!("error: {e}"),
            },
        });
    }
    out
}

/// One allocation per TURN server: the relayed address, or the error.
pub(super) async fn check_turn(
    servers: &[TurnServer],
    config: &Config,
    options: &DoctorOptions,
) -> Vec<ServerCheck> {
    let mut out = Vec::new();
    for t in servers {
        // turns: servers are verified as SIP over TLS is (`[tls]`).
        let tls = match config.tls.turn_tls(std::slice::from_ref(t)) {
            Ok(tls) => tls.map(|t| t.config),
            Err(e) => {
                out.push(ServerCheck {
                    server: t.to_string(),
                    ok: false,
                    address: None,
                    result: format!("error: {e}"),
                });
                continue;
            }
        };
        let ice = IceConfig {
            turn_servers: vec![t.clone()],
            turn_tls: tls,
            ..ice_config(config, options, &t.host)
        };
        let turn_tls = ice.turn_tls.clone();
        out.push(match gather(ice, CandidateType::Relay).await {
            Ok(found) if !found.is_empty() => ServerCheck {
                server: t.to_string(),
                ok: true,
                address: found.first().cloned(),
                result: format!("allocate ok, relayed address: {}", found.join(", ")),
            },
            Ok(_) => ServerCheck {
                server: t.to_string(),
                ok: false,
                address: None,
                result: why_no_allocation(t, turn_tls.as_ref(), options).await,
            },
            Err(e) => ServerCheck {
                server: t.to_string(),
                ok: false,
                address: None,
                result: format!("error: {e}"),
            },
        });
    }
    out
}

/// The gathering gave no relay candidate: one bare Allocate says why (the server's error,
/// e.g. `401 Unauthorized` for refused credentials, or no answer).
async fn why_no_allocation(
    t: &TurnServer,
    tls: Option<&std::sync::Arc<peerline_net::TurnTlsConfig>>,
    options: &DoctorOptions,
) -> String {
    let within = options.server_timeout.as_millis();
    match probe_allocate(t, tls, SystemTime::now(), options.server_timeout).await {
        Err(e) if e.contains("401") => {
            format!("allocation refused: {e}: the server rejected the credentials")
        }
        Err(e) => format!("no allocation within {within} ms: {e}"),
        Ok(_) => format!(
            "no relay candidate within {within} ms (a bare Allocate worked: the server \
             may be slow, or its relayed address is not usable from here)"
        ),
    }
}
