//! RFC 3263 §4.1/§4.2 branch by branch, over canned records (no network).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use peerline_dns::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A zone: query → answer; anything else is NXDOMAIN. Records which queries were made.
#[derive(Default)]
struct Zone {
    answers: HashMap<Query, Answer>,
    asked: Vec<Query>,
}

impl Zone {
    fn naptr(mut self, name: &str, ttl: u32, recs: &[(u16, u16, &str, &str, &str)]) -> Self {
        let v = recs
            .iter()
            .map(|(o, p, flags, services, repl)| Naptr {
                order: *o,
                preference: *p,
                flags: flags.to_string(),
                services: services.to_string(),
                regexp: String::new(),
                replacement: repl.to_string(),
            })
            .collect();
        self.answers.insert(
            Query::new(name, QueryKind::Naptr),
            Answer::new(ttl, AnswerData::Naptr(v)),
        );
        self
    }
    fn srv(mut self, name: &str, ttl: u32, recs: &[(u16, u16, u16, &str)]) -> Self {
        let v = recs
            .iter()
            .map(|(pr, w, port, t)| Srv {
                priority: *pr,
                weight: *w,
                port: *port,
                target: t.to_string(),
            })
            .collect();
        self.answers.insert(
            Query::new(name, QueryKind::Srv),
            Answer::new(ttl, AnswerData::Srv(v)),
        );
        self
    }
    fn a(mut self, name: &str, ttl: u32, ips: &[&str]) -> Self {
        let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = ips
            .iter()
            .map(|s| s.parse::<IpAddr>().unwrap())
            .partition(IpAddr::is_ipv4);
        if !v4.is_empty() {
            self.answers.insert(
                Query::new(name, QueryKind::A),
                Answer::new(ttl, AnswerData::Addrs(v4)),
            );
        }
        if !v6.is_empty() {
            self.answers.insert(
                Query::new(name, QueryKind::Aaaa),
                Answer::new(ttl, AnswerData::Addrs(v6)),
            );
        }
        self
    }
    fn set(mut self, q: Query, a: Answer) -> Self {
        self.answers.insert(q, a);
        self
    }
    fn locate_with(&mut self, uri: &str, policy: Policy) -> Result<Resolved, DnsError> {
        let dest = Destination::parse(uri)?;
        let mut rng = StdRng::seed_from_u64(7);
        let answers = &self.answers;
        let asked = &mut self.asked;
        resolve_with(
            dest,
            policy,
            |q| {
                asked.push(q.clone());
                answers.get(q).cloned().unwrap_or(Answer::empty(300))
            },
            &mut rng,
        )
    }
    fn locate(&mut self, uri: &str) -> Result<Resolved, DnsError> {
        self.locate_with(uri, Policy::default())
    }
    fn asked(&self) -> Vec<String> {
        self.asked.iter().map(Query::to_string).collect()
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn summary(r: &Resolved) -> Vec<(Transport, SocketAddr)> {
    r.targets.iter().map(Target::key).collect()
}

#[test]
fn numeric_host_needs_no_dns() {
    let mut z = Zone::default();
    let r = z.locate("sip:alice@192.0.2.7").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Udp, sa("192.0.2.7:5060"))]);
    assert_eq!(r.targets[0].from, Origin::Numeric);
    let r = z.locate("sips:[2001:db8::5]").unwrap();
    assert_eq!(
        summary(&r),
        vec![(Transport::Tls, sa("[2001:db8::5]:5061"))]
    );
    let r = z.locate("sip:192.0.2.7:5999;transport=tcp").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tcp, sa("192.0.2.7:5999"))]);
    assert!(z.asked.is_empty());
}

