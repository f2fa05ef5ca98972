//! SRTP/SRTCP contexts: known-answer vectors, tamper and replay counting, ROC across the
//! 16-bit sequence wrap, rekeying, hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerline_srtp::{Direction, Error, SrtpContext, SrtpPair, SrtpSuite};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// libsrtp's `test_key` (test/srtp_driver.c), first 30 bytes: key || salt.
const TEST_KEY: [u8; 30] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
];

fn plain_rtp_ref() -> Vec<u8> {
    let mut p = vec![
        0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe,
    ];
    p.extend_from_slice(&[0xab; 16]);
    p
}

fn plain_rtcp_ref() -> Vec<u8> {
    let mut p = vec![0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe];
    p.extend_from_slice(&[0xab; 16]);
    p
}

/// srtp_validate(): AES_CM_128_HMAC_SHA1_80, SSRC 0xcafebabe, seq 0x1234.
#[test]
fn known_answer_aes_cm_128_hmac_sha1_80() {
    let srtp_ct: [u8; 38] = [
        0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e, 0x55, 0xdc,
        0x4c, 0xe7, 0x99, 0x78, 0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d,
        0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b, 0x8d, 0xbb,
    ];
    let srtcp_ct: [u8; 38] = [
        0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0x71, 0x28, 0x03, 0x5b, 0xe4, 0x87, 0xb9,
        0xbd, 0xbe, 0xf8, 0x90, 0x41, 0xf9, 0x77, 0xa5, 0xa8, 0x80, 0x00, 0x00, 0x01, 0x99, 0x3e,
        0x08, 0xcd, 0x54, 0xd6, 0xc1, 0x23, 0x07, 0x98,
    ];
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let mut tx = SrtpContext::new(suite, &TEST_KEY, Direction::Outbound).unwrap();
    let mut rx = SrtpContext::new(suite, &TEST_KEY, Direction::Inbound).unwrap();
    assert_eq!(tx.protect_rtp(&plain_rtp_ref()).unwrap(), srtp_ct);
    assert_eq!(rx.unprotect_rtp(&srtp_ct).unwrap(), plain_rtp_ref());
    assert_eq!(tx.protect_rtcp(&plain_rtcp_ref()).unwrap(), srtcp_ct);
    assert_eq!(rx.unprotect_rtcp(&srtcp_ct).unwrap(), plain_rtcp_ref());
}

/// srtp_validate_gcm(): AEAD_AES_128_GCM (16-byte tag), key 00..0f, salt a0..ab.
#[test]
fn known_answer_aead_aes_128_gcm() {
    let key: Vec<u8> = (0u8..16).chain(0xa0..=0xab).collect();
    let srtp_ct: [u8; 44] = [
        0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xc5, 0x00, 0x2e,
        0xde, 0x04, 0xcf, 0xdd, 0x2e, 0xb9, 0x11, 0x59, 0xe0, 0x88, 0x0a, 0xa0, 0x6e, 0xd2, 0x97,
        0x68, 0x26, 0xf7, 0x96, 0xb2, 0x01, 0xdf, 0x31, 0x31, 0xa1, 0x27, 0xe8, 0xa3, 0x92,
    ];
    let srtcp_ct: [u8; 44] = [
        0x81, 0xc8, 0x00, 0x0b, 0xca, 0xfe, 0xba, 0xbe, 0xc9, 0x8b, 0x8b, 0x5d, 0xf0, 0x39, 0x2a,
        0x55, 0x85, 0x2b, 0x6c, 0x21, 0xac, 0x8e, 0x70, 0x25, 0xc5, 0x2c, 0x6f, 0xbe, 0xa2, 0xb3,
        0xb4, 0x46, 0xea, 0x31, 0x12, 0x3b, 0xa8, 0x8c, 0xe6, 0x1e, 0x80, 0x00, 0x00, 0x01,
    ];
    let suite = SrtpSuite::AeadAes128Gcm;
    let mut tx = SrtpContext::new(suite, &key, Direction::Outbound).unwrap();
    let mut rx = SrtpContext::new(suite, &key, Direction::Inbound).unwrap();
    assert_eq!(tx.protect_rtp(&plain_rtp_ref()).unwrap(), srtp_ct);
    assert_eq!(rx.unprotect_rtp(&srtp_ct).unwrap(), plain_rtp_ref());
    assert_eq!(tx.protect_rtcp(&plain_rtcp_ref()).unwrap(), srtcp_ct);
    assert_eq!(rx.unprotect_rtcp(&srtcp_ct).unwrap(), plain_rtcp_ref());
}

