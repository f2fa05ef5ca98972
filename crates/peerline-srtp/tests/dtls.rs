//! DTLS-SRTP endpoints talking through in-memory queues.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use peerline_sdp::{Fingerprint, Setup};
use peerline_srtp::{
    classify_packet, DtlsCert, DtlsConfig, DtlsEndpoint, DtlsEvent, DtlsRole, DtlsSrtpKeys,
    PacketKind, SrtpSuite,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn certs() -> (DtlsCert, DtlsCert) {
    let mut rng = StdRng::seed_from_u64(5);
    (
        DtlsCert::generate(&mut rng).unwrap(),
        DtlsCert::generate(&mut rng).unwrap(),
    )
}

/// Moves datagrams both ways until both sides are quiet; `drop` decides per datagram
/// (from_client, index) whether the network loses it. Returns datagrams delivered.
fn pump(
    c: &mut DtlsEndpoint,
    s: &mut DtlsEndpoint,
    now: Instant,
    drop: &mut dyn FnMut(bool, usize) -> bool,
    counter: &mut usize,
) -> usize {
    let mut delivered = 0;
    loop {
        let mut moved = false;
        while let Some(d) = c.poll_transmit() {
            assert_eq!(classify_packet(&d), PacketKind::Dtls);
            assert!(d.len() <= 1200, "datagram of {} bytes", d.len());
            moved = true;
            *counter += 1;
            if !drop(true, *counter) {
                s.handle_datagram(now, &d);
                delivered += 1;
            }
        }
        while let Some(d) = s.poll_transmit() {
            moved = true;
            *counter += 1;
            if !drop(false, *counter) {
                c.handle_datagram(now, &d);
                delivered += 1;
            }
        }
        if !moved {
            return delivered;
        }
    }
}

fn connected(ep: &mut DtlsEndpoint) -> DtlsSrtpKeys {
    match ep.poll_event() {
        Some(DtlsEvent::Connected(k)) => k,
        other => panic!("{:?}: expected Connected, got {other:?}", ep.role()),
    }
}

fn failed(ep: &mut DtlsEndpoint) -> String {
    match ep.poll_event() {
        Some(DtlsEvent::Failed { reason }) => reason,
        other => panic!("{:?}: expected Failed, got {other:?}", ep.role()),
    }
}

fn assert_keys_work(ck: &DtlsSrtpKeys, sk: &DtlsSrtpKeys) {
    assert_eq!(ck.suite, sk.suite);
    assert_eq!(ck.local_key_salt(), sk.remote_key_salt());
    assert_eq!(ck.remote_key_salt(), sk.local_key_salt());
    assert_ne!(ck.local_key_salt(), ck.remote_key_salt());
    assert_eq!(ck.local_key_salt().len(), ck.suite.key_salt_len());
    let mut cp = ck.srtp_pair().unwrap();
    let mut sp = sk.srtp_pair().unwrap();
    let mut rtp = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd];
    rtp.extend_from_slice(&[0x55; 160]);
    let srtp = cp.outbound.protect_rtp(&rtp).unwrap();
    assert_eq!(sp.inbound.unprotect_rtp(&srtp).unwrap(), rtp);
    let srtp = sp.outbound.protect_rtp(&rtp).unwrap();
    assert_eq!(cp.inbound.unprotect_rtp(&srtp).unwrap(), rtp);
}