#[test]
fn explicit_port_skips_naptr_and_srv() {
    let mut z = Zone::default()
        .naptr(
            "example.com",
            60,
            &[(10, 10, "s", "SIP+D2T", "_sip._tcp.example.com")],
        )
        .a("example.com", 60, &["192.0.2.1", "2001:db8::1"]);
    let r = z.locate("sip:example.com:5080").unwrap();
    assert_eq!(
        summary(&r),
        vec![
            (Transport::Udp, sa("192.0.2.1:5080")),
            (Transport::Udp, sa("[2001:db8::1]:5080"))
        ]
    );
    assert_eq!(z.asked(), ["A example.com", "AAAA example.com"]);
    // sips with a port: TLS.
    let r = z.locate("sips:example.com:5081").unwrap();
    assert_eq!(r.targets[0].key(), (Transport::Tls, sa("192.0.2.1:5081")));
    // Explicit port and transport.
    let r = z.locate("sip:example.com:5080;transport=tcp").unwrap();
    assert_eq!(r.targets[0].key(), (Transport::Tcp, sa("192.0.2.1:5080")));
}

#[test]
fn explicit_transport_skips_naptr_and_queries_its_srv() {
    let mut z = Zone::default()
        .naptr(
            "example.com",
            60,
            &[(10, 10, "s", "SIP+D2U", "_sip._udp.example.com")],
        )
        .srv(
            "_sip._tcp.example.com",
            60,
            &[(10, 0, 5070, "pbx.example.com")],
        )
        .a("pbx.example.com", 60, &["192.0.2.2"]);
    let r = z.locate("sip:example.com;transport=tcp").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tcp, sa("192.0.2.2:5070"))]);
    assert_eq!(
        z.asked(),
        [
            "SRV _sip._tcp.example.com",
            "A pbx.example.com",
            "AAAA pbx.example.com"
        ]
    );
}

#[test]
fn explicit_transport_without_srv_uses_default_port_of_that_transport() {
    let mut z = Zone::default().a("example.com", 60, &["192.0.2.3"]);
    let r = z.locate("sip:example.com;transport=tcp").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tcp, sa("192.0.2.3:5060"))]);
    let r = z.locate("sips:example.com;transport=tcp").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tls, sa("192.0.2.3:5061"))]);
    assert!(z
        .asked()
        .contains(&"SRV _sips._tcp.example.com".to_string()));
    assert_eq!(
        r.targets[0].from,
        Origin::Address {
            name: "example.com".into()
        }
    );
}

fn naptr_zone() -> Zone {
    Zone::default()
        .naptr(
            "example.com",
            100,
            &[
                (10, 20, "s", "SIP+D2U", "_sip._udp.example.com."),
                (10, 10, "S", "SIP+D2T", "_sip._tcp.example.com."),
                (10, 30, "s", "SIPS+D2T", "_sips._tcp.example.com."),
            ],
        )
        .srv(
            "_sip._udp.example.com",
            80,
            &[(10, 0, 5060, "a.example.com.")],
        )
        .srv(
            "_sip._tcp.example.com",
            80,
            &[(10, 0, 5062, "a.example.com.")],
        )
        .srv(
            "_sips._tcp.example.com",
            80,
            &[(10, 0, 5063, "a.example.com.")],
        )
        .a("a.example.com", 50, &["192.0.2.10"])
}

#[test]
fn naptr_orders_transports_by_preference() {
    let mut z = naptr_zone();
    let r = z.locate("sip:bob@example.com").unwrap();
    assert_eq!(
        summary(&r),
        vec![
            (Transport::Tcp, sa("192.0.2.10:5062")),
            (Transport::Udp, sa("192.0.2.10:5060")),
            (Transport::Tls, sa("192.0.2.10:5063")),
        ]
    );
    match &r.targets[0].from {
        Origin::Srv {
            naptr,
            srv_name,
            target,
            ..
        } => {
            let n = naptr.as_ref().unwrap();
            assert_eq!(
                (n.order, n.preference, n.service.as_str()),
                (10, 10, "SIP+D2T")
            );
            assert_eq!(srv_name, "_sip._tcp.example.com");
            assert_eq!(target, "a.example.com");
        }
        o => panic!("{o:?}"),
    }
    // The smallest TTL of NAPTR (100), SRV (80) and A (50).
    assert_eq!(r.targets[0].ttl, Duration::from_secs(50));
    assert_eq!(z.asked()[0], "NAPTR example.com");
    let lines = r.describe();
    assert_eq!(lines[0], "NAPTR example.com: 10 20 \"s\" \"SIP+D2U\" _sip._udp.example.com., 10 10 \"S\" \"SIP+D2T\" _sip._tcp.example.com., 10 30 \"s\" \"SIPS+D2T\" _sips._tcp.example.com.");
    assert!(
        lines.contains(&"target 1: TCP 192.0.2.10:5062 (from NAPTR 10 10 SIP+D2T → SRV _sip._tcp.example.com 10 0 a.example.com, ttl 50 s)".to_string()),
        "{lines:#?}"
    );
    // Without the TLS transport the SIPS record is skipped.
    let policy = Policy {
        transports: vec![Transport::Udp, Transport::Tcp],
        ..Policy::default()
    };
    let r = z.locate_with("sip:example.com", policy).unwrap();
    assert_eq!(r.targets.len(), 2);
}

