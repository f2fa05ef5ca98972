//! RFC 3263 location against a real authoritative DNS server: Knot DNS (Debian package
//! `knot`), started by the test on 127.0.0.1 at an allocated port with a zone the test
//! writes from `configs/dns/`, stopped by PID. Peerline's `Locator` is pointed at it with
//! `Locator::with_server`.
//!
//! Run: `cargo test -p peerline-interop --test dns_location -- --ignored --test-threads=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use peerline_dns::{
    DnsError, FailReason, Failover, FailoverConfig, Locator, Origin, Target, Transport,
};
use peerline_interop::{
    alloc_port_block, free_udp_port, tails, wait_for, zone_from_template, Coturn, CoturnOptions,
    Kamailio, KamailioOptions, MatrixEntry, Process, TestDir,
};

const TTL: u64 = 3;
const IP1: &str = "127.0.0.2";
const IP2: &str = "127.0.0.3";

struct Zone {
    ttl: u64,
    port1: u16,
    port2: u16,
}

/// The test zone (`configs/dns/peerline.test.zone`) served by `knotd` on
/// 127.0.0.1:`dns_port`, its files in `dir/<name>`.
fn start_knot(dir: &TestDir, name: &str, dns_port: u16, zone: &Zone) -> Process {
    let text = zone_from_template(
        "peerline.test.zone",
        &[
            ("TTL", zone.ttl.to_string()),
            ("PORT1", zone.port1.to_string()),
            ("PORT2", zone.port2.to_string()),
            ("IP1", IP1.into()),
            ("IP2", IP2.into()),
        ],
    )
    .unwrap();
    peerline_interop::start_knot(dir, name, "peerline.test", &text, dns_port).unwrap()
}

