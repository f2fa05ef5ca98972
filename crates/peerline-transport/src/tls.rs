//! TLS for SIP (RFC 3261 §26.2, RFC 5630) on rustls with the ring provider: server and
//! client configurations from PEM files, verification against the system roots or a
//! configured CA file, optional SHA-256 pinning of the server certificate, optional
//! client certificates, and failures turned into clear [`TlsError`]s.

use crate::config::{TlsClientConfig, TlsServerConfig};
use crate::error::TlsError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

/// SHA-256 of a DER certificate: a pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin(pub [u8; 32]);

impl CertPin {
    /// The pin of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        CertPin(Sha256::digest(der).into())
    }
}

impl fmt::Display for CertPin {
    /// Upper-case hex, colon-separated (as `openssl x509 -fingerprint -sha256` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertPin({self})")
    }
}

/// A pin string that is not 32 bytes of hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SHA-256 pin {0:?}: expected 64 hex digits, colons allowed")]
pub struct PinParseError(pub String);

impl FromStr for CertPin {
    type Err = PinParseError;

    /// 64 hex digits, any case, optionally separated by `:` and optionally prefixed by
    /// `sha256:` or `sha-256 ` (the SDP fingerprint form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PinParseError(s.to_string());
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let body = lower
            .strip_prefix("sha256:")
            .or_else(|| lower.strip_prefix("sha-256 "))
            .unwrap_or(&lower);
        let hex: Vec<u8> = body.bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(err)?;
            let lo = hex_val(pair[1]).ok_or_else(err)?;
            out[i] = hi << 4 | lo;
        }
        Ok(CertPin(out))
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The crypto provider: ring (already in the build for DTLS/ICE), chosen explicitly so
/// another crate enabling aws-lc-rs cannot make the process-wide default ambiguous.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(load_certs(path)?);
    if added == 0 {
        return Err(format!(
            "no usable CA certificate in {} ({ignored} unparsable)",
            path.display()
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(format!(
            "the system has no trusted root certificates{why}; set a CA file"
        ));
    }
    Ok(roots)
}

/// A built client configuration plus what its trust anchors are, for error messages.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// The rustls configuration.
    pub config: Arc<rustls::ClientConfig>,
    /// "the system roots" or "CA file …".
    pub anchors: String,
}

/// Builds the client side: trust anchors, pins, client certificate.
pub fn client_config(cfg: &TlsClientConfig) -> Result<ClientTls, String> {
    let (roots, anchors) = match &cfg.ca_file {
        Some(path) => (
            roots_from_file(path)?,
            format!("CA file {}", path.display()),
        ),
        None => (system_roots()?, "the system roots".to_string()),
    };
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("verifier: {e}"))?;
    let verifier = Arc::new(PinningVerifier {
        inner,
        pins: cfg.pins.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &cfg.client_cert {
        Some(cc) => builder
            .with_client_auth_cert(load_certs(&cc.cert_file)?, load_key(&cc.key_file)?)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(ClientTls {
        config: Arc::new(config),
        anchors,
    })
}

/// Builds the server side from PEM files; with `client_ca_file`, client certificates
/// issued by it are required.
pub fn server_config(cfg: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?;
    let builder = match &cfg.client_ca_file {
        Some(path) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots_from_file(path)?),
                provider,
            )
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(load_certs(&cfg.cert_file)?, load_key(&cfg.key_file)?)
        .map_err(|e| format!("server certificate {}: {e}", cfg.cert_file.display()))?;
    Ok(Arc::new(config))
}

/// The name to verify and send as SNI: a DNS name from the URI host (SNI is sent), or
/// an IP address (no SNI; the certificate needs an IP SAN). Brackets of an IPv6
/// reference are removed.
pub fn server_name(host: &str) -> Result<ServerName<'static>, crate::ConnectError> {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    let h = h.strip_suffix('.').unwrap_or(h);
    ServerName::try_from(h.to_string())
        .map_err(|_| crate::ConnectError::InvalidServerName(host.to_string()))
}

