//! Locator over a fake DNS source: TTL cache, failures not cached, overall time limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerline_dns::*;

struct Fake {
    answers: HashMap<Query, Answer>,
    count: Arc<AtomicUsize>,
    hang: bool,
}

impl DnsSource for Fake {
    fn query(&self, q: &Query) -> impl Future<Output = Answer> + Send {
        self.count.fetch_add(1, Ordering::SeqCst);
        let a = self.answers.get(q).cloned().unwrap_or(Answer::empty(30));
        let hang = self.hang;
        async move {
            if hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            a
        }
    }
}

fn fake(hang: bool) -> (Fake, Arc<AtomicUsize>) {
    let mut answers = HashMap::new();
    answers.insert(
        Query::new("peerline.test", QueryKind::Naptr),
        Answer::new(
            60,
            AnswerData::Naptr(vec![Naptr {
                order: 10,
                preference: 10,
                flags: "s".into(),
                services: "SIP+D2T".into(),
                regexp: String::new(),
                replacement: "_sip._tcp.peerline.test".into(),
            }]),
        ),
    );
    answers.insert(
        Query::new("_sip._tcp.peerline.test", QueryKind::Srv),
        Answer::new(
            60,
            AnswerData::Srv(vec![Srv {
                priority: 10,
                weight: 0,
                port: 5070,
                target: "pbx.peerline.test".into(),
            }]),
        ),
    );
    answers.insert(
        Query::new("pbx.peerline.test", QueryKind::A),
        Answer::new(20, AnswerData::Addrs(vec!["127.0.0.2".parse().unwrap()])),
    );
    answers.insert(
        Query::new("pbx.peerline.test", QueryKind::Aaaa),
        Answer::failed(Failure::Timeout),
    );
    let count = Arc::new(AtomicUsize::new(0));
    (
        Fake {
            answers,
            count: Arc::clone(&count),
            hang,
        },
        count,
    )
}

#[tokio::test]
async fn answers_are_cached_within_their_ttl() {
    let (f, count) = fake(false);
    let loc = Locator::with_source(f).seed(1);
    let dest = Destination::parse("sip:alice@peerline.test").unwrap();
    let t0 = Instant::now();
    let r = loc.resolve_at(&dest, t0).await.unwrap();
    assert_eq!(r.targets.len(), 1);
    assert_eq!(r.targets[0].transport, Transport::Tcp);
    assert_eq!(r.targets[0].addr, "127.0.0.2:5070".parse().unwrap());
    assert_eq!(r.targets[0].ttl, Duration::from_secs(20));
    assert_eq!(count.load(Ordering::SeqCst), 4); // NAPTR, SRV, A, AAAA

    // Within every TTL: only the failed AAAA (never cached) is asked again.
    loc.resolve_at(&dest, t0 + Duration::from_secs(19))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 5);
    // A expired (20 s), NAPTR/SRV (60 s) still cached.
    loc.resolve_at(&dest, t0 + Duration::from_secs(21))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 7);
    // Everything expired.
    loc.resolve_at(&dest, t0 + Duration::from_secs(61))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 11);
    loc.clear_cache();
    loc.resolve_at(&dest, t0 + Duration::from_secs(61))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 15);
}

#[tokio::test]
async fn locate_parses_and_numeric_hosts_skip_dns() {
    let (f, count) = fake(false);
    let loc = Locator::with_source(f);
    let t = loc.locate("sips:[::1]:5999").await.unwrap();
    assert_eq!(t[0].key(), (Transport::Tls, "[::1]:5999".parse().unwrap()));
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert!(matches!(
        loc.locate("mailto:x@y").await,
        Err(DnsError::InvalidUri { .. })
    ));
}

#[tokio::test]
async fn nothing_hangs_past_the_limit() {
    let (f, _) = fake(true);
    let loc = Locator::with_source(f).limit(Duration::from_millis(200));
    let start = Instant::now();
    let e = loc.locate("sip:peerline.test").await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        e,
        DnsError::Timeout {
            domain: "peerline.test".into(),
            after: Duration::from_millis(200)
        }
    );
    assert!(e.to_string().contains("peerline.test"));
}
