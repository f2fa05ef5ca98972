//! `[ice]`: whether calls use ICE (RFC 8445) and which STUN and TURN servers it may use.
//! Nothing else is ever contacted: srflx candidates come only from `stun` (or `turn`),
//! relay candidates only from `turn`.

use std::net::IpAddr;
use std::time::Duration;

use peerline_net::{
    IceConfig, PortRange, StunServer, TurnCredential, TurnServer, DEFAULT_REST_LABEL,
    DEFAULT_REST_TTL,
};
use serde::Deserialize;

/// How long a call waits for STUN/TURN answers before offering what it has gathered.
/// 3 s: a STUN server a few hundred ms away answers well within it, and on a loaded
/// machine two components gathering at once still get their srflx candidates.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long connectivity checks may take before the call fails with "no path".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A bad `[ice]` value: the key (`stun` or `url`) and what is wrong with which server.
pub type BadKey = (&'static str, String);

/// `[ice]` in the config file or a sip-profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "RawIceSettings")]
pub struct IceSettings {
    /// Offer ICE in our SDP and answer ICE offers with it (off by default: peers without
    /// ICE get plain RTP to their `c=`/`m=` address either way).
    pub enabled: bool,
    /// STUN servers, `stun:HOST[:PORT]`: each gives a server-reflexive candidate.
    pub stun: Vec<String>,
    /// TURN servers (`[[ice.turn]]`, in the file's order): the only relays a call may use.
    pub turn: Vec<TurnEntry>,
    /// `[[ice.turn]]` entries that set both kinds of credentials or neither: (0-based
    /// index among the `[[ice.turn]]` entries, what is wrong). [`Config`] turns the first
    /// into an error naming the entry's line.
    ///
    /// [`Config`]: crate::config::Config
    pub(crate) turn_errors: Vec<(usize, String)>,
}

/// One `[[ice.turn]]` entry: the server and its credentials, static (`username` +
/// `credential`) or coturn's shared secret (`secret`, optional `username` label and
/// `ttl_secs`). `Debug` hides the credential and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnEntry {
    /// `turn:HOST[:PORT][?transport=udp|tcp]` or `turns:HOST[:PORT]`.
    pub url: String,
    /// How the phone authenticates to it.
    pub credential: TurnCredential,
}

