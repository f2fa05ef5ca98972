//! Sans-IO DTLS-SRTP (RFC 5763/5764) on OpenSSL: certificate, handshake driven by datagrams
//! and timeouts, fingerprint check, SRTP key export.
//!
//! OpenSSL runs the DTLS state machine against in-memory datagram queues (no socket). One
//! caveat of building on OpenSSL without `unsafe`: its retransmission timer (1 s doubling to
//! 60 s) reads the wall clock itself. [`DtlsEndpoint::poll_timeout`] mirrors that schedule so
//! the driver knows when to call [`DtlsEndpoint::handle_timeout`], but a simulated clock
//! running faster than real time does not make OpenSSL retransmit sooner.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    ErrorCode, Ssl, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::{X509NameBuilder, X509Ref, X509};
use peerline_sdp::{Fingerprint, Setup};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::context::SrtpPair;
use crate::demux::{classify, PacketKind};
use crate::error::{Error, Result};
use crate::suite::SrtpSuite;

fn setup_err(e: impl fmt::Display) -> Error {
    Error::DtlsSetup(e.to_string())
}

/// Colon-separated upper-case hex, as in `a=fingerprint`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn digest_for(hash: &str) -> Option<MessageDigest> {
    match hash.to_ascii_lowercase().as_str() {
        "sha-1" => Some(MessageDigest::sha1()),
        "sha-224" => Some(MessageDigest::sha224()),
        "sha-256" => Some(MessageDigest::sha256()),
        "sha-384" => Some(MessageDigest::sha384()),
        "sha-512" => Some(MessageDigest::sha512()),
        // md2/md5 are forbidden by RFC 8122 §5; unknown names cannot be checked.
        _ => None,
    }
}

fn fingerprint_of(cert: &X509Ref, hash: &str) -> Option<Fingerprint> {
    let md = digest_for(hash)?;
    let bytes = cert.digest(md).ok()?.to_vec();
    Some(Fingerprint {
        hash: hash.to_ascii_lowercase(),
        bytes,
    })
}

