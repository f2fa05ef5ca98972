//! `[policy]`: who may call this phone.
//!
//! * `incoming = "anyone"` (the default without `[auth]`): every INVITE may ring.
//! * `incoming = "contacts"`: only INVITEs whose From URI is in `contacts` ring; others
//!   get `403 Caller Not In Contacts`. The From header is chosen by the caller, so this
//!   is a nuisance filter (scanners, robocalls), not authentication: with `[auth]` users
//!   it applies after the digest check, so both must pass.
//! * `incoming = "authenticated"` (the default with `[auth]` users): every INVITE must
//!   carry a valid digest for an `[auth]` user. Without `[auth]` users this is a config
//!   error, never a silent "anyone".
//!
//! A contact `sip:alice@example.com` matches a From URI with the same user and host
//! (host case-insensitive; `sip:` and `sips:` alike) on any port; a contact that names a
//! port (`sip:alice@192.0.2.1:5070`) matches only that port.

use rsip::Request;
use serde::Deserialize;

use peerline_sip::MessageExt;

/// `incoming` in `[policy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncomingPolicy {
    /// Anyone may call.
    Anyone,
    /// Only callers whose From URI is in `contacts`.
    Contacts,
    /// Only callers who authenticate as an `[auth]` user.
    Authenticated,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Who may call; unset: `authenticated` with `[auth]` users, else `anyone`.
    pub incoming: Option<IncomingPolicy>,
    /// SIP URIs of the callers `incoming = "contacts"` lets ring.
    pub contacts: Vec<String>,
}

/// The reason phrase of the `403` for a caller not in `contacts`.
pub const NOT_A_CONTACT: &str = "Caller Not In Contacts";

/// A contact's identity: user, lower-case host, optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Party {
    user: String,
    host: String,
    port: Option<u16>,
}

impl Party {
    fn of(uri: &rsip::Uri) -> Option<Self> {
        let user = uri.auth.as_ref()?.user.clone();
        Some(Self {
            user,
            host: uri.host_with_port.host.to_string().to_ascii_lowercase(),
            port: uri.host_with_port.port.map(|p| *p.value()),
        })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let uri = rsip::Uri::try_from(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        match uri.scheme {
            Some(rsip::Scheme::Sip) | Some(rsip::Scheme::Sips) => {}
            _ => return Err(format!("{text:?} is not a sip: or sips: URI")),
        }
        Self::of(&uri).ok_or_else(|| format!("{text:?} has no user part (sip:user@host)"))
    }

    /// `self` is a configured contact; `caller` is what a From header says.
    fn admits(&self, caller: &Party) -> bool {
        self.user == caller.user
            && self.host == caller.host
            && self.port.is_none_or(|p| caller.port == Some(p))
    }
}

impl PolicyConfig {
    /// The policy in force, given whether `[auth]` has users.
    pub fn effective(&self, auth_users: bool) -> IncomingPolicy {
        self.incoming.unwrap_or(if auth_users {
            IncomingPolicy::Authenticated
        } else {
            IncomingPolicy::Anyone
        })
    }

    /// Config check: `Err((key, message))`.
    pub fn check(&self, auth_users: bool) -> Result<(), (&'static str, String)> {
        match self.incoming {
            Some(IncomingPolicy::Authenticated) if !auth_users => {
                return Err((
                    "incoming",
                    "\"authenticated\" needs [auth] with at least one user".into(),
                ))
            }
            Some(IncomingPolicy::Anyone) if auth_users => {
                return Err((
                    "incoming",
                    "\"anyone\" contradicts [auth] users (they make every caller \
                     authenticate): use \"authenticated\" or \"contacts\""
                        .into(),
                ))
            }
            Some(IncomingPolicy::Contacts) if self.contacts.is_empty() => {
                return Err((
                    "contacts",
                    "incoming = \"contacts\" needs at least one contact".into(),
                ))
            }
            _ => {}
        }
        for c in &self.contacts {
            Party::parse(c).map_err(|e| ("contacts", e))?;
        }
        Ok(())
    }

    /// Whether an incoming INVITE may ring (authentication, if required, has already
    /// passed): `Err(reason phrase)` for a `403`.
    pub fn admit(&self, auth_users: bool, request: &Request) -> Result<(), &'static str> {
        if self.effective(auth_users) != IncomingPolicy::Contacts {
            return Ok(());
        }
        let caller = request.from_addr().and_then(|a| Party::parse(&a.uri).ok());
        let listed = caller.is_some_and(|caller| {
            self.contacts
                .iter()
                .filter_map(|c| Party::parse(c).ok())
                .any(|c| c.admits(&caller))
        });
        if listed {
            Ok(())
        } else {
            Err(NOT_A_CONTACT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(from: &str) -> Request {
        peerline_sip::message::RequestBuilder::new(rsip::Method::Invite, "sip:bob@192.0.2.9")
            .via("UDP", "192.0.2.1", "z9hG4bK1")
            .from(from, None, "t")
            .to("sip:bob@192.0.2.9", None)
            .call_id("c")
            .cseq(1)
            .build()
            .unwrap()
    }

    fn contacts(list: &[&str]) -> PolicyConfig {
        PolicyConfig {
            incoming: Some(IncomingPolicy::Contacts),
            contacts: list.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn contacts_match_user_and_host_and_a_port_only_when_named() {
        let p = contacts(&["sip:alice@Example.COM", "sips:carol@192.0.2.1:5070"]);
        assert_eq!(p.check(false), Ok(()));
        assert_eq!(p.admit(false, &invite("sip:alice@example.com")), Ok(()));
        assert_eq!(
            p.admit(false, &invite("sip:alice@example.com:5099")),
            Ok(())
        );
        assert_eq!(p.admit(false, &invite("sips:alice@example.com")), Ok(()));
        assert_eq!(p.admit(false, &invite("sip:carol@192.0.2.1:5070")), Ok(()));
        for from in [
            "sip:carol@192.0.2.1:5071",
            "sip:carol@192.0.2.1",
            "sip:Alice@example.com",
            "sip:alice@example.org",
            "sip:mallory@example.com",
            "sip:example.com",
        ] {
            assert_eq!(p.admit(false, &invite(from)), Err(NOT_A_CONTACT), "{from}");
        }
    }

    #[test]
    fn defaults_follow_auth_and_contradictions_are_errors() {
        let none = PolicyConfig::default();
        assert_eq!(none.effective(false), IncomingPolicy::Anyone);
        assert_eq!(none.effective(true), IncomingPolicy::Authenticated);
        assert_eq!(none.admit(false, &invite("sip:x@y")), Ok(()));
        let auth = PolicyConfig {
            incoming: Some(IncomingPolicy::Authenticated),
            contacts: vec![],
        };
        assert_eq!(auth.check(false).map_err(|e| e.0), Err("incoming"));
        assert_eq!(auth.check(true), Ok(()));
        let anyone = PolicyConfig {
            incoming: Some(IncomingPolicy::Anyone),
            contacts: vec![],
        };
        assert_eq!(anyone.check(true).map_err(|e| e.0), Err("incoming"));
        assert_eq!(contacts(&[]).check(false).map_err(|e| e.0), Err("contacts"));
        for bad in ["alice@example.com", "tel:+123", "sip:example.com", "sip:"] {
            assert_eq!(
                contacts(&[bad]).check(false).map_err(|e| e.0),
                Err("contacts"),
                "{bad}"
            );
        }
    }
}
