//! Self-tests of the harness against real peers only (no Peerline code): they prove the
//! recipes that Peerline's own interop tests reuse.

// Test helpers (not #[test] fns themselves) may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use peerline_interop::{
    detect_tone, free_udp_port, stun_binding, tails, wait_for, write_tone_wav, Baresip,
    BaresipOptions, Coturn, CoturnOptions, Kamailio, KamailioOptions, MatrixEntry, Process,
    ProcessOptions, Sipp, SippOptions, TestDir,
};

const READY: Duration = Duration::from_secs(5);

/// Two baresip on loopback: A plays 440 Hz and dials B; B auto-answers and plays 1000 Hz.
/// Each one's recording of what it received must carry the other's tone.
fn baresip_pair_call(test: &str, feature: &str, codecs: Option<&str>, expect_codec: &str) {
    let started = Instant::now();
    let mut entry = MatrixEntry::new("baresip", feature, "udp");
    let dir = TestDir::new(test).unwrap();
    let wav_a = dir.path().join("tone440.wav");
    let wav_b = dir.path().join("tone1000.wav");
    write_tone_wav(&wav_a, 440.0, 8000, 1, 4.0, 0.5).unwrap();
    write_tone_wav(&wav_b, 1000.0, 8000, 1, 4.0, 0.5).unwrap();

    let mut ob = BaresipOptions::new("b")
        .audio_source(&wav_b)
        .run_for(Duration::from_secs(15));
    if let Some(c) = codecs {
        ob = ob.audio_codecs(c);
    }
    let mut b = Baresip::start(ob, &dir).unwrap();
    b.wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));

    let mut oa = BaresipOptions::new("a")
        .audio_source(&wav_a)
        .ctrl_tcp()
        .run_for(Duration::from_secs(15));
    if let Some(c) = codecs {
        oa = oa.audio_codecs(c);
    }
    let mut a = Baresip::start(oa, &dir).unwrap();
    a.wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[a.process(), b.process()], 40)));
    let resp = a.command("dial", &b.uri()).unwrap();
    assert!(resp.contains("\"ok\":true"), "dial via ctrl_tcp: {resp}");

    a.wait_established(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[a.process(), b.process()], 40)));
    // aufile reaches the end of the 4 s WAV and menu hangs up; bounded.
    a.wait_call_end(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[a.process(), b.process()], 40)));
    b.wait_call_end(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[a.process(), b.process()], 40)));
    a.stop();
    b.stop();
    let logs = tails(&[a.process(), b.process()], 40);
    let codec_line = format!("Set audio decoder: {expect_codec}");
    assert!(
        a.process().log_contains(&codec_line),
        "codec {expect_codec} not used\n{logs}"
    );

    let rx_a = a.received_audio().unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let rx_b = b.received_audio().unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let a1000 = detect_tone(&rx_a, 1000.0);
    let a440 = detect_tone(&rx_a, 440.0);
    let b440 = detect_tone(&rx_b, 440.0);
    let b1000 = detect_tone(&rx_b, 1000.0);
    assert!(
        a1000.tone_secs() >= 2.5 && a440.tone_blocks == 0,
        "A should hear B's 1000 Hz: {a1000:?} / 440: {a440:?}\n{logs}"
    );
    assert!(
        b440.tone_secs() >= 2.5 && b1000.tone_blocks == 0,
        "B should hear A's 440 Hz: {b440:?} / 1000: {b1000:?}\n{logs}"
    );
    entry.note(
        expect_codec
            .split_whitespace()
            .next()
            .unwrap_or(expect_codec),
    );
    entry.pass();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_calls_baresip_pcmu() {
    baresip_pair_call(
        "baresip_calls_baresip_pcmu",
        "harness-call-pcmu",
        Some("PCMU"),
        "PCMU 8000Hz 1ch",
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_against_sipp_uas() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "harness-uac-uas", "udp");
    let dir = TestDir::new("sipp_uac_against_sipp_uas").unwrap();
    let mut uas = Sipp::start(
        SippOptions::builtin("uas", "uas")
            .calls(10)
            .timeout(Duration::from_secs(15)),
        &dir,
    )
    .unwrap();
    // SIPp has no "ready" line; its UDP socket is bound right after start.
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = Sipp::start(
        SippOptions::builtin("uac", "uac")
            .remote(&uas.address())
            .calls(10)
            .rate(10)
            .timeout(Duration::from_secs(12)),
        &dir,
    )
    .unwrap();
    let st = uac.wait(Duration::from_secs(15));
    let logs = tails(&[uac.process(), uas.process()], 30);
    let st = st.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let stats = uac.stats().unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(st.success(), "uac exit {st:?}, {stats:?}\n{logs}");
    assert_eq!(
        (stats.successful, stats.failed),
        (10, 0),
        "{stats:?}\n{logs}"
    );
    let uas_st = uas.wait(Duration::from_secs(5));
    let uas_stats = uas.stats().unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert_eq!(
        (uas_stats.successful, uas_stats.failed),
        (10, 0),
        "{uas_stats:?} {uas_st:?}\n{logs}"
    );
    entry.pass();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Two baresip register with digest auth at Kamailio (users in SQLite) and A calls B by
/// AOR through it; media (direct, PCMU) carries each side's tone.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_calls_baresip_through_kamailio() {
    let started = Instant::now();
    let entry = MatrixEntry::new("kamailio", "harness-register-auth-call", "udp");
    let dir = TestDir::new("baresip_calls_baresip_through_kamailio").unwrap();
    let mut kam = Kamailio::start(
        KamailioOptions::new()
            .user("alice", "alice-secret")
            .user("bob", "bob-secret"),
        &dir,
    )
    .unwrap();
    kam.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[kam.process()], 40)));
    let wav_a = dir.path().join("tone440.wav");
    let wav_b = dir.path().join("tone1000.wav");
    write_tone_wav(&wav_a, 440.0, 8000, 1, 3.0, 0.5).unwrap();
    write_tone_wav(&wav_b, 1000.0, 8000, 1, 3.0, 0.5).unwrap();
    let outbound = format!("outbound=\"{}\"", kam.proxy_uri());
    let user = |name: &str, pass: &str, wav: &std::path::Path| {
        BaresipOptions::new(name)
            .account_uri(&kam.aor(name))
            .account_param(&format!("auth_pass={pass}"))
            .account_param(&outbound)
            .account_param("regint=60")
            .audio_codecs("PCMU")
            .audio_source(wav)
            .run_for(Duration::from_secs(15))
    };
    let logs = |a: &Baresip, b: &Baresip, k: &Kamailio| {
        tails(&[a.process(), b.process(), k.process()], 30)
    };
    let mut b = Baresip::start(user("bob", "bob-secret", &wav_b), &dir).unwrap();
    kam.wait_registered("bob", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process(), kam.process()], 30)));
    // Alice registers and dials bob's AOR through the proxy (INVITE challenged, too).
    let mut a = Baresip::start(
        user("alice", "alice-secret", &wav_a).dial(&kam.aor("bob")),
        &dir,
    )
    .unwrap();
    a.wait_established(Duration::from_secs(8))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&a, &b, &kam)));
    a.wait_call_end(Duration::from_secs(8))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&a, &b, &kam)));
    kam.wait_registered("alice", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&a, &b, &kam)));
    a.stop();
    b.stop();
    let l = logs(&a, &b, &kam);
    let a1000 = detect_tone(
        &a.received_audio().unwrap_or_else(|e| panic!("{e}\n{l}")),
        1000.0,
    );
    let b440 = detect_tone(
        &b.received_audio().unwrap_or_else(|e| panic!("{e}\n{l}")),
        440.0,
    );
    assert!(a1000.tone_secs() >= 1.5, "{a1000:?}\n{l}");
    assert!(b440.tone_secs() >= 1.5, "{b440:?}\n{l}");
    entry.pass();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// coturn answers STUN Binding with our loopback address, and a TURN allocation with
