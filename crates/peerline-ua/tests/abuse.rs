//! Abuse of a phone that answers calls (issue 10), on loopback only: password guessing
//! against `[auth]` is blocked per source after `max_failures` while the real user from
//! another address still gets in; an unknown user gets the same answer as a wrong
//! password; a replayed Authorization is refused; failures are logged with the source
//! and user name and never with a password or a digest response; `[policy] incoming =
//! "contacts"` refuses callers not listed.
//!
//! The tests share one log capture (a global tracing subscriber at debug level), so they
//! also prove that no debug trace of any phone in this process carries a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::wait_within;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use peerline_sip::auth::Credentials;
use peerline_sip::message::{header_values, RequestBuilder};
use peerline_sip::MessageExt;
use peerline_ua::{AudioSource, Config, EndReason, Event, MediaOptions, Phone};
use rand::SeedableRng;
use tokio::net::UdpSocket;

/// Every log line of this test process.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).into_owned()
}

/// Digest responses that reached the log unredacted (`response="<hex>"`).
fn unredacted_responses(log: &str) -> Vec<String> {
    log.match_indices("response=")
        .map(|(i, _)| log[i..].chars().take(50).collect::<String>())
        .filter(|s| !s.starts_with("response=\"<redacted>\""))
        .collect()
}

const PASSWORD: &str = "s3cret-Pa55";

fn phone_config(user: &str, ip: [u8; 4], extra: &str) -> Config {
    let ip = std::net::Ipv4Addr::from(ip);
    let text = format!(
        "[identity]\nuser = \"{user}\"\n[network]\nsip_listen = \"{ip}:0\"\n[media]\nsrtp = \"off\"\n{extra}"
    );
    Config::parse(&text, Path::new("<abuse test>")).unwrap()
}

/// Bob, authenticating with `[auth]` (alice / PASSWORD), blocking after 3 failures.
fn bob_config(extra: &str) -> Config {
    phone_config(
        "bob",
        [127, 0, 0, 1],
        &format!(
            "[auth]\nrealm = \"abuse.test\"\nusers = [{{ user = \"alice\", password = \"{PASSWORD}\" }}]\n\
             max_failures = 3\nfailure_window_secs = 60\nblock_secs = 300\n{extra}"
        ),
    )
}

/// A caller with an account `user` / `password` (not registering) on `ip`.
fn caller(user: &str, password: &str, ip: [u8; 4]) -> Config {
    let host = std::net::Ipv4Addr::from(ip);
    phone_config(
        user,
        ip,
        &format!(
            "[[account]]\naor = \"sip:{user}@{host}\"\npassword = \"{password}\"\nregister = false\n"
        ),
    )
}

fn silence() -> MediaOptions {
    MediaOptions {
        source: AudioSource::Silence,
        record: None,
    }
}

/// `config` calls `target`; how the call ended (it is never answered here).
async fn refused_call(config: Config, target: &str) -> EndReason {
    let (p, mut pe) = Phone::start(config).await.unwrap();
    let c = p.call(target, silence()).await.unwrap();
    let reason = wait_within(&mut pe, "the refusal", 8, |e| match e {
        Event::Ended { call, reason, .. } if *call == c => Some(reason.clone()),
        Event::Answered { .. } => panic!("a guesser's call was answered"),
        _ => None,
    })
    .await;
    p.shutdown().await;
    reason
}