/// srtp_validate_aes_256(): AES_256_CM_HMAC_SHA1_80.
#[test]
fn known_answer_aes_256_cm_hmac_sha1_80() {
    let key: [u8; 46] = [
        0xf0, 0xf0, 0x49, 0x14, 0xb5, 0x13, 0xf2, 0x76, 0x3a, 0x1b, 0x1f, 0xa1, 0x30, 0xf1, 0x0e,
        0x29, 0x98, 0xf6, 0xf6, 0xe4, 0x3e, 0x43, 0x09, 0xd1, 0xe6, 0x22, 0xa0, 0xe3, 0x32, 0xb9,
        0xf1, 0xb6, 0x3b, 0x04, 0x80, 0x3d, 0xe5, 0x1e, 0xe7, 0xc9, 0x64, 0x23, 0xab, 0x5b, 0x78,
        0xd2,
    ];
    let srtp_ct: [u8; 38] = [
        0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xf1, 0xd9, 0xde,
        0x17, 0xff, 0x25, 0x1f, 0xf1, 0xaa, 0x00, 0x77, 0x74, 0xb0, 0xb4, 0xb4, 0x0d, 0xa0, 0x8d,
        0x9d, 0x9a, 0x5b, 0x3a, 0x55, 0xd8, 0x87, 0x3b,
    ];
    let suite = SrtpSuite::Aes256CmHmacSha1_80;
    let mut tx = SrtpContext::new(suite, &key, Direction::Outbound).unwrap();
    let mut rx = SrtpContext::new(suite, &key, Direction::Inbound).unwrap();
    assert_eq!(tx.protect_rtp(&plain_rtp_ref()).unwrap(), srtp_ct);
    assert_eq!(rx.unprotect_rtp(&srtp_ct).unwrap(), plain_rtp_ref());
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload_byte: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(payload_byte, 160));
    p
}

fn key_for(suite: SrtpSuite, seed: u64) -> Vec<u8> {
    let mut k = vec![0u8; suite.key_salt_len()];
    StdRng::seed_from_u64(seed).fill_bytes(&mut k);
    k
}

fn pair(suite: SrtpSuite) -> (SrtpContext, SrtpContext) {
    let k = key_for(suite, 1);
    (
        SrtpContext::new(suite, &k, Direction::Outbound).unwrap(),
        SrtpContext::new(suite, &k, Direction::Inbound).unwrap(),
    )
}

#[test]
fn every_suite_round_trips_rtp_and_rtcp_with_expected_overhead() {
    for suite in SrtpSuite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let p = rtp(100, 0, 0x1111, 0xd5);
        let s = tx.protect_rtp(&p).unwrap();
        assert_eq!(s.len(), p.len() + suite.rtp_tag_len(), "{suite}");
        assert_eq!(&s[..12], &p[..12], "{suite}: header stays clear");
        assert_ne!(&s[12..172], &p[12..], "{suite}: payload is encrypted");
        assert_eq!(rx.unprotect_rtp(&s).unwrap(), p, "{suite}");
        let rr = [
            0x81, 201, 0, 7, 0, 0, 0x11, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            16, 17, 18, 19, 20, 21, 22, 23, 24,
        ];
        let s = tx.protect_rtcp(&rr).unwrap();
        assert_eq!(s.len(), rr.len() + 4 + suite.rtcp_tag_len(), "{suite}");
        assert_eq!(rx.unprotect_rtcp(&s).unwrap(), rr, "{suite}");
        let st = rx.stats();
        assert_eq!((st.unprotected, st.auth_failures, st.replays), (2, 0, 0));
        assert_eq!(tx.stats().protected, 2);
    }
}