#[test]
fn sips_uri_keeps_only_sips_naptr_records() {
    let mut z = naptr_zone();
    let r = z.locate("sips:bob@example.com").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tls, sa("192.0.2.10:5063"))]);
}

#[test]
fn naptr_only_lowest_usable_order_counts() {
    let mut z = naptr_zone().naptr(
        "example.com",
        100,
        &[
            (5, 10, "s", "SIP+D2S", "_sip._sctp.example.com"), // unsupported: skipped
            (20, 10, "s", "SIP+D2T", "_sip._tcp.example.com"),
            (10, 50, "s", "SIP+D2U", "_sip._udp.example.com"),
        ],
    );
    let r = z.locate("sip:example.com").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Udp, sa("192.0.2.10:5060"))]);
}

#[test]
fn unusable_naptr_records_fall_back_to_srv() {
    // flag "u" (a URI), a regexp, a foreign service, a root replacement: none usable.
    let z = naptr_zone();
    let mut z = z.set(
        Query::new("example.com", QueryKind::Naptr),
        Answer::new(
            60,
            AnswerData::Naptr(vec![
                Naptr {
                    order: 1,
                    preference: 1,
                    flags: "u".into(),
                    services: "E2U+sip".into(),
                    regexp: "!^.*$!sip:x@y!".into(),
                    replacement: ".".into(),
                },
                Naptr {
                    order: 1,
                    preference: 2,
                    flags: "s".into(),
                    services: "SIP+D2U".into(),
                    regexp: "!x!y!".into(),
                    replacement: "_sip._udp.example.com".into(),
                },
                Naptr {
                    order: 1,
                    preference: 3,
                    flags: "s".into(),
                    services: "SIP+D2T".into(),
                    regexp: String::new(),
                    replacement: ".".into(),
                },
            ]),
        ),
    );
    let r = z.locate("sip:example.com").unwrap();
    // SRV in the client's order: TLS, TCP, UDP.
    assert_eq!(
        summary(&r),
        vec![
            (Transport::Tls, sa("192.0.2.10:5063")),
            (Transport::Tcp, sa("192.0.2.10:5062")),
            (Transport::Udp, sa("192.0.2.10:5060")),
        ]
    );
    assert_eq!(
        &z.asked()[..4],
        [
            "NAPTR example.com",
            "SRV _sips._tcp.example.com",
            "SRV _sip._tcp.example.com",
            "SRV _sip._udp.example.com"
        ]
    );
}

#[test]
fn no_naptr_srv_queries_per_transport() {
    let mut z = Zone::default()
        .srv(
            "_sip._udp.example.com",
            60,
            &[(10, 0, 5060, "u.example.com")],
        )
        .a("u.example.com", 60, &["192.0.2.20"]);
    let r = z.locate("sip:example.com").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Udp, sa("192.0.2.20:5060"))]);
    // sips: only _sips._tcp is asked, and with no SRV: A/AAAA with TLS on 5061.
    let mut z = Zone::default().a("example.com", 60, &["192.0.2.21"]);
    let r = z.locate("sips:example.com").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tls, sa("192.0.2.21:5061"))]);
    assert_eq!(
        z.asked(),
        [
            "NAPTR example.com",
            "SRV _sips._tcp.example.com",
            "A example.com",
            "AAAA example.com"
        ]
    );
}