fn keys(t: &[Target]) -> Vec<(Transport, SocketAddr)> {
    t.iter().map(Target::key).collect()
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

/// Can a SIP-over-TCP connection be made to the target? (Nothing listening → refused.)
fn reachable(t: &Target) -> bool {
    TcpStream::connect_timeout(&t.addr, Duration::from_secs(1)).is_ok()
}

/// NAPTR prefers TCP, SRV orders sip1 before sip2; the first server is down (connection
/// refused), so the next target is used; within the TTL answers come from the cache (the
/// DNS server is even stopped); after the TTL new queries are made and, with the first
/// server back, new transactions fail back to it.
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn naptr_srv_order_failover_and_failback() {
    let mut entry = MatrixEntry::new("knot", "dns-rfc3263-failover", "tcp");
    let dir = TestDir::new("dns_naptr_srv_order_failover_and_failback").unwrap();
    let dns_port = free_udp_port().unwrap();
    let base = alloc_port_block(2).unwrap();
    let zone = Zone {
        ttl: TTL,
        port1: base,
        port2: base + 1,
    };
    let mut knot = start_knot(&dir, "knotd", dns_port, &zone);
    let dns = sa("127.0.0.1", dns_port);
    let locator = Locator::with_server(dns)
        .limit(Duration::from_secs(3))
        .seed(3);

    let t0 = Instant::now();
    let targets = locator.locate("sip:alice@peerline.test").await.unwrap();
    assert_eq!(
        keys(&targets),
        vec![
            (Transport::Tcp, sa(IP1, zone.port1)),
            (Transport::Tcp, sa(IP2, zone.port2)),
            (Transport::Udp, sa(IP1, zone.port1)),
            (Transport::Udp, sa(IP2, zone.port2)),
        ],
        "NAPTR order (TCP first), then SRV priority"
    );
    assert_eq!(targets[0].ttl, Duration::from_secs(TTL));
    match &targets[0].from {
        Origin::Srv {
            naptr: Some(n),
            srv_name,
            target,
            priority,
            ..
        } => {
            assert_eq!(n.service, "SIP+D2T");
            assert_eq!(srv_name, "_sip._tcp.peerline.test");
            assert_eq!((target.as_str(), *priority), ("sip1.peerline.test", 10));
        }
        o => panic!("unexpected origin {o:?}"),
    }

    // sip1 is down (nothing listens there), sip2 is up.
    let sip2 = TcpListener::bind(sa(IP2, zone.port2)).unwrap();
    let mut fo = Failover::with_config(
        targets.clone(),
        FailoverConfig {
            min_down: Duration::from_secs(1),
            max_down: Duration::from_secs(60),
        },
    );
    let first = fo.pick(Instant::now()).unwrap();
    assert_eq!(first.key(), targets[0].key());
    assert!(
        !reachable(&first),
        "nothing should listen on {}",
        first.addr
    );
    let failed_at = Instant::now();
    let (until, next) = fo.mark_failed(&first, FailReason::Transport, failed_at);
    assert_eq!(until, failed_at + Duration::from_secs(TTL));
    let next = next.unwrap();
    assert_eq!(next.key(), (Transport::Tcp, sa(IP2, zone.port2)));
    assert!(reachable(&next));
    fo.mark_ok(&next);
    // New transactions keep going to sip2 while sip1 is blacklisted.
    assert_eq!(fo.pick(Instant::now()).unwrap().key(), next.key());
    assert_eq!(fo.next_failback(), Some(until));

    // Within the TTL no query is needed: stop the DNS server, location still answers.
    knot.stop();
    let cached = locator.locate("sip:alice@peerline.test").await.unwrap();
    assert_eq!(keys(&cached), keys(&targets));
    assert!(
        t0.elapsed() < Duration::from_secs(TTL),
        "test too slow for TTL"
    );

    // After the TTL the cache is empty: with no server the location fails (clearly).
    tokio::time::sleep(Duration::from_secs(TTL) + Duration::from_millis(300)).await;
    let e = locator.locate("sip:alice@peerline.test").await.unwrap_err();
    assert!(e.to_string().contains("peerline.test"), "{e}");

    // DNS back, sip1 back: the blacklist entry has expired, so we fail back to sip1.
    let knot2 = start_knot(&dir, "knotd2", dns_port, &zone);
    let sip1 = TcpListener::bind(sa(IP1, zone.port1)).unwrap();
    let again = locator.locate("sip:alice@peerline.test").await.unwrap();
    assert_eq!(keys(&again), keys(&targets));
    fo.set_targets(again);
    let now = Instant::now();
    assert!(now >= until);
    let back = fo.pick(now).unwrap();
    assert_eq!(
        back.key(),
        (Transport::Tcp, sa(IP1, zone.port1)),
        "failback"
    );
    assert!(reachable(&back));
    assert_eq!(fo.next_failback(), None);
    drop((sip1, sip2, knot2));
    entry.note("NAPTR→TCP, SRV order, failover, TTL cache, failback");
    entry.pass();
}

/// Bad DNS data and a dead server end with clear errors naming the domain, within the limit.
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn bad_dns_data_gives_clear_errors() {
    let dir = TestDir::new("dns_bad_dns_data_gives_clear_errors").unwrap();
    let dns_port = free_udp_port().unwrap();
    let zone = Zone {
        ttl: 60,
        port1: 5060,
        port2: 5061,
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    let locator = Locator::with_server(sa("127.0.0.1", dns_port)).limit(Duration::from_secs(5));

    // No records at all (NXDOMAIN).
    let e = locator
        .locate("sip:bob@nothing.peerline.test")
        .await
        .unwrap_err();
    let DnsError::NotFound { domain, detail } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(domain, "nothing.peerline.test");
    assert!(
        detail.contains("NAPTR nothing.peerline.test: no records"),
        "{detail}"
    );

    // An SRV target without an address.
    let e = locator
        .locate("sip:noaddr.peerline.test")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("SRV targets without an address: ghost.peerline.test"),
        "{e}"
    );

    // A CNAME loop.
    let start = Instant::now();
    let e = locator
        .locate("sip:loop.peerline.test:5060")
        .await
        .unwrap_err();
    eprintln!("CNAME loop: {e}");
    assert!(matches!(e, DnsError::LookupFailed { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("A loop.peerline.test: failed (CNAME loop: loop.peerline.test. -> loop2.peerline.test. -> loop.peerline.test.)"),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(6));

    // A server that never answers: bounded by the limit.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = Locator::with_server(silent.local_addr().unwrap()).limit(Duration::from_secs(2));
    let start = Instant::now();
    let e = dead.locate("sip:peerline.test").await.unwrap_err();
    eprintln!("silent server: {e}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(&e, DnsError::Timeout { domain, .. } | DnsError::LookupFailed { domain, .. } if domain == "peerline.test"),
        "{e:?}"
    );
}

/// Read one SIP message head (a response, or a request without its body) from a stream
/// (bounded).
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
        let n = s.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A real Kamailio registrar found only through the zone: NAPTR → TCP, SRV → its
/// address and port. A hand-written REGISTER goes over TCP to the located target and
/// Kamailio's digest challenge (401 with realm peerline.test) proves the location (the phone
/// registering the same way: `peerline_registers_over_tcp_as_the_naptr_records_prefer`).
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn kamailio_registrar_found_through_the_zone() {
    let mut entry = MatrixEntry::new("kamailio", "dns-locate-registrar", "tcp");
    let dir = TestDir::new("dns_kamailio_registrar_found_through_the_zone").unwrap();
    let dns_port = free_udp_port().unwrap();
    let sip_port = alloc_port_block(2).unwrap();
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .listen_ip(IP1)
            .port(sip_port)
            .user("alice", "secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let zone = Zone {
        ttl: 60,
        port1: sip_port,
        port2: sip_port + 1, // sip2: nothing there
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    let locator = Locator::with_server(sa("127.0.0.1", dns_port));
    let targets = locator.locate("sip:peerline.test").await.unwrap();
    let first = &targets[0];
    assert_eq!(first.key(), (Transport::Tcp, sa(IP1, sip_port)));

    let mut s = TcpStream::connect_timeout(&first.addr, Duration::from_secs(2)).unwrap();
    let local = s.local_addr().unwrap();
    let req = format!(
        "REGISTER sip:peerline.test SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-dns-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@peerline.test>;tag=dns{n}\r\n\
         To: <sip:alice@peerline.test>\r\n\
         Call-ID: dns-location-{n}@{ip}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:alice@{local};transport=tcp>\r\n\
         Expires: 60\r\n\
         Content-Length: 0\r\n\r\n",
        n = std::process::id(),
        ip = local.ip(),
    );
    s.write_all(req.as_bytes()).unwrap();
    let resp = read_response(&mut s);
    assert!(
        resp.starts_with("SIP/2.0 401"),
        "{resp}\n{}",
        tails(&[kam.process()], 40)
    );
    assert!(resp.contains("realm=\"peerline.test\""), "{resp}");
    entry.note("located via NAPTR/SRV; a hand-written REGISTER over TCP gets the 401 (the phone itself: dns-register-digest over tcp)");
    entry.pass();
    kam.stop();
}

/// A phone whose account `sip:alice@peerline.test` (password `secret`, `expires`) has no
/// registrar but its domain, with the test's DNS server; and the outcome of its first
/// registration (bounded: 8 s).
async fn phone_registering_through_the_zone(
    dns_port: u16,
    expires: u32,
) -> (
    peerline_ua::Phone,
    peerline_ua::Events,
    Result<u32, String>,
    Duration,
) {
    let mut config = peerline_ua::Config::default();
    config.identity.user = "alice".into();
    config.network.sip_listen = sa("127.0.0.1", 0);
    config.network.dns_server = Some(sa("127.0.0.1", dns_port));
    config.media.srtp = peerline_ua::SrtpMode::Off;
    config.accounts = vec![toml::from_str(&format!(
        "aor = \"sip:alice@peerline.test\"\npassword = \"secret\"\nexpires = {expires}\n"
    ))
    .unwrap()];
    let started = Instant::now();
    let (phone, mut events) = peerline_ua::Phone::start(config).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(ev) = events.recv().await {
            match ev {
                peerline_ua::Event::Registered { expires, .. } => return Ok(expires),
                peerline_ua::Event::RegistrationFailed { code, reason, .. } => {
                    return Err(format!("{code} {reason}"))
                }
                _ => {}
            }
        }
        Err("phone stopped".into())
    })
    .await
    .unwrap_or_else(|_| Err("no registration outcome within 8 s".into()));
    (phone, events, outcome, started.elapsed())
}

/// Calls `uri` (silence, no recording) and waits, at most 8 s, for the call to end.
async fn call_and_end(
    phone: &peerline_ua::Phone,
    events: &mut peerline_ua::Events,
    uri: &str,
) -> peerline_ua::EndReason {
    let options = peerline_ua::MediaOptions {
        source: peerline_ua::AudioSource::Silence,
        record: None,
    };
    let call = phone.call(uri, options).await.unwrap();
    tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(ev) = events.recv().await {
            if let peerline_ua::Event::Ended {
                call: c, reason, ..
            } = ev
            {
                if c == call {
                    return Some(reason);
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("the call to {uri} did not end within 8 s"))
}

/// Bounded wait for a line of Kamailio's request log (`REQ <method> <uri> from <ip:port>
/// over <proto>`, from the template's xlog).
fn wait_kamailio_log(kam: &Kamailio, needle: &str) {
    wait_for(
        needle,
        Duration::from_secs(3),
        Duration::from_millis(50),
        || kam.process().stderr_text().contains(needle),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
}

/// The phone itself registers over the transport the NAPTR records prefer: the zone puts
/// `SIP+D2T` before `SIP+D2U` and Kamailio listens on TCP only, so the registration can only
/// succeed over TCP; Kamailio's log shows the REGISTER arrived over TCP and its location
/// table holds a TCP contact. A call to an unknown user then goes over TCP too (Kamailio
/// challenges it, the phone answers the challenge, Kamailio says 404).
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerline_registers_over_tcp_as_the_naptr_records_prefer() {
    let entry = MatrixEntry::new("kamailio", "dns-register-digest", "tcp");
    let dir = TestDir::new("dns_peerline_registers_over_tcp").unwrap();
    let dns_port = free_udp_port().unwrap();
    let sip_port = alloc_port_block(2).unwrap();
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .listen_ip(IP1)
            .port(sip_port)
            .transports(false, true)
            .user("alice", "secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let zone = Zone {
        ttl: 60,
        port1: sip_port,
        port2: sip_port + 1,
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    let (phone, mut events, outcome, _) = phone_registering_through_the_zone(dns_port, 120).await;
    let expires = outcome.unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    assert!(expires > 0 && expires <= 120, "{expires}");
    wait_kamailio_log(&kam, "REQ REGISTER sip:peerline.test from 127.0.0.1:");
    let log = kam.process().stderr_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("REQ REGISTER"))
            .all(|l| l.ends_with("over tcp")),
        "{log}"
    );
    kam.wait_registered("alice", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let table = kam.kamcmd(&["ul.dump"]).unwrap();
    assert!(table.contains("transport=tcp"), "{table}");
    assert!(
        table.contains(&format!("Socket: tcp:{IP1}:{sip_port}")),
        "{table}"
    );

    // A call: located the same way (TCP first), digest-challenged, then 404.
    let reason = call_and_end(&phone, &mut events, "sip:nobody@peerline.test").await;
    assert!(
        matches!(reason, peerline_ua::EndReason::Rejected(404, _)),
        "{reason:?}\n{}",
        tails(&[kam.process()], 40)
    );
    wait_kamailio_log(&kam, "REQ INVITE sip:nobody@peerline.test from 127.0.0.1:");
    let log = kam.process().stderr_text();
    let invites: Vec<&str> = log.lines().filter(|l| l.contains("REQ INVITE")).collect();
    assert_eq!(invites.len(), 2, "challenged, then with credentials: {log}");
    assert!(invites.iter().all(|l| l.ends_with("over tcp")), "{log}");
    phone.shutdown().await;
    entry.pass();
    kam.stop();
}

/// Failover inside the phone (RFC 3263 §4.3): the zone's targets are TCP sip1, TCP sip2,
/// UDP sip1, UDP sip2; Kamailio on sip1 listens on UDP only and nothing listens on sip2, so
/// both TCP connections are refused and the phone registers, as a new transaction, over
/// UDP at sip1, within seconds (a refused connection fails over at once, not after Timer F).
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerline_fails_over_to_the_next_target_when_tcp_is_refused() {
    let entry = MatrixEntry::new("kamailio", "dns-register-failover", "udp");
    let dir = TestDir::new("dns_peerline_fails_over").unwrap();
    let dns_port = free_udp_port().unwrap();
    let sip_port = alloc_port_block(2).unwrap();
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .listen_ip(IP1)
            .port(sip_port)
            .transports(true, false)
            .user("alice", "secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let zone = Zone {
        ttl: 60,
        port1: sip_port,
        port2: sip_port + 1,
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    let (phone, _events, outcome, took) = phone_registering_through_the_zone(dns_port, 120).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    assert!(took < Duration::from_secs(5), "{took:?}");
    wait_kamailio_log(&kam, "REQ REGISTER sip:peerline.test from 127.0.0.1:");
    let log = kam.process().stderr_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("REQ REGISTER"))
            .all(|l| l.ends_with("over udp")),
        "{log}"
    );
    kam.wait_registered("alice", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    phone.shutdown().await;
    entry.pass();
    kam.stop();
}

/// Failback inside the phone: Kamailio on sip1 first listens on UDP only, so the phone
/// registers over UDP there (both TCP targets refused); then a second Kamailio listens on TCP
/// at sip1. The preferred target's blacklisting (its TTL, 2 s, clamped to 5 s) has run out
/// by the registration's refresh (expires 60: after 30 s), so the refresh is a new
/// registration over TCP at sip1, NAPTR's first choice again.
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerline_fails_back_to_the_preferred_target_after_its_ttl() {
    let entry = MatrixEntry::new("kamailio", "dns-register-failback", "tcp");
    let dir = TestDir::new("dns_peerline_fails_back").unwrap();
    let dir_tcp = TestDir::new("dns_peerline_fails_back_tcp").unwrap();
    let dns_port = free_udp_port().unwrap();
    let sip_port = alloc_port_block(2).unwrap();
    let kamailio = |dir: &TestDir, udp: bool| {
        let mut kam = Kamailio::start(
            KamailioOptions::new()
                .listen_ip(IP1)
                .port(sip_port)
                .transports(udp, !udp)
                .user("alice", "secret"),
            dir,
        )
        .unwrap();
        kam.wait_ready(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
        kam
    };
    let mut kam_udp = kamailio(&dir, true);
    let zone = Zone {
        ttl: 2,
        port1: sip_port,
        port2: sip_port + 1,
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    let (phone, _events, outcome, _) = phone_registering_through_the_zone(dns_port, 60).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam_udp.process()], 40)));
    wait_kamailio_log(&kam_udp, "REQ REGISTER sip:peerline.test from 127.0.0.1:");
    assert!(kam_udp.process().stderr_text().contains(" over udp"));

    let mut kam_tcp = kamailio(&dir_tcp, false);
    let needle = "REQ REGISTER sip:peerline.test from 127.0.0.1:";
    wait_for(
        "the refresh over TCP at sip1",
        Duration::from_secs(45),
        Duration::from_millis(200),
        || kam_tcp.process().stderr_text().contains(needle),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            tails(&[kam_udp.process(), kam_tcp.process()], 30)
        )
    });
    kam_tcp
        .wait_registered("alice", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam_tcp.process()], 40)));
    let log = kam_tcp.process().stderr_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("REQ REGISTER"))
            .all(|l| l.ends_with("over tcp")),
        "{log}"
    );
    phone.shutdown().await;
    entry.pass();
    kam_tcp.stop();
    kam_udp.stop();
}