#[test]
fn tampered_packets_are_dropped_and_counted() {
    for suite in [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
        SrtpSuite::AeadAes128Gcm,
    ] {
        let (mut tx, mut rx) = pair(suite);
        let mut n = 0u64;
        for (i, flip_at) in [12usize, 100, 171, 172, 172 + suite.rtp_tag_len() - 1, 2, 8]
            .into_iter()
            .enumerate()
        {
            let mut s = tx.protect_rtp(&rtp(i as u16, 0, 0x2222, 1)).unwrap();
            s[flip_at] ^= 0x01;
            assert_eq!(
                rx.unprotect_rtp(&s),
                Err(Error::AuthFailed),
                "{suite} byte {flip_at}"
            );
            n += 1;
        }
        // A tampered SRTCP packet too.
        let mut s = tx
            .protect_rtcp(&[0x80, 201, 0, 1, 0, 0, 0x22, 0x22])
            .unwrap();
        s[5] ^= 0x80;
        assert_eq!(rx.unprotect_rtcp(&s), Err(Error::AuthFailed));
        n += 1;
        // A packet under another key fails authentication as well.
        let mut other = SrtpContext::new(suite, &key_for(suite, 2), Direction::Outbound).unwrap();
        let s = other.protect_rtp(&rtp(50, 0, 0x2222, 1)).unwrap();
        assert_eq!(rx.unprotect_rtp(&s), Err(Error::AuthFailed));
        n += 1;
        // Genuine packets still pass afterwards: the drops did not disturb the context.
        let s = tx.protect_rtp(&rtp(60, 0, 0x2222, 1)).unwrap();
        assert!(rx.unprotect_rtp(&s).is_ok());
        let st = rx.stats();
        assert_eq!(st.auth_failures, n, "{suite}");
        assert_eq!(st.unprotected, 1);
    }
}

#[test]
fn replays_are_dropped_and_counted() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let first = tx.protect_rtp(&rtp(1, 0, 0x3333, 7)).unwrap();
    assert!(rx.unprotect_rtp(&first).is_ok());
    assert_eq!(rx.unprotect_rtp(&first), Err(Error::Replay));
    // Move far ahead: the first packet is now older than the 1024-packet window.
    let mut skipped = Vec::new();
    for seq in 2..=3000u16 {
        let s = tx.protect_rtp(&rtp(seq, 0, 0x3333, 7)).unwrap();
        if seq % 2 == 0 {
            rx.unprotect_rtp(&s).unwrap();
        } else {
            skipped = s; // ends as seq 2999: late but inside the window
        }
    }
    assert_eq!(rx.unprotect_rtp(&first), Err(Error::Replay));
    // Out of order inside the window is fine, once.
    assert!(rx.unprotect_rtp(&skipped).is_ok());
    assert_eq!(rx.unprotect_rtp(&skipped), Err(Error::Replay));
    // SRTCP replay.
    let s = tx
        .protect_rtcp(&[0x80, 201, 0, 1, 0, 0, 0x33, 0x33])
        .unwrap();
    assert!(rx.unprotect_rtcp(&s).is_ok());
    assert_eq!(rx.unprotect_rtcp(&s), Err(Error::Replay));
    assert_eq!(rx.stats().replays, 4);
    assert_eq!(rx.stats().auth_failures, 0);
}

#[test]
fn rollover_counter_across_sequence_wrap_70000_packets() {
    for suite in [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm] {
        let (mut tx, mut rx) = pair(suite);
        let start: u16 = 65_000; // wraps after ~536 packets, then once more ~65 536 later
        for i in 0..70_000u32 {
            let seq = start.wrapping_add(i as u16);
            let p = rtp(seq, i * 160, 0x4444, (i % 251) as u8);
            let s = tx.protect_rtp(&p).unwrap();
            assert_eq!(
                rx.unprotect_rtp(&s).unwrap(),
                p,
                "{suite} packet {i} seq {seq}"
            );
        }
        assert_eq!(rx.stats().unprotected, 70_000);
        assert_eq!(rx.stats().auth_failures, 0);
    }
}