/// long-term credentials succeeds (coturn's own `turnutils_uclient`).
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn coturn_answers_stun_and_allocates() {
    let entry = MatrixEntry::new("coturn", "harness-stun-turn-alloc", "udp");
    let dir = TestDir::new("coturn_answers_stun_and_allocates").unwrap();
    let mut turn = Coturn::start(CoturnOptions::new().user("peer", "line"), &dir).unwrap();
    turn.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[turn.process()], 40)));
    let mapped = stun_binding(turn.address(), Duration::from_secs(1)).unwrap();
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");
    // Relay 5 messages to an echo peer through a TURN allocation (coturn's own tools).
    let peer_port = free_udp_port().unwrap();
    let _peer = Process::spawn(
        ProcessOptions::new("turnutils_peer", "turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
            .grace(Duration::from_millis(500)),
        dir.path(),
    )
    .unwrap();
    let uclient = Process::spawn(
        ProcessOptions::new("uclient", "turnutils_uclient")
            .args(["-p", &turn.address().port().to_string()])
            .args([
                "-u", "peer", "-w", "line", "-n", "5", "-m", "1", "-l", "100",
            ])
            .args(["-e", "127.0.0.1", "-r", &peer_port.to_string(), "127.0.0.1"])
            .grace(Duration::from_millis(500)),
        dir.path(),
    )
    .unwrap();
    // uclient does not exit by itself after the run: wait for its counters, then stop it.
    let r = wait_for(
        "uclient: messages echoed through the relay, 0 lost",
        Duration::from_secs(8),
        Duration::from_millis(100),
        || uclient.log_contains("Total lost packets 0 ("),
    );
    let logs = tails(&[&uclient, turn.process()], 30);
    r.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(
        turn.process().log_contains("ALLOCATE processed, success"),
        "no successful allocation\n{logs}"
    );
    entry.pass();
}