/// Calls fail over too (RFC 3263 §4.3): the account's outbound proxy is the zone's domain;
/// its first target (TCP sip1) is a test-owned socket answering the INVITE with 503, so
/// the same call is sent again (a new transaction) to the next target, TCP sip2, where
/// Kamailio challenges it and, with credentials, answers 404 (no such user); the next call
/// goes straight to sip2 (sip1 is avoided after its 503).
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_from_the_proxy_moves_the_call_to_its_next_target() {
    call_failover(Sip1::Busy503).await;
}

/// The same when sip1 refuses the TCP connection: the INVITE fails at once
/// (`Endpoint::unreachable`) and goes to sip2.
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_proxy_target_moves_the_call_to_the_next_one() {
    call_failover(Sip1::Refused).await;
}

/// What the proxy's first target does with our INVITE.
#[derive(Clone, Copy, PartialEq)]
enum Sip1 {
    Busy503,
    Refused,
}

/// Alice's phone, resolving through the zone's Knot on `dns_port`, with the zone's domain
/// as outbound proxy (no registration, plain RTP).
async fn proxy_phone(dns_port: u16) -> (peerline_ua::Phone, peerline_ua::Events) {
    let mut config = peerline_ua::Config::default();
    config.identity.user = "alice".into();
    config.network.sip_listen = sa("127.0.0.1", 0);
    config.network.dns_server = Some(sa("127.0.0.1", dns_port));
    config.media.srtp = peerline_ua::SrtpMode::Off;
    config.accounts = vec![toml::from_str(
        "aor = \"sip:alice@peerline.test\"\npassword = \"secret\"\nregister = false\noutbound_proxy = \"sip:peerline.test\"\n",
    )
    .unwrap()];
    peerline_ua::Phone::start(config).await.unwrap()
}