/// Checks a certificate against the `a=fingerprint` values (RFC 8122 §5: one matching
/// fingerprint with a hash we implement is enough).
fn check_fingerprint(cert: &X509Ref, expected: &[Fingerprint]) -> std::result::Result<(), String> {
    let mut usable = 0;
    let mut seen = None;
    for fp in expected {
        if let Some(actual) = fingerprint_of(cert, &fp.hash) {
            usable += 1;
            if actual.bytes == fp.bytes {
                return Ok(());
            }
            seen.get_or_insert(actual);
        }
    }
    if usable == 0 {
        return Err(format!(
            "no a=fingerprint uses a hash we can check (have: {})",
            expected
                .iter()
                .map(|f| f.hash.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let actual = seen.map_or_else(String::new, |a| format!("{} {}", a.hash, hex(&a.bytes)));
    Err(format!(
        "DTLS certificate fingerprint mismatch: peer presented {actual}, \
         SDP a=fingerprint says {}",
        expected
            .iter()
            .map(|f| format!("{} {}", f.hash, hex(&f.bytes)))
            .collect::<Vec<_>>()
            .join(" or ")
    ))
}

/// A self-signed ECDSA P-256 certificate for DTLS-SRTP, one per phone (or per call).
///
/// `Debug` shows the fingerprint, never the private key.
#[derive(Clone)]
pub struct DtlsCert {
    cert: X509,
    key: PKey<Private>,
    fingerprint: Fingerprint,
}

impl fmt::Debug for DtlsCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsCert")
            .field(
                "fingerprint",
                &format_args!("{} {}", self.fingerprint.hash, hex(&self.fingerprint.bytes)),
            )
            .finish_non_exhaustive()
    }
}

impl DtlsCert {
    /// Generates a key pair and a self-signed certificate (CN `peerline`, valid from a day
    /// ago for a year). The private scalar and the serial come from `rng` (the OS RNG in
    /// production, a seeded one in tests); OpenSSL's own DRBG supplies the ECDSA signing
    /// nonce.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Self> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(setup_err)?;
        let mut ctx = BigNumContext::new().map_err(setup_err)?;
        let mut order = BigNum::new().map_err(setup_err)?;
        group.order(&mut order, &mut ctx).map_err(setup_err)?;
        let mut scalar = None;
        for _ in 0..64 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(bytes.as_mut());
            let d = BigNum::from_slice(bytes.as_ref()).map_err(setup_err)?;
            if d.num_bits() > 0 && d.ucmp(&order) == std::cmp::Ordering::Less {
                scalar = Some(d);
                break;
            }
        }
        let d = scalar.ok_or_else(|| setup_err("RNG produced no valid P-256 scalar"))?;
        let mut public = EcPoint::new(&group).map_err(setup_err)?;
        public
            .mul_generator2(&group, &d, &mut ctx)
            .map_err(setup_err)?;
        let ec = EcKey::from_private_components(&group, &d, &public).map_err(setup_err)?;
        ec.check_key().map_err(setup_err)?;
        let key = PKey::from_ec_key(ec).map_err(setup_err)?;

        let mut name = X509NameBuilder::new().map_err(setup_err)?;
        name.append_entry_by_nid(Nid::COMMONNAME, "peerline")
            .map_err(setup_err)?;
        let name = name.build();
        let mut serial = [0u8; 8];
        rng.fill_bytes(&mut serial);
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        let serial = BigNum::from_slice(&serial)
            .and_then(|b| b.to_asn1_integer())
            .map_err(setup_err)?;
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let not_before =
            Asn1Time::from_unix(i64::try_from(unix_now.saturating_sub(86_400)).unwrap_or(0) as _)
                .map_err(setup_err)?;
        let not_after = Asn1Time::days_from_now(365).map_err(setup_err)?;

        let mut b = X509::builder().map_err(setup_err)?;
        b.set_version(2).map_err(setup_err)?;
        b.set_serial_number(&serial).map_err(setup_err)?;
        b.set_subject_name(&name).map_err(setup_err)?;
        b.set_issuer_name(&name).map_err(setup_err)?;
        b.set_pubkey(&key).map_err(setup_err)?;
        b.set_not_before(&not_before).map_err(setup_err)?;
        b.set_not_after(&not_after).map_err(setup_err)?;
        b.sign(&key, MessageDigest::sha256()).map_err(setup_err)?;
        Self::from_parts(b.build(), key)
    }

    /// Loads a certificate and its private key from PEM (to keep one identity per phone).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let cert = X509::from_pem(cert_pem).map_err(setup_err)?;
        let key = PKey::private_key_from_pem(key_pem).map_err(setup_err)?;
        Self::from_parts(cert, key)
    }

    /// The certificate and private key as PEM. The key is wiped from memory when dropped.
    pub fn to_pem(&self) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>)> {
        let cert = self.cert.to_pem().map_err(setup_err)?;
        let key = Zeroizing::new(self.key.private_key_to_pem_pkcs8().map_err(setup_err)?);
        Ok((cert, key))
    }

    fn from_parts(cert: X509, key: PKey<Private>) -> Result<Self> {
        let pk = cert.public_key().map_err(setup_err)?;
        if !pk.public_eq(&key) {
            return Err(setup_err("certificate and private key do not match"));
        }
        let fingerprint = fingerprint_of(&cert, "sha-256")
            .ok_or_else(|| setup_err("cannot hash the certificate"))?;
        Ok(DtlsCert {
            cert,
            key,
            fingerprint,
        })
    }

    /// The sha-256 fingerprint to put in `a=fingerprint` (`LocalCapabilities.fingerprint`).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The fingerprint with another hash (`sha-1`, `sha-384`, …), if we implement it.
    pub fn fingerprint_with(&self, hash: &str) -> Option<Fingerprint> {
        fingerprint_of(&self.cert, hash)
    }
}

