//! Calls through a hostile network (issue 10): two phones in a namespace of their own
//! whose traffic is impaired with iptables (`statistic` random drops, a total outage).
//! The kernel here has no `sch_netem`, so delay and jitter cannot be injected this way;
//! loss and outages can. Each test checks what a user would notice: the call is set up
//! (SIP and DTLS retransmit through the loss), each side hears the other's tone, the
//! loss shows in the call reports, and an outage longer than the RTP timeout ends the
//! call with that reason rather than leaving it hanging.
//!
//! The phones run in this process on a thread that entered the namespace
//! (`Netns::run`); iptables runs inside it too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use peerline_interop::{MatrixEntry, Netns, TestDir};
use peerline_ua::{AudioSource, Config, EndReason, Event, Events, MediaOptions, Phone, SrtpKeying};

/// What one side saw.
#[derive(Debug)]
struct Side {
    reason: EndReason,
    received: u64,
    lost: u64,
    concealed: u64,
    heard_secs: f32,
}

#[derive(Debug)]
struct CallResult {
    caller: Side,
    callee: Side,
    /// Datagrams the impairment rule dropped (its iptables counter).
    dropped: u64,
}

fn config(user: &str, rtp_timeout_secs: u64) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.media.rtp_timeout_secs = rtp_timeout_secs;
    c
}

async fn next_matching<T>(
    events: &mut Events,
    secs: u64,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(secs), async {
        while let Some(ev) = events.recv().await {
            if let Some(t) = pick(ev) {
                return Ok(t);
            }
        }
        Err(format!("{what}: the phone stopped"))
    })
    .await
    .unwrap_or_else(|_| Err(format!("{what}: nothing within {secs} s")))
}

fn iptables(args: &[&str]) {
    let st = std::process::Command::new("iptables")
        .args(args)
        .status()
        .expect("iptables");
    assert!(st.success(), "iptables {args:?}");
}

/// Packets matched by the first INPUT rule (the impairment), from `iptables -L -v -x`.
fn first_rule_packets() -> u64 {
    let out = std::process::Command::new("iptables")
        .args(["-L", "INPUT", "-v", "-x", "-n"])
        .output()
        .expect("iptables -L");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(2)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The impairment over a call: `before_call` rules from the start, or an `outage` of
/// all UDP starting `at` seconds after the answer for `for_` seconds.
#[derive(Clone, Copy)]
enum Impairment {
    RandomLoss(f64),
    Outage { at: u64, for_: u64 },
}

/// Alice (440 Hz) calls Bob (1,000 Hz) for `call_secs` after the answer, then hangs up
/// (unless the call ended already); both record. Runs inside the namespace.
async fn call(
    dir: std::path::PathBuf,
    impairment: Impairment,
    call_secs: u64,
    rtp_timeout_secs: u64,
) -> Result<CallResult, String> {
    if let Impairment::RandomLoss(p) = impairment {
        let p = format!("{p}");
        iptables(&[
            "-A",
            "INPUT",
            "-p",
            "udp",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ]);
    }
    // Under random loss the keys travel in the SDP (SDES), which SIP's retransmissions get
    // through; DTLS flights of several datagrams each can take longer than the call to get
    // through 20 % loss (backoff 1, 2, 4 s…), which is not what this test is about. The
    // outages hit calls whose DTLS handshake is already done.
    let keyed = |user: &str| {
        let mut c = config(user, rtp_timeout_secs);
        if matches!(impairment, Impairment::RandomLoss(_)) {
            c.media.srtp_keying = SrtpKeying::Sdes;
            c.media.allow_sdes_without_tls = true;
        }
        c
    };
    let (alice, mut ae) = Phone::start(keyed("alice"))
        .await
        .map_err(|e| e.to_string())?;
    let (bob, mut be) = Phone::start(keyed("bob"))
        .await
        .map_err(|e| e.to_string())?;
    let media = |hz: f32, name: &str| MediaOptions {
        source: AudioSource::Tone(hz),
        record: Some(dir.join(name)),
    };
    let a = alice
        .call(&bob.uri("bob"), media(440.0, "alice.wav"))
        .await
        .map_err(|e| e.to_string())?;
    let b = next_matching(&mut be, 20, "incoming", |e| match e {
        Event::Incoming { call, .. } => Some(call),
        _ => None,
    })
    .await?;
    bob.answer(b, media(1000.0, "bob.wav"))
        .await
        .map_err(|e| e.to_string())?;
    next_matching(&mut ae, 20, "answered", |e| match e {
        Event::Answered { call } if call == a => Some(()),
        _ => None,
    })
    .await?;
    match impairment {
        Impairment::Outage { at, for_ } => {
            tokio::time::sleep(Duration::from_secs(at)).await;
            iptables(&["-A", "INPUT", "-p", "udp", "-j", "DROP"]);
            tokio::time::sleep(Duration::from_secs(for_)).await;
            iptables(&["-D", "INPUT", "-p", "udp", "-j", "DROP"]);
            let rest = call_secs.saturating_sub(at + for_);
            tokio::time::sleep(Duration::from_secs(rest)).await;
        }
        Impairment::RandomLoss(_) => tokio::time::sleep(Duration::from_secs(call_secs)).await,
    }
    let dropped = first_rule_packets();
    // Hang up unless the call already ended (an outage past the RTP timeout).
    let _ = alice.hangup(a).await;
    let side = |reason: EndReason, m: Box<peerline_ua::MediaReport>, wav: &str, hz: f32| {
        let heard_secs = peerline_audio::read_wav(dir.join(wav))
            .map(|w| peerline_media::tone_seconds(&w.samples, w.sample_rate, hz, 0.5))
            .unwrap_or(0.0);
        Side {
            reason,
            received: m.received.packets_received,
            lost: m.received.packets_lost,
            concealed: m.concealed_frames,
            heard_secs,
        }
    };
    let (ar, am) = next_matching(&mut ae, 40, "alice ended", |e| match e {
        Event::Ended {
            call,
            reason,
            media,
        } if call == a => Some((reason, media)),
        _ => None,
    })
    .await?;
    let (br, bm) = next_matching(&mut be, 40, "bob ended", |e| match e {
        Event::Ended {
            call,
            reason,
            media,
        } if call == b => Some((reason, media)),
        _ => None,
    })
    .await?;
    alice.shutdown().await;
    bob.shutdown().await;
    Ok(CallResult {
        caller: side(ar, am, "alice.wav", 1000.0),
        callee: side(br, bm, "bob.wav", 440.0),
        dropped,
    })
}

fn run(test: &str, impairment: Impairment, call_secs: u64, rtp_timeout: u64) -> CallResult {
    let dir = TestDir::new(test).unwrap();
    let ns = Netns::new(&test.chars().take(8).collect::<String>()).unwrap();
    let path = dir.path().to_path_buf();
    let result = ns
        .run(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(call(path, impairment, call_secs, rtp_timeout))
        })
        .unwrap();
    drop(ns);
    let result = result.unwrap_or_else(|e| panic!("{test}: {e}"));
    eprintln!("{test}: {result:#?}");
    result
}