/// A test-owned SIP server over TCP: answers the first request on its first connection
/// with `status` (a status line's code and phrase, optionally followed by CRLF and more
/// headers) and returns that request's head and the connection (kept open).
fn answer_first_request(
    listener: TcpListener,
    status: &str,
) -> std::thread::JoinHandle<(String, TcpStream)> {
    let status = status.to_string();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let head = read_response(&mut s);
        let copied: String = head
            .lines()
            .filter(|l| {
                ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                    .iter()
                    .any(|h| l.starts_with(h))
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        let resp = format!("SIP/2.0 {status}\r\n{copied}Content-Length: 0\r\n\r\n");
        s.write_all(resp.as_bytes()).unwrap();
        (head, s)
    })
}

/// RFC 3263 targets live no longer than their TTL (2 s here): a call goes to the
/// zone's sip1; the zone then changes (Knot restarted with sip1 on another port) and,
/// after the TTL, the next call is located again and goes to the new address.
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_located_again_after_their_ttl() {
    let entry = MatrixEntry::new("knot", "dns-relocate-after-ttl", "tcp");
    let dir = TestDir::new("dns_relocate_after_ttl").unwrap();
    let dns_port = free_udp_port().unwrap();
    let ports = alloc_port_block(3).unwrap();
    let first = Zone {
        ttl: 2,
        port1: ports,
        port2: ports + 2,
    };
    let moved = Zone {
        port1: ports + 1,
        ..first
    };
    let server_a = answer_first_request(
        TcpListener::bind(sa(IP1, first.port1)).unwrap(),
        "486 Busy Here",
    );
    let server_b = answer_first_request(
        TcpListener::bind(sa(IP1, moved.port1)).unwrap(),
        "486 Busy Here",
    );
    let mut knot = start_knot(&dir, "knot-a", dns_port, &first);
    let (phone, mut events) = proxy_phone(dns_port).await;
    let r = call_and_end(&phone, &mut events, "sip:bob@peerline.test").await;
    assert!(
        matches!(&r, peerline_ua::EndReason::Rejected(486, _)),
        "{r:?}"
    );
    let (head_a, _a) = server_a.join().unwrap();
    assert!(
        head_a.starts_with("INVITE sip:bob@peerline.test"),
        "{head_a}"
    );
    // The zone changes: sip1 now on the other port.
    knot.stop();
    let _knot = start_knot(&dir, "knot-b", dns_port, &moved);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = call_and_end(&phone, &mut events, "sip:bob@peerline.test").await;
    assert!(
        matches!(&r, peerline_ua::EndReason::Rejected(486, _)),
        "the call did not reach the new address: {r:?}"
    );
    let (head_b, _b) = server_b.join().unwrap();
    assert!(
        head_b.starts_with("INVITE sip:bob@peerline.test"),
        "{head_b}"
    );
    phone.shutdown().await;
    entry.pass();
}