#[test]
fn handshake_completes_and_keys_match() {
    let (cc, sc) = certs();
    let now = Instant::now();
    let role_c = DtlsRole::from_setup(Setup::Active).unwrap();
    let role_s = DtlsRole::from_setup(Setup::Passive).unwrap();
    assert_eq!(DtlsRole::from_setup(Setup::ActPass), None);
    let mut c = DtlsEndpoint::new(&cc, role_c, vec![sc.fingerprint().clone()], now).unwrap();
    let mut s = DtlsEndpoint::new(&sc, role_s, vec![cc.fingerprint().clone()], now).unwrap();
    assert!(c.poll_timeout().is_some());
    let mut n = 0;
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut n);
    let ck = connected(&mut c);
    let sk = connected(&mut s);
    assert!(c.is_connected() && s.is_connected());
    assert_eq!(ck.suite, SrtpSuite::AeadAes128Gcm, "our first preference");
    assert_eq!(ck.remote_fingerprint.as_ref(), Some(sc.fingerprint()));
    assert_eq!(sk.remote_fingerprint.as_ref(), Some(cc.fingerprint()));
    assert_keys_work(&ck, &sk);
    assert_eq!(c.poll_timeout(), None);
    // Keys never show in Debug.
    let dbg = format!("{ck:?}");
    assert!(dbg.contains("redacted"), "{dbg}");
    // Closing is seen by the peer.
    c.close();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut n);
    assert!(matches!(s.poll_event(), Some(DtlsEvent::Closed { .. })));
}

#[test]
fn every_dtls_profile_negotiates_when_it_is_the_only_one() {
    let (cc, sc) = certs();
    for suite in SrtpSuite::DTLS_DEFAULT {
        let now = Instant::now();
        let cfg = DtlsConfig {
            srtp_suites: vec![suite],
            ..Default::default()
        };
        let mut c = DtlsEndpoint::with_config(
            &cc,
            DtlsRole::Client,
            vec![sc.fingerprint().clone()],
            now,
            &cfg,
        )
        .unwrap();
        let mut s =
            DtlsEndpoint::new(&sc, DtlsRole::Server, vec![cc.fingerprint().clone()], now).unwrap();
        pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
        let (ck, sk) = (connected(&mut c), connected(&mut s));
        assert_eq!(ck.suite, suite);
        assert_keys_work(&ck, &sk);
    }
}

#[test]
fn no_common_srtp_profile_fails_with_reason() {
    let (cc, sc) = certs();
    let now = Instant::now();
    let only = |s| DtlsConfig {
        srtp_suites: vec![s],
        ..Default::default()
    };
    let mut c = DtlsEndpoint::with_config(
        &cc,
        DtlsRole::Client,
        vec![sc.fingerprint().clone()],
        now,
        &only(SrtpSuite::AesCm128HmacSha1_80),
    )
    .unwrap();
    let mut s = DtlsEndpoint::with_config(
        &sc,
        DtlsRole::Server,
        vec![cc.fingerprint().clone()],
        now,
        &only(SrtpSuite::AeadAes256Gcm),
    )
    .unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    let reason = failed(&mut c);
    assert!(reason.contains("use_srtp"), "{reason}");
}

