//! The phone's configuration: TOML on disk, with errors that name the file, the line and
//! the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use peerline_net::PortRange;
use serde::Deserialize;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a bad value; `line` is 1-based.
    #[error("{path}:{line}: {message}")]
    Invalid {
        /// The file (or `<inline>`).
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Which codecs to offer, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CodecName {
    /// G.711 µ-law.
    #[serde(rename = "PCMU")]
    Pcmu,
    /// G.711 A-law.
    #[serde(rename = "PCMA")]
    Pcma,
    /// G.722 (16 kHz audio, RTP clock 8000, static PT 9).
    #[serde(rename = "G722")]
    G722,
    /// Opus at 48 kHz (RFC 7587), with in-band FEC.
    #[serde(rename = "opus")]
    Opus,
}

impl CodecName {
    /// The name used in config files and SDP (`PCMU`, `PCMA`, `G722`, `opus`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "opus",
        }
    }
}

/// Whether calls must, may or must not be encrypted with SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Never send or accept plaintext RTP; a peer without SRTP gets 488.
    Mandatory,
    /// Offer SRTP in a form plain peers accept (`RTP/AVP` with `a=crypto`), fall back to RTP.
    Optional,
    /// Plain RTP only.
    Off,
}

/// How SRTP keys are agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpKeying {
    /// DTLS-SRTP (RFC 5763/5764): keys never travel in signaling.
    Dtls,
    /// SDES (RFC 4568): keys in `a=crypto`; safe only over TLS signaling.
    Sdes,
}

/// `[network]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Address and port the SIP UDP transport listens on.
    pub sip_listen: SocketAddr,
    /// The RTP port range, `"LOW-HIGH"`.
    #[serde(deserialize_with = "port_range")]
    pub rtp_ports: PortRange,
    /// A DNS server for RFC 3263 location instead of the system's resolver.
    pub dns_server: Option<SocketAddr>,
    /// New SIP requests per second one source may send before it gets `503` with
    /// `Retry-After` (a flood defence; in-dialog requests are not limited).
    pub sip_rate_limit: f64,
    /// How many new requests one source may send at once.
    pub sip_rate_burst: u32,
    /// Most SIP-over-TCP connections open at once (incoming + outgoing); beyond it new
    /// incoming connections are closed at once.
    pub tcp_max_connections: usize,
    /// An incoming TCP connection must deliver its first complete message within this
    /// many seconds, and a partly received message must complete within it (half-open
    /// and slow-loris guard).
    pub tcp_message_timeout_secs: u64,
    /// A TCP connection with no traffic either way for this many seconds is closed.
    pub tcp_idle_timeout_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            sip_listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            rtp_ports: PortRange::DEFAULT,
            dns_server: None,
            sip_rate_limit: 200.0,
            sip_rate_burst: 400,
            tcp_max_connections: 256,
            tcp_message_timeout_secs: 10,
            tcp_idle_timeout_secs: 600,
        }
    }
}

/// `[media]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Codecs in order of preference.
    pub codecs: Vec<CodecName>,
    /// Packetisation time in milliseconds.
    pub ptime: u32,
    /// Offer and accept RFC 4733 telephone-events.
    pub dtmf: bool,
    /// Seconds without any RTP after which a call ends.
    pub rtp_timeout_secs: u64,
    /// SRTP policy for our offers and for offers we answer.
    pub srtp: SrtpMode,
    /// How our offers key SRTP (answers follow what the offer used).
    pub srtp_keying: SrtpKeying,
    /// SDES puts the SRTP keys in the SDP: by default they are only offered or accepted
    /// when the call's signaling is TLS. `true` allows them over UDP/TCP too (a warning
    /// is logged for each such call): anyone who sees the SIP can decrypt the media.
    pub allow_sdes_without_tls: bool,
    /// Offer and accept `a=rtcp-mux` (RFC 5761): RTP and RTCP on one port (with ICE, one
    /// component). `false` makes the phone behave like a peer that does not multiplex:
    /// RTCP on its own port, with ICE on component 2 (for tests, and for a network that
    /// needs RTCP apart). Default `true`.
    pub rtcp_mux: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            codecs: vec![CodecName::Pcmu, CodecName::Pcma],
            ptime: 20,
            dtmf: true,
            rtp_timeout_secs: 30,
            srtp: SrtpMode::Mandatory,
            srtp_keying: SrtpKeying::Dtls,
            allow_sdes_without_tls: false,
            rtcp_mux: true,
        }
    }
}