async fn call_failover(sip1_does: Sip1) {
    let (feature, dir_name) = match sip1_does {
        Sip1::Busy503 => ("dns-call-failover-503", "dns_call_failover_503"),
        Sip1::Refused => ("dns-call-failover-refused", "dns_call_failover_refused"),
    };
    let entry = MatrixEntry::new("kamailio", feature, "tcp");
    let dir = TestDir::new(dir_name).unwrap();
    let dns_port = free_udp_port().unwrap();
    let sip_port = alloc_port_block(2).unwrap();
    let zone = Zone {
        ttl: 60,
        port1: sip_port,
        port2: sip_port + 1,
    };
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .listen_ip(IP2)
            .port(zone.port2)
            .user("alice", "secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    // sip1 over TCP: answers the first request it reads with 503 and keeps the
    // connection, or (Refused) nothing listens there.
    let busy = (sip1_does == Sip1::Busy503).then(|| {
        answer_first_request(
            TcpListener::bind(sa(IP1, zone.port1)).unwrap(),
            "503 Service Unavailable\r\nRetry-After: 60",
        )
    });
    let (phone, mut events) = proxy_phone(dns_port).await;
    let first = call_and_end(&phone, &mut events, "sip:nobody@peerline.test").await;
    assert!(
        matches!(&first, peerline_ua::EndReason::Rejected(404, _)),
        "the call did not move to sip2 after sip1 failed: {first:?}\n{}",
        tails(&[kam.process()], 40)
    );
    let _conn = busy.map(|t| {
        let (head, conn) = t.join().unwrap();
        assert!(
            head.starts_with("INVITE sip:nobody@peerline.test SIP/2.0"),
            "{head}"
        );
        assert!(head.contains("Via: SIP/2.0/TCP "), "{head}");
        conn
    });
    let second = call_and_end(&phone, &mut events, "sip:nobody@peerline.test").await;
    assert!(
        matches!(&second, peerline_ua::EndReason::Rejected(404, _)),
        "{second:?}\n{}",
        tails(&[kam.process()], 40)
    );
    wait_kamailio_log(&kam, "REQ INVITE sip:nobody@peerline.test from 127.0.0.1:");
    let log = kam.process().stderr_text();
    // Both calls reached Kamailio, each INVITE challenged and then sent with credentials.
    assert!(log.matches("REQ INVITE").count() >= 4, "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("REQ INVITE"))
            .all(|l| l.ends_with("over tcp")),
        "{log}"
    );
    phone.shutdown().await;
    entry.pass();
    kam.stop();
}

/// `peerline doctor` (its library, `peerline_ua::doctor`) for an account whose domain only
/// the zone knows: it shows the NAPTR and SRV records, the ordered targets, the chosen
/// target, and Kamailio's answer to the OPTIONS probe; the configured STUN and TURN servers
/// (a real coturn) give our server-reflexive address and an allocation.
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_shows_the_zone_and_kamailio_answers_options() {
    let mut entry = MatrixEntry::new("kamailio", "doctor-dns-options", "tcp");
    let dir = TestDir::new("dns_doctor_shows_the_zone").unwrap();
    let dns_port = free_udp_port().unwrap();
    let sip_port = alloc_port_block(2).unwrap();
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .listen_ip(IP1)
            .port(sip_port)
            .user("alice", "secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let mut turn = Coturn::start(CoturnOptions::new().user("peer", "s3cret-turn"), &dir).unwrap();
    turn.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[turn.process()], 40)));
    let zone = Zone {
        ttl: 60,
        port1: sip_port,
        port2: sip_port + 1,
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);

    let mut config = peerline_ua::Config::default();
    config.network.dns_server = Some(sa("127.0.0.1", dns_port));
    config.accounts =
        vec![toml::from_str("aor = \"sip:alice@peerline.test\"\npassword = \"secret\"\n").unwrap()];
    config.ice = toml::from_str(&format!(
        "stun = [\"stun:{a}\"]\n[[turn]]\nurl = \"turn:{a}\"\nusername = \"peer\"\ncredential = \"s3cret-turn\"\n",
        a = turn.address()
    ))
    .unwrap();
    let options = peerline_ua::doctor::DoctorOptions::default();
    let report = peerline_ua::doctor::run(&config, &options).await;
    let text = report.to_text();
    eprintln!("{text}");
    let expect = [
        "registrar sip:peerline.test".to_string(),
        "NAPTR peerline.test: 10 10 \"s\" \"SIP+D2T\" _sip._tcp.peerline.test., 10 20 \"s\" \"SIP+D2U\" _sip._udp.peerline.test.".to_string(),
        format!("SRV _sip._tcp.peerline.test: 10 0 {p1} sip1.peerline.test., 20 0 {p2} sip2.peerline.test.", p1 = zone.port1, p2 = zone.port2),
        format!("SRV _sip._udp.peerline.test: 10 0 {p1} sip1.peerline.test., 20 0 {p2} sip2.peerline.test.", p1 = zone.port1, p2 = zone.port2),
        format!("A sip1.peerline.test: {IP1}"),
        format!("target 1: TCP {IP1}:{} (from NAPTR 10 10 SIP+D2T → SRV _sip._tcp.peerline.test 10 0 sip1.peerline.test", zone.port1),
        format!("target 2: TCP {IP2}:{}", zone.port2),
        format!("target 3: UDP {IP1}:{} (from NAPTR 10 20 SIP+D2U → SRV _sip._udp.peerline.test 10 0 sip1.peerline.test", zone.port1),
        format!("target 4: UDP {IP2}:{}", zone.port2),
        format!("chosen: TCP {IP1}:{}", zone.port1),
        format!("OPTIONS over TCP to {IP1}:{}: 200", zone.port1),
        "STUN stun:127.0.0.1:".to_string(),
        "our server-reflexive address: 127.0.0.1:".to_string(),
        "allocate ok, relayed address: 127.0.0.1:".to_string(),
        "relay only through: turn:127.0.0.1:".to_string(),
        "doctor: ok".to_string(),
    ];
    assert!(!text.contains("s3cret-turn"), "no credential in the report");
    for e in &expect {
        assert!(
            text.contains(e.as_str()),
            "missing {e:?} in\n{text}\n{}",
            tails(&[kam.process(), turn.process()], 30)
        );
    }
    assert!(report.ok);
    entry.note("doctor: NAPTR/SRV/A records, ordered targets, chosen target, OPTIONS 200 from Kamailio, STUN srflx and TURN allocation from coturn");
    entry.pass();
    kam.stop();
}
