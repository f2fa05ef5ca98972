//! SRTP crypto suites: SDES names, DTLS-SRTP profiles, key/salt/tag lengths, libsrtp2 policies.

use std::fmt;

use srtp::CryptoPolicy;

/// An SRTP protection suite that libsrtp2 (built with OpenSSL) implements.
///
/// The SDES names are those of RFC 4568 §6.2 (AES-CM-128), RFC 6188 (AES-192/256-CM) and
/// RFC 7714 §14.2 (AEAD AES-GCM). For the `_32` suites the 32-bit tag applies to SRTP only;
/// SRTCP always uses the 80-bit tag (RFC 4568 §6.2.2, RFC 5764 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 4568; DTLS `SRTP_AES128_CM_HMAC_SHA1_80`).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32` (RFC 4568; DTLS `SRTP_AES128_CM_HMAC_SHA1_32`).
    AesCm128HmacSha1_32,
    /// `AES_192_CM_HMAC_SHA1_80` (RFC 6188).
    Aes192CmHmacSha1_80,
    /// `AES_192_CM_HMAC_SHA1_32` (RFC 6188).
    Aes192CmHmacSha1_32,
    /// `AES_256_CM_HMAC_SHA1_80` (RFC 6188).
    Aes256CmHmacSha1_80,
    /// `AES_256_CM_HMAC_SHA1_32` (RFC 6188).
    Aes256CmHmacSha1_32,
    /// `AEAD_AES_128_GCM` (RFC 7714, 16-byte tag; DTLS `SRTP_AEAD_AES_128_GCM`).
    AeadAes128Gcm,
    /// `AEAD_AES_256_GCM` (RFC 7714, 16-byte tag; DTLS `SRTP_AEAD_AES_256_GCM`).
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// Every suite, strongest-and-most-interoperable first: the default SDES offer order
    /// puts `AES_CM_128_HMAC_SHA1_80` (what every PBX speaks) near the top.
    pub const ALL: [SrtpSuite; 8] = [
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::Aes256CmHmacSha1_32,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::Aes192CmHmacSha1_80,
        SrtpSuite::Aes192CmHmacSha1_32,
    ];

    /// The suites offered over SDES by default, in preference order. AES_CM_128_HMAC_SHA1_80
    /// comes first because it is the one suite every SDES peer implements and some PBXes only
    /// look at the first line; GCM and AES-256 follow for peers that prefer them.
    pub const SDES_DEFAULT: [SrtpSuite; 4] = [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::Aes256CmHmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The DTLS-SRTP profiles we offer in `use_srtp`, in preference order (RFC 5764 §4.1.2,
    /// RFC 7714 §14.2). AES-192/256-CM have no DTLS-SRTP profile.
    pub const DTLS_DEFAULT: [SrtpSuite; 4] = [
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The SDES (`a=crypto`) name.
    pub fn sdes_name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::Aes192CmHmacSha1_80 => "AES_192_CM_HMAC_SHA1_80",
            SrtpSuite::Aes192CmHmacSha1_32 => "AES_192_CM_HMAC_SHA1_32",
            SrtpSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            SrtpSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Parses an SDES suite name. Also accepts the pre-RFC 6188 spellings
    /// `AES_CM_256_HMAC_SHA1_*` / `AES_CM_192_HMAC_SHA1_*` that some phones still send.
    pub fn from_sdes_name(name: &str) -> Option<SrtpSuite> {
        let n = name.trim();
        SrtpSuite::ALL
            .into_iter()
            .find(|s| s.sdes_name().eq_ignore_ascii_case(n))
            .or(match n.to_ascii_uppercase().as_str() {
                "AES_CM_256_HMAC_SHA1_80" => Some(SrtpSuite::Aes256CmHmacSha1_80),
                "AES_CM_256_HMAC_SHA1_32" => Some(SrtpSuite::Aes256CmHmacSha1_32),
                "AES_CM_192_HMAC_SHA1_80" => Some(SrtpSuite::Aes192CmHmacSha1_80),
                "AES_CM_192_HMAC_SHA1_32" => Some(SrtpSuite::Aes192CmHmacSha1_32),
                _ => None,
            })
    }

    /// The OpenSSL `use_srtp` profile name, if the suite has a DTLS-SRTP profile.
    pub fn dtls_profile_name(self) -> Option<&'static str> {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => Some("SRTP_AES128_CM_SHA1_80"),
            SrtpSuite::AesCm128HmacSha1_32 => Some("SRTP_AES128_CM_SHA1_32"),
            SrtpSuite::AeadAes128Gcm => Some("SRTP_AEAD_AES_128_GCM"),
            SrtpSuite::AeadAes256Gcm => Some("SRTP_AEAD_AES_256_GCM"),
            _ => None,
        }
    }

    /// The suite for an OpenSSL `use_srtp` profile name.
    pub fn from_dtls_profile_name(name: &str) -> Option<SrtpSuite> {
        SrtpSuite::ALL
            .into_iter()
            .find(|s| s.dtls_profile_name() == Some(name))
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80
            | SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::AeadAes128Gcm => 16,
            SrtpSuite::Aes192CmHmacSha1_80 | SrtpSuite::Aes192CmHmacSha1_32 => 24,
            SrtpSuite::Aes256CmHmacSha1_80
            | SrtpSuite::Aes256CmHmacSha1_32
            | SrtpSuite::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes (112 bits for AES-CM, 96 bits for AES-GCM).
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    /// `key_len() + salt_len()`: the length of the SDES inline key and of libsrtp's key buffer.
    pub fn key_salt_len(self) -> usize {
        self.key_len() + self.salt_len()
    }

    /// True for the AES-GCM suites.
    pub fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }

    /// SRTP authentication tag length in bytes.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::Aes192CmHmacSha1_32
            | SrtpSuite::Aes256CmHmacSha1_32 => 4,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 16,
            _ => 10,
        }
    }

    /// SRTCP authentication tag length in bytes (80 bits even for the `_32` suites).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }

    pub(crate) fn rtp_policy(self) -> CryptoPolicy {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => CryptoPolicy::aes_cm_128_hmac_sha1_80(),
            SrtpSuite::AesCm128HmacSha1_32 => CryptoPolicy::aes_cm_128_hmac_sha1_32(),
            SrtpSuite::Aes192CmHmacSha1_80 => CryptoPolicy::aes_cm_192_hmac_sha1_80(),
            SrtpSuite::Aes192CmHmacSha1_32 => CryptoPolicy::aes_cm_192_hmac_sha1_32(),
            SrtpSuite::Aes256CmHmacSha1_80 => CryptoPolicy::aes_cm_256_hmac_sha1_80(),
            SrtpSuite::Aes256CmHmacSha1_32 => CryptoPolicy::aes_cm_256_hmac_sha1_32(),
            SrtpSuite::AeadAes128Gcm => CryptoPolicy::aes_gcm_128_16_auth(),
            SrtpSuite::AeadAes256Gcm => CryptoPolicy::aes_gcm_256_16_auth(),
        }
    }

    pub(crate) fn rtcp_policy(self) -> CryptoPolicy {
        match self {
            // SRTCP keeps the 80-bit tag for the _32 suites.
            SrtpSuite::AesCm128HmacSha1_32 => CryptoPolicy::aes_cm_128_hmac_sha1_80(),
            SrtpSuite::Aes192CmHmacSha1_32 => CryptoPolicy::aes_cm_192_hmac_sha1_80(),
            SrtpSuite::Aes256CmHmacSha1_32 => CryptoPolicy::aes_cm_256_hmac_sha1_80(),
            other => other.rtp_policy(),
        }
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdes_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lengths_match_libsrtp() {
        for s in SrtpSuite::ALL {
            assert_eq!(SrtpSuite::from_sdes_name(s.sdes_name()), Some(s));
            if let Some(p) = s.dtls_profile_name() {
                assert_eq!(SrtpSuite::from_dtls_profile_name(p), Some(s));
            }
            assert_eq!(s.rtp_policy().key_len(), s.key_salt_len(), "{s}");
            assert_eq!(s.rtcp_policy().key_len(), s.key_salt_len(), "{s}");
        }
        assert_eq!(SrtpSuite::AesCm128HmacSha1_80.key_salt_len(), 30);
        assert_eq!(SrtpSuite::AeadAes128Gcm.key_salt_len(), 28);
        assert_eq!(SrtpSuite::Aes256CmHmacSha1_80.key_salt_len(), 46);
        assert_eq!(SrtpSuite::AeadAes256Gcm.key_salt_len(), 44);
        assert_eq!(
            SrtpSuite::from_sdes_name("AES_CM_256_HMAC_SHA1_80"),
            Some(SrtpSuite::Aes256CmHmacSha1_80)
        );
        assert_eq!(SrtpSuite::from_sdes_name("F8_128_HMAC_SHA1_80"), None);
    }
}