/// The pin check, carried through rustls inside `CertificateError::Other`.
#[derive(Debug)]
struct PinMismatch(CertPin);

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate SHA-256 {} is not pinned", self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// WebPKI verification, then (when pins are configured) the leaf's SHA-256 must be one
/// of them.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<CertPin>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if !self.pins.is_empty() {
            let pin = CertPin::of_der(end_entity.as_ref());
            if !self.pins.contains(&pin) {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(PinMismatch(pin))),
                )));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Turns a handshake or record-layer error into a [`TlsError`]. `name` is the server
/// name we verified against (client side), `anchors` what we trusted.
pub fn classify_io(err: &std::io::Error, name: &str, anchors: &str) -> TlsError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(e) => classify(e, name, anchors),
        None => TlsError::Handshake(err.to_string()),
    }
}

/// Turns a rustls error into a [`TlsError`].
pub fn classify(err: &rustls::Error, name: &str, anchors: &str) -> TlsError {
    match err {
        rustls::Error::InvalidCertificate(ce) => classify_cert(ce, name, anchors),
        rustls::Error::NoCertificatesPresented => TlsError::NoCertificate,
        rustls::Error::AlertReceived(alert) => {
            TlsError::Handshake(format!("the peer refused the handshake (alert {alert:?})"))
        }
        other => TlsError::Handshake(other.to_string()),
    }
}

fn classify_cert(ce: &CertificateError, name: &str, anchors: &str) -> TlsError {
    match ce {
        CertificateError::UnknownIssuer => {
            TlsError::NotTrusted(format!("issued by a CA that is not among {anchors}"))
        }
        CertificateError::BadSignature => {
            TlsError::NotTrusted("bad signature in the certificate chain".to_string())
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsError::NameMismatch {
                name: name.to_string(),
                detail: ce.to_string(),
            }
        }
        CertificateError::Other(OtherError(inner)) => match inner.downcast_ref::<PinMismatch>() {
            Some(PinMismatch(pin)) => TlsError::PinMismatch {
                presented: pin.to_string(),
            },
            None => TlsError::NotTrusted(ce.to_string()),
        },
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. }
        | CertificateError::Revoked
        | CertificateError::BadEncoding => TlsError::Invalid(ce.to_string()),
        other => TlsError::NotTrusted(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_parses_every_usual_form_and_prints_colon_hex() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let a: CertPin = hex.parse().unwrap();
        let colons = a.to_string();
        assert_eq!(colons.len(), 32 * 3 - 1);
        assert!(colons.starts_with("00:11:22"));
        assert_eq!(colons.parse::<CertPin>().unwrap(), a);
        assert_eq!(format!("sha256:{hex}").parse::<CertPin>().unwrap(), a);
        assert_eq!(format!("sha-256 {colons}").parse::<CertPin>().unwrap(), a);
        for bad in ["", "00", &hex[..63], &format!("{}zz", &hex[..62]), "é"] {
            assert!(bad.parse::<CertPin>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_names_from_uri_hosts() {
        assert!(matches!(
            server_name("pbx.example.com"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("pbx.example.com."),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("bad name!").is_err());
    }

    #[test]
    fn missing_files_give_clear_errors() {
        let e = load_certs(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
        let cfg = TlsClientConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(client_config(&cfg).unwrap_err().contains("ca.pem"));
    }

    #[test]
    fn errors_are_classified() {
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let t = classify(&e, "h", "CA file x.pem");
        assert_eq!(
            t.to_string(),
            "certificate not trusted: issued by a CA that is not among CA file x.pem"
        );
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert!(matches!(
            classify_io(&io, "h", "a"),
            TlsError::NotTrusted(_)
        ));
        let io = std::io::Error::other("plain");
        assert!(matches!(classify_io(&io, "h", "a"), TlsError::Handshake(_)));
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(matches!(
            classify(&e, "h", "a"),
            TlsError::NameMismatch { .. }
        ));
    }
}