#[test]
fn rekey_is_a_new_context_and_old_key_stops_working() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let (mut tx, mut rx) = pair(suite);
    let s = tx.protect_rtp(&rtp(10, 0, 1, 1)).unwrap();
    rx.unprotect_rtp(&s).unwrap();
    let k2 = key_for(suite, 99);
    let mut new = SrtpPair::new(suite, &k2, &k2).unwrap();
    // Same SSRC and sequence continue under the new key.
    let s = new.outbound.protect_rtp(&rtp(11, 160, 1, 1)).unwrap();
    assert_eq!(rx.unprotect_rtp(&s), Err(Error::AuthFailed));
    assert_eq!(new.inbound.unprotect_rtp(&s).unwrap(), rtp(11, 160, 1, 1));
    assert_eq!(new.stats().protected, 1);
}

#[test]
fn wrong_direction_key_length_and_limits() {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let (mut tx, mut rx) = pair(suite);
    assert_eq!(
        rx.protect_rtp(&rtp(1, 0, 1, 1)),
        Err(Error::WrongDirection(Direction::Inbound))
    );
    assert_eq!(
        tx.unprotect_rtp(&rtp(1, 0, 1, 1)),
        Err(Error::WrongDirection(Direction::Outbound))
    );
    assert_eq!(
        SrtpContext::new(suite, &[0u8; 29], Direction::Inbound).unwrap_err(),
        Error::KeyLength {
            suite: "AES_CM_128_HMAC_SHA1_80",
            expected: 30,
            got: 29
        }
    );
    let opts = peerline_srtp::SrtpOptions {
        max_packets: Some(2),
        ..Default::default()
    };
    let mut limited =
        SrtpContext::with_options(suite, &key_for(suite, 1), Direction::Outbound, &opts).unwrap();
    limited.protect_rtp(&rtp(1, 0, 1, 1)).unwrap();
    limited.protect_rtp(&rtp(2, 0, 1, 1)).unwrap();
    assert_eq!(
        limited.protect_rtp(&rtp(3, 0, 1, 1)),
        Err(Error::KeyExhausted)
    );
    // Debug shows no key bytes.
    let dbg = format!("{tx:?}");
    assert!(
        dbg.contains("AesCm128HmacSha1_80") && !dbg.contains("key_salt"),
        "{dbg}"
    );
}

#[test]
fn hostile_input_never_panics_and_is_counted() {
    let mut rng = StdRng::seed_from_u64(42);
    for suite in SrtpSuite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let good = tx.protect_rtp(&rtp(5, 0, 9, 9)).unwrap();
        let mut drops = 0;
        for i in 0..3000 {
            let mut p: Vec<u8> = if i % 3 == 0 {
                let len = rng.gen_range(0..400);
                (0..len).map(|_| rng.gen()).collect()
            } else {
                let mut p = good.clone();
                let cut = rng.gen_range(0..=p.len());
                p.truncate(cut);
                if let Some(b) = p.get_mut(rng.gen_range(0..cut.max(1))) {
                    *b = rng.gen();
                }
                p
            };
            if i % 7 == 0 && !p.is_empty() {
                p[0] = 0x80 | (p[0] & 0x3f);
            }
            let r1 = rx.unprotect_rtp(&p);
            let r2 = rx.unprotect_rtcp(&p);
            drops += u64::from(r1.is_err()) + u64::from(r2.is_err());
            assert!(!matches!(r1, Err(Error::WrongDirection(_))));
        }
        let st = rx.stats();
        assert_eq!(
            st.auth_failures + st.replays + st.malformed,
            drops,
            "{suite}"
        );
        assert!(tx.protect_rtp(&[]).is_err());
        assert!(tx.protect_rtp(&[0x80; 11]).is_err());
        assert!(tx.protect_rtcp(&[0x80; 7]).is_err());
        assert!(tx.protect_rtp(&vec![0x80; 70_000]).is_err());
    }
}