#[test]
fn nothing_but_address_records_means_udp_5060() {
    let mut z = Zone::default().a("example.com", 60, &["192.0.2.30"]);
    let r = z.locate("sip:example.com").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Udp, sa("192.0.2.30:5060"))]);
}

#[test]
fn naptr_chosen_transport_survives_missing_srv() {
    let mut z = Zone::default()
        .naptr(
            "example.com",
            60,
            &[(10, 10, "s", "SIP+D2T", "_sip._tcp.example.com")],
        )
        .a("example.com", 60, &["192.0.2.31"]);
    let r = z.locate("sip:example.com").unwrap();
    assert_eq!(summary(&r), vec![(Transport::Tcp, sa("192.0.2.31:5060"))]);
}

#[test]
fn srv_priority_order_root_target_and_addressless_targets() {
    let mut z = Zone::default()
        .srv(
            "_sip._udp.example.com",
            60,
            &[
                (20, 0, 5060, "b.example.com"),
                (10, 0, 5060, "a.example.com"),
                (5, 0, 5060, "."),
                (15, 0, 5060, "noaddr.example.com"),
            ],
        )
        .a("a.example.com", 60, &["192.0.2.1"])
        .a("b.example.com", 60, &["192.0.2.2", "2001:db8::2"]);
    let r = z.locate("sip:example.com;transport=udp").unwrap();
    assert_eq!(
        summary(&r),
        vec![
            (Transport::Udp, sa("192.0.2.1:5060")),
            (Transport::Udp, sa("192.0.2.2:5060")),
            (Transport::Udp, sa("[2001:db8::2]:5060")),
        ]
    );
    // IPv6 first when asked.
    let policy = Policy {
        ip_order: IpOrder::V6ThenV4,
        ..Policy::default()
    };
    let r = z
        .locate_with("sip:example.com;transport=udp", policy)
        .unwrap();
    assert_eq!(r.targets[1].addr, sa("[2001:db8::2]:5060"));
}

#[test]
fn duplicate_targets_are_listed_once() {
    let mut z = Zone::default()
        .srv(
            "_sip._udp.example.com",
            60,
            &[
                (10, 0, 5060, "a.example.com"),
                (20, 0, 5060, "a.example.com"),
            ],
        )
        .a("a.example.com", 60, &["192.0.2.1"]);
    let r = z.locate("sip:example.com;transport=udp").unwrap();
    assert_eq!(r.targets.len(), 1);
}

#[test]
fn errors_name_the_domain_and_what_was_missing() {
    let mut z = Zone::default();
    let e = z.locate("sip:nothing.example").unwrap_err();
    let DnsError::NotFound { domain, detail } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(domain, "nothing.example");
    assert!(
        detail.contains("NAPTR nothing.example: no records"),
        "{detail}"
    );
    assert!(
        detail.contains("AAAA nothing.example: no records"),
        "{detail}"
    );

    let mut z = Zone::default().srv("_sip._udp.x.example", 60, &[(1, 0, 5060, "gone.x.example")]);
    let e = z.locate("sip:x.example;transport=udp").unwrap_err();
    assert!(
        e.to_string()
            .contains("SRV targets without an address: gone.x.example"),
        "{e}"
    );

    let mut z = Zone::default().set(
        Query::new("slow.example", QueryKind::Naptr),
        Answer::failed(Failure::Timeout),
    );
    let e = z.locate("sip:slow.example").unwrap_err();
    assert!(matches!(e, DnsError::LookupFailed { .. }), "{e:?}");
    assert!(
        e.to_string().contains("NAPTR slow.example: timed out"),
        "{e}"
    );

    let policy = Policy {
        transports: vec![Transport::Udp],
        ..Policy::default()
    };
    let e = z
        .locate_with("sip:a.example;transport=tcp", policy.clone())
        .unwrap_err();
    assert!(matches!(e, DnsError::UnsupportedTransport { .. }), "{e:?}");
    let e = z.locate_with("sips:a.example", policy).unwrap_err();
    assert!(matches!(e, DnsError::UnsupportedTransport { .. }), "{e:?}");
}