#[test]
fn wrong_fingerprint_fails_with_a_clear_reason_on_both_sides() {
    let (cc, sc) = certs();
    let mut wrong = sc.fingerprint().clone();
    wrong.bytes[0] ^= 0xff;
    // The client checks the server's certificate first.
    let now = Instant::now();
    let mut c = DtlsEndpoint::new(&cc, DtlsRole::Client, vec![wrong.clone()], now).unwrap();
    let mut s =
        DtlsEndpoint::new(&sc, DtlsRole::Server, vec![cc.fingerprint().clone()], now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    let reason = failed(&mut c);
    assert!(
        reason.contains("fingerprint mismatch") && reason.contains("sha-256"),
        "{reason}"
    );
    let peer_reason = failed(&mut s);
    eprintln!("client: {reason}\nserver: {peer_reason}");
    assert!(peer_reason.contains("alert"), "{peer_reason}");
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.is_connected() && !s.is_connected());

    // The server checks the client's certificate.
    let mut wrong_c = cc.fingerprint().clone();
    wrong_c.bytes[31] ^= 1;
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], now).unwrap();
    let mut s = DtlsEndpoint::new(&sc, DtlsRole::Server, vec![wrong_c], now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    let reason = failed(&mut s);
    assert!(reason.contains("fingerprint mismatch"), "{reason}");
    assert!(
        !matches!(c.poll_event(), Some(DtlsEvent::Connected(_))),
        "the client must not get keys either"
    );

    // A fingerprint in a hash we cannot check is no authentication.
    let md5 = Fingerprint {
        hash: "md5".into(),
        bytes: vec![0; 16],
    };
    let mut c = DtlsEndpoint::new(&cc, DtlsRole::Client, vec![md5], now).unwrap();
    let mut s =
        DtlsEndpoint::new(&sc, DtlsRole::Server, vec![cc.fingerprint().clone()], now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    let reason = failed(&mut c);
    assert!(reason.contains("no a=fingerprint uses a hash"), "{reason}");
}

#[test]
fn other_hash_fingerprints_are_accepted() {
    let (cc, sc) = certs();
    let now = Instant::now();
    let fp1 = sc.fingerprint_with("sha-1").unwrap();
    let fp512 = cc.fingerprint_with("SHA-512").unwrap();
    assert_eq!(fp1.bytes.len(), 20);
    let mut c = DtlsEndpoint::new(&cc, DtlsRole::Client, vec![fp1], now).unwrap();
    let mut s = DtlsEndpoint::new(&sc, DtlsRole::Server, vec![fp512], now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    let (ck, sk) = (connected(&mut c), connected(&mut s));
    assert_keys_work(&ck, &sk);
}

#[test]
fn lost_flight_is_recovered_by_the_retransmission_timer() {
    let (cc, sc) = certs();
    let start = Instant::now();
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], start).unwrap();
    let mut s =
        DtlsEndpoint::new(&sc, DtlsRole::Server, vec![cc.fingerprint().clone()], start).unwrap();
    // Lose the server's whole first flight (ServerHello … ServerHelloDone).
    let mut lose_server_flight = |from_client: bool, _n: usize| !from_client;
    let mut n = 0;
    pump(&mut c, &mut s, start, &mut lose_server_flight, &mut n);
    assert!(c.poll_event().is_none() && s.poll_event().is_none());
    let t = c.poll_timeout().unwrap();
    assert!(
        t > start && t <= start + Duration::from_millis(1100),
        "{t:?}"
    );
    // Before the deadline nothing is resent.
    c.handle_timeout(start + Duration::from_millis(10));
    assert!(c.poll_transmit().is_none());
    // OpenSSL's timer uses the wall clock: really wait for it.
    let mut retransmitted = 0;
    while retransmitted == 0 {
        let deadline = c.poll_timeout().unwrap();
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let now = Instant::now();
        assert!(now < start + Duration::from_secs(5), "no retransmission");
        c.handle_timeout(now);
        s.handle_timeout(now);
        retransmitted = pump(&mut c, &mut s, now, &mut |_, _| false, &mut n);
    }
    let (ck, sk) = (connected(&mut c), connected(&mut s));
    assert_keys_work(&ck, &sk);
}

#[test]
fn lost_final_flight_is_recovered_too() {
    // The server's last flight (ChangeCipherSpec + Finished) is lost: the client
    // retransmits its flight, the already-connected server answers it again.
    let (cc, sc) = certs();
    let start = Instant::now();
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], start).unwrap();
    let mut s =
        DtlsEndpoint::new(&sc, DtlsRole::Server, vec![cc.fingerprint().clone()], start).unwrap();
    let mut server_flights = 0;
    let mut n = 0;
    // Deliver step by step: lose whatever the server sends after it connected.
    let mut guard = 0;
    while !s.is_connected() {
        guard += 1;
        assert!(guard < 20);
        while let Some(d) = c.poll_transmit() {
            s.handle_datagram(start, &d);
        }
        while let Some(d) = s.poll_transmit() {
            if s.is_connected() {
                server_flights += 1; // lost
            } else {
                c.handle_datagram(start, &d);
            }
        }
    }
    assert!(server_flights > 0);
    assert!(!c.is_connected());
    let sk = connected(&mut s);
    let deadline = c.poll_timeout().unwrap();
    while !c.is_connected() {
        let now = Instant::now();
        assert!(now < start + Duration::from_secs(5), "not recovered");
        if let Some(d) = c.poll_timeout() {
            if d > now {
                std::thread::sleep(d - now);
            }
        }
        let now = Instant::now();
        c.handle_timeout(now);
        pump(&mut c, &mut s, now, &mut |_, _| false, &mut n);
    }
    assert!(deadline > start);
    let ck = connected(&mut c);
    assert_keys_work(&ck, &sk);
}

