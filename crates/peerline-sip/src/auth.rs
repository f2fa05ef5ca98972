//! HTTP Digest authentication for SIP (RFC 2617 / RFC 7616 / RFC 8760 with MD5,
//! SHA-256 and SHA-512-256, their `-sess` variants, qop=auth and auth-int): the
//! client side ([`Challenge`], [`authorize`], [`DigestClient`] with nonce counting
//! and `stale=true`) and the server side ([`DigestServer`]: challenges, verification,
//! nonce expiry and replay rejection).
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

use crate::message::{header_values, make_header};
use md5::{Digest, Md5};
use rand::RngCore;
use rsip::{Request, Response};
use sha2::{Sha256, Sha512_256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
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
    /// The server challenged again (without `stale=true`) right after we answered
    /// its challenge: the credentials are wrong. Do not retry.
    #[error("credentials rejected for realm {0}")]
    Rejected(String),
}

/// Digest hash algorithms (RFC 7616 §3.3, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when `algorithm` is absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Parse an `algorithm=` token (case-insensitive); `None` if unsupported.
    pub fn parse(token: &str) -> Option<Algorithm> {
        Some(match token.trim().to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" => Algorithm::Sha256,
            "SHA-256-SESS" => Algorithm::Sha256Sess,
            "SHA-512-256" => Algorithm::Sha512_256,
            "SHA-512-256-SESS" => Algorithm::Sha512_256Sess,
            _ => return None,
        })
    }

    /// The token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// A `-sess` variant (HA1 includes nonce and cnonce).
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// Relative strength used to pick among several challenges (higher is stronger).
    pub fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 3,
        }
    }

    /// Lowercase hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex(&Md5::digest(data)),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => hex(&Sha512_256::digest(data)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
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

#[cfg(test)]
fn md5_hex(data: &str) -> String {
    Algorithm::Md5.hash_hex(data.as_bytes())
}

