//! `[ice]`: whether calls use ICE (RFC 8445) and which STUN and TURN servers it may use.
//! Nothing else is ever contacted: srflx candidates come only from `stun` (or `turn`),
//! relay candidates only from `turn`.

use std::net::IpAddr;
use std::time::Duration;

use peerline_net::{IceConfig, PortRange, StunServer, TurnServer};
use serde::Deserialize;

/// How long a call waits for STUN/TURN answers before offering what it has gathered.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connectivity checks may take before the call fails with "no path".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bad `[ice]` value: the key (`stun` or `url`) and what is wrong with which server.
pub type BadKey = (&'static str, String);

/// `[ice]` in the config file or a sip-profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IceSettings {
    /// Offer ICE in our SDP and answer ICE offers with it (off by default: peers without
    /// ICE get plain RTP to their `c=`/`m=` address either way).
    pub enabled: bool,
    /// STUN servers, `stun:HOST[:PORT]`: each gives a server-reflexive candidate.
    pub stun: Vec<String>,
    /// TURN servers (`[[ice.turn]]`): the only relays a call may use.
    pub turn: Vec<TurnEntry>,
}

/// One `[[ice.turn]]` entry. `Debug` hides the credential.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnEntry {
    /// `turn:HOST[:PORT][?transport=udp]`.
    pub url: String,
    /// Long-term credential user name.
    pub username: String,
    /// Long-term credential password.
    pub credential: String,
}

impl std::fmt::Debug for TurnEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnEntry")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

impl IceSettings {
    /// Checks every server; `Err` has the key (`stun` or `url`) and what is wrong with
    /// which server (never its credential).
    pub fn check(&self) -> Result<(), BadKey> {
        self.servers().map(|_| ())
    }

    /// The STUN and TURN servers, parsed (what `peerline doctor` checks).
    pub fn servers(&self) -> Result<(Vec<StunServer>, Vec<TurnServer>), BadKey> {
        let stun = self
            .stun
            .iter()
            .map(|s| StunServer::parse(s).map_err(|e| ("stun", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let turn = self
            .turn
            .iter()
            .map(|t| {
                TurnServer::parse(&t.url, &t.username, &t.credential)
                    .map_err(|e| ("url", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let probe = IceConfig {
            turn_servers: turn.clone(),
            ..IceConfig::default()
        };
        probe.validate().map_err(|e| ("url", e.to_string()))?;
        Ok((stun, turn))
    }

    /// The agent config for one call. Host candidates come from `bound` when the phone is
    /// bound to one address, else from every interface (loopback only when the call's
    /// peer is reached over loopback).
    pub(crate) fn agent_config(
        &self,
        controlling: bool,
        port_range: PortRange,
        bound: IpAddr,
        toward: IpAddr,
    ) -> Result<IceConfig, String> {
        let (stun_servers, turn_servers) = self.servers().map_err(|(_, e)| e)?;
        let (host_ips, include_loopback) = if bound.is_unspecified() {
            (Vec::new(), toward.is_loopback())
        } else {
            (vec![bound], bound.is_loopback())
        };
        Ok(IceConfig {
            stun_servers,
            turn_servers,
            port_range,
            controlling,
            host_ips,
            include_loopback,
            gather_timeout: GATHER_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> IceSettings {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn servers_are_checked_and_credentials_hidden() {
        let s = parse(
            "enabled = true\nstun = [\"stun:192.0.2.1\"]\n[[turn]]\nurl = \"turn:192.0.2.2:3478\"\nusername = \"u\"\ncredential = \"s3cret\"\n",
        );
        assert!(s.check().is_ok());
        assert!(!format!("{s:?}").contains("s3cret"));
        let c = s
            .agent_config(
                true,
                PortRange::DEFAULT,
                "127.0.0.1".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
            )
            .unwrap();
        assert_eq!(c.stun_servers.len(), 1);
        assert_eq!(c.turn_servers.len(), 1);
        assert_eq!(c.host_ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(c.include_loopback);
        let bad = parse("stun = [\"stun:\"]\n");
        assert!(bad.check().unwrap_err().1.contains("stun:"));
        let tcp = parse("[[turn]]\nurl = \"turn:192.0.2.2?transport=tcp\"\nusername = \"u\"\ncredential = \"p\"\n");
        assert!(
            tcp.check().unwrap_err().1.contains("TCP"),
            "{:?}",
            tcp.check()
        );
    }

    #[test]
    fn the_config_file_turns_ice_on_over_the_profile_and_errors_name_the_line() {
        use crate::config::Config;
        use std::path::Path;
        let c = Config::parse("profile = \"generic\"\n", Path::new("p.toml")).unwrap();
        assert!(!c.ice.enabled);
        let c = Config::parse(
            "profile = \"generic\"\n[ice]\nenabled = true\nstun = [\"stun:192.0.2.1:3478\"]\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert!(c.ice.enabled);
        assert_eq!(c.ice.stun, vec!["stun:192.0.2.1:3478".to_string()]);
        let e = Config::parse(
            "[ice]\nenabled = true\n\nstun = [\"turn:x\"]\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("p.toml:4: stun:"), "{e}");
    }
}
