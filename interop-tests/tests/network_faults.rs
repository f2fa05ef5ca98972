//! Calls through a hostile network (issue 10): two phones in a namespace of their own
//! whose traffic is impaired with iptables (`statistic` random drops, a total outage) or
//! delayed at random by the `netdelay` injector on an NFQUEUE (the kernel here has no
//! `sch_netem`; see `peerline_interop::Jitter`). Each test checks what a user would
//! notice: the call is set up (SIP and DTLS retransmit through the loss), each side hears
//! the other's tone, the loss or jitter shows in the call reports, and an outage longer
//! than the RTP timeout ends the call with that reason rather than leaving it hanging.
//!
//! The phones run in this process on a thread that entered the namespace
//! (`Netns::run`); iptables runs inside it too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use peerline_interop::{DelayRange, Jitter, JitterCounters, MatrixEntry, Netns, TestDir};
use peerline_net::PortRange;
use peerline_ua::{AudioSource, Config, EndReason, Event, Events, MediaOptions, Phone, SrtpKeying};

/// What one side saw.
#[derive(Debug)]
struct Side {
    reason: EndReason,
    received: u64,
    lost: u64,
    concealed: u64,
    heard_secs: f32,
    /// RFC 3550 interarrival jitter of the received stream.
    jitter_ms: f64,
    reordered: u64,
    /// The jitter buffer's playout delay at the end of the call.
    playout_delay_ms: f64,
}

#[derive(Debug)]
struct CallResult {
    caller: Side,
    callee: Side,
    /// Datagrams the impairment rule dropped (its iptables counter).
    dropped: u64,
    /// The `netdelay` injector's counters, for [`Impairment::Jitter`].
    jitter: Option<JitterCounters>,
}

/// The phones' RTP ports (RTP, RTCP and DTLS use them): what the jitter rule matches.
const RTP_LOW: u16 = 20000;
const RTP_HIGH: u16 = 20199;

fn config(user: &str, rtp_timeout_secs: u64) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.media.rtp_timeout_secs = rtp_timeout_secs;
    c.network.rtp_ports = PortRange::new(RTP_LOW, RTP_HIGH).unwrap();
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
    Outage {
        at: u64,
        for_: u64,
    },
    /// Every datagram to an RTP port (both directions: the phones share `lo`) delayed by
    /// `U(0, jitter_ms)`; set up in [`run`], outside the namespace thread.
    Jitter {
        jitter_ms: u32,
    },
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
        Impairment::RandomLoss(_) | Impairment::Jitter { .. } => {
            tokio::time::sleep(Duration::from_secs(call_secs)).await
        }
    }
    // The first INPUT rule is the loss rule; under jitter it would be the NFQUEUE rule.
    let dropped = match impairment {
        Impairment::RandomLoss(_) => first_rule_packets(),
        _ => 0,
    };
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
            jitter_ms: m.jitter_ms,
            reordered: m.received.reordered,
            playout_delay_ms: m.playout_delay_ms,
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
        jitter: None,
    })
}

fn run(test: &str, impairment: Impairment, call_secs: u64, rtp_timeout: u64) -> CallResult {
    let dir = TestDir::new(test).unwrap();
    let ns = Netns::new(&test.chars().take(8).collect::<String>()).unwrap();
    let path = dir.path().to_path_buf();
    let jitter = match impairment {
        Impairment::Jitter { jitter_ms } => {
            let ports = format!("{RTP_LOW}:{RTP_HIGH}");
            Some(
                Jitter::start(
                    env!("CARGO_BIN_EXE_netdelay"),
                    ns.name(),
                    3,
                    DelayRange {
                        base_ms: 0,
                        jitter_ms,
                    },
                    "INPUT",
                    &["-p", "udp", "--dport", &ports],
                    dir.path(),
                )
                .unwrap(),
            )
        }
        _ => None,
    };
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
    // The rule goes and the injector is stopped by its PID before the namespace goes.
    let counters = jitter.map(|j| j.stop().unwrap());
    drop(ns);
    let mut result = result.unwrap_or_else(|e| panic!("{test}: {e}"));
    result.jitter = counters;
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

/// Every RTP/RTCP/DTLS datagram, both ways, held by `netdelay` (NFQUEUE) for a uniform
/// 0–200 ms before it is let through, so packets arrive late and out of order; SIP is not
/// delayed (the question is the media path; SIP's 500 ms retransmission timer would cope).
/// The injector really delayed the stream (its counters), each side hears the other's
/// tone for most of the call (the adaptive jitter buffer grows its playout delay to
/// cover the spread), and the reports show the jitter and the reordering.
#[test]
#[ignore = "needs root and namespaces; run by cargo xtask test"]
fn call_through_200_ms_jitter() {
    let mut entry = MatrixEntry::new("netns-nfqueue", "jitter-200ms-call", "udp");
    let secs = 20;
    let r = run(
        "call_through_200_ms_jitter",
        Impairment::Jitter { jitter_ms: 200 },
        secs,
        30,
    );
    let j = r.jitter.expect("netdelay counters");
    // 50 packets/s each way for 20 s, plus RTCP and the DTLS handshake.
    assert!(
        j.delayed >= 1800,
        "only {} packets delayed: {j:?}",
        j.delayed
    );
    assert_eq!(j.overflow, 0, "{j:?}");
    assert!(
        j.max_delay_ms >= 150.0,
        "the longest delay was {:.1} ms",
        j.max_delay_ms
    );
    for (name, s) in [("caller", &r.caller), ("callee", &r.callee)] {
        assert!(
            matches!(s.reason, EndReason::LocalHangup | EndReason::RemoteHangup),
            "{name}: {:?}",
            s.reason
        );
        let expected = s.received + s.lost;
        let stream_secs = expected as f32 / 50.0;
        assert!(
            stream_secs >= secs as f32 * 0.8,
            "{name}: only {stream_secs:.1} s of RTP in a {secs} s call"
        );
        // Uniform 0–200 ms delays: the RFC 3550 estimate is about a third of the spread.
        assert!(
            s.jitter_ms >= 30.0,
            "{name}: reported jitter only {:.1} ms",
            s.jitter_ms
        );
        assert!(s.reordered >= 200, "{name}: only {} reordered", s.reordered);
        // The adaptive buffer grew its playout delay to cover most of the spread.
        assert!(
            s.playout_delay_ms >= 120.0,
            "{name}: playout delay only {:.0} ms",
            s.playout_delay_ms
        );
        assert!(
            s.heard_secs >= stream_secs * HEARD_UNDER_JITTER,
            "{name}: tone heard {:.1} s of {stream_secs:.1} s of RTP",
            s.heard_secs
        );
    }
    let side = |s: &Side| {
        format!(
            "tone {:.1}/{:.1} s, jitter {:.0} ms, playout {:.0} ms, {} reordered, {} concealed",
            s.heard_secs,
            (s.received + s.lost) as f32 / 50.0,
            s.jitter_ms,
            s.playout_delay_ms,
            s.reordered,
            s.concealed
        )
    };
    entry.note(format!(
        "{} RTP/RTCP datagrams delayed U(0, 200 ms), max {:.0} ms; caller {}; callee {}",
        j.delayed,
        j.max_delay_ms,
        side(&r.caller),
        side(&r.callee)
    ));
    entry.pass();
}

/// Share of the stream in which the tone must be detected under 200 ms jitter: five runs
/// heard it for 96–100 % (the concealed frames are the late packets while the buffer grows).
const HEARD_UNDER_JITTER: f32 = 0.85;