/// Our DTLS role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// Sends the ClientHello (`a=setup:active`).
    Client,
    /// Waits for it (`a=setup:passive`).
    Server,
}

impl DtlsRole {
    /// The role for our negotiated `a=setup` (`Security::Dtls.local_setup`): `active` is the
    /// client, `passive` the server; `actpass`/`holdconn` are not a role.
    pub fn from_setup(local_setup: Setup) -> Option<DtlsRole> {
        match local_setup {
            Setup::Active => Some(DtlsRole::Client),
            Setup::Passive => Some(DtlsRole::Server),
            Setup::ActPass | Setup::HoldConn => None,
        }
    }
}

/// Tunables of a DTLS endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsConfig {
    /// SRTP profiles offered in `use_srtp`, preferred first (only suites with a DTLS-SRTP
    /// profile are used).
    pub srtp_suites: Vec<SrtpSuite>,
    /// Largest datagram OpenSSL may send.
    pub mtu: u32,
    /// The handshake fails with a reason if not complete this long after creation.
    pub handshake_timeout: Duration,
}

impl Default for DtlsConfig {
    fn default() -> Self {
        DtlsConfig {
            srtp_suites: SrtpSuite::DTLS_DEFAULT.to_vec(),
            mtu: 1200,
            handshake_timeout: Duration::from_secs(20),
        }
    }
}

/// The SRTP keys a DTLS-SRTP handshake produced (RFC 5764 §4.2). `Debug` hides them.
pub struct DtlsSrtpKeys {
    /// The negotiated SRTP protection profile.
    pub suite: SrtpSuite,
    /// The fingerprint (our list's hash) of the certificate the peer presented.
    pub remote_fingerprint: Option<Fingerprint>,
    local: Zeroizing<Vec<u8>>,
    remote: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for DtlsSrtpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsSrtpKeys")
            .field("suite", &self.suite)
            .field("remote_fingerprint", &self.remote_fingerprint)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl DtlsSrtpKeys {
    /// Our write key||salt (protects what we send).
    pub fn local_key_salt(&self) -> &[u8] {
        &self.local
    }

    /// The peer's write key||salt (unprotects what we receive).
    pub fn remote_key_salt(&self) -> &[u8] {
        &self.remote
    }

    /// The outbound/inbound SRTP contexts for these keys.
    pub fn srtp_pair(&self) -> Result<SrtpPair> {
        SrtpPair::new(self.suite, &self.local, &self.remote)
    }
}

/// What a DTLS endpoint reports.
#[derive(Debug)]
pub enum DtlsEvent {
    /// Handshake complete, peer certificate matches `a=fingerprint`: start SRTP.
    Connected(DtlsSrtpKeys),
    /// The handshake failed (fingerprint mismatch, alert from the peer, timeout, no common
    /// SRTP profile…). End the call with this reason; no media must be sent.
    Failed {
        /// Human-readable reason.
        reason: String,
    },
    /// The peer closed the DTLS association (close_notify or a fatal alert after the
    /// handshake).
    Closed {
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct DatagramIo {
    incoming: VecDeque<Vec<u8>>,
    outgoing: VecDeque<Vec<u8>>,
    written: u64,
}

const MAX_QUEUED: usize = 64;

impl Read for DatagramIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.pop_front() {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for DatagramIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.outgoing.len() >= MAX_QUEUED {
            self.outgoing.pop_front();
        }
        self.outgoing.push_back(buf.to_vec());
        self.written += 1;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Shared {
    remote_fingerprints: Vec<Fingerprint>,
    failure: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    /// Handshake done, waiting for `set_remote_fingerprints` to check the certificate.
    AwaitingFingerprint,
    Connected,
    Done,
}

const INITIAL_RTO: Duration = Duration::from_secs(1);
const MAX_RTO: Duration = Duration::from_secs(60);
/// Re-check interval when our deadline passed but OpenSSL's own clock has not yet.
const RECHECK: Duration = Duration::from_millis(50);

/// One DTLS-SRTP association, sans-IO: feed it datagrams and timeouts, take datagrams to
/// send and events.
pub struct DtlsEndpoint {
    role: DtlsRole,
    state: State,
    stream: SslStream<DatagramIo>,
    shared: Arc<Mutex<Shared>>,
    events: VecDeque<DtlsEvent>,
    rto: Duration,
    retransmit_at: Option<Instant>,
    give_up_at: Instant,
    suites: Vec<SrtpSuite>,
    ignored: u64,
}

impl fmt::Debug for DtlsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsEndpoint")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("retransmit_at", &self.retransmit_at)
            .finish_non_exhaustive()
    }
}

impl DtlsEndpoint {
    /// A DTLS endpoint with default [`DtlsConfig`]. A client queues its ClientHello at once
    /// (take it with [`DtlsEndpoint::poll_transmit`]). `remote_fingerprints` may be empty
    /// when the peer's ClientHello arrives before the SDP answer: the keys are then held
    /// back until [`DtlsEndpoint::set_remote_fingerprints`].
    pub fn new(
        cert: &DtlsCert,
        role: DtlsRole,
        remote_fingerprints: Vec<Fingerprint>,
        now: Instant,
    ) -> Result<Self> {
        Self::with_config(cert, role, remote_fingerprints, now, &DtlsConfig::default())
    }