impl TurnEntry {
    /// A server with long-term credentials.
    pub fn with_password(url: &str, username: &str, password: &str) -> Self {
        Self {
            url: url.into(),
            credential: TurnCredential::Static {
                username: username.into(),
                password: password.into(),
            },
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIceSettings {
    enabled: bool,
    stun: Vec<String>,
    turn: Vec<RawTurnEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurnEntry {
    url: String,
    username: Option<String>,
    credential: Option<String>,
    secret: Option<String>,
    ttl_secs: Option<u64>,
}

impl RawTurnEntry {
    fn check(self) -> Result<TurnEntry, String> {
        let url = self.url;
        match (self.secret, self.credential) {
            (Some(_), Some(_)) => Err(format!(
                "turn {url}: set either username + credential or secret (coturn \
                 --static-auth-secret), not both"
            )),
            (None, None) => Err(format!(
                "turn {url}: needs username + credential, or secret (coturn \
                 --static-auth-secret)"
            )),
            (None, Some(credential)) => {
                if self.ttl_secs.is_some() {
                    return Err(format!("turn {url}: ttl_secs only applies with secret"));
                }
                let username = self
                    .username
                    .ok_or_else(|| format!("turn {url}: credential needs a username"))?;
                Ok(TurnEntry {
                    url,
                    credential: TurnCredential::Static {
                        username,
                        password: credential,
                    },
                })
            }
            (Some(secret), None) => {
                let ttl_secs = self.ttl_secs.unwrap_or(DEFAULT_REST_TTL.as_secs());
                if ttl_secs == 0 {
                    return Err(format!("turn {url}: ttl_secs must be at least 1"));
                }
                Ok(TurnEntry {
                    url,
                    credential: TurnCredential::SharedSecret {
                        secret,
                        label: self
                            .username
                            .unwrap_or_else(|| DEFAULT_REST_LABEL.to_owned()),
                        ttl: Duration::from_secs(ttl_secs),
                    },
                })
            }
        }
    }
}

impl From<RawIceSettings> for IceSettings {
    fn from(raw: RawIceSettings) -> Self {
        let mut s = IceSettings {
            enabled: raw.enabled,
            stun: raw.stun,
            ..IceSettings::default()
        };
        for (i, t) in raw.turn.into_iter().enumerate() {
            match t.check() {
                Ok(t) => s.turn.push(t),
                Err(e) => s.turn_errors.push((i, e)),
            }
        }
        s
    }
}

impl IceSettings {
    /// Checks every server; `Err` has the key (`stun` or `url`) and what is wrong with
    /// which server (never its credential or secret).
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
        if let Some((_, e)) = self.turn_errors.first() {
            return Err(("url", e.clone()));
        }
        let turn = self
            .turn
            .iter()
            .map(|t| {
                TurnServer::parse_with(&t.url, t.credential.clone())
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
    /// `turns:` servers are verified as `tls` says (the phone's `[tls]`, as for SIP).
    pub(crate) fn agent_config(
        &self,
        controlling: bool,
        port_range: PortRange,
        bound: IpAddr,
        toward: IpAddr,
        tls: &crate::config::TlsConfig,
    ) -> Result<IceConfig, String> {
        let (stun_servers, turn_servers) = self.servers().map_err(|(_, e)| e)?;
        let turn_tls = tls.turn_tls(&turn_servers)?.map(|t| t.config);
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
            turn_tls,
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
                &crate::config::TlsConfig::default(),
            )
            .unwrap();
        assert_eq!(c.stun_servers.len(), 1);
        assert_eq!(c.turn_servers.len(), 1);
        assert_eq!(c.host_ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(c.include_loopback);
        let bad = parse("stun = [\"stun:\"]\n");
        assert!(bad.check().unwrap_err().1.contains("stun:"));
        let tcp = parse("[[turn]]\nurl = \"turn:192.0.2.2?transport=tcp\"\nusername = \"u\"\ncredential = \"p\"\n");
        assert_eq!(tcp.check(), Ok(()));
        let tls = parse("[[turn]]\nurl = \"turns:192.0.2.2\"\nsecret = \"s\"\n");
        let (_, turn) = tls.servers().unwrap();
        assert_eq!(turn[0].to_string(), "turns:192.0.2.2:5349");
        // A `[tls] ca_file` that cannot be read is an error for turns: as for SIP.
        let bad_ca = crate::config::TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = tls
            .agent_config(
                true,
                PortRange::DEFAULT,
                "127.0.0.1".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
                &bad_ca,
            )
            .unwrap_err();
        assert!(e.contains("turns:"), "{e}");
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

    #[test]
    fn turn_takes_a_shared_secret_with_defaults_and_hides_it() {
        let s = parse("[[turn]]\nurl = \"turn:192.0.2.2\"\nsecret = \"north-wind\"\n");
        assert!(s.check().is_ok());
        assert!(!format!("{s:?}").contains("north-wind"));
        let (_, turn) = s.servers().unwrap();
        assert_eq!(
            turn[0].credential,
            TurnCredential::SharedSecret {
                secret: "north-wind".into(),
                label: "peerline".into(),
                ttl: Duration::from_secs(86_400),
            }
        );
        assert!(!format!("{turn:?}").contains("north-wind"));
        let s = parse(
            "[[turn]]\nurl = \"turn:192.0.2.2\"\nsecret = \"k\"\nusername = \"desk-7\"\nttl_secs = 600\n",
        );
        let (_, turn) = s.servers().unwrap();
        assert_eq!(turn[0].credential.user(), "desk-7");
        assert_eq!(
            turn[0].credential,
            TurnCredential::SharedSecret {
                secret: "k".into(),
                label: "desk-7".into(),
                ttl: Duration::from_secs(600),
            }
        );
    }

    #[test]
    fn turn_with_both_or_neither_credential_kind_names_the_entry_line() {
        use crate::config::Config;
        use std::path::Path;
        let head = "[ice]\nenabled = true\n\n[[ice.turn]]\nurl = \"turn:192.0.2.2\"\nusername = \"u\"\ncredential = \"p\"\n\n[[ice.turn]]\nurl = \"turn:192.0.2.3\"\n";
        let both = format!("{head}username = \"u\"\ncredential = \"p\"\nsecret = \"s\"\n");
        let e = Config::parse(&both, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:9: turn turn:192.0.2.3: "), "{e}");
        assert!(
            e.contains("not both") && e.contains("turn:192.0.2.3"),
            "{e}"
        );
        assert!(!e.contains("\"p\"") && !e.contains("\"s\""), "{e}");
        let neither = format!("{head}username = \"u\"\n");
        let e = Config::parse(&neither, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:9"), "{e}");
        assert!(e.contains("needs username + credential, or secret"), "{e}");
        let zero = format!("{head}secret = \"s\"\nttl_secs = 0\n");
        let e = Config::parse(&zero, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ttl_secs must be at least 1"), "{e}");
    }
}