/// `[audio]`: the devices a call with [`crate::AudioSource::Device`] uses when it names
/// none (names as `peerline devices` lists them; unset: the system default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// The capture device (microphone).
    pub input: Option<String>,
    /// The playback device (speaker or headset).
    pub output: Option<String>,
}

/// `[identity]`: who this phone is when it is not registered anywhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The user part of our From and Contact.
    pub user: String,
    /// Optional display name.
    pub display_name: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            user: "peerline".into(),
            display_name: None,
        }
    }
}

/// `[tls]`: SIP over TLS (RFC 3261 §26). Outgoing TLS verifies the server against the
/// system's roots, or only the CAs in `ca_file`; a TLS listener needs `cert_file` and
/// `key_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Listen for SIP over TLS on this port (0: any free port) of the SIP address.
    pub listen_port: Option<u16>,
    /// Our certificate chain, leaf first (PEM), for the listener.
    pub cert_file: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<std::path::PathBuf>,
    /// Verify servers against only the CAs in this PEM file instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// SHA-256 pins of the servers' certificates (64 hex digits, colons allowed): when
    /// set, a server's certificate must verify **and** match one of them.
    pub pins: Vec<String>,
    /// A client certificate chain (PEM) for servers that ask for one (mutual TLS).
    pub client_cert_file: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    pub client_key_file: Option<std::path::PathBuf>,
}

impl TlsConfig {
    /// The pins, parsed.
    pub fn parsed_pins(&self) -> Result<Vec<peerline_transport::CertPin>, String> {
        self.pins
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e: peerline_transport::tls::PinParseError| e.to_string())
            })
            .collect()
    }

    /// The client certificate, when both files are given.
    pub fn client_cert(&self) -> Result<Option<peerline_transport::ClientCert>, String> {
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(c), Some(k)) => Ok(Some(peerline_transport::ClientCert {
                cert_file: c.clone(),
                key_file: k.clone(),
            })),
            (None, None) => Ok(None),
            _ => Err("client_cert_file and client_key_file go together".into()),
        }
    }

    /// The TLS client configuration SIP over TLS uses (CA file or system roots, pins,
    /// client certificate): `turns:` TURN servers are verified the same way.
    pub fn client_tls(&self) -> Result<peerline_transport::tls::ClientTls, String> {
        peerline_transport::tls::client_config(&peerline_transport::TlsClientConfig {
            ca_file: self.ca_file.clone(),
            pins: self.parsed_pins()?,
            client_cert: self.client_cert()?,
        })
    }

    /// [`IceConfig::turn_tls`](peerline_net::IceConfig::turn_tls) for `turn_servers`:
    /// built only when one of them is a `turns:` server.
    pub fn turn_tls(
        &self,
        turn_servers: &[peerline_net::TurnServer],
    ) -> Result<Option<peerline_transport::tls::ClientTls>, String> {
        if turn_servers
            .iter()
            .any(|t| t.transport == peerline_net::TurnTransport::Tls)
        {
            self.client_tls()
                .map(Some)
                .map_err(|e| format!("TLS for turns: servers: {e}"))
        } else {
            Ok(None)
        }
    }
}

/// `[auth]`: when `users` is not empty, incoming INVITEs and MESSAGEs must authenticate
/// with HTTP digest (RFC 3261 §22, RFC 7616: SHA-256 and MD5, `qop=auth`, nonces expiring
/// after `nonce_ttl_secs`, replayed nonce counts refused): a PBX tester's authenticating
/// UAS. The passwords never appear in logs or `Debug` output.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The realm of our challenges.
    pub realm: String,
    /// Seconds a nonce stays valid (a later answer gets `stale=true`).
    pub nonce_ttl_secs: u64,
    /// Who may call: `{ user = "…", password = "…" }`.
    pub users: Vec<AuthUser>,
    /// Failed authentications (wrong password, unknown user, replayed nonce count) from
    /// one source within `failure_window_secs` after which that source is refused with
    /// `403 Too Many Failed Authentications` for `block_secs`.
    pub max_failures: u32,
    /// The sliding window failures are counted in, in seconds.
    pub failure_window_secs: u64,
    /// How long a guessing source stays blocked, in seconds.
    pub block_secs: u64,
    /// Digest algorithms offered, one challenge each, most preferred first
    /// (`"SHA-256"`, `"MD5"`, …). Some clients (SIPp) answer only the first challenge
    /// and know only MD5: `["MD5"]` for them.
    pub algorithms: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let guard = peerline_sip::auth_guard::AuthGuardConfig::default();
        Self {
            realm: "peerline".into(),
            nonce_ttl_secs: 300,
            users: Vec::new(),
            max_failures: guard.max_failures,
            failure_window_secs: guard.window.as_secs(),
            block_secs: guard.block_for.as_secs(),
            algorithms: vec!["SHA-256".into(), "MD5".into()],
        }
    }
}

