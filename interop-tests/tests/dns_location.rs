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
    alloc_port_block, configs_dir, free_udp_port, tails, Coturn, CoturnOptions, Kamailio,
    KamailioOptions, MatrixEntry, Process, ProcessOptions, TestDir,
};

const TTL: u64 = 3;
const IP1: &str = "127.0.0.2";
const IP2: &str = "127.0.0.3";

struct Zone {
    ttl: u64,
    port1: u16,
    port2: u16,
}

/// Write knot.conf + the zone into `dir/knot` and start `knotd` on 127.0.0.1:`dns_port`.
fn start_knot(dir: &TestDir, name: &str, dns_port: u16, zone: &Zone) -> Process {
    let work = dir.subdir(name).unwrap();
    let zone_text = std::fs::read_to_string(configs_dir().join("dns/peerline.test.zone"))
        .unwrap()
        .replace("@TTL@", &zone.ttl.to_string())
        .replace("@PORT1@", &zone.port1.to_string())
        .replace("@PORT2@", &zone.port2.to_string())
        .replace("@IP1@", IP1)
        .replace("@IP2@", IP2);
    let zone_file = work.join("peerline.test.zone");
    std::fs::write(&zone_file, zone_text).unwrap();
    let conf = std::fs::read_to_string(configs_dir().join("dns/knot.conf"))
        .unwrap()
        .replace("@DIR@", &work.display().to_string())
        .replace("@LISTEN@", &format!("127.0.0.1@{dns_port}"))
        .replace("@ZONEFILE@", &zone_file.display().to_string())
        .replace("@ZONE@", "peerline.test");
    let conf_file = work.join("knot.conf");
    std::fs::write(&conf_file, conf).unwrap();
    let po = ProcessOptions::new(name, "knotd")
        .arg("-c")
        .arg(conf_file.display().to_string())
        .grace(Duration::from_secs(2));
    let mut p = Process::spawn(po, dir.path()).unwrap();
    p.wait_for_log("loaded, serial", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("knotd did not load the zone: {e}\n{}", tails(&[&p], 40)));
    p
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

/// Read one SIP response head from a stream (bounded).
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
/// address and port. The phone cannot REGISTER through the locator yet, so a hand-written
/// REGISTER goes over TCP to the located target and Kamailio's digest challenge (401 with
/// realm peerline.test) proves the location; no registration is completed.
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
    entry.note("located via NAPTR/SRV; a hand-written REGISTER over TCP gets the 401 (the phone itself: dns-register-digest)");
    entry.pass();
    kam.stop();
}

/// The phone itself: an account whose registrar is only its AOR's domain registers at a
/// Kamailio found through the zone (NAPTR → SRV `_sip._udp` → A), over UDP — the phone's
/// transport so far (the zone prefers TCP; the phone skips what it cannot speak).
#[ignore = "needs real peers; run by cargo xtask test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peerline_registers_at_a_registrar_found_through_the_zone() {
    let entry = MatrixEntry::new("kamailio", "dns-register-digest", "udp");
    let dir = TestDir::new("dns_peerline_registers_through_the_zone").unwrap();
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
        port2: sip_port + 1,
    };
    let _knot = start_knot(&dir, "knotd", dns_port, &zone);
    let mut config = peerline_ua::Config::default();
    config.identity.user = "alice".into();
    config.network.sip_listen = sa("127.0.0.1", 0);
    config.network.dns_server = Some(sa("127.0.0.1", dns_port));
    config.media.srtp = peerline_ua::SrtpMode::Off;
    config.accounts = vec![toml::from_str(
        "aor = \"sip:alice@peerline.test\"\npassword = \"secret\"\nexpires = 120\n",
    )
    .unwrap()];
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
    let expires = outcome.unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    assert!(expires > 0 && expires <= 120, "{expires}");
    kam.wait_registered("alice", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
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
    let mut entry = MatrixEntry::new("kamailio", "doctor-dns-options", "udp");
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
    let mut turn = Coturn::start(CoturnOptions::new().user("peer", "line"), &dir).unwrap();
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
    let options = peerline_ua::doctor::DoctorOptions {
        stun_servers: vec![peerline_net::StunServer::from(turn.address())],
        turn_servers: vec![peerline_net::TurnServer::udp(
            turn.address(),
            "peer",
            "line",
        )],
        ..peerline_ua::doctor::DoctorOptions::default()
    };
    let report = peerline_ua::doctor::run(&config, &options).await;
    let text = report.to_text();
    eprintln!("{text}");
    let expect = [
        "registrar sip:peerline.test".to_string(),
        "NAPTR peerline.test: 10 10 \"s\" \"SIP+D2T\" _sip._tcp.peerline.test., 10 20 \"s\" \"SIP+D2U\" _sip._udp.peerline.test.".to_string(),
        format!("SRV _sip._udp.peerline.test: 10 0 {p1} sip1.peerline.test., 20 0 {p2} sip2.peerline.test.", p1 = zone.port1, p2 = zone.port2),
        format!("A sip1.peerline.test: {IP1}"),
        format!("target 1: UDP {IP1}:{} (from NAPTR 10 20 SIP+D2U → SRV _sip._udp.peerline.test 10 0 sip1.peerline.test", zone.port1),
        format!("target 2: UDP {IP2}:{}", zone.port2),
        format!("chosen: UDP {IP1}:{}", zone.port1),
        format!("OPTIONS over UDP to {IP1}:{}: 200", zone.port1),
        "STUN stun:127.0.0.1:".to_string(),
        "our server-reflexive address: 127.0.0.1:".to_string(),
        "allocate ok, relayed address: 127.0.0.1:".to_string(),
        "relay only through: turn:127.0.0.1:".to_string(),
        "doctor: ok".to_string(),
    ];
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
