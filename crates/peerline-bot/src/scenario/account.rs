//! A leg's `account`: the phone's `[[account]]` (AOR, credentials, registrar, outbound
//! proxy), checked by the phone's own config parser so both accept the same accounts.

use super::{get, Parser, R};
use crate::tree::{Kind, Node};

/// A leg's account, ready for the leg's phone config.
#[derive(Debug, Clone, PartialEq)]
pub struct LegAccount {
    /// Line of `account`.
    pub line: usize,
    /// The address of record.
    pub aor: String,
    /// The phone registers it at start (`register`, default true).
    pub registers: bool,
    /// The `[[account]]` table of the phone's config, as TOML.
    pub config: String,
}

const STRING_KEYS: &[&str] = &[
    "aor",
    "username",
    "password",
    "password_env",
    "registrar",
    "outbound_proxy",
];

impl Parser {
    /// `auth = { user = "alice", password = "…", realm = "…" }`: the leg's phone challenges
    /// incoming calls and messages with digest (an authenticating UAS). Returns the
    /// phone's `[auth]` table as TOML, checked by the phone's config parser.
    pub(super) fn leg_auth(&self, node: &Node) -> R<String> {
        let t = self.table(node, "auth")?;
        self.only_keys(t, &["user", "password", "realm"], "auth")?;
        let (Some(user), Some(password)) = (get(t, "user"), get(t, "password")) else {
            return self.err(
                node.line,
                "auth needs `user` and `password`, e.g. auth = { user = \"alice\", password = \"…\" }",
            );
        };
        let user = self.static_str(&user.value, "user")?;
        let password = self.static_str(&password.value, "password")?;
        let mut config = String::from("[auth]\n");
        if let Some(r) = get(t, "realm") {
            let realm = self.static_str(&r.value, "realm")?;
            config.push_str(&format!("realm = {realm:?}\n"));
        }
        config.push_str(&format!(
            "users = [{{ user = {user:?}, password = {password:?} }}]\n"
        ));
        if let Err(err) = peerline_ua::Config::parse(&config, &self.path) {
            return self.err(node.line, format!("auth: {err}"));
        }
        Ok(config)
    }

    /// `account = { aor = "sip:alice@pbx", password = "…", registrar = "…", … }`.
    pub(super) fn account(&self, node: &Node) -> R<LegAccount> {
        let t = self.table(node, "account")?;
        let mut allowed = STRING_KEYS.to_vec();
        allowed.extend(["expires", "register"]);
        self.only_keys(t, &allowed, "account")?;
        let Some(aor) = get(t, "aor") else {
            return self.err(
                node.line,
                "account needs `aor`, e.g. \"sip:alice@pbx.example.net\"",
            );
        };
        let aor = self.static_str(&aor.value, "aor")?;
        let mut config = String::from("[[account]]\n");
        for key in STRING_KEYS {
            if let Some(e) = get(t, key) {
                let v = self.static_str(&e.value, key)?;
                config.push_str(&format!("{key} = {v:?}\n"));
            }
        }
        if let Some(e) = get(t, "expires") {
            let secs = self.integer(&e.value, "expires", 1, i64::from(u32::MAX))?;
            config.push_str(&format!("expires = {secs}\n"));
        }
        let registers = match get(t, "register") {
            Some(e) => match e.value.kind {
                Kind::Bool(b) => b,
                ref k => {
                    return self.err(
                        e.line,
                        format!("register must be true or false, not {}", k.type_name()),
                    )
                }
            },
            None => true,
        };
        config.push_str(&format!("register = {registers}\n"));
        if let Err(err) = peerline_ua::Config::parse(&config, &self.path) {
            let why = err.to_string();
            let why = why
                .split_once(": ")
                .map(|(_, w)| w.to_string())
                .unwrap_or(why);
            return self.err(node.line, format!("account: {why}"));
        }
        Ok(LegAccount {
            line: node.line,
            aor,
            registers,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::Scenario;

    fn parse(account: &str) -> Result<Scenario, crate::ScenarioError> {
        let text =
            format!("[[leg]]\nname = \"alice\"\naccount = {account}\nsteps = [\"register\"]\n");
        Scenario::parse(&text, Path::new("a.toml"), &BTreeMap::new())
    }

    #[test]
    fn an_account_becomes_the_phones_account_table() {
        let s = parse("{ aor = \"sip:alice@127.0.0.1:5060\", password = \"pw\", outbound_proxy = \"sip:127.0.0.1:5060\", expires = 300 }").unwrap();
        let a = s.legs[0].account.clone().unwrap();
        assert_eq!(a.aor, "sip:alice@127.0.0.1:5060");
        assert!(a.registers);
        assert_eq!(a.line, 3);
        let c = peerline_ua::Config::parse(&a.config, Path::new("x")).unwrap();
        assert_eq!(c.accounts.len(), 1);
        assert_eq!(c.accounts[0].expires, 300);
        assert_eq!(
            c.accounts[0].outbound_proxy.as_deref(),
            Some("sip:127.0.0.1:5060")
        );
    }

    #[test]
    fn bad_accounts_are_refused_on_their_line() {
        let e = parse("{ password = \"pw\" }").unwrap_err().to_string();
        assert!(e.starts_with("a.toml:3: account needs `aor`"), "{e}");
        let e = parse("{ aor = \"sip:pbx.example.net\" }")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.toml:3: account:") && e.contains("no user part"),
            "{e}"
        );
        let e = parse("{ aor = \"sip:a@pbx\", pasword = \"x\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `pasword` in account"), "{e}");
        let e = parse("{ aor = \"sip:a@pbx\", expires = 0 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expires must be a whole number from 1"), "{e}");
    }
}