/// 20 % of every UDP datagram (SIP, SRTP with SDES keys, RTCP) dropped at random, both ways:
/// the call is set up through retransmissions, each side hears the other's tone for
/// most of the media stream (concealment bridges the gaps), and the loss shows in the
/// reports.
#[test]
#[ignore = "needs root and namespaces; run by cargo xtask test"]
fn call_through_20_percent_random_loss() {
    let entry = MatrixEntry::new("netns-iptables", "loss-20pct-call", "udp");
    let secs = 6;
    let r = run(
        "call_through_20_percent_random_loss",
        Impairment::RandomLoss(0.2),
        secs,
        30,
    );
    // The rule was active (its counter is read before the hang-up, so it is not compared
    // with the sides' totals); the loss itself is judged per side below, against the
    // stream each side received.
    assert!(
        r.dropped >= 20,
        "the rule dropped only {} datagrams",
        r.dropped
    );
    for (name, s) in [("caller", &r.caller), ("callee", &r.callee)] {
        assert!(
            matches!(s.reason, EndReason::LocalHangup | EndReason::RemoteHangup),
            "{name}: {:?}",
            s.reason
        );
        let expected = s.received + s.lost;
        assert!(
            s.lost * 100 >= expected * 8 && s.lost * 100 <= expected * 35,
            "{name}: {} of {expected} packets lost, not about 20 %",
            s.lost
        );
        assert!(s.concealed > 0, "{name}: no frame concealed");
        // The media starts once DTLS got through the loss (its retransmissions take a
        // variable second or two), so the tone is judged against the stream that ran.
        let stream_secs = expected as f32 / 50.0;
        assert!(
            stream_secs >= 2.0,
            "{name}: only {stream_secs:.1} s of RTP in a {secs} s call"
        );
        assert!(
            s.heard_secs >= stream_secs * 0.6,
            "{name}: tone heard {:.1} s of {stream_secs:.1} s of RTP",
            s.heard_secs
        );
    }
    entry.pass();
}

/// Every UDP datagram dropped for 3 s in the middle of a 9 s call: the call survives
/// (the RTP timeout is 30 s), audio resumes after the outage, the gap shows as lost
/// packets, and the BYE afterwards ends both sides normally.
#[test]
#[ignore = "needs root and namespaces; run by cargo xtask test"]
fn call_survives_a_3_second_outage() {
    let entry = MatrixEntry::new("netns-iptables", "outage-3s-call", "udp");
    let secs = 9;
    let r = run(
        "call_survives_a_3_second_outage",
        Impairment::Outage { at: 3, for_: 3 },
        secs,
        30,
    );
    for (name, s) in [("caller", &r.caller), ("callee", &r.callee)] {
        assert!(
            matches!(s.reason, EndReason::LocalHangup | EndReason::RemoteHangup),
            "{name}: {:?}",
            s.reason
        );
        // 3 s at 50 packets/s; some of the first ones may be in flight.
        assert!(s.lost >= 100, "{name}: only {} packets lost", s.lost);
        assert!(
            s.heard_secs >= (secs - 3) as f32 * 0.7,
            "{name}: tone heard {:.1} s of the {} s outside the outage",
            s.heard_secs,
            secs - 3
        );
    }
    entry.pass();
}

/// An outage longer than the RTP timeout (3 s here) ends the call on both sides with
/// that reason, at the timeout (the media stops then; the BYE is sent and not waited
/// for); nothing hangs.
#[test]
#[ignore = "needs root and namespaces; run by cargo xtask test"]
fn outage_past_the_rtp_timeout_ends_the_call_with_that_reason() {
    let entry = MatrixEntry::new("netns-iptables", "outage-rtp-timeout", "udp");
    let r = run(
        "outage_past_the_rtp_timeout_ends_the_call_with_that_reason",
        Impairment::Outage { at: 2, for_: 8 },
        10,
        3,
    );
    for (name, s) in [("caller", &r.caller), ("callee", &r.callee)] {
        assert_eq!(s.reason, EndReason::RtpTimeout, "{name}");
        // The media stopped at the timeout, inside the outage: nothing was received
        // after it (2 s at 50 packets/s before the outage, with some margin).
        assert!(s.received <= 150, "{name}: {} packets received", s.received);
    }
    entry.pass();
}
