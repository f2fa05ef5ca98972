//! `peerline doctor`: what the phone would do with this config, checked against the real
//! network. For each account: how its registrar, outbound proxy and domain resolve (RFC 3263
//! records, ordered targets, the chosen target and transport) and whether the chosen
//! target answers an OPTIONS probe; each configured STUN server (our server-reflexive
//! address) and TURN server (an allocation), from the config's `[ice]` section; the NAT's
//! mapping and filtering behaviour (RFC 5780, through the STUN servers) and the call path
//! it makes likely (direct, srflx hole punching, relay needed); the SIP
//! port, the RTP port range, the SRTP policy, whether calls use ICE, and the relay policy.
//!
//! [`run`] returns a [`Report`]; [`Report::to_text`] is for people, the report serializes
//! to JSON for scripts. [`Report::ok`] is false when something required failed: a location,
//! a probe without an answer, a STUN or TURN server that did not work.

mod nat;
mod probe;
mod servers;
mod text;

use std::time::Duration;

use peerline_dns::{Destination, Target};
use serde::Serialize;

use crate::config::{Config, SrtpKeying, SrtpMode};

pub use nat::NatCheck;
pub use probe::{options_probe, ProbeResult};

/// Limits of one doctor run.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// How long an OPTIONS probe waits for a final response.
    pub probe_timeout: Duration,
    /// How long a STUN or TURN check waits for the server.
    pub server_timeout: Duration,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            probe_timeout: Duration::from_secs(2),
            server_timeout: Duration::from_secs(3),
        }
    }
}

/// Everything `peerline doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Nothing required failed.
    pub ok: bool,
    /// Where SIP listens (UDP and TCP).
    pub sip_listen: String,
    /// The RTP port range.
    pub rtp_ports: String,
    /// The SRTP policy and keying, e.g. `mandatory (DTLS-SRTP)`.
    pub srtp: String,
    /// Whether calls use ICE (`[ice] enabled`).
    pub ice: String,
    /// `relay only through: …`.
    pub relay_policy: String,
    /// One entry per `[[account]]`.
    pub accounts: Vec<AccountCheck>,
    /// One entry per configured STUN server.
    pub stun: Vec<ServerCheck>,
    /// One entry per configured TURN server.
    pub turn: Vec<ServerCheck>,
    /// NAT behaviour (RFC 5780) through the configured STUN servers and the call path it
    /// makes likely. Informational: never fails the report.
    pub nat: NatCheck,
}

/// One account's destinations.
#[derive(Debug, Clone, Serialize)]
pub struct AccountCheck {
    /// The address of record.
    pub aor: String,
    /// Registrar, outbound proxy, domain (each once).
    pub destinations: Vec<DestinationCheck>,
}

/// How one SIP URI resolves and whether its chosen target answers.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationCheck {
    /// `registrar`, `outbound proxy` or `domain`.
    pub role: String,
    /// The URI located.
    pub uri: String,
    /// Each DNS query with its answer, e.g. `NAPTR example.com: 10 10 "s" "SIP+D2T" …`.
    pub records: Vec<String>,
    /// The targets in the order they would be tried.
    pub targets: Vec<TargetInfo>,
    /// The target new requests go to (the first).
    pub chosen: Option<TargetInfo>,
    /// Why location failed.
    pub error: Option<String>,
    /// The OPTIONS probe of the chosen target.
    pub probe: Option<ProbeResult>,
    /// Located and answered.
    pub ok: bool,
}

/// One target of a location.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// `UDP`, `TCP` or `TLS`.
    pub transport: String,
    /// Socket address.
    pub addr: String,
    /// The records it came from.
    pub from: String,
    /// Valid this long.
    pub ttl_secs: u64,
}

impl TargetInfo {
    fn of(t: &Target) -> Self {
        let from = t.from.to_string();
        Self {
            transport: t.transport.to_string(),
            addr: t.addr.to_string(),
            from,
            ttl_secs: t.ttl.as_secs(),
        }
    }
}

/// A STUN or TURN server check.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCheck {
    /// The server as configured (never with a credential).
    pub server: String,
    /// It worked.
    pub ok: bool,
    /// Our server-reflexive address (STUN) or the relayed address (TURN).
    pub address: Option<String>,
    /// What happened, in words.
    pub result: String,
}