impl AuthConfig {
    /// The offered algorithms, parsed; `Err` names the unknown one.
    pub fn parsed_algorithms(&self) -> Result<Vec<peerline_sip::auth::Algorithm>, String> {
        if self.algorithms.is_empty() {
            return Err("at least one algorithm is needed".into());
        }
        self.algorithms
            .iter()
            .map(|a| {
                peerline_sip::auth::Algorithm::parse(a)
                    .ok_or_else(|| format!("unknown digest algorithm {a:?}"))
            })
            .collect()
    }

    /// The failed-authentication guard's limits.
    pub fn guard(&self) -> peerline_sip::auth_guard::AuthGuardConfig {
        peerline_sip::auth_guard::AuthGuardConfig {
            max_failures: self.max_failures,
            window: std::time::Duration::from_secs(self.failure_window_secs),
            block_for: std::time::Duration::from_secs(self.block_secs),
            ..Default::default()
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("realm", &self.realm)
            .field("nonce_ttl_secs", &self.nonce_ttl_secs)
            .field("max_failures", &self.max_failures)
            .field("failure_window_secs", &self.failure_window_secs)
            .field("block_secs", &self.block_secs)
            .field("algorithms", &self.algorithms)
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|u| u.user.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One user of `[auth]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthUser {
    /// The digest user name.
    pub user: String,
    /// Its password.
    pub password: String,
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Who we are.
    pub identity: IdentityConfig,
    /// Ports and addresses.
    pub network: NetworkConfig,
    /// Codecs and media timing.
    pub media: MediaConfig,
    /// ICE in calls, and the only STUN/TURN servers it may use.
    pub ice: crate::ice_settings::IceSettings,
    /// SIP over TLS.
    pub tls: TlsConfig,
    /// Digest authentication of incoming calls and messages (we act as the server).
    pub auth: AuthConfig,
    /// The sound card of calls that talk through it ([`crate::AudioSource::Device`]).
    pub audio: AudioConfig,
    /// Who may call this phone (`[policy] incoming = "anyone" | "contacts" | "authenticated"`).
    pub policy: crate::incoming_policy::PolicyConfig,
    /// A sip-profile (`sip-profiles/NAME.toml`) whose settings are the defaults under this
    /// file's own.
    pub profile: Option<String>,
    /// Accounts (`[[account]]`); calls use the first one.
    #[serde(rename = "account")]
    pub accounts: Vec<crate::account::AccountConfig>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = toml_error(text, path);
        // Parsed alone first, so every error points into the user's own file (a config
        // deserialized from a table has no line numbers).
        let mut config: Config = toml::from_str(text).map_err(&invalid)?;
        // The same text as a table, for layering it over sip-profiles.
        let user: toml::Table = toml::from_str(text).map_err(&invalid)?;
        if let Some(name) = config.profile.clone() {
            config = Self::under_profile(&user, text, path, &name)?;
        }
        // Accounts with a profile or their own `[account.media]`/`[account.ice]`.
        config.resolve_accounts(&user, text, path)?;
        config.check(text, path)?;
        Ok(config)
    }

    /// The media and ICE settings of each account that has a profile or settings of its
    /// own: the phone's (its profile's under the file's), then the keys the account's
    /// profile sets, then the keys of `[account.media]`/`[account.ice]` — the more
    /// specific wins.
    fn resolve_accounts(
        &mut self,
        user: &toml::Table,
        text: &str,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let invalid = toml_error(text, path);
        let mut phone: toml::Table = match &self.profile {
            Some(name) => crate::profiles::get(name)
                .map(toml::from_str)
                .transpose()
                .map_err(&invalid)?
                .unwrap_or_default(),
            None => toml::Table::new(),
        };
        merge(&mut phone, user.clone());
        let accounts = match user.get("account") {
            Some(toml::Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        for (i, raw) in accounts.iter().enumerate() {
            let Some(raw) = raw.as_table() else { continue };
            let Some(account) = self.accounts.get(i) else {
                continue;
            };
            if account.profile.is_none() && account.media.is_none() && account.ice.is_none() {
                continue;
            }
            let mut layered = toml::Table::new();
            for key in ["media", "ice"] {
                if let Some(v) = phone.get(key) {
                    layered.insert(key.into(), v.clone());
                }
            }
            if let Some(name) = &account.profile {
                let profile = crate::profiles::get(name).ok_or_else(|| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    line: account_key_line(text, i, "profile"),
                    message: format!(
                        "account {}: profile: no sip-profile {name:?} (known: {})",
                        account.aor,
                        crate::profiles::names().join(", ")
                    ),
                })?;
                merge(&mut layered, toml::from_str(profile).map_err(&invalid)?);
            }
            for key in ["media", "ice"] {
                if let Some(v) = raw.get(key) {
                    let mut over = toml::Table::new();
                    over.insert(key.into(), v.clone());
                    merge(&mut layered, over);
                }
            }
            let resolved: Config = toml::Value::Table(layered).try_into().map_err(&invalid)?;
            resolved.check_media(text, path)?;
            self.accounts[i].media = Some(resolved.media);
            self.accounts[i].ice = Some(resolved.ice);
        }
        Ok(())
    }

    /// The file's settings over the sip-profile `name`'s: the profile gives defaults,
    /// what the file sets wins.
    fn under_profile(
        user: &toml::Table,
        text: &str,
        path: &Path,
        name: &str,
    ) -> Result<Self, ConfigError> {
        let invalid = toml_error(text, path);
        let profile = crate::profiles::get(name).ok_or_else(|| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of_key(text, "profile"),
            message: format!(
                "profile: no sip-profile {name:?} (known: {})",
                crate::profiles::names().join(", ")
            ),
        })?;
        let mut merged: toml::Table = toml::from_str(profile).map_err(&invalid)?;
        merge(&mut merged, user.clone());
        toml::Value::Table(merged).try_into().map_err(&invalid)
    }

    fn check_media(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            message: format!("{key}: {message}"),
        };
        if self.media.codecs.is_empty() {
            return Err(invalid("codecs", "at least one codec is needed".into()));
        }
        if !(10..=120).contains(&self.media.ptime) || self.media.ptime % 10 != 0 {
            return Err(invalid(
                "ptime",
                format!("{} ms is not one of 10, 20, … 120", self.media.ptime),
            ));
        }
        Ok(())
    }

    fn check(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            message: format!("{key}: {message}"),
        };
        for (i, a) in self.accounts.iter().enumerate() {
            a.check().map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: account_line(text, i),
                message: format!("account {}: {e}", a.aor),
            })?;
        }
        if let Some((i, e)) = self.ice.turn_errors.first() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: ice_turn_line(text, *i),
                message: e.clone(),
            });
        }
        if let Err((key, e)) = self.ice.check() {
            return Err(invalid(key, e));
        }
        if let Err(e) = self.tls.parsed_pins() {
            return Err(invalid("pins", e));
        }
        if let Err(e) = self.tls.client_cert() {
            return Err(invalid("client_cert_file", e));
        }
        if self.tls.listen_port.is_some()
            && (self.tls.cert_file.is_none() || self.tls.key_file.is_none())
        {
            return Err(invalid(
                "listen_port",
                "a TLS listener needs cert_file and key_file".into(),
            ));
        }
        if let Err((key, e)) = self.policy.check(!self.auth.users.is_empty()) {
            return Err(invalid(key, e));
        }
        if !self.auth.users.is_empty() {
            if self.auth.max_failures == 0 {
                return Err(invalid("max_failures", "must be at least 1".into()));
            }
            if let Err(e) = self.auth.parsed_algorithms() {
                return Err(invalid("algorithms", e));
            }
            if self.auth.failure_window_secs == 0 {
                return Err(invalid("failure_window_secs", "must be at least 1".into()));
            }
        }
        self.check_media(text, path)?;
        if self.identity.user.is_empty()
            || !self
                .identity
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'+".contains(c))
        {
            return Err(invalid(
                "user",
                format!("{:?} is not a plain SIP user name", self.identity.user),
            ));
        }
        Ok(())
    }
}

/// The line of the `i`th `[[account]]` header.
fn account_line(text: &str, i: usize) -> usize {
    text.match_indices("[[account]]")
        .nth(i)
        .map(|(o, _)| line_of(text, o))
        .unwrap_or(1)
}

/// The line of the `i`th `[[ice.turn]]` header (1 if not found).
fn ice_turn_line(text: &str, i: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.starts_with("[[ice.turn]]")
        })
        .nth(i)
        .map(|(n, _)| n + 1)
        .unwrap_or(1)
}

/// The line of `key` in the `i`th `[[account]]` (its header's line if not found).
fn account_key_line(text: &str, i: usize, key: &str) -> usize {
    let start = account_line(text, i);
    let rest: String = text
        .lines()
        .skip(start)
        .take_while(|l| !l.trim_start().starts_with("[["))
        .collect::<Vec<_>>()
        .join("\n");
    match line_of_key(&rest, key) {
        1 if !rest
            .lines()
            .next()
            .is_some_and(|l| l.trim_start().starts_with(key)) =>
        {
            start
        }
        n => start + n,
    }
}

/// Deep merge: tables merge key by key, any other value in `over` replaces.
/// A TOML error in `text` as a config error naming the file and line.
fn toml_error<'a>(text: &'a str, path: &'a Path) -> impl Fn(toml::de::Error) -> ConfigError + 'a {
    move |e| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().to_string(),
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn port_range<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PortRange, D::Error> {
    let s = String::deserialize(d)?;
    PortRange::parse(&s).map_err(serde::de::Error::custom)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(1)
}

fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("phone.toml"))
    }

    /// The config example in the README parses, with the values it shows.
    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```toml\nprofile")
            .expect("README config example");
        let body = &readme[start + "```toml\n".len()..];
        let example = &body[..body.find("```").expect("end of the example")];
        let c = parse(example).unwrap_or_else(|e| panic!("README example: {e}"));
        assert_eq!(c.network.sip_listen.port(), 5060);
        assert_eq!(c.network.rtp_ports.low(), 16384);
        assert_eq!(c.network.tcp_max_connections, 256);
        assert_eq!(c.network.tcp_idle_timeout_secs, 600);
        assert_eq!(c.media.srtp, SrtpMode::Mandatory);
        assert_eq!(
            c.tls.ca_file.as_deref(),
            Some(Path::new("/etc/peerline/pbx-ca.pem"))
        );
        assert_eq!(c.accounts.len(), 1);
    }

    #[test]
    fn defaults_and_values() {
        let c = parse(
            "[identity]\nuser = \"alice\"\n[network]\nsip_listen = \"127.0.0.1:5070\"\nrtp_ports = \"20000-20010\"\n[media]\ncodecs = [\"PCMA\"]\n",
        )
        .unwrap();
        assert_eq!(c.identity.user, "alice");
        assert_eq!(c.network.sip_listen.port(), 5070);
        assert_eq!(c.network.rtp_ports.low(), 20000);
        assert_eq!(c.media.codecs, vec![CodecName::Pcma]);
        assert_eq!(c.media.ptime, 20);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[network]\n\nrtp_ports = \"9-2\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("phone.toml:3: port range 9-2 is empty"),
            "{e}"
        );
        let e = parse("[media]\ncodecs = [\"PCMU\"]\nptime = 7\n").unwrap_err();
        assert!(e.to_string().starts_with("phone.toml:3: ptime:"), "{e}");
        let e = parse("[network]\nsip_listen = \"nowhere\"\n").unwrap_err();
        assert!(e.to_string().starts_with("phone.toml:2:"), "{e}");
        let e = parse("[media]\n\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().starts_with("phone.toml:3:"), "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn policy_and_auth_guard_errors_name_file_line_and_key() {
        let e = parse("[identity]\nuser = \"bob\"\n[policy]\nincoming = \"authenticated\"\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("phone.toml:4: incoming: \"authenticated\" needs [auth]"),
            "{e}"
        );
        let e = parse("[policy]\nincoming = \"contacts\"\ncontacts = [\"alice@example.com\"]\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("phone.toml:3: contacts:"), "{e}");
        let e = parse("[policy]\nincoming = \"everyone\"\n").unwrap_err();
        assert!(e.to_string().starts_with("phone.toml:2:"), "{e}");
        let users = "users = [{ user = \"alice\", password = \"pw\" }]\n";
        let e = parse(&format!("[auth]\n{users}max_failures = 0\n")).unwrap_err();
        assert!(
            e.to_string().starts_with("phone.toml:3: max_failures:"),
            "{e}"
        );
        let c = parse(&format!(
            "[auth]\n{users}max_failures = 3\nblock_secs = 60\n[policy]\nincoming = \"contacts\"\ncontacts = [\"sip:alice@example.com\"]\n"
        ))
        .unwrap();
        assert_eq!(c.auth.guard().max_failures, 3);
        assert_eq!(c.auth.parsed_algorithms().unwrap().len(), 2);
        let e = parse(&format!(
            "[auth]\n{users}\nalgorithms = [\"MD5\", \"SHA-1\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("phone.toml:4: algorithms: unknown digest algorithm \"SHA-1\""),
            "{e}"
        );
        assert_eq!(c.auth.guard().block_for.as_secs(), 60);
        assert_eq!(c.auth.guard().window.as_secs(), 60);
        assert!(!format!("{c:?}").contains("\"pw\""));
    }
}