/// Three wrong guesses from 127.0.0.2 (an unknown user, then two wrong passwords for
/// alice) are each answered 401; then that source gets `403 Too Many Failed
/// Authentications` — even with the right password — while alice with her password on
/// 127.0.0.1 gets through. Bob's phone never rang for the guesser. The log names the
/// source and user of each failure and holds no password and no digest response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_blocked_per_source_and_logged_without_secrets() {
    let _ = log();
    let (bob, mut be) = Phone::start(bob_config("")).await.unwrap();
    let target = bob.uri("bob");
    let guesses = [
        ("eve", "guess-1"),
        ("alice", "wrong-pw-1"),
        ("alice", "wrong-pw-2"),
    ];
    for (user, pw) in guesses {
        let reason = refused_call(caller(user, pw, [127, 0, 0, 2]), &target).await;
        assert!(
            matches!(&reason, EndReason::Rejected(401, _)),
            "{user}/{pw}: {reason:?}"
        );
    }
    let reason = refused_call(caller("alice", PASSWORD, [127, 0, 0, 2]), &target).await;
    assert_eq!(
        reason,
        EndReason::Rejected(403, "Too Many Failed Authentications".into())
    );
    // The real alice, from another address.
    let (alice, mut ae) = Phone::start(caller("alice", PASSWORD, [127, 0, 0, 1]))
        .await
        .unwrap();
    let a = alice.call(&target, silence()).await.unwrap();
    let b = wait_within(&mut be, "alice ringing bob", 8, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.answer(b, silence()).await.unwrap();
    wait_within(&mut ae, "answered", 8, |e| match e {
        Event::Answered { call } if *call == a => Some(()),
        Event::Ended { reason, .. } => panic!("alice's call ended: {reason}"),
        _ => None,
    })
    .await;
    alice.hangup(a).await.unwrap();
    let stats = bob.security_stats().await.unwrap();
    eprintln!("bob's security stats: {stats:?}");
    assert_eq!(stats.auth_failures, 3, "{stats:?}");
    assert_eq!(stats.guard.sources_blocked, 1, "{stats:?}");
    assert!(stats.guard.refused_source >= 1, "{stats:?}");
    assert_eq!(stats.authorized, 1, "{stats:?}");
    alice.shutdown().await;
    bob.shutdown().await;

    let log = log_text();
    for secret in [PASSWORD, "guess-1", "wrong-pw-1", "wrong-pw-2"] {
        assert!(
            !log.contains(secret),
            "the log holds the password {secret:?}"
        );
    }
    assert_eq!(unredacted_responses(&log), Vec::<String>::new());
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("authentication failed"))
        .collect();
    assert!(
        failures
            .iter()
            .any(|l| l.contains("127.0.0.2") && l.contains("\"eve\"")),
        "{failures:#?}"
    );
    assert!(
        failures
            .iter()
            .filter(|l| l.contains("127.0.0.2") && l.contains("\"alice\""))
            .count()
            >= 2,
        "{failures:#?}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("source blocked for 300 s")),
        "no block logged"
    );
}

/// A raw UDP client: INVITEs built with peerline-sip, digest from `auth::authorize`.
struct RawClient {
    sock: UdpSocket,
    bob: SocketAddr,
    n: u32,
}

impl RawClient {
    async fn new(bob: SocketAddr) -> Self {
        Self {
            sock: UdpSocket::bind("127.0.0.3:0").await.unwrap(),
            bob,
            n: 0,
        }
    }

    fn invite(&mut self) -> rsip::Request {
        self.n += 1;
        let me = self.sock.local_addr().unwrap();
        let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            .to_string();
        RequestBuilder::new(rsip::Method::Invite, format!("sip:bob@{}", self.bob))
            .via("UDP", &me.to_string(), &format!("z9hG4bKraw{}", self.n))
            .from(&format!("sip:raw@{me}"), None, &format!("t{}", self.n))
            .to(&format!("sip:bob@{}", self.bob), None)
            .call_id(&format!("abuse-raw-{}", self.n))
            .cseq(1)
            .contact(&format!("sip:raw@{me}"))
            .body("application/sdp", body.into_bytes())
            .build()
            .unwrap()
    }

    /// Sends `req`, returns the final response (ACKing it if it is a failure).
    async fn send(&mut self, req: &rsip::Request) -> rsip::Response {
        let bytes = peerline_sip::serialize(&req.clone().into());
        self.sock.send_to(&bytes, self.bob).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf))
                .await
                .expect("no final response")
                .unwrap();
            let Ok(rsip::SipMessage::Response(r)) = peerline_sip::parse_message(&buf[..n]) else {
                continue;
            };
            // Skip provisionals, and retransmitted answers to earlier requests.
            if r.status_code.code() < 200 || r.branch() != req.branch() {
                continue;
            }
            if let Ok(ack) = peerline_sip::message::make_ack_non2xx(req, &r) {
                let bytes = peerline_sip::serialize(&ack.into());
                self.sock.send_to(&bytes, self.bob).await.unwrap();
            }
            return r;
        }
    }
}

/// The parts of a 401 an attacker could compare, with the nonce (random) masked.
fn shape(r: &rsip::Response) -> (u16, String, Vec<String>, Vec<String>) {
    let names = r
        .headers
        .iter()
        .map(|h| {
            let (n, _) = peerline_sip::message::header_name_value(h);
            n.to_string()
        })
        .collect();
    let challenges = header_values(r, "WWW-Authenticate")
        .iter()
        .map(|v| {
            let start = v.find("nonce=\"").unwrap() + 7;
            let end = start + v[start..].find('"').unwrap();
            format!("{}NONCE{}", &v[..start], &v[end..])
        })
        .collect();
    let reason = peerline_sip::serialize(&r.clone().into());
    let reason = String::from_utf8_lossy(&reason)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (r.status_code.code(), reason, names, challenges)
}

