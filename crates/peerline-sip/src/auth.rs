//! HTTP Digest authentication for SIP (RFC 2617 / RFC 7616 with MD5, MD5-sess,
//! qop=auth and auth-int), client side.
//!
//! ```
//! use peerline_sip::auth::{parse_challenge, Credentials, DigestParams};
//! let ch = parse_challenge(r#"Digest realm="example.com", nonce="abc", qop="auth""#).unwrap();
//! let creds = Credentials { username: "alice".into(), password: "secret".into() };
//! let value = ch.authorization(&creds, &DigestParams {
//!     method: "REGISTER", uri: "sip:example.com", cnonce: "0a4f113b", nc: 1, body: b"",
//! }).unwrap();
//! assert!(value.starts_with("Digest username=\"alice\""));
//! ```

use crate::message::{header_value, make_header};
use md5::{Digest, Md5};
use rand::RngCore;
use rsip::{Request, Response};
use thiserror::Error;

/// Authentication errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The challenge header is malformed.
    #[error("malformed challenge: {0}")]
    Malformed(String),
    /// Only the Digest scheme is supported.
    #[error("unsupported auth scheme {0}")]
    UnsupportedScheme(String),
    /// Only MD5 and MD5-sess are supported.
    #[error("unsupported digest algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The server offers qop values we do not support.
    #[error("unsupported qop {0}")]
    UnsupportedQop(String),
    /// The response carries no WWW-Authenticate / Proxy-Authenticate.
    #[error("no challenge in response")]
    NoChallenge,
}

/// A parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Realm.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back.
    pub opaque: Option<String>,
    /// Algorithm as sent (`None` = MD5).
    pub algorithm: Option<String>,
    /// Offered qop values (empty = RFC 2069 compatibility).
    pub qop: Vec<String>,
    /// The previous credentials were right but the nonce expired.
    pub stale: bool,
}

/// Username and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username.
    pub username: String,
    /// Password (never printed by `Debug`).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Per-request inputs of the digest computation.
#[derive(Debug, Clone, Copy)]
pub struct DigestParams<'a> {
    /// Request method (`REGISTER`, `INVITE`, ...).
    pub method: &'a str,
    /// Digest URI: the Request-URI as sent.
    pub uri: &'a str,
    /// Client nonce (inject for tests; random in production).
    pub cnonce: &'a str,
    /// Nonce count (1 for the first use of a nonce).
    pub nc: u32,
    /// Body, used only for qop=auth-int.
    pub body: &'a [u8],
}

fn split_auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in crate::syntax::split_list(s) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.starts_with('"') {
            crate::syntax::parse_quoted(v)
                .map(|(q, _)| q)
                .unwrap_or_default()
        } else {
            v.to_string()
        };
        out.push((k.trim().to_ascii_lowercase(), v));
    }
    out
}