    /// [`DtlsEndpoint::new`] with explicit configuration.
    pub fn with_config(
        cert: &DtlsCert,
        role: DtlsRole,
        remote_fingerprints: Vec<Fingerprint>,
        now: Instant,
        config: &DtlsConfig,
    ) -> Result<Self> {
        let suites: Vec<SrtpSuite> = config
            .srtp_suites
            .iter()
            .copied()
            .filter(|s| s.dtls_profile_name().is_some())
            .collect();
        let profiles = suites
            .iter()
            .filter_map(|s| s.dtls_profile_name())
            .collect::<Vec<_>>()
            .join(":");
        if profiles.is_empty() {
            return Err(setup_err("no SRTP suite with a DTLS-SRTP profile"));
        }
        let mut ctx = SslContextBuilder::new(SslMethod::dtls()).map_err(setup_err)?;
        ctx.set_certificate(&cert.cert).map_err(setup_err)?;
        ctx.set_private_key(&cert.key).map_err(setup_err)?;
        ctx.check_private_key().map_err(setup_err)?;
        ctx.set_tlsext_use_srtp(&profiles).map_err(setup_err)?;
        ctx.set_options(SslOptions::NO_QUERY_MTU);
        let ctx = ctx.build();

        let shared = Arc::new(Mutex::new(Shared {
            remote_fingerprints,
            failure: None,
        }));
        let mut ssl = Ssl::new(&ctx).map_err(setup_err)?;
        ssl.set_mtu(config.mtu).map_err(setup_err)?;
        let cb_shared = Arc::clone(&shared);
        // Self-signed certificates: the chain check is meaningless, the fingerprint from
        // the (integrity-protected) SDP is the authentication (RFC 5763 §5).
        ssl.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            move |_preverify_ok, store| {
                if store.error_depth() != 0 {
                    return true;
                }
                let Some(cert) = store.current_cert() else {
                    return false;
                };
                let Ok(mut shared) = cb_shared.lock() else {
                    return false;
                };
                if shared.remote_fingerprints.is_empty() {
                    return true; // checked when the answer brings them
                }
                match check_fingerprint(cert, &shared.remote_fingerprints) {
                    Ok(()) => true,
                    Err(reason) => {
                        shared.failure.get_or_insert(reason);
                        false
                    }
                }
            },
        );
        match role {
            DtlsRole::Client => ssl.set_connect_state(),
            DtlsRole::Server => ssl.set_accept_state(),
        }
        let stream = SslStream::new(ssl, DatagramIo::default()).map_err(setup_err)?;
        let mut ep = DtlsEndpoint {
            role,
            state: State::Handshaking,
            stream,
            shared,
            events: VecDeque::new(),
            rto: INITIAL_RTO,
            retransmit_at: None,
            give_up_at: now + config.handshake_timeout,
            suites,
            ignored: 0,
        };
        if role == DtlsRole::Client {
            ep.drive(now, false);
        }
        Ok(ep)
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// True once [`DtlsEvent::Connected`] has been emitted.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Datagrams handed to us that were not DTLS (first byte outside 20..=63) and ignored.
    pub fn ignored_datagrams(&self) -> u64 {
        self.ignored
    }

