//! `[[account]]`: who we are at a registrar or provider, and where the password comes from.
//! Secrets never appear in `Debug` output or logs.

use serde::Deserialize;

/// One account from the config file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Address of record, e.g. `sip:alice@example.com`.
    pub aor: String,
    /// Digest user name (default: the AOR's user part).
    pub username: Option<String>,
    /// The password itself.
    pub password: Option<String>,
    /// …or the name of an environment variable holding it.
    pub password_env: Option<String>,
    /// …or a command printing it (run with `sh -c`; trailing newline removed).
    pub password_command: Option<String>,
    /// Registrar URI (default: the AOR's domain).
    pub registrar: Option<String>,
    /// Outbound proxy URI: every request of this account goes there first (loose routing).
    pub outbound_proxy: Option<String>,
    /// Register at start and unregister at shutdown.
    #[serde(default = "yes")]
    pub register: bool,
    /// Requested registration lifetime in seconds.
    #[serde(default = "default_expires")]
    pub expires: u32,
    /// Over UDP, when the registrar's answer shows a NAT (RFC 3581 `received`/`rport` in
    /// its Via differ from our address): register again with the Contact naming the
    /// public address the registrar saw, removing the private binding, and give calls
    /// through the registrar or outbound proxy that Contact too. Default on.
    #[serde(default = "yes")]
    pub rewrite_contact: bool,
    /// Seconds between keep-alives (a 4-byte double CRLF, as RFC 5626 §4.4.1 pings) to the
    /// registrar over UDP while registered behind a NAT, so the NAT keeps the binding
    /// that incoming requests arrive by; 0 turns them off. Default 25 (under the 30 s
    /// some NATs keep an idle UDP binding).
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u32,
    /// A sip-profile for this account's calls: the `[media]` and `[ice]` keys it sets
    /// take the place of the phone's for them (see [`crate::Config::parse`]).
    pub profile: Option<String>,
    /// `[account.media]`: this account's calls' media settings. In a config file, only
    /// the keys written here override (the phone's and the profile's settings fill the
    /// rest: [`crate::Config::parse`] resolves it); `None`: the phone's.
    pub media: Option<crate::config::MediaConfig>,
    /// `[account.ice]`: likewise for ICE.
    pub ice: Option<crate::ice_settings::IceSettings>,
}

fn yes() -> bool {
    true
}

fn default_expires() -> u32 {
    600
}

fn default_keepalive() -> u32 {
    25
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("aor", &self.aor)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_env", &self.password_env)
            .field(
                "password_command",
                &self.password_command.as_ref().map(|_| "<redacted>"),
            )
            .field("registrar", &self.registrar)
            .field("outbound_proxy", &self.outbound_proxy)
            .field("register", &self.register)
            .field("expires", &self.expires)
            .field("rewrite_contact", &self.rewrite_contact)
            .field("keepalive_secs", &self.keepalive_secs)
            .field("profile", &self.profile)
            .finish()
    }
}

impl AccountConfig {
    /// The AOR's user part and host[:port].
    pub fn aor_parts(&self) -> Result<(String, String), String> {
        let uri = rsip::Uri::try_from(self.aor.as_str()).map_err(|e| e.to_string())?;
        let user = uri
            .user()
            .map(str::to_string)
            .ok_or_else(|| "the AOR has no user part".to_string())?;
        Ok((user, uri.host_with_port.to_string()))
    }

    /// Checks the account; `Err` names what is wrong.
    pub fn check(&self) -> Result<(), String> {
        self.aor_parts()?;
        let sources = [
            self.password.is_some(),
            self.password_env.is_some(),
            self.password_command.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if sources > 1 {
            return Err("give only one of password, password_env, password_command".into());
        }
        for (name, uri) in [
            ("registrar", &self.registrar),
            ("outbound_proxy", &self.outbound_proxy),
        ] {
            if let Some(u) = uri {
                rsip::Uri::try_from(u.as_str()).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        if self.expires == 0 {
            return Err("expires must be above 0".into());
        }
        Ok(())
    }

    /// The digest user name.
    pub fn auth_user(&self) -> String {
        self.username
            .clone()
            .or_else(|| self.aor_parts().ok().map(|(u, _)| u))
            .unwrap_or_default()
    }

    /// The password from wherever the config says, or `None` when there is none.
    pub fn resolve_password(&self) -> Result<Option<String>, String> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map(Some)
                .map_err(|_| format!("environment variable {var} is not set"));
        }
        if let Some(cmd) = &self.password_command {
            let out = std::process::Command::new("sh")
                .args(["-c", cmd])
                .output()
                .map_err(|e| format!("password_command: {e}"))?;
            if !out.status.success() {
                return Err(format!("password_command failed: {}", out.status));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
        }
        Ok(None)
    }

    /// Where REGISTERs go: the configured registrar, else the AOR's domain, `sips:` for a
    /// `sips:` AOR (RFC 5630 §3.1.2: a SIPS AOR is registered with a SIPS Request-URI, so
    /// the registrar is located over TLS only and never reached in clear).
    pub fn registrar_uri(&self) -> String {
        match &self.registrar {
            Some(r) => r.clone(),
            None => match self.aor_parts() {
                Ok((_, host)) => {
                    let sips = rsip::Uri::try_from(self.aor.as_str())
                        .is_ok_and(|u| u.scheme == Some(rsip::Scheme::Sips));
                    format!("{}:{host}", if sips { "sips" } else { "sip" })
                }
                Err(_) => self.aor.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(extra: &str) -> AccountConfig {
        toml::from_str(&format!("aor = \"sip:alice@example.com\"\n{extra}")).unwrap()
    }

    #[test]
    fn password_sources_and_redaction() {
        let a = acc("password = \"s3cret\"");
        assert_eq!(a.resolve_password().unwrap().as_deref(), Some("s3cret"));
        assert!(!format!("{a:?}").contains("s3cret"));
        let a = acc("password_command = \"printf 'from-cmd\\\\n'\"");
        assert_eq!(a.resolve_password().unwrap().as_deref(), Some("from-cmd"));
        let a = acc("password_env = \"PEERLINE_TEST_SURELY_UNSET\"");
        assert!(a
            .resolve_password()
            .unwrap_err()
            .contains("PEERLINE_TEST_SURELY_UNSET"));
        assert!(acc("password = \"a\"\npassword_env = \"B\"")
            .check()
            .is_err());
        assert_eq!(acc("").auth_user(), "alice");
        assert_eq!(acc("").registrar_uri(), "sip:example.com");
        assert!(acc("").check().is_ok());
        // NAT handling is on by default; both keys can be set.
        assert!(acc("").rewrite_contact);
        assert_eq!(acc("").keepalive_secs, 25);
        let a = acc("rewrite_contact = false\nkeepalive_secs = 0");
        assert!(!a.rewrite_contact);
        assert_eq!(a.keepalive_secs, 0);
    }

    #[test]
    fn a_sips_aor_registers_with_a_sips_registrar() {
        let a: AccountConfig = toml::from_str("aor = \"sips:alice@example.com\"").unwrap();
        assert_eq!(a.registrar_uri(), "sips:example.com");
        let a: AccountConfig =
            toml::from_str("aor = \"sips:alice@example.com\"\nregistrar = \"sip:pbx.example.com\"")
                .unwrap();
        assert_eq!(a.registrar_uri(), "sip:pbx.example.com");
    }
}