/// Parse a `WWW-Authenticate` / `Proxy-Authenticate` value.
pub fn parse_challenge(value: &str) -> Result<Challenge, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnsupportedScheme(scheme.to_string()));
    }
    let params = split_auth_params(rest);
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let realm = get("realm").ok_or_else(|| AuthError::Malformed("no realm".into()))?;
    let nonce = get("nonce").ok_or_else(|| AuthError::Malformed("no nonce".into()))?;
    Ok(Challenge {
        realm,
        nonce,
        opaque: get("opaque"),
        algorithm: get("algorithm"),
        qop: get("qop")
            .map(|q| {
                q.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

fn md5_hex(data: &str) -> String {
    md5_hex_bytes(data.as_bytes())
}

fn md5_hex_bytes(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Challenge {
    /// Compute the `response` digest (lowercase hex) and the qop used.
    pub fn response(
        &self,
        creds: &Credentials,
        p: &DigestParams<'_>,
    ) -> Result<(String, Option<&'static str>), AuthError> {
        let sess = match self.algorithm.as_deref() {
            None => false,
            Some(a) if a.eq_ignore_ascii_case("MD5") => false,
            Some(a) if a.eq_ignore_ascii_case("MD5-sess") => true,
            Some(a) => return Err(AuthError::UnsupportedAlgorithm(a.to_string())),
        };
        let qop = if self.qop.is_empty() {
            None
        } else if self.qop.iter().any(|q| q == "auth") {
            Some("auth")
        } else if self.qop.iter().any(|q| q == "auth-int") {
            Some("auth-int")
        } else {
            return Err(AuthError::UnsupportedQop(self.qop.join(",")));
        };
        let mut ha1 = md5_hex(&format!(
            "{}:{}:{}",
            creds.username, self.realm, creds.password
        ));
        if sess {
            ha1 = md5_hex(&format!("{ha1}:{}:{}", self.nonce, p.cnonce));
        }
        let ha2 = match qop {
            Some("auth-int") => {
                md5_hex(&format!("{}:{}:{}", p.method, p.uri, md5_hex_bytes(p.body)))
            }
            _ => md5_hex(&format!("{}:{}", p.method, p.uri)),
        };
        let response = match qop {
            Some(q) => md5_hex(&format!(
                "{ha1}:{}:{:08x}:{}:{q}:{ha2}",
                self.nonce, p.nc, p.cnonce
            )),
            None => md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce)),
        };
        Ok((response, qop))
    }

    /// The full `Authorization` / `Proxy-Authorization` header value.
    pub fn authorization(
        &self,
        creds: &Credentials,
        p: &DigestParams<'_>,
    ) -> Result<String, AuthError> {
        let (response, qop) = self.response(creds, p)?;
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\"",
            creds.username, self.realm, self.nonce, p.uri, response
        );
        if let Some(a) = &self.algorithm {
            v.push_str(&format!(", algorithm={a}"));
        }
        if let Some(q) = qop {
            v.push_str(&format!(
                ", cnonce=\"{}\", qop={q}, nc={:08x}",
                p.cnonce, p.nc
            ));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        Ok(v)
    }
}

/// Answer a 401/407: adds `Authorization` (401) or `Proxy-Authorization` (407)
/// to `request`, replacing any previous one for the same realm. The caller must
/// still bump the CSeq and use a new Via branch before resending.
pub fn authorize(
    request: &mut Request,
    challenge_response: &Response,
    creds: &Credentials,
    rng: &mut dyn RngCore,
) -> Result<(), AuthError> {
    let proxy = challenge_response.status_code.code() == 407;
    let (ch_name, auth_name) = if proxy {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    };
    let value = header_value(challenge_response, ch_name).ok_or(AuthError::NoChallenge)?;
    let ch = parse_challenge(value)?;
    let cnonce = format!("{:08x}{:08x}", rng.next_u32(), rng.next_u32());
    let uri = request.uri.to_string();
    let method = request.method.to_string();
    let value = ch.authorization(
        creds,
        &DigestParams {
            method: &method,
            uri: &uri,
            cnonce: &cnonce,
            nc: 1,
            body: &request.body,
        },
    )?;
    let realm = ch.realm.clone();
    request.headers.retain(|h| {
        let (n, v) = crate::message::header_name_value(h);
        !(n == auth_name
            && split_auth_params(v.split_once(' ').map(|x| x.1).unwrap_or(""))
                .iter()
                .any(|(k, r)| k == "realm" && *r == realm))
    });
    request.headers.push(make_header(auth_name, &value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rfc2617_section_3_5_example() {
        let ch = parse_challenge(
            r#"Digest
                 realm="testrealm@host.com",
                 qop="auth,auth-int",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(ch.qop, vec!["auth", "auth-int"]);
        let creds = Credentials {
            username: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let p = DigestParams {
            method: "GET",
            uri: "/dir/index.html",
            cnonce: "0a4f113b",
            nc: 1,
            body: b"",
        };
        let (resp, qop) = ch.response(&creds, &p).unwrap();
        assert_eq!(resp, "6629fae49393a05397450978507c4ef1");
        assert_eq!(qop, Some("auth"));
        let v = ch.authorization(&creds, &p).unwrap();
        assert_eq!(
            v,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", cnonce=\"0a4f113b\", qop=auth, \
             nc=00000001, opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    #[test]
    fn rfc2069_no_qop() {
        // RFC 2069 example: response = MD5(HA1:nonce:HA2)
        let ch = parse_challenge(
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
        )
        .unwrap();
        let creds = Credentials {
            username: "Mufasa".into(),
            password: "CircleOfLife".into(),
        };
        let p = DigestParams {
            method: "GET",
            uri: "/dir/index.html",
            cnonce: "",
            nc: 1,
            body: b"",
        };
        let (resp, qop) = ch.response(&creds, &p).unwrap();
        assert_eq!(resp, "1949323746fe6a43ef61f9606e7febea");
        assert_eq!(qop, None);
    }

    #[test]
    fn rejects_unsupported() {
        assert_eq!(
            parse_challenge("Basic realm=\"x\""),
            Err(AuthError::UnsupportedScheme("Basic".into()))
        );
        let ch = parse_challenge(r#"Digest realm="r", nonce="n", algorithm=SHA-256"#).unwrap();
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let p = DigestParams {
            method: "REGISTER",
            uri: "sip:r",
            cnonce: "c",
            nc: 1,
            body: b"",
        };
        assert!(matches!(
            ch.response(&creds, &p),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert!(format!("{creds:?}").contains("redacted"));
        assert!(!format!("{creds:?}").contains("\"p\""));
    }

    #[test]
    fn authorize_adds_proxy_authorization_for_407() {
        let mut req =
            crate::message::RequestBuilder::new(rsip::Method::Invite, "sip:bob@example.com")
                .via("UDP", "192.0.2.1", "z9hG4bK1")
                .from("sip:alice@example.com", None, "t")
                .to("sip:bob@example.com", None)
                .call_id("c")
                .cseq(1)
                .build()
                .unwrap();
        let mut resp = crate::message::make_response(&req, 407, Some("x"));
        resp.headers.push(make_header(
            "Proxy-Authenticate",
            r#"Digest realm="example.com", nonce="n1", qop="auth", algorithm=MD5"#,
        ));
        let creds = Credentials {
            username: "alice".into(),
            password: "pw".into(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        authorize(&mut req, &resp, &creds, &mut rng).unwrap();
        authorize(&mut req, &resp, &creds, &mut rng).unwrap();
        let values = crate::message::header_values(&req, "Proxy-Authorization");
        assert_eq!(values.len(), 1, "replaced, not duplicated");
        assert!(values[0].contains("uri=\"sip:bob@example.com\""));
        assert!(values[0].contains("qop=auth, nc=00000001"));
        // Verify the digest independently.
        let cnonce = values[0]
            .split("cnonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let ha1 = md5_hex("alice:example.com:pw");
        let ha2 = md5_hex("INVITE:sip:bob@example.com");
        let expect = md5_hex(&format!("{ha1}:n1:00000001:{cnonce}:auth:{ha2}"));
        assert!(values[0].contains(&format!("response=\"{expect}\"")));
    }
}