#[test]
fn a_timeout_on_one_branch_does_not_hide_the_others() {
    let mut z = Zone::default()
        .set(
            Query::new("example.com", QueryKind::Naptr),
            Answer::failed(Failure::Timeout),
        )
        .srv(
            "_sip._udp.example.com",
            60,
            &[(10, 0, 5060, "u.example.com")],
        )
        .a("u.example.com", 60, &["192.0.2.20"]);
    let r = z.locate("sip:example.com").unwrap();
    assert_eq!(r.targets.len(), 1);
    assert_eq!(r.trail[0].1.summary(), "timed out");
}

fn srv(priority: u16, weight: u16, target: &str) -> Srv {
    Srv {
        priority,
        weight,
        port: 5060,
        target: target.into(),
    }
}

#[test]
fn rfc2782_weighted_order_statistics() {
    let mut rng = StdRng::seed_from_u64(42);
    let records = vec![
        srv(10, 10, "light"),
        srv(10, 90, "heavy"),
        srv(5, 0, "first"),
    ];
    let n = 20_000;
    let mut heavy_second = 0;
    for _ in 0..n {
        let o = order_srv(records.clone(), &mut rng);
        assert_eq!(o[0].target, "first", "lower priority value always first");
        if o[1].target == "heavy" {
            heavy_second += 1;
        }
    }
    // Uniform pick in 0..=100: "light" wins for 0..=10 (11/101), "heavy" for 11..=100.
    let p = f64::from(heavy_second) / f64::from(n);
    let expected = 90.0 / 101.0;
    assert!(
        (p - expected).abs() < 0.01,
        "heavy first in {p}, expected {expected}"
    );
}

#[test]
fn rfc2782_zero_weights() {
    let mut rng = StdRng::seed_from_u64(1);
    let n = 22_000;
    let mut zero_first = 0;
    for _ in 0..n {
        // Zero weight listed last in the answer, but the algorithm puts it first in the list:
        // it is chosen only when the random number is 0 (1 in 11).
        let o = order_srv(vec![srv(1, 10, "w"), srv(1, 0, "z")], &mut rng);
        if o[0].target == "z" {
            zero_first += 1;
        }
    }
    let p = f64::from(zero_first) / f64::from(n);
    assert!((p - 1.0 / 11.0).abs() < 0.01, "{p}");
    // All zero: uniform-ish, never lost.
    let o = order_srv(
        vec![srv(1, 0, "a"), srv(1, 0, "b"), srv(1, 0, "c")],
        &mut rng,
    );
    assert_eq!(o.len(), 3);
}

#[test]
fn weighted_order_is_reproducible_with_a_seed() {
    let records: Vec<Srv> = (0..6)
        .map(|i| srv(1, 10 * (i + 1), &format!("t{i}")))
        .collect();
    let a = order_srv(records.clone(), &mut StdRng::seed_from_u64(9));
    let b = order_srv(records, &mut StdRng::seed_from_u64(9));
    assert_eq!(a, b);
}

#[test]
fn state_machine_hands_out_all_queries_of_a_step_at_once() {
    let dest = Destination::parse("sip:example.com").unwrap();
    let mut r = Resolution::new(dest, Policy::default()).unwrap();
    let q = r.poll_query().unwrap();
    assert_eq!(q, Query::new("example.com", QueryKind::Naptr));
    assert!(r.poll_query().is_none());
    // Unknown answers are ignored.
    r.handle_answer(&Query::new("other", QueryKind::A), Answer::empty(1));
    r.handle_answer(&q, Answer::empty(60));
    let mut srvs = Vec::new();
    while let Some(q) = r.poll_query() {
        srvs.push(q.to_string());
    }
    assert_eq!(srvs.len(), 3);
    assert!(!r.is_done());
    // Finishing early reports what is still outstanding.
    let e = r.finish(&mut StdRng::seed_from_u64(0)).unwrap_err();
    assert!(
        e.to_string()
            .contains("unanswered: SRV _sips._tcp.example.com"),
        "{e}"
    );
}