#[test]
fn fingerprints_may_arrive_after_the_handshake() {
    // RFC 5763 §5: the offerer may see the ClientHello before the answer.
    let (cc, sc) = certs();
    let now = Instant::now();
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], now).unwrap();
    let mut s = DtlsEndpoint::new(&sc, DtlsRole::Server, Vec::new(), now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    let ck = connected(&mut c);
    assert!(
        s.poll_event().is_none(),
        "no keys before the fingerprint is known"
    );
    assert!(s.poll_timeout().is_some());
    s.set_remote_fingerprints(vec![cc.fingerprint().clone()]);
    let sk = connected(&mut s);
    assert_keys_work(&ck, &sk);

    // And if the late fingerprint does not match, it fails.
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], now).unwrap();
    let mut s = DtlsEndpoint::new(&sc, DtlsRole::Server, Vec::new(), now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    s.set_remote_fingerprints(vec![sc.fingerprint().clone()]);
    assert!(failed(&mut s).contains("fingerprint mismatch"));
}

#[test]
fn handshake_times_out_with_a_reason() {
    let (cc, sc) = certs();
    let now = Instant::now();
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], now).unwrap();
    while c.poll_transmit().is_some() {}
    c.handle_timeout(now + Duration::from_secs(21));
    assert_eq!(failed(&mut c), "DTLS handshake timed out");
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn garbage_and_non_dtls_datagrams_never_panic() {
    let (cc, sc) = certs();
    let now = Instant::now();
    let mut s =
        DtlsEndpoint::new(&sc, DtlsRole::Server, vec![cc.fingerprint().clone()], now).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    use rand::Rng;
    for i in 0..2000 {
        let len = rng.gen_range(0..300);
        let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if i % 2 == 0 && !d.is_empty() {
            d[0] = 22; // handshake content type
            if d.len() > 2 {
                d[1] = 0xfe;
                d[2] = 0xfd;
            }
        }
        s.handle_datagram(now, &d);
        while s.poll_transmit().is_some() {}
    }
    assert!(s.ignored_datagrams() > 0);
    // Still able to complete a real handshake afterwards (or it failed with a reason).
    let mut c =
        DtlsEndpoint::new(&cc, DtlsRole::Client, vec![sc.fingerprint().clone()], now).unwrap();
    pump(&mut c, &mut s, now, &mut |_, _| false, &mut 0);
    match s.poll_event() {
        Some(DtlsEvent::Connected(_)) | Some(DtlsEvent::Failed { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn certificate_fingerprint_and_pem_round_trip() {
    let (cc, _) = certs();
    let fp = cc.fingerprint();
    assert_eq!(fp.hash, "sha-256");
    assert_eq!(fp.bytes.len(), 32);
    let (cert_pem, key_pem) = cc.to_pem().unwrap();
    let again = DtlsCert::from_pem(&cert_pem, &key_pem).unwrap();
    assert_eq!(again.fingerprint(), fp);
    let dbg = format!("{cc:?}");
    assert!(dbg.contains("sha-256") && !dbg.contains("PRIVATE"), "{dbg}");
    let (other, _) = {
        let mut rng = StdRng::seed_from_u64(77);
        (DtlsCert::generate(&mut rng).unwrap(), ())
    };
    assert!(DtlsCert::from_pem(&cert_pem, &other.to_pem().unwrap().1).is_err());
}