/// The digest `response` (RFC 7616 §3.4.1): `qop = None` is RFC 2069 mode.
#[allow(clippy::too_many_arguments)]
fn compute_response(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    p: &DigestParams<'_>,
    qop: Option<&str>,
) -> String {
    let h = |s: &str| alg.hash_hex(s.as_bytes());
    let mut ha1 = h(&format!("{username}:{realm}:{password}"));
    if alg.is_sess() {
        ha1 = h(&format!("{ha1}:{nonce}:{}", p.cnonce));
    }
    let ha2 = match qop {
        Some("auth-int") => h(&format!("{}:{}:{}", p.method, p.uri, alg.hash_hex(p.body))),
        _ => h(&format!("{}:{}", p.method, p.uri)),
    };
    match qop {
        Some(q) => h(&format!(
            "{ha1}:{nonce}:{:08x}:{}:{q}:{ha2}",
            p.nc, p.cnonce
        )),
        None => h(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

impl Challenge {
    /// The algorithm (absent = MD5), or `UnsupportedAlgorithm`.
    pub fn algorithm_kind(&self) -> Result<Algorithm, AuthError> {
        match self.algorithm.as_deref() {
            None => Ok(Algorithm::Md5),
            Some(a) => {
                Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_string()))
            }
        }
    }

    /// Compute the `response` digest (lowercase hex) and the qop used.
    pub fn response(
        &self,
        creds: &Credentials,
        p: &DigestParams<'_>,
    ) -> Result<(String, Option<&'static str>), AuthError> {
        let alg = self.algorithm_kind()?;
        let qop = if self.qop.is_empty() {
            None
        } else if self.qop.iter().any(|q| q == "auth") {
            Some("auth")
        } else if self.qop.iter().any(|q| q == "auth-int") {
            Some("auth-int")
        } else {
            return Err(AuthError::UnsupportedQop(self.qop.join(",")));
        };
        let response = compute_response(
            alg,
            &creds.username,
            &self.realm,
            &creds.password,
            &self.nonce,
            p,
            qop,
        );
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
    let values = crate::message::header_values(challenge_response, ch_name);
    if values.is_empty() {
        return Err(AuthError::NoChallenge);
    }
    let ch = best_challenge(values)?;
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
    remove_auth_for_realm(request, auth_name, &ch.realm);
    request.headers.push(make_header(auth_name, &value));
    Ok(())
}

/// Pick among several challenges (several `WWW-Authenticate` values): the
/// strongest supported algorithm wins (SHA-512-256 > SHA-256 > MD5), ties go to the
/// first. RFC 8760 §2.4 lets local policy override the server's order; ours is
/// "strongest". Unparseable or unsupported challenges are skipped; if none is
/// usable the first error is returned.
pub fn best_challenge<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Challenge, AuthError> {
    let mut best: Option<(u8, Challenge)> = None;
    let mut first_err = None;
    for v in values {
        let ch = match parse_challenge(v) {
            Ok(c) => c,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        let alg = match ch.algorithm_kind() {
            Ok(a) => a,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        if best.as_ref().is_none_or(|(s, _)| alg.strength() > *s) {
            best = Some((alg.strength(), ch));
        }
    }
    match best {
        Some((_, c)) => Ok(c),
        None => Err(first_err.unwrap_or(AuthError::NoChallenge)),
    }
}

#[derive(Debug, Clone)]
struct ClientEntry {
    proxy: bool,
    challenge: Challenge,
    /// Last nonce count used with `challenge.nonce`.
    nc: u32,
    /// Non-stale challenges received for this realm since the last success.
    fresh_challenges: u32,
}

/// Stateful digest client for one account: remembers the challenges it answered,
/// counts nonce uses (`nc` = 1, 2, 3 … per nonce, RFC 7616 §3.4), re-authorizes later
/// requests with the cached nonce, retries a `stale=true` challenge with the new
/// nonce, and reports [`AuthError::Rejected`] when a realm challenges twice in a row
/// without `stale` (wrong credentials, do not loop).
#[derive(Debug, Clone)]
pub struct DigestClient {
    creds: Credentials,
    entries: Vec<ClientEntry>,
}

/// What [`DigestClient::handle_challenge`] learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeOutcome {
    /// A new challenge: resend the request with credentials.
    Retry,
    /// `stale=true`: the credentials were right, only the nonce expired. Resend
    /// with the new nonce (no need to ask the user again).
    RetryStale,
}

impl DigestClient {
    /// A client with the account's credentials.
    pub fn new(creds: Credentials) -> Self {
        DigestClient {
            creds,
            entries: Vec::new(),
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.creds.username
    }

    /// Take in a 401/407: per realm, the strongest challenge is kept (see
    /// [`best_challenge`]).
    pub fn handle_challenge(&mut self, response: &Response) -> Result<ChallengeOutcome, AuthError> {
        let mut by_realm: Vec<(bool, Vec<&str>, String)> = Vec::new();
        for (proxy, name) in [(false, "WWW-Authenticate"), (true, "Proxy-Authenticate")] {
            for v in header_values(response, name) {
                let realm = parse_challenge(v).map(|c| c.realm).unwrap_or_default();
                match by_realm
                    .iter_mut()
                    .find(|(p, _, r)| *p == proxy && *r == realm)
                {
                    Some((_, vs, _)) => vs.push(v),
                    None => by_realm.push((proxy, vec![v], realm)),
                }
            }
        }
        if by_realm.is_empty() {
            return Err(AuthError::NoChallenge);
        }
        let mut outcome = ChallengeOutcome::RetryStale;
        let mut first_err = None;
        let mut any = false;
        for (proxy, values, _) in by_realm {
            let ch = match best_challenge(values) {
                Ok(c) => c,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            any = true;
            let stale = ch.stale;
            match self
                .entries
                .iter_mut()
                .find(|e| e.proxy == proxy && e.challenge.realm == ch.realm)
            {
                Some(e) => {
                    if !stale {
                        e.fresh_challenges += 1;
                        if e.fresh_challenges >= 2 {
                            return Err(AuthError::Rejected(ch.realm));
                        }
                        outcome = ChallengeOutcome::Retry;
                    }
                    e.challenge = ch;
                    e.nc = 0;
                }
                None => {
                    outcome = ChallengeOutcome::Retry;
                    self.entries.push(ClientEntry {
                        proxy,
                        challenge: ch,
                        nc: 0,
                        fresh_challenges: 1,
                    });
                }
            }
        }
        if !any {
            return Err(first_err.unwrap_or(AuthError::NoChallenge));
        }
        Ok(outcome)
    }

    /// Call after a non-401/407 final response: the credentials worked.
    pub fn on_success(&mut self) {
        for e in &mut self.entries {
            e.fresh_challenges = 0;
        }
    }

    /// Forget every challenge (e.g. after a change of registrar).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// `true` once a challenge has been received.
    pub fn has_challenge(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Add `Authorization` / `Proxy-Authorization` for every known realm to
    /// `request` (replacing earlier ones), bumping each nonce's count.
    pub fn authorize(
        &mut self,
        request: &mut Request,
        rng: &mut dyn RngCore,
    ) -> Result<(), AuthError> {
        let uri = request.uri.to_string();
        let method = request.method.to_string();
        for e in &mut self.entries {
            let cnonce = format!("{:08x}{:08x}", rng.next_u32(), rng.next_u32());
            e.nc = e.nc.saturating_add(1);
            let value = e.challenge.authorization(
                &self.creds,
                &DigestParams {
                    method: &method,
                    uri: &uri,
                    cnonce: &cnonce,
                    nc: e.nc,
                    body: &request.body,
                },
            )?;
            let auth_name = if e.proxy {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            remove_auth_for_realm(request, auth_name, &e.challenge.realm);
            request.headers.push(make_header(auth_name, &value));
        }
        Ok(())
    }
}

fn remove_auth_for_realm(request: &mut Request, auth_name: &str, realm: &str) {
    request.headers.retain(|h| {
        let (n, v) = crate::message::header_name_value(h);
        !(n.eq_ignore_ascii_case(auth_name)
            && split_auth_params(v.split_once(' ').map(|x| x.1).unwrap_or(""))
                .iter()
                .any(|(k, r)| k == "realm" && r == realm))
    })
}

/// Parsed `Authorization` / `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizationParams {
    /// username.
    pub username: String,
    /// realm.
    pub realm: String,
    /// nonce.
    pub nonce: String,
    /// uri.
    pub uri: String,
    /// response (hex).
    pub response: String,
    /// algorithm (absent = MD5).
    pub algorithm: Option<String>,
    /// cnonce.
    pub cnonce: Option<String>,
    /// qop.
    pub qop: Option<String>,
    /// nc, parsed from 8 hex digits.
    pub nc: Option<u32>,
    /// opaque.
    pub opaque: Option<String>,
}

/// Parse a `Digest` credentials value.
pub fn parse_authorization(value: &str) -> Result<AuthorizationParams, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnsupportedScheme(scheme.to_string()));
    }
    let params = split_auth_params(rest);
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let need = |n: &str| get(n).ok_or_else(|| AuthError::Malformed(format!("no {n}")));
    let nc = match get("nc") {
        Some(v) => {
            Some(u32::from_str_radix(&v, 16).map_err(|_| AuthError::Malformed("bad nc".into()))?)
        }
        None => None,
    };
    Ok(AuthorizationParams {
        username: need("username")?,
        realm: need("realm")?,
        nonce: need("nonce")?,
        uri: need("uri")?,
        response: need("response")?,
        algorithm: get("algorithm"),
        cnonce: get("cnonce"),
        qop: get("qop"),
        nc,
        opaque: get("opaque"),
    })
}

/// Result of [`DigestServer::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated.
    Authorized {
        /// The authenticated user.
        username: String,
    },
    /// No credentials for our realm: challenge.
    Missing,
    /// Right credentials, but the nonce expired: challenge with `stale=true`.
    Stale,
    /// The (nonce, nc) pair was already used, or nc did not increase.
    Replay,
    /// Wrong password, unknown user, bad nonce/opaque/uri, unsupported parameters.
    Invalid(String),
}

impl Verdict {
    /// `true` for [`Verdict::Authorized`].
    pub fn is_authorized(&self) -> bool {
        matches!(self, Verdict::Authorized { .. })
    }
}

/// Server side of digest authentication (a Peerline bot acting as an
/// authenticating UAS or a tiny registrar). Nonces are
/// `hex(ms since epoch) . hex(random) . hex(MAC)` where the MAC is SHA-256 over a
/// secret drawn from the injected RNG, so the server recognises its own nonces and
/// their age without storing them; used `nc` values are remembered per nonce until
/// the nonce expires (replays and non-increasing counts are rejected).
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    secret: [u8; 16],
    opaque: String,
    epoch: Instant,
    nonce_ttl: Duration,
    algorithms: Vec<Algorithm>,
    users: HashMap<String, String>,
    /// A random password no user has, hashed for unknown users (equal timing).
    decoy: String,
    seen: HashMap<String, u32>,
}

impl DigestServer {
    /// A server for `realm`; `epoch` is any instant before the first `now`.
    /// Default nonce lifetime 300 s, algorithms SHA-256 then MD5.
    pub fn new(realm: &str, epoch: Instant, rng: &mut dyn RngCore) -> Self {
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        DigestServer {
            realm: realm.to_string(),
            secret,
            opaque: format!("{:08x}{:08x}", rng.next_u32(), rng.next_u32()),
            epoch,
            nonce_ttl: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            users: HashMap::new(),
            decoy: format!("{:08x}{:08x}", rng.next_u32(), rng.next_u32()),
            seen: HashMap::new(),
        }
    }

    /// Nonce lifetime (after which a correct response gets `stale=true`).
    pub fn with_nonce_ttl(mut self, ttl: Duration) -> Self {
        self.nonce_ttl = ttl;
        self
    }

    /// Offered algorithms, one challenge each, in this order (most preferred first).
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    /// Add or replace a user.
    pub fn add_user(&mut self, username: &str, password: &str) {
        self.users
            .insert(username.to_string(), password.to_string());
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, stamp: &str, rand: &str) -> String {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&self.secret);
        data.extend_from_slice(stamp.as_bytes());
        data.push(b':');
        data.extend_from_slice(rand.as_bytes());
        let mut h = Algorithm::Sha256.hash_hex(&data);
        h.truncate(32);
        h
    }

    /// A fresh nonce.
    pub fn new_nonce(&self, now: Instant, rng: &mut dyn RngCore) -> String {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let stamp = format!("{ms:x}");
        let rand = format!("{:08x}{:08x}", rng.next_u32(), rng.next_u32());
        let mac = self.mac(&stamp, &rand);
        format!("{stamp}.{rand}.{mac}")
    }

    /// `Some(age)` if we issued this nonce.
    fn nonce_age(&self, nonce: &str, now: Instant) -> Option<Duration> {
        let mut parts = nonce.split('.');
        let (stamp, rand, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || self.mac(stamp, rand) != mac {
            return None;
        }
        let ms = u64::from_str_radix(stamp, 16).ok()?;
        let issued = self.epoch.checked_add(Duration::from_millis(ms))?;
        Some(now.saturating_duration_since(issued))
    }

    /// Challenge header values (one per algorithm, qop="auth").
    pub fn challenges(&self, now: Instant, rng: &mut dyn RngCore, stale: bool) -> Vec<String> {
        let nonce = self.new_nonce(now, rng);
        self.algorithms
            .iter()
            .map(|a| {
                let mut v = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", opaque=\"{}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    self.opaque,
                    a.as_str()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// A 401 (or 407 with `proxy`) for `request` carrying fresh challenges, with
    /// `stale=true` when `verdict` is [`Verdict::Stale`].
    pub fn challenge_response(
        &self,
        request: &Request,
        now: Instant,
        rng: &mut dyn RngCore,
        to_tag: Option<&str>,
        proxy: bool,
        verdict: &Verdict,
    ) -> Response {
        let (code, name) = if proxy {
            (407, "Proxy-Authenticate")
        } else {
            (401, "WWW-Authenticate")
        };
        let mut resp = crate::message::make_response(request, code, to_tag);
        for v in self.challenges(now, rng, *verdict == Verdict::Stale) {
            resp.headers.push(make_header(name, &v));
        }
        resp
    }

    /// The user name the request's credentials for our realm claim (not verified), for
    /// counting failures per user ([`crate::auth_guard`]) and for logs.
    pub fn claimed_user(&self, request: &Request, proxy: bool) -> Option<String> {
        let name = if proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        header_values(request, name)
            .into_iter()
            .filter_map(|v| parse_authorization(v).ok())
            .find(|p| p.realm == self.realm)
            .map(|p| p.username)
    }

    /// Check the request's `Authorization` (or `Proxy-Authorization`) for our realm.
    pub fn verify(&mut self, request: &Request, now: Instant, proxy: bool) -> Verdict {
        let ttl = self.nonce_ttl;
        let epoch = self.epoch;
        // Forget counters of nonces that expired long ago (they are stale anyway).
        self.seen.retain(|n, _| {
            n.split('.')
                .next()
                .and_then(|s| u64::from_str_radix(s, 16).ok())
                .and_then(|ms| epoch.checked_add(Duration::from_millis(ms)))
                .is_some_and(|t| now.saturating_duration_since(t) <= ttl * 2)
        });
        let name = if proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        let mut found = None;
        for v in header_values(request, name) {
            match parse_authorization(v) {
                Ok(p) if p.realm == self.realm => {
                    found = Some(p);
                    break;
                }
                Ok(_) => {}
                Err(e) => return Verdict::Invalid(e.to_string()),
            }
        }
        let Some(p) = found else {
            return Verdict::Missing;
        };
        let alg = match p.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => match Algorithm::parse(a) {
                Some(x) if self.algorithms.contains(&x) => x,
                _ => return Verdict::Invalid(format!("algorithm {a} not offered")),
            },
        };
        if p.opaque.as_deref() != Some(self.opaque.as_str()) {
            return Verdict::Invalid("opaque mismatch".into());
        }
        if p.uri != request.uri.to_string() {
            return Verdict::Invalid("digest uri differs from Request-URI".into());
        }
        let (Some(qop), Some(cnonce), Some(nc)) = (p.qop.as_deref(), p.cnonce.as_deref(), p.nc)
        else {
            return Verdict::Invalid("qop=auth with cnonce and nc required".into());
        };
        if !qop.eq_ignore_ascii_case("auth") && !qop.eq_ignore_ascii_case("auth-int") {
            return Verdict::Invalid(format!("qop {qop} not offered"));
        }
        let Some(age) = self.nonce_age(&p.nonce, now) else {
            return Verdict::Invalid("unknown nonce".into());
        };
        // An unknown user costs the same hash as a wrong password, and gets the same
        // answer: neither the response nor its timing tells which user names exist.
        let known = self.users.get(&p.username);
        let password = known.map(String::as_str).unwrap_or(&self.decoy);
        let method = request.method.to_string();
        let expected = compute_response(
            alg,
            &p.username,
            &self.realm,
            password,
            &p.nonce,
            &DigestParams {
                method: &method,
                uri: &p.uri,
                cnonce,
                nc,
                body: &request.body,
            },
            Some(if qop.eq_ignore_ascii_case("auth") {
                "auth"
            } else {
                "auth-int"
            }),
        );
        let matches = constant_time_eq(
            expected.as_bytes(),
            p.response.to_ascii_lowercase().as_bytes(),
        );
        if known.is_none() {
            return Verdict::Invalid("unknown user".into());
        }
        if !matches {
            return Verdict::Invalid("wrong response".into());
        }
        if age > self.nonce_ttl {
            return Verdict::Stale;
        }
        let last = self.seen.entry(p.nonce.clone()).or_insert(0);
        if nc <= *last {
            return Verdict::Replay;
        }
        *last = nc;
        Verdict::Authorized {
            username: p.username,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header_values;
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
        let ch = parse_challenge(r#"Digest realm="r", nonce="n", algorithm=SHA-999"#).unwrap();
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

    const RFC7616_CHALLENGE: &str = r#"Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
    const RFC7616_MD5: &str = r#"Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm=MD5,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    fn mufasa() -> Credentials {
        Credentials {
            username: "Mufasa".into(),
            password: "Circle of Life".into(),
        }
    }

    fn rfc7616_params() -> DigestParams<'static> {
        DigestParams {
            method: "GET",
            uri: "/dir/index.html",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            nc: 1,
            body: b"",
        }
    }

    #[test]
    fn rfc7616_section_3_9_1_sha256_and_md5() {
        let ch = parse_challenge(RFC7616_CHALLENGE).unwrap();
        assert_eq!(ch.algorithm_kind().unwrap(), Algorithm::Sha256);
        let (resp, qop) = ch.response(&mufasa(), &rfc7616_params()).unwrap();
        assert_eq!(
            resp,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(qop, Some("auth"));
        let v = ch.authorization(&mufasa(), &rfc7616_params()).unwrap();
        assert!(v.contains("algorithm=SHA-256"), "{v}");
        assert!(v.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
        let md5 = parse_challenge(RFC7616_MD5).unwrap();
        let (resp, _) = md5.response(&mufasa(), &rfc7616_params()).unwrap();
        assert_eq!(resp, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn strongest_of_several_challenges_wins() {
        let ch = best_challenge([
            RFC7616_MD5,
            "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-1024",
            RFC7616_CHALLENGE,
            "Basic realm=\"x\"",
        ])
        .unwrap();
        assert_eq!(ch.algorithm.as_deref(), Some("SHA-256"));
        // Only unsupported ones: the first error.
        assert_eq!(
            best_challenge(["Basic realm=\"x\""]),
            Err(AuthError::UnsupportedScheme("Basic".into()))
        );
        assert_eq!(best_challenge([]), Err(AuthError::NoChallenge));
    }

    fn register() -> Request {
        crate::message::RequestBuilder::new(rsip::Method::Register, "sip:example.com")
            .via("UDP", "192.0.2.1", "z9hG4bK1")
            .from("sip:alice@example.com", None, "t")
            .to("sip:alice@example.com", None)
            .call_id("c")
            .cseq(1)
            .build()
            .unwrap()
    }

    fn nc_of(req: &Request, name: &str) -> u32 {
        parse_authorization(header_values(req, name)[0])
            .unwrap()
            .nc
            .unwrap()
    }

    #[test]
    fn server_round_trip_sha256_md5_nonce_count_replay_and_stale() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let mut server =
            DigestServer::new("example.com", t0, &mut rng).with_nonce_ttl(Duration::from_secs(30));
        server.add_user("alice", "pw");
        let req = register();
        assert_eq!(server.verify(&req, t0, false), Verdict::Missing);
        let challenge =
            server.challenge_response(&req, t0, &mut rng, Some("s"), false, &Verdict::Missing);
        assert_eq!(challenge.status_code.code(), 401);
        assert_eq!(header_values(&challenge, "WWW-Authenticate").len(), 2);

        let mut client = DigestClient::new(Credentials {
            username: "alice".into(),
            password: "pw".into(),
        });
        assert_eq!(
            client.handle_challenge(&challenge),
            Ok(ChallengeOutcome::Retry)
        );
        let mut r1 = register();
        client.authorize(&mut r1, &mut rng).unwrap();
        let auth = header_values(&r1, "Authorization")[0].to_string();
        assert!(
            auth.contains("algorithm=SHA-256"),
            "strongest chosen: {auth}"
        );
        assert_eq!(nc_of(&r1, "Authorization"), 1);
        assert!(server.verify(&r1, t0, false).is_authorized());
        // The same (nonce, nc) again is a replay.
        assert_eq!(server.verify(&r1, t0, false), Verdict::Replay);
        client.on_success();
        // Next request reuses the nonce with nc=2.
        let mut r2 = register();
        client.authorize(&mut r2, &mut rng).unwrap();
        assert_eq!(nc_of(&r2, "Authorization"), 2);
        assert!(server
            .verify(&r2, t0 + Duration::from_secs(1), false)
            .is_authorized());
        // After the nonce lifetime: stale (the digest itself is right).
        let mut r3 = register();
        client.authorize(&mut r3, &mut rng).unwrap();
        let late = t0 + Duration::from_secs(31);
        assert_eq!(server.verify(&r3, late, false), Verdict::Stale);
        let again = server.challenge_response(&r3, late, &mut rng, None, false, &Verdict::Stale);
        assert!(header_values(&again, "WWW-Authenticate")[0].contains("stale=true"));
        assert_eq!(
            client.handle_challenge(&again),
            Ok(ChallengeOutcome::RetryStale)
        );
        let mut r4 = register();
        client.authorize(&mut r4, &mut rng).unwrap();
        assert_eq!(nc_of(&r4, "Authorization"), 1, "new nonce restarts nc");
        assert!(server.verify(&r4, late, false).is_authorized());

        // MD5-only server.
        let mut md5 =
            DigestServer::new("example.com", t0, &mut rng).with_algorithms(&[Algorithm::Md5]);
        md5.add_user("alice", "pw");
        let ch = md5.challenge_response(&req, t0, &mut rng, None, true, &Verdict::Missing);
        assert_eq!(ch.status_code.code(), 407);
        let mut c2 = DigestClient::new(Credentials {
            username: "alice".into(),
            password: "pw".into(),
        });
        c2.handle_challenge(&ch).unwrap();
        let mut r5 = register();
        c2.authorize(&mut r5, &mut rng).unwrap();
        assert!(header_values(&r5, "Proxy-Authorization")[0].contains("algorithm=MD5"));
        assert!(md5.verify(&r5, t0, true).is_authorized());
        // The SHA-256 server never offered... it does offer MD5 too, but not this nonce.
        assert!(matches!(server.verify(&r1, t0, false), Verdict::Replay));
    }

    #[test]
    fn server_rejects_wrong_password_forged_nonce_and_tampering() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let mut server = DigestServer::new("example.com", t0, &mut rng);
        server.add_user("alice", "pw");
        let req = register();
        let ch = server.challenge_response(&req, t0, &mut rng, None, false, &Verdict::Missing);
        let mut bad = DigestClient::new(Credentials {
            username: "alice".into(),
            password: "nope".into(),
        });
        bad.handle_challenge(&ch).unwrap();
        let mut r = register();
        bad.authorize(&mut r, &mut rng).unwrap();
        assert_eq!(
            server.verify(&r, t0, false),
            Verdict::Invalid("wrong response".into())
        );
        // A second fresh challenge right after answering one: credentials rejected.
        let ch2 = server.challenge_response(&r, t0, &mut rng, None, false, &Verdict::Missing);
        assert_eq!(
            bad.handle_challenge(&ch2),
            Err(AuthError::Rejected("example.com".into()))
        );

        // A nonce we did not issue (valid digest over it) is invalid.
        let forged = parse_challenge(
            r#"Digest realm="example.com", nonce="1.2.3", qop="auth", algorithm=SHA-256"#,
        )
        .unwrap();
        let mut r = register();
        let v = forged
            .authorization(
                &Credentials {
                    username: "alice".into(),
                    password: "pw".into(),
                },
                &DigestParams {
                    method: "REGISTER",
                    uri: "sip:example.com",
                    cnonce: "c",
                    nc: 1,
                    body: b"",
                },
            )
            .unwrap();
        r.headers.push(make_header("Authorization", &v));
        assert!(matches!(server.verify(&r, t0, false), Verdict::Invalid(_)));
        // Garbage never panics.
        for g in ["Digest", "Digest nc=zz", "Basic abc", "Digest username=\"a\", realm=\"example.com\", nonce=\"x\", uri=\"u\", response=\"r\", nc=ffffffffff"] {
            let mut r = register();
            r.headers.push(make_header("Authorization", g));
            assert!(!server.verify(&r, t0, false).is_authorized());
        }
    }

    /// What a guesser learns (issue 10): an unknown user and a wrong password both get a
    /// fresh 401 of the same shape (no `stale`); a stale nonce with a wrong password is
    /// not "stale" (that would confirm nothing, but RFC 7616 §3.3 reserves `stale=true`
    /// for a valid digest); a lower or repeated `nc` on a valid nonce is a replay.
    #[test]
    fn unknown_user_wrong_password_expired_nonce_and_nc_rules() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let t0 = Instant::now();
        let mut server =
            DigestServer::new("example.com", t0, &mut rng).with_nonce_ttl(Duration::from_secs(30));
        server.add_user("alice", "pw");
        let req = register();
        let ch = server.challenge_response(&req, t0, &mut rng, None, false, &Verdict::Missing);
        let answer = |user: &str, password: &str, rng: &mut rand::rngs::StdRng| {
            let mut c = DigestClient::new(Credentials {
                username: user.into(),
                password: password.into(),
            });
            c.handle_challenge(&ch).unwrap();
            let mut r = register();
            c.authorize(&mut r, rng).unwrap();
            r
        };
        let unknown = answer("mallory", "pw", &mut rng);
        let wrong = answer("alice", "nope", &mut rng);
        assert_eq!(
            server.claimed_user(&unknown, false).as_deref(),
            Some("mallory")
        );
        assert_eq!(server.claimed_user(&req, false), None);
        let (vu, vw) = (
            server.verify(&unknown, t0, false),
            server.verify(&wrong, t0, false),
        );
        assert!(matches!(vu, Verdict::Invalid(_)) && matches!(vw, Verdict::Invalid(_)));
        let shape = |r: &Request, v: &Verdict, rng: &mut rand::rngs::StdRng| {
            let resp = server.challenge_response(r, t0, rng, Some("tag"), false, v);
            let headers: Vec<String> = resp
                .headers
                .iter()
                .map(|h| h.to_string().split(':').next().unwrap_or("").to_string())
                .collect();
            let stale = header_values(&resp, "WWW-Authenticate")
                .iter()
                .any(|v| v.contains("stale"));
            (resp.status_code.code(), headers, stale)
        };
        assert_eq!(shape(&unknown, &vu, &mut rng), shape(&wrong, &vw, &mut rng));
        assert!(!shape(&unknown, &vu, &mut rng).2);
        // Expired nonce: a right password is stale, a wrong one is simply invalid.
        let late = t0 + Duration::from_secs(31);
        assert!(matches!(
            server.verify(&wrong, late, false),
            Verdict::Invalid(_)
        ));
        let right = answer("alice", "pw", &mut rng);
        assert_eq!(server.verify(&right, late, false), Verdict::Stale);
        // nc 5 then nc 3 on the same nonce: the lower count is a replay.
        let mut c = DigestClient::new(Credentials {
            username: "alice".into(),
            password: "pw".into(),
        });
        c.handle_challenge(&ch).unwrap();
        let mut reqs = Vec::new();
        for _ in 0..5 {
            let mut r = register();
            c.authorize(&mut r, &mut rng).unwrap();
            reqs.push(r);
        }
        assert!(server.verify(&reqs[4], t0, false).is_authorized());
        assert_eq!(server.verify(&reqs[2], t0, false), Verdict::Replay);
        assert_eq!(server.verify(&reqs[4], t0, false), Verdict::Replay);
    }
}