/// An unknown user and a wrong password get the same 401 (same status line, headers and
/// challenge, no `stale`); a correct Authorization sent again (same nonce and nc) is a
/// replay and gets a 401 instead of ringing a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_equals_wrong_password_and_a_replay_is_refused() {
    let _ = log();
    let (bob, mut be) = Phone::start(bob_config("")).await.unwrap();
    let mut raw = RawClient::new(bob.sip_addr()).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let mut shapes = Vec::new();
    for (user, password) in [("mallory", PASSWORD), ("alice", "not-it")] {
        let (first, mut second) = (raw.invite(), raw.invite());
        let challenge = raw.send(&first).await;
        assert_eq!(challenge.status_code.code(), 401);
        let creds = Credentials {
            username: user.into(),
            password: password.into(),
        };
        peerline_sip::auth::authorize(&mut second, &challenge, &creds, &mut rng).unwrap();
        let refused = raw.send(&second).await;
        shapes.push(shape(&refused));
    }
    assert_eq!(shapes[0].0, 401, "{:?}", shapes[0]);
    assert!(
        !shapes[0].3.iter().any(|c| c.contains("stale")),
        "{:?}",
        shapes[0]
    );
    assert_eq!(shapes[0], shapes[1], "unknown user vs wrong password");

    // The right password rings Bob once; the same Authorization again is a replay.
    let first = raw.invite();
    let challenge = raw.send(&first).await;
    let mut good = raw.invite();
    let creds = Credentials {
        username: "alice".into(),
        password: PASSWORD.into(),
    };
    peerline_sip::auth::authorize(&mut good, &challenge, &creds, &mut rng).unwrap();
    let bytes = peerline_sip::serialize(&good.clone().into());
    raw.sock.send_to(&bytes, raw.bob).await.unwrap();
    let call = wait_within(&mut be, "the authenticated call", 8, |e| match e {
        Event::Incoming { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    bob.reject(call, 486).await.unwrap();
    let busy = raw.send(&good).await; // the transaction's 486 (retransmission of ours)
    assert_eq!(busy.status_code.code(), 486);
    let mut replay = raw.invite(); // new branch and Call-ID, same credentials
    replay.headers.push(peerline_sip::message::make_header(
        "Authorization",
        header_values(&good, "Authorization")[0],
    ));
    let refused = raw.send(&replay).await;
    assert_eq!(refused.status_code.code(), 401);
    let stats = bob.security_stats().await.unwrap();
    assert_eq!(stats.replays, 1, "{stats:?}");
    assert_eq!(stats.authorized, 1, "{stats:?}");
    assert_eq!(stats.auth_failures, 2, "{stats:?}");
    // Three failures from 127.0.0.3 block it now.
    let next = raw.invite();
    let blocked = raw.send(&next).await;
    assert_eq!(blocked.status_code.code(), 403);
    let mut no_more = 0;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), be.recv()).await {
        if matches!(ev, Event::Incoming { .. }) {
            no_more += 1;
        }
    }
    assert_eq!(no_more, 0, "a replay or guess rang bob");
    bob.shutdown().await;
    assert_eq!(unredacted_responses(&log_text()), Vec::<String>::new());
}

/// `[policy] incoming = "contacts"`: alice (listed) rings Bob, carol gets
/// `403 Caller Not In Contacts` and never rings; Bob counts the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_only_policy_refuses_callers_not_listed() {
    let _ = log();
    let bob_cfg = phone_config(
        "bob",
        [127, 0, 0, 1],
        "[policy]\nincoming = \"contacts\"\ncontacts = [\"sip:alice@127.0.0.1\"]\n",
    );
    let (bob, mut be) = Phone::start(bob_cfg).await.unwrap();
    let reason = refused_call(phone_config("carol", [127, 0, 0, 1], ""), &bob.uri("bob")).await;
    assert_eq!(
        reason,
        EndReason::Rejected(403, "Caller Not In Contacts".into())
    );
    let (alice, mut ae) = Phone::start(phone_config("alice", [127, 0, 0, 1], ""))
        .await
        .unwrap();
    let a = alice.call(&bob.uri("bob"), silence()).await.unwrap();
    let (b, from) = wait_within(&mut be, "alice ringing bob", 8, |e| match e {
        Event::Incoming { call, from, .. } => Some((*call, from.clone())),
        _ => None,
    })
    .await;
    assert!(from.contains("alice"), "{from}");
    bob.reject(b, 486).await.unwrap();
    let reason = wait_within(&mut ae, "busy", 8, |e| match e {
        Event::Ended { call, reason, .. } if *call == a => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(reason, EndReason::Rejected(486, _)), "{reason:?}");
    assert_eq!(bob.security_stats().await.unwrap().policy_refused, 1);
    alice.shutdown().await;
    bob.shutdown().await;
}