    /// Supplies (or replaces) the peer's `a=fingerprint` values, e.g. when the SDP answer
    /// arrives after the peer's ClientHello. If the handshake already completed, the
    /// certificate is checked now and `Connected` or `Failed` follows.
    pub fn set_remote_fingerprints(&mut self, fingerprints: Vec<Fingerprint>) {
        if let Ok(mut s) = self.shared.lock() {
            s.remote_fingerprints = fingerprints;
        }
        if self.state == State::AwaitingFingerprint {
            self.finish_handshake();
        }
    }

    /// Feeds one received datagram classified as DTLS.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let Some(&first) = datagram.first() else {
            self.ignored += 1;
            return;
        };
        if classify(first) != PacketKind::Dtls || self.state == State::Done {
            self.ignored += 1;
            return;
        }
        let io = self.stream.get_mut();
        if io.incoming.len() < MAX_QUEUED {
            io.incoming.push_back(datagram.to_vec());
        }
        self.drive(now, false);
    }

    /// The next datagram to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.get_mut().outgoing.pop_front()
    }

    /// When [`DtlsEndpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshaking => Some(
                self.retransmit_at
                    .map_or(self.give_up_at, |t| t.min(self.give_up_at)),
            ),
            State::AwaitingFingerprint => Some(self.give_up_at),
            State::Connected | State::Done => None,
        }
    }

    /// Retransmits the last flight when its timer expired (RFC 6347 §4.2.4), or fails the
    /// handshake once the overall handshake timeout passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Handshaking | State::AwaitingFingerprint if now >= self.give_up_at => {
                self.fail(if self.state == State::AwaitingFingerprint {
                    "DTLS handshake done but the peer's a=fingerprint never arrived".into()
                } else {
                    "DTLS handshake timed out".into()
                });
            }
            State::Handshaking if self.retransmit_at.is_some_and(|t| now >= t) => {
                self.drive(now, true);
            }
            _ => {}
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<DtlsEvent> {
        self.events.pop_front()
    }

    /// Sends close_notify (at the end of the call) and stops.
    pub fn close(&mut self) {
        if matches!(self.state, State::Connected | State::AwaitingFingerprint) {
            let _ = self.stream.shutdown();
        }
        self.state = State::Done;
        self.retransmit_at = None;
    }

    fn fail(&mut self, reason: String) {
        self.state = State::Done;
        self.retransmit_at = None;
        self.events.push_back(DtlsEvent::Failed { reason });
    }

    fn drive(&mut self, now: Instant, timer: bool) {
        let written_before = self.stream.get_ref().written;
        match self.state {
            State::Handshaking => match self.stream.do_handshake() {
                Ok(()) => {
                    self.retransmit_at = None;
                    self.finish_handshake();
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                    let wrote = self.stream.get_ref().written > written_before;
                    if wrote {
                        self.rto = if timer {
                            (self.rto * 2).min(MAX_RTO)
                        } else {
                            INITIAL_RTO
                        };
                        self.retransmit_at = Some(now + self.rto);
                    } else if timer {
                        // Our deadline passed before OpenSSL's clock did: look again soon.
                        self.retransmit_at = Some(now + RECHECK);
                    }
                }
                Err(e) => {
                    let ours = self.shared.lock().ok().and_then(|mut s| s.failure.take());
                    let reason = ours.unwrap_or_else(|| describe(&e));
                    self.fail(reason);
                }
            },
            State::Connected | State::AwaitingFingerprint => self.read_after_handshake(),
            State::Done => {}
        }
    }

    /// After the handshake: lets OpenSSL answer retransmitted flights (our last flight was
    /// lost) and notice close_notify / alerts. Application data is not used by DTLS-SRTP.
    fn read_after_handshake(&mut self) {
        let mut buf = [0u8; 2048];
        loop {
            match self.stream.ssl_read(&mut buf) {
                Ok(_) => continue,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                    self.state = State::Done;
                    self.events.push_back(DtlsEvent::Closed {
                        reason: "peer sent close_notify".into(),
                    });
                    return;
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                    return
                }
                Err(e) => {
                    self.state = State::Done;
                    self.events.push_back(DtlsEvent::Closed {
                        reason: describe(&e),
                    });
                    return;
                }
            }
        }
    }

    fn finish_handshake(&mut self) {
        let expected = self
            .shared
            .lock()
            .map(|s| s.remote_fingerprints.clone())
            .unwrap_or_default();
        let Some(peer) = self.stream.ssl().peer_certificate() else {
            self.fail("peer presented no certificate".into());
            return;
        };
        if expected.is_empty() {
            self.state = State::AwaitingFingerprint;
            return;
        }
        if let Err(reason) = check_fingerprint(&peer, &expected) {
            let _ = self.stream.shutdown();
            self.fail(reason);
            return;
        }
        let remote_fingerprint = expected
            .iter()
            .find_map(|f| fingerprint_of(&peer, &f.hash).filter(|a| a.bytes == f.bytes));
        match self.export_keys() {
            Ok((suite, local, remote)) => {
                self.state = State::Connected;
                self.events.push_back(DtlsEvent::Connected(DtlsSrtpKeys {
                    suite,
                    remote_fingerprint,
                    local,
                    remote,
                }));
            }
            Err(reason) => {
                let _ = self.stream.shutdown();
                self.fail(reason);
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn export_keys(
        &self,
    ) -> std::result::Result<(SrtpSuite, Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>), String> {
        let ssl = self.stream.ssl();
        let profile = ssl
            .selected_srtp_profile()
            .ok_or("peer did not negotiate the DTLS use_srtp extension")?;
        let name = profile.name();
        let suite = SrtpSuite::from_dtls_profile_name(name)
            .filter(|s| self.suites.contains(s))
            .ok_or_else(|| format!("unsupported SRTP profile {name}"))?;
        let (k, s) = (suite.key_len(), suite.salt_len());
        let mut material = Zeroizing::new(vec![0u8; 2 * (k + s)]);
        ssl.export_keying_material(&mut material, "EXTRACTOR-dtls_srtp", None)
            .map_err(|e| format!("DTLS-SRTP key export failed: {e}"))?;
        // client_write_key | server_write_key | client_write_salt | server_write_salt
        let (ck, rest) = material.split_at(k);
        let (sk, rest) = rest.split_at(k);
        let (cs, ss) = rest.split_at(s);
        let mut client = Zeroizing::new(Vec::with_capacity(k + s));
        client.extend_from_slice(ck);
        client.extend_from_slice(cs);
        let mut server = Zeroizing::new(Vec::with_capacity(k + s));
        server.extend_from_slice(sk);
        server.extend_from_slice(ss);
        Ok(match self.role {
            DtlsRole::Client => (suite, client, server),
            DtlsRole::Server => (suite, server, client),
        })
    }
}

fn describe(e: &openssl::ssl::Error) -> String {
    let detail = e
        .ssl_error()
        .and_then(|stack| {
            stack
                .errors()
                .iter()
                .find_map(|x| x.reason().map(str::to_owned))
        })
        .unwrap_or_else(|| e.to_string());
    if detail.contains("unknown ca") || detail.contains("certificate") {
        format!(
            "DTLS handshake aborted by the peer: {detail} \
             (it rejected our certificate: fingerprint mismatch on its side?)"
        )
    } else if detail.contains("alert") {
        format!("DTLS handshake aborted by the peer: {detail}")
    } else {
        format!("DTLS handshake failed: {detail}")
    }
}
