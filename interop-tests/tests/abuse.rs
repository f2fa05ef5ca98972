//! Password guessing against a Peerline acting as authenticating UAS (issue 10), with
//! SIPp as the guesser on 127.0.0.2 (`uac_guess_password.xml`, one SIPp run per guess,
//! user and password from `-au`/`-ap`). The phone (in this process) has `[auth]` with
//! user alice, `algorithms = ["MD5"]` (SIPp answers only the first challenge and knows
//! only MD5) and the default guard (5 failures per 60 s block a source for 300 s).
//!
//! Expected: the first 5 guesses (an unknown user among them) are each answered 401 —
//! the unknown user's answer has the same status line and headers as a wrong
//! password's — and every later request from 127.0.0.2 gets
//! `403 Too Many Failed Authentications`, even with the right password; the phone never
//! rings for the guesser; alice's own Peerline on 127.0.0.1 with the right password is
//! answered afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::time::{Duration, Instant};

use peerline_interop::{MatrixEntry, Sipp, SippOptions, SippScenario, TestDir};
use peerline_ua::{CodecName, Event, MediaOptions, Phone};
use sipp_support::{config, diag, finish_sipp, messages, next_event, runtime, sipp_options};

/// Guesses SIPp makes, one per call: (user, password).
const GUESSES: [(&str, &str); 8] = [
    ("alice", "123456"),
    ("nobody", "secret"), // an unknown user
    ("alice", "password"),
    ("alice", "qwerty"),
    ("alice", "letmein"),
    ("alice", "secret"), // the right one, too late: the source is blocked
    ("alice", "dragon"),
    ("nobody", "x"),
];

/// Received final responses in SIPp's message trace, in order: the status line and
/// the header names (values differ by nonce, tags, branch), and the CSeq number.
fn final_responses(trace: &str) -> Vec<(String, Vec<String>, u32)> {
    trace
        .split("message received")
        .skip(1)
        .filter_map(|chunk| {
            let msg = chunk.split_once("\n\n").map(|(_, m)| m)?;
            let mut lines = msg.lines().map(str::trim);
            let status = lines.next()?.to_string();
            let code: u16 = status.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
            if code < 200 {
                return None;
            }
            let mut names = Vec::new();
            let mut cseq = 0;
            for l in lines.take_while(|l| !l.is_empty()) {
                let (name, value) = l.split_once(':')?;
                if name.eq_ignore_ascii_case("CSeq") {
                    cseq = value.split_whitespace().next()?.parse().ok()?;
                }
                names.push(name.trim().to_string());
            }
            Some((status, names, cseq))
        })
        .collect()
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_password_guessing_is_blocked_and_the_real_user_gets_in() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uas-auth-guessing-blocked", "udp");
    let rt = runtime();
    rt.block_on(async {
        let mut cfg = config(&[CodecName::Pcmu]);
        cfg.auth = toml::from_str(
            "realm = \"peerline.test\"\nalgorithms = [\"MD5\"]\n\
             users = [{ user = \"alice\", password = \"secret\" }]\n",
        )
        .unwrap();
        let (bob, mut be) = Phone::start(cfg).await.unwrap();
        // One SIPp run per guess (SIPp takes the digest user and password from -au/-ap),
        // all from 127.0.0.2.
        let mut finals = Vec::new();
        let mut trace = String::new();
        for (i, (user, password)) in GUESSES.iter().enumerate() {
            let dir = TestDir::new(&format!("sipp_password_guessing_{i}")).unwrap();
            let opts = SippOptions::new("guesser", SippScenario::project("uac_guess_password.xml"))
                .remote(&bob.sip_addr().to_string())
                .local_ip("127.0.0.2")
                .service("bob")
                .calls(1)
                .timeout(Duration::from_secs(8))
                .args(["-au", user, "-ap", password]);
            let mut sipp = Sipp::start(sipp_options(opts, &dir, true), &dir).unwrap();
            let (code, stats) = tokio::task::block_in_place(|| {
                finish_sipp(&mut sipp, &dir, Duration::from_secs(10))
            });
            let t = messages(&dir, 1 << 20);
            assert_eq!(
                (stats.successful, stats.failed, code),
                (1, 0, Some(0)),
                "guess {i} ({user}): {stats:?}\n{}",
                diag(&sipp, &dir)
            );
            finals.push(final_responses(&t));
            trace.push_str(&t);
        }
        let security = bob.security_stats().await.unwrap();
        eprintln!("phone after the guesses: {security:?}");
        let statuses: Vec<Vec<&str>> = finals
            .iter()
            .map(|f| f.iter().map(|r| r.0.as_str()).collect())
            .collect();
        // Per guess: 401 (challenge) then 401 (wrong guess) for the first five; then
        // the source is blocked and its first INVITE gets 403.
        let mut want = vec![vec!["SIP/2.0 401 Unauthorized"; 2]; 5];
        want.extend(vec![vec!["SIP/2.0 403 Too Many Failed Authentications"]; 3]);
        assert_eq!(statuses, want);
        // Guess 1 (unknown user) vs guess 2 (wrong password): the answers to their
        // credentialed INVITEs have the same status line and headers.
        let (unknown, wrong) = (&finals[1][1], &finals[2][1]);
        assert_eq!(
            (unknown.2, wrong.2),
            (2, 2),
            "CSeq of the credentialed INVITEs"
        );
        assert_eq!(unknown.0, wrong.0);
        assert_eq!(unknown.1, wrong.1, "unknown user and wrong password differ");
        assert_eq!(security.auth_failures, 5, "{security:?}");
        assert_eq!(security.guard.sources_blocked, 1, "{security:?}");
        assert_eq!(security.guard.refused_source, 3, "{security:?}");
        // Bob never rang for the guesser (the right password came too late).
        assert_eq!(security.authorized, 0, "{security:?}");
        assert!(!trace.is_empty());

        // The real alice, from 127.0.0.1, with her password.
        let mut alice_cfg = config(&[CodecName::Pcmu]);
        alice_cfg.identity.user = "alice".into();
        alice_cfg.accounts = vec![toml::from_str(
            "aor = \"sip:alice@127.0.0.1\"\npassword = \"secret\"\nregister = false\n",
        )
        .unwrap()];
        let (alice, mut ae) = Phone::start(alice_cfg).await.unwrap();
        let silence = MediaOptions {
            source: peerline_ua::AudioSource::Silence,
            record: None,
        };
        let a = alice.call(&bob.uri("bob"), silence.clone()).await.unwrap();
        let b = next_event(&mut be, Duration::from_secs(5), |e| match e {
            Event::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .await
        .expect("alice never rang bob (after the guesser was blocked)");
        bob.answer(b, silence).await.unwrap();
        let answered = next_event(&mut ae, Duration::from_secs(5), |e| match e {
            Event::Answered { call } if call == a => Some(true),
            Event::Ended { call, .. } if call == a => Some(false),
            _ => None,
        })
        .await;
        assert_eq!(answered, Some(true));
        alice.hangup(a).await.unwrap();
        let security = bob.security_stats().await.unwrap();
        assert_eq!(security.authorized, 1, "{security:?}");
        alice.shutdown().await;
        bob.shutdown().await;
    });
    assert!(started.elapsed() < Duration::from_secs(40));
    entry.pass();
}
