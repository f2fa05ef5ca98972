//! Keys and fingerprints through the real SDP offer/answer of `peerline-sdp`, then media.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use peerline_sdp::{
    create_answer, create_offer, process_answer, LocalCapabilities, Security, SessionDescription,
};
use peerline_srtp::{
    generate_crypto, sdes_pair_from_security, DtlsCert, DtlsEndpoint, DtlsEvent, DtlsRole,
    SdesKeyOptions, SrtpSuite,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

#[test]
fn sdes_through_offer_answer_then_media_both_ways() {
    let mut rng = StdRng::seed_from_u64(11);
    let alice = LocalCapabilities {
        crypto: generate_crypto(
            &mut rng,
            &SrtpSuite::SDES_DEFAULT,
            &SdesKeyOptions::default(),
        ),
        ..Default::default()
    };
    // Bob only does the 32-bit tag suite: the answer must pick it.
    let bob = LocalCapabilities {
        crypto: generate_crypto(
            &mut rng,
            &[SrtpSuite::AesCm128HmacSha1_32],
            &SdesKeyOptions::default(),
        ),
        ..Default::default()
    };
    let offer = create_offer(&alice, "127.0.0.1:4000".parse().unwrap(), 1, 1);
    // Through text, as on the wire.
    let offer = SessionDescription::parse(&offer.to_string()).unwrap();
    let (answer, bob_neg) =
        create_answer(&offer, &bob, "127.0.0.1:5000".parse().unwrap(), 2, 1).unwrap();
    let answer = SessionDescription::parse(&answer.to_string()).unwrap();
    let alice_neg = process_answer(&offer, &answer).unwrap();

    let mut a = sdes_pair_from_security(&alice_neg.security).unwrap();
    let mut b = sdes_pair_from_security(&bob_neg.security).unwrap();
    assert_eq!(a.outbound.suite(), SrtpSuite::AesCm128HmacSha1_32);
    for seq in 0..100 {
        let s = a.outbound.protect_rtp(&rtp(seq)).unwrap();
        assert_eq!(b.inbound.unprotect_rtp(&s).unwrap(), rtp(seq));
        let s = b.outbound.protect_rtp(&rtp(seq)).unwrap();
        assert_eq!(a.inbound.unprotect_rtp(&s).unwrap(), rtp(seq));
    }
    assert_eq!(a.stats().unprotected, 100);
    assert_eq!(b.stats().protected, 100);
}

#[test]
fn dtls_through_offer_answer_then_media() {
    let mut rng = StdRng::seed_from_u64(12);
    let (ca, cb) = (
        DtlsCert::generate(&mut rng).unwrap(),
        DtlsCert::generate(&mut rng).unwrap(),
    );
    let alice = LocalCapabilities {
        fingerprint: Some(ca.fingerprint().clone()),
        ..Default::default()
    };
    let bob = LocalCapabilities {
        fingerprint: Some(cb.fingerprint().clone()),
        ..Default::default()
    };
    let offer = create_offer(&alice, "127.0.0.1:4000".parse().unwrap(), 1, 1);
    let offer = SessionDescription::parse(&offer.to_string()).unwrap();
    let (answer, bob_neg) =
        create_answer(&offer, &bob, "127.0.0.1:5000".parse().unwrap(), 2, 1).unwrap();
    let answer = SessionDescription::parse(&answer.to_string()).unwrap();
    let alice_neg = process_answer(&offer, &answer).unwrap();

    let endpoint = |cert: &DtlsCert, sec: &Security| match sec {
        Security::Dtls {
            remote_fingerprints,
            local_setup,
        } => DtlsEndpoint::new(
            cert,
            DtlsRole::from_setup(*local_setup).unwrap(),
            remote_fingerprints.clone(),
            Instant::now(),
        )
        .unwrap(),
        other => panic!("{other:?}"),
    };
    let mut a = endpoint(&ca, &alice_neg.security);
    let mut b = endpoint(&cb, &bob_neg.security);
    // The offerer said actpass, so the answerer is active (RFC 5763 §5).
    assert_eq!(a.role(), DtlsRole::Server);
    assert_eq!(b.role(), DtlsRole::Client);
    let now = Instant::now();
    for _ in 0..10 {
        while let Some(d) = b.poll_transmit() {
            a.handle_datagram(now, &d);
        }
        while let Some(d) = a.poll_transmit() {
            b.handle_datagram(now, &d);
        }
    }
    let (Some(DtlsEvent::Connected(ka)), Some(DtlsEvent::Connected(kb))) =
        (a.poll_event(), b.poll_event())
    else {
        panic!("not connected");
    };
    let (mut pa, mut pb) = (ka.srtp_pair().unwrap(), kb.srtp_pair().unwrap());
    let s = pa.outbound.protect_rtp(&rtp(1)).unwrap();
    assert_eq!(pb.inbound.unprotect_rtp(&s).unwrap(), rtp(1));
    let s = pb
        .outbound
        .protect_rtcp(&[0x80, 201, 0, 1, 1, 2, 3, 4])
        .unwrap();
    assert_eq!(
        pa.inbound.unprotect_rtcp(&s).unwrap(),
        [0x80, 201, 0, 1, 1, 2, 3, 4]
    );
}
