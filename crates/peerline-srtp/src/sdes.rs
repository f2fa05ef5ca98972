//! SDES keying (RFC 4568): generate `a=crypto` lines, and turn a negotiated pair of lines into
//! SRTP contexts.

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use peerline_sdp::{Crypto, KeyParam, Lifetime, Mki, Security};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::context::{Direction, SrtpContext, SrtpOptions, SrtpPair, MAX_MKI_LEN};
use crate::error::{Error, Result};
use crate::suite::SrtpSuite;

/// Standard base64, writing padding, accepting it present or absent (some phones drop it).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Key parameters added to every generated `a=crypto` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SdesKeyOptions {
    /// Lifetime to write, e.g. `Some(Lifetime::PowerOfTwo(31))` for `|2^31` (RFC 4568 §6.1).
    /// The outbound context then refuses to protect more packets than that.
    pub lifetime: Option<Lifetime>,
    /// MKI to write (e.g. `1:1`); the outbound context then carries it in every packet.
    pub mki: Option<Mki>,
}

/// Generates one fresh `a=crypto` line per suite, in the given (preference) order, tags
/// 1, 2, 3… Keys come from `rng`: the OS RNG (`rand::rngs::OsRng`) in production.
/// Generate new lines for every offer/answer that rekeys (RFC 4568 §7.1.4).
pub fn generate_crypto<R: RngCore + CryptoRng>(
    rng: &mut R,
    suites: &[SrtpSuite],
    options: &SdesKeyOptions,
) -> Vec<Crypto> {
    suites
        .iter()
        .zip(1u32..)
        .map(|(suite, tag)| {
            let mut key = Zeroizing::new(vec![0u8; suite.key_salt_len()]);
            rng.fill_bytes(&mut key);
            Crypto {
                tag,
                suite: suite.sdes_name().to_owned(),
                keys: vec![KeyParam {
                    method: "inline".into(),
                    key_salt: B64.encode(key.as_slice()),
                    lifetime: options.lifetime,
                    mki: options.mki,
                }],
                session_params: Vec::new(),
            }
        })
        .collect()
}

/// One decoded SDES key: suite, master key||salt and the options it implies.
/// `Debug` never prints the key.
pub struct SdesKey {
    /// The suite of the line.
    pub suite: SrtpSuite,
    key_salt: Zeroizing<Vec<u8>>,
    /// MKI, lifetime and replay window from the key and session parameters.
    pub options: SrtpOptions,
}

impl fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdesKey")
            .field("suite", &self.suite)
            .field("key_salt", &"<redacted>")
            .field("options", &self.options)
            .finish()
    }
}

impl SdesKey {
    /// Decodes and checks one `a=crypto` line: a suite libsrtp2 implements, exactly one
    /// `inline:` key of the right length, an MKI of at most 16 bytes, and only session
    /// parameters we honour (`KDR=0`, `WSH=n`, `FEC_ORDER`, and optional `-…` ones).
    /// `UNENCRYPTED_SRTP`, `UNENCRYPTED_SRTCP`, `UNAUTHENTICATED_SRTP`, `KDR≠0` and `FEC_KEY`
    /// are refused: a weakened or unsupported mode fails loudly instead of silently.
    pub fn parse(crypto: &Crypto) -> Result<SdesKey> {
        let suite = SrtpSuite::from_sdes_name(&crypto.suite)
            .ok_or_else(|| Error::UnsupportedSuite(crypto.suite.clone()))?;
        let key = match crypto.keys.as_slice() {
            [k] => k,
            [] => return Err(Error::BadKeyParam("no key".into())),
            _ => {
                return Err(Error::UnsupportedMki(format!(
                    "{} master keys in one line (we use one)",
                    crypto.keys.len()
                )))
            }
        };
        if key.method != "inline" {
            return Err(Error::BadKeyParam(format!(
                "key method `{}` (only `inline` is defined)",
                key.method.chars().take(16).collect::<String>()
            )));
        }
        let key_salt = Zeroizing::new(
            B64.decode(key.key_salt.trim())
                .map_err(|_| Error::BadKeyParam("key is not valid base64".into()))?,
        );
        if key_salt.len() != suite.key_salt_len() {
            return Err(Error::KeyLength {
                suite: suite.sdes_name(),
                expected: suite.key_salt_len(),
                got: key_salt.len(),
            });
        }
        let mut options = SrtpOptions::default();
        if let Some(m) = key.mki {
            options.mki = Some(mki_bytes(m)?);
        }
        options.max_packets = match key.lifetime {
            Some(Lifetime::PowerOfTwo(e)) if e < 64 => Some(1u64 << e),
            Some(Lifetime::PowerOfTwo(_)) => None,
            Some(Lifetime::Packets(n)) => Some(n),
            None => None,
        };
        for p in &crypto.session_params {
            apply_session_param(p, &mut options)?;
        }
        Ok(SdesKey {
            suite,
            key_salt,
            options,
        })
    }