/// Runs every check of the config. Needs a tokio runtime.
pub async fn run(config: &Config, options: &DoctorOptions) -> Report {
    // Checked when the config was loaded; a config built in code may still be wrong.
    let (stun, turn) = config.ice.servers().unwrap_or_default();
    let relay_policy = format!(
        "relay only through: {}",
        if turn.is_empty() {
            "none (no TURN server configured: calls never use a relay)".to_string()
        } else {
            turn.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let mut accounts = Vec::new();
    let locator = crate::location::locator(&config.network);
    let tls = tls_client(&config.tls);
    for account in &config.accounts {
        let mut destinations = Vec::new();
        for (role, uri) in destinations_of(account) {
            let check = match &locator {
                Ok(l) => check_destination(l, &role, &uri, &account.aor, &tls, options).await,
                Err(e) => failed(&role, &uri, e.to_string()),
            };
            destinations.push(check);
        }
        accounts.push(AccountCheck {
            aor: account.aor.clone(),
            destinations,
        });
    }
    let stun_checks = servers::check_stun(&stun, config, options).await;
    let turn_checks = servers::check_turn(&turn, config, options).await;
    let nat = nat::check_nat(&stun, !turn.is_empty(), config, options).await;
    let stun = stun_checks;
    let turn = turn_checks;
    let ok = accounts.iter().flat_map(|a| &a.destinations).all(|d| d.ok)
        && stun.iter().chain(&turn).all(|s| s.ok);
    Report {
        ok,
        sip_listen: format!("UDP+TCP {}", config.network.sip_listen),
        rtp_ports: config.network.rtp_ports.to_string(),
        srtp: srtp_policy(config),
        ice: if config.ice.enabled {
            "on (STUN/TURN only from [ice])".into()
        } else {
            "off (plain RTP to the SDP address, symmetric latching)".into()
        },
        relay_policy,
        accounts,
        stun,
        turn,
        nat,
    }
}

fn srtp_policy(config: &Config) -> String {
    let keying = match config.media.srtp_keying {
        SrtpKeying::Dtls => "DTLS-SRTP",
        SrtpKeying::Sdes => "SDES",
    };
    match config.media.srtp {
        SrtpMode::Mandatory => format!("mandatory ({keying})"),
        SrtpMode::Optional => format!("optional ({keying}, plain RTP accepted)"),
        SrtpMode::Off => "off (plain RTP)".into(),
    }
}

/// The URIs an account's requests go to, each once: registrar, outbound proxy, the AOR's
/// domain.
fn destinations_of(account: &crate::account::AccountConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |role: &str, uri: String| {
        if !out.iter().any(|(_, u)| same_place(u, &uri)) {
            out.push((role.to_string(), uri));
        }
    };
    if account.register {
        push("registrar", account.registrar_uri());
    }
    if let Some(p) = &account.outbound_proxy {
        push("outbound proxy", p.clone());
    }
    if let Ok((_, host)) = account.aor_parts() {
        push("domain", format!("sip:{host}"));
    }
    out
}

/// Two URIs that locate the same way (same host, port, transport).
fn same_place(a: &str, b: &str) -> bool {
    match (Destination::parse(a), Destination::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The phone's TLS client settings (`[tls]`), as the phone builds them.
fn tls_client(
    tls: &crate::config::TlsConfig,
) -> Result<peerline_transport::TlsClientConfig, String> {
    Ok(peerline_transport::TlsClientConfig {
        ca_file: tls.ca_file.clone(),
        pins: tls.parsed_pins()?,
        client_cert: tls.client_cert()?,
    })
}

fn failed(role: &str, uri: &str, error: String) -> DestinationCheck {
    DestinationCheck {
        role: role.into(),
        uri: uri.into(),
        records: Vec::new(),
        targets: Vec::new(),
        chosen: None,
        error: Some(error),
        probe: None,
        ok: false,
    }
}

async fn check_destination(
    locator: &peerline_dns::Locator,
    role: &str,
    uri: &str,
    aor: &str,
    tls: &Result<peerline_transport::TlsClientConfig, String>,
    options: &DoctorOptions,
) -> DestinationCheck {
    let dest = match Destination::parse(uri) {
        Ok(d) => d,
        Err(e) => return failed(role, uri, e.to_string()),
    };
    let resolved = match locator.resolve(&dest).await {
        Ok(r) => r,
        Err(e) => return failed(role, uri, e.to_string()),
    };
    let records = resolved
        .trail
        .iter()
        .map(|(q, a)| format!("{q}: {}", a.summary()))
        .collect();
    let targets: Vec<TargetInfo> = resolved.targets.iter().map(TargetInfo::of).collect();
    let probe = match resolved.targets.first() {
        Some(t) => Some(options_probe(t, uri, aor, tls, options.probe_timeout).await),
        None => None,
    };
    let ok = probe.as_ref().is_some_and(ProbeResult::answered);
    DestinationCheck {
        role: role.into(),
        uri: uri.into(),
        records,
        chosen: targets.first().cloned(),
        targets,
        error: None,
        probe,
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(extra: &str) -> crate::account::AccountConfig {
        toml::from_str(&format!("aor = \"sip:alice@example.com\"\n{extra}")).unwrap()
    }

    #[test]
    fn each_destination_once() {
        let roles = |a| {
            destinations_of(&a)
                .into_iter()
                .map(|(r, u)| format!("{r} {u}"))
                .collect::<Vec<_>>()
        };
        // The default registrar is the AOR's domain: checked once.
        assert_eq!(roles(account("")), vec!["registrar sip:example.com"]);
        assert_eq!(
            roles(account(
                "registrar = \"sip:reg.example.com\"\noutbound_proxy = \"sip:192.0.2.1:5070;lr\""
            )),
            vec![
                "registrar sip:reg.example.com",
                "outbound proxy sip:192.0.2.1:5070;lr",
                "domain sip:example.com"
            ]
        );
        assert_eq!(
            roles(account("register = false")),
            vec!["domain sip:example.com"]
        );
    }

    #[test]
    fn policies_in_words() {
        let mut c = Config::default();
        assert_eq!(srtp_policy(&c), "mandatory (DTLS-SRTP)");
        c.media.srtp = SrtpMode::Off;
        assert_eq!(srtp_policy(&c), "off (plain RTP)");
    }
}