    /// The master key||salt bytes.
    pub fn key_salt(&self) -> &[u8] {
        &self.key_salt
    }

    /// A context keyed with this key.
    pub fn context(&self, direction: Direction) -> Result<SrtpContext> {
        SrtpContext::with_options(self.suite, &self.key_salt, direction, &self.options)
    }
}

fn mki_bytes(m: Mki) -> Result<Vec<u8>> {
    let len = usize::from(m.length);
    if len == 0 || len > MAX_MKI_LEN {
        return Err(Error::UnsupportedMki(format!(
            "MKI length {len} (we handle 1..={MAX_MKI_LEN} bytes)"
        )));
    }
    if len < 8 && m.value >> (8 * len) != 0 {
        return Err(Error::BadKeyParam(format!(
            "MKI value {} does not fit in {len} byte(s)",
            m.value
        )));
    }
    let be = m.value.to_be_bytes();
    let mut out = vec![0u8; len.saturating_sub(8)];
    out.extend_from_slice(&be[8usize.saturating_sub(len)..]);
    Ok(out)
}

fn apply_session_param(p: &str, options: &mut SrtpOptions) -> Result<()> {
    let unsupported = || Error::UnsupportedSessionParam(p.chars().take(32).collect());
    let (name, value) = p.split_once('=').unwrap_or((p, ""));
    match name.to_ascii_uppercase().as_str() {
        "KDR" if value.trim() == "0" => Ok(()),
        "WSH" => {
            let w: u64 = value.trim().parse().map_err(|_| unsupported())?;
            if !(64..=0x7fff).contains(&w) {
                return Err(unsupported());
            }
            options.replay_window = options.replay_window.max(w);
            Ok(())
        }
        // We send no FEC, so the order of FEC and SRTP does not arise.
        "FEC_ORDER" => Ok(()),
        _ if p.starts_with('-') => Ok(()),
        // UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP, KDR≠0, FEC_KEY, unknown.
        _ => Err(unsupported()),
    }
}

/// The contexts of an SDES call: `local` is our line as sent (keys what we send), `remote`
/// the peer's line (keys what we receive). Both must name the same suite.
pub fn sdes_pair(local: &Crypto, remote: &Crypto) -> Result<SrtpPair> {
    let l = SdesKey::parse(local)?;
    let r = SdesKey::parse(remote)?;
    if l.suite != r.suite {
        return Err(Error::WrongSecurity(
            "local and remote a=crypto name different suites",
        ));
    }
    Ok(SrtpPair {
        outbound: l.context(Direction::Outbound)?,
        inbound: r.context(Direction::Inbound)?,
    })
}

/// [`sdes_pair`] for a negotiated [`Security::Sdes`]; other modes are an error
/// (`Security::None` has no keys; DTLS keys come from [`crate::DtlsEndpoint`]).
pub fn sdes_pair_from_security(security: &Security) -> Result<SrtpPair> {
    match security {
        Security::Sdes { local, remote } => sdes_pair(local, remote),
        Security::None => Err(Error::WrongSecurity("plain RTP was negotiated")),
        Security::Dtls { .. } => Err(Error::WrongSecurity(
            "DTLS-SRTP was negotiated: keys come from the DTLS handshake",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    #[test]
    fn generated_lines_have_right_lengths_and_work_end_to_end() {
        let mut rng = StdRng::seed_from_u64(7);
        let opts = SdesKeyOptions {
            lifetime: Some(Lifetime::PowerOfTwo(31)),
            mki: None,
        };
        let ours = generate_crypto(&mut rng, &SrtpSuite::ALL, &opts);
        let theirs = generate_crypto(&mut rng, &SrtpSuite::ALL, &opts);
        assert_eq!(ours.len(), SrtpSuite::ALL.len());
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(o.tag as usize, i + 1);
            let line = o.to_string();
            assert!(line.contains("|2^31"), "{line}");
            let k = SdesKey::parse(o).unwrap();
            assert_eq!(k.key_salt().len(), k.suite.key_salt_len());
            assert_eq!(k.options.max_packets, Some(1 << 31));
            assert_ne!(o.keys[0].key_salt, t.keys[0].key_salt);
            // Debug never shows the key.
            assert!(!format!("{k:?}").contains(&o.keys[0].key_salt));
            assert!(!format!("{o:?}").contains(&o.keys[0].key_salt));
            // We send with ours, they receive with ours.
            let mut a = sdes_pair(o, t).unwrap();
            let mut b = sdes_pair(t, o).unwrap();
            let srtp = a.outbound.protect_rtp(&rtp(1)).unwrap();
            assert_eq!(b.inbound.unprotect_rtp(&srtp).unwrap(), rtp(1));
            let srtp = b.outbound.protect_rtp(&rtp(9)).unwrap();
            assert_eq!(a.inbound.unprotect_rtp(&srtp).unwrap(), rtp(9));
        }
        // Same seed, same keys: randomness is injected.
        let again = generate_crypto(&mut StdRng::seed_from_u64(7), &SrtpSuite::ALL, &opts);
        assert_eq!(again, ours);
    }

    #[test]
    fn mki_is_carried_and_checked() {
        let mut rng = StdRng::seed_from_u64(8);
        for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
            let opts = SdesKeyOptions {
                lifetime: None,
                mki: Some(Mki {
                    value: 1,
                    length: 2,
                }),
            };
            let ours = generate_crypto(&mut rng, &[suite], &opts).remove(0);
            let theirs = generate_crypto(&mut rng, &[suite], &opts).remove(0);
            assert!(ours.to_string().ends_with("|1:2"), "{ours}");
            let mut a = sdes_pair(&ours, &theirs).unwrap();
            let mut b = sdes_pair(&theirs, &ours).unwrap();
            let srtp = a.outbound.protect_rtp(&rtp(5)).unwrap();
            assert_eq!(srtp.len(), 172 + suite.rtp_tag_len() + 2);
            let mki_at = if suite.is_aead() {
                srtp.len() - 2
            } else {
                srtp.len() - suite.rtp_tag_len() - 2
            };
            assert_eq!(&srtp[mki_at..mki_at + 2], &[0, 1]);
            assert_eq!(b.inbound.unprotect_rtp(&srtp).unwrap(), rtp(5));
            let mut wrong = a.outbound.protect_rtp(&rtp(6)).unwrap();
            wrong[mki_at + 1] = 2;
            assert_eq!(
                b.inbound.unprotect_rtp(&wrong),
                Err(Error::Malformed("unknown MKI"))
            );
            let rtcp = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
            let srtcp = a.outbound.protect_rtcp(&rtcp).unwrap();
            assert_eq!(b.inbound.unprotect_rtcp(&srtcp).unwrap(), rtcp);
        }
    }

    fn line(s: &str) -> Crypto {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/SAVP 0\r\na=crypto:{s}\r\n"
        );
        let parsed = peerline_sdp::SessionDescription::parse(&sdp).unwrap();
        let c = parsed.media[0].crypto().next().unwrap().clone();
        c
    }

    #[test]
    fn rfc4568_example_line_parses() {
        // RFC 4568 §8.1 example key.
        let c = line(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
        );
        let k = SdesKey::parse(&c).unwrap();
        assert_eq!(k.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(k.options.max_packets, Some(1 << 20));
        assert_eq!(k.options.mki, Some(vec![0, 0, 0, 1]));
        assert!(k.context(Direction::Inbound).is_ok());
    }

    #[test]
    fn clear_errors_for_what_we_cannot_do() {
        let key30 = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let err = |s: &str| SdesKey::parse(&line(s)).unwrap_err();
        assert_eq!(
            err(&format!("1 F8_128_HMAC_SHA1_80 inline:{key30}")),
            Error::UnsupportedSuite("F8_128_HMAC_SHA1_80".into())
        );
        assert_eq!(
            err(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{key30}")),
            Error::KeyLength {
                suite: "AES_256_CM_HMAC_SHA1_80",
                expected: 46,
                got: 30
            }
        );
        assert!(matches!(
            err("1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!"),
            Error::BadKeyParam(_)
        ));
        assert!(matches!(
            err(&format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|2^20|1:4;inline:{key30}|2^20|2:4"
            )),
            Error::UnsupportedMki(_)
        ));
        assert!(matches!(
            err(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30}|1:32")),
            Error::UnsupportedMki(_)
        ));
        for p in [
            "UNENCRYPTED_SRTP",
            "UNENCRYPTED_SRTCP",
            "UNAUTHENTICATED_SRTP",
            "KDR=10",
            "FEC_KEY=inline:abc",
            "FOO=1",
        ] {
            assert_eq!(
                err(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key30} {p}")),
                Error::UnsupportedSessionParam(p.into()),
                "{p}"
            );
        }
        let ok = SdesKey::parse(&line(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{key30} KDR=0 WSH=2048 FEC_ORDER=FEC_SRTP -X=1"
        )))
        .unwrap();
        assert_eq!(ok.options.replay_window, 2048);
        // Key without base64 padding is accepted.
        let k46 = B64.encode([7u8; 46]);
        let nopad = k46.trim_end_matches('=');
        assert!(
            SdesKey::parse(&line(&format!("1 AES_256_CM_HMAC_SHA1_80 inline:{nopad}"))).is_ok()
        );
        assert!(matches!(
            sdes_pair_from_security(&Security::None),
            Err(Error::WrongSecurity(_))
        ));
    }
}
