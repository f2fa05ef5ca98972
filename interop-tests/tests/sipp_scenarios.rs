//! Peerline against the project's own SIPp 3.6.1 XML scenarios (`interop-tests/scenarios/`,
//! issue 3 done-when 3) and SIPp's built-in `uac_pcap` (issue 4 done-when 2): one call
//! each, SIP messages traced to `target/interop/<test>/sipp_messages.log`.
//!
//! | test | scenario | Peerline is | expects |
//! |---|---|---|---|
//! | `sipp_uas_busy_486` | `uas_486.xml` | UAC | `Rejected(486, ..)`; SIPp sees a correct ACK |
//! | `sipp_uac_cancel_before_answer` | `uac_cancel.xml` | UAS | 200 (CANCEL), 487; `Cancelled` |
//! | `sipp_uac_lost_200_retransmitted` | `uac_lost_200.xml` | UAS | the 2xx again before the ACK |
//! | `sipp_uas_digest_401` | `uas_401.xml` | UAC | retry with Authorization, answered |
//! | `sipp_uas_100rel_prack` | `uas_100rel.xml` | UAC | PRACK for a reliable 180, BYE CSeq after it |
//! | `sipp_uac_reinvite` | `uac_reinvite.xml` | UAS | 200 with SDP to a re-INVITE |
//! | `sipp_uac_100rel_prack` | `uac_100rel.xml` | UAS | reliable 180, 200 to PRACK |
//! | `sipp_uac_180_has_contact` | `uac_180_contact.xml` | UAS | Contact in the 180 |
//! | `sipp_uac_require_unknown_gets_420` | `uac_require_unknown.xml` | UAS | 420 + Unsupported |
//! | `sipp_uac_pcap_g711a_dtmf` | built-in `uac_pcap` | UAS | PCMA audio ~7 s, DTMF `1` |
//! | `sipp_uac_pcap_30ms_playout_is_continuous` | built-in `uac_pcap` | UAS | no gaps |

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sipp_support;

use std::time::{Duration, Instant};

use peerline_interop::{MatrixEntry, Sipp, SippOptions, SippScenario, SippStats, TestDir};
use peerline_ua::{AudioSource, CodecName, Config, EndReason, Event, MediaOptions, Phone};
use sipp_support::{
    config, diag, finish_sipp, next_event, reasons, runtime, sipp_options, AnswerMode, AutoAnswer,
    Ended,
};

/// Per-test wall-clock bound (the CI budget).
const TEST_BUDGET: Duration = Duration::from_secs(30);

fn check_budget(started: Instant) {
    assert!(
        started.elapsed() < TEST_BUDGET,
        "test took {:?}",
        started.elapsed()
    );
}

/// What one SIPp-calls-Peerline run produced.
struct UasRun {
    code: Option<i32>,
    incoming: u64,
    stats: SippStats,
    ended: Vec<Ended>,
    answer_errors: Vec<String>,
    logs: String,
}

/// SIPp (`opts`, one call) calls a Peerline UAS that handles each call per `mode`; waits for
/// SIPp to finish and for the phone to end the call.
fn sipp_calls_peerline(
    dir: &TestDir,
    opts: SippOptions,
    codecs: &[CodecName],
    mode: AnswerMode,
    limit: Duration,
) -> UasRun {
    let rt = runtime();
    rt.block_on(async {
        let (phone, events) = Phone::start(config(codecs)).await.unwrap();
        let uas = AutoAnswer::start(phone.clone(), events, mode);
        let opts = opts
            .remote(&phone.sip_addr().to_string())
            .calls(1)
            .timeout(limit);
        let mut sipp = Sipp::start(sipp_options(opts, dir, true), dir).unwrap();
        let (code, stats) = finish_sipp(&mut sipp, dir, limit + Duration::from_secs(3));
        if uas.incoming() > 0 {
            uas.wait_ended(1, Duration::from_secs(5)).await;
        }
        let incoming = uas.incoming();
        let answer_errors = uas.answer_errors();
        phone.shutdown().await;
        let ended = uas.finish().await;
        UasRun {
            code,
            incoming,
            stats,
            ended,
            answer_errors,
            logs: diag(&sipp, dir),
        }
    })
}

impl UasRun {
    /// SIPp counted one successful call and no failure.
    fn assert_sipp_ok(&self) {
        assert_eq!(
            (self.stats.successful, self.stats.failed, self.code),
            (1, 0, Some(0)),
            "SIPp: {:?}, exit {:?}; phone ended {:?}\n{}",
            self.stats,
            self.code,
            reasons(&self.ended),
            self.logs
        );
    }

    /// The phone ended exactly one call, for this reason.
    fn assert_ended(&self, want: &EndReason) -> &Ended {
        assert!(
            self.answer_errors.is_empty(),
            "answer failed: {:?}\n{}",
            self.answer_errors,
            self.logs
        );
        assert_eq!(
            self.ended.len(),
            1,
            "phone ended {:?}\n{}",
            reasons(&self.ended),
            self.logs
        );
        let e = &self.ended[0];
        assert_eq!(&e.reason, want, "{}", self.logs);
        e
    }
}

/// SIPp's count of one message on its final screen (stdout), e.g. the line
/// `----------> ACK   1   0   0   0`: the first number after the message name.
fn screen_count(sipp_stdout: &str, message: &str) -> Option<u64> {
    sipp_stdout.lines().rev().find_map(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        let i = t.iter().position(|w| *w == message)?;
        if !t.get(i.checked_sub(1)?)?.contains("---") {
            return None;
        }
        t.get(i + 1)?.parse().ok()
    })
}

/// Peerline calls SIPp (`opts`, as UAS, one call); returns the end reason and SIPp's
/// figures. `after_answer`: hang up this long after `Answered`.
fn peerline_calls_sipp(
    dir: &TestDir,
    config: Config,
    opts: SippOptions,
    after_answer: Duration,
    limit: Duration,
) -> (Option<EndReason>, Option<i32>, SippStats, String, String) {
    let rt = runtime();
    rt.block_on(async {
        let opts = opts.calls(1).timeout(limit);
        let mut sipp = Sipp::start(sipp_options(opts, dir, true), dir).unwrap();
        let (phone, mut events) = Phone::start(config).await.unwrap();
        let media = MediaOptions {
            source: AudioSource::Silence,
            record: None,
        };
        let call = phone
            .call(&format!("sip:service@{}", sipp.address()), media)
            .await
            .unwrap();
        let mut reason = None;
        let deadline = tokio::time::Instant::now() + limit;
        while reason.is_none() && tokio::time::Instant::now() < deadline {
            let left = deadline - tokio::time::Instant::now();
            let ev = next_event(&mut events, left, |ev| match ev {
                Event::Answered { call: c } if c == call => Some(None),
                Event::Ended {
                    call: c, reason, ..
                } if c == call => Some(Some(reason)),
                _ => None,
            })
            .await;
            match ev {
                Some(Some(r)) => reason = Some(r),
                Some(None) => {
                    tokio::time::sleep(after_answer).await;
                    phone.hangup(call).await.unwrap();
                }
                None => break,
            }
        }
        phone.shutdown().await;
        let (code, stats) = finish_sipp(&mut sipp, dir, Duration::from_secs(5));
        let stdout = sipp.process().stdout_text();
        (reason, code, stats, stdout, diag(&sipp, dir))
    })
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uas_busy_486() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uas-486-busy", "udp");
    let dir = TestDir::new("sipp_uas_busy_486").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uas_486.xml"));
    let (reason, code, stats, stdout, logs) = peerline_calls_sipp(
        &dir,
        config(&[CodecName::Pcmu]),
        opts,
        Duration::ZERO,
        Duration::from_secs(8),
    );
    assert_eq!(
        reason,
        Some(EndReason::Rejected(486, "Busy Here".into())),
        "{logs}"
    );
    // The scenario fails the call unless the ACK has the INVITE's branch and CSeq number
    // and the 486's To tag.
    assert_eq!(
        (stats.successful, stats.failed, code),
        (1, 0, Some(0)),
        "SIPp: {stats:?}, exit {code:?}\n{logs}"
    );
    assert_eq!(screen_count(&stdout, "ACK"), Some(1), "{logs}");
    check_budget(started);
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_cancel_before_answer() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-cancel", "udp");
    let dir = TestDir::new("sipp_uac_cancel_before_answer").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uac_cancel.xml"));
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::Never,
        Duration::from_secs(8),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::Cancelled);
    check_budget(started);
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_lost_200_retransmitted() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-lost-200", "udp");
    let dir = TestDir::new("sipp_uac_lost_200_retransmitted").unwrap();
    // -nr: see the scenario's comment (SIPp would swallow the identical retransmission).
    let opts = SippOptions::new("sipp", SippScenario::project("uac_lost_200.xml")).args(["-nr"]);
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::silence(),
        Duration::from_secs(10),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::RemoteHangup);
    check_budget(started);
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uas_digest_401() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uas-401-digest", "udp");
    let dir = TestDir::new("sipp_uas_digest_401").unwrap();
    // The scenario verifies the Authorization for user "alice", password "secret": the
    // phone's account (not registering) carries those credentials.
    let opts = SippOptions::new("sipp", SippScenario::project("uas_401.xml"));
    let mut cfg = config(&[CodecName::Pcmu]);
    cfg.accounts = vec![toml::from_str(
        "aor = \"sip:alice@peerline.test\"\npassword = \"secret\"\nregister = false\n",
    )
    .unwrap()];
    let (reason, code, stats, _stdout, logs) = peerline_calls_sipp(
        &dir,
        cfg,
        opts,
        Duration::from_millis(200),
        Duration::from_secs(8),
    );
    assert_eq!(reason, Some(EndReason::LocalHangup), "{logs}");
    assert_eq!(
        (stats.successful, stats.failed, code),
        (1, 0, Some(0)),
        "SIPp: {stats:?}, exit {code:?}\n{logs}"
    );
    check_budget(started);
    entry.pass();
}

/// RFC 3262 as UAC: the phone's INVITE carries `Supported: 100rel`; SIPp's reliable 180
/// (`Require: 100rel`, `RSeq: 1`) gets one PRACK in the early dialog (`RAck: 1 1 INVITE`,
/// CSeq 2, the 180's To tag); after the 200 the phone hangs up with CSeq 3. The scenario
/// fails the call if any of that is missing.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uas_100rel_prack() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uas-100rel-prack", "udp");
    let dir = TestDir::new("sipp_uas_100rel_prack").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uas_100rel.xml"));
    let (reason, code, stats, stdout, logs) = peerline_calls_sipp(
        &dir,
        config(&[CodecName::Pcmu]),
        opts,
        Duration::from_millis(200),
        Duration::from_secs(8),
    );
    assert_eq!(reason, Some(EndReason::LocalHangup), "{logs}");
    assert_eq!(
        (stats.successful, stats.failed, code),
        (1, 0, Some(0)),
        "SIPp: {stats:?}, exit {code:?}\n{logs}"
    );
    // Exactly one PRACK, however often the 180 was retransmitted.
    assert_eq!(screen_count(&stdout, "PRACK"), Some(1), "{logs}");
    check_budget(started);
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_reinvite() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-reinvite", "udp");
    let dir = TestDir::new("sipp_uac_reinvite").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uac_reinvite.xml"));
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::silence(),
        Duration::from_secs(10),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::RemoteHangup);
    check_budget(started);
    entry.pass();
}

/// In-dialog INFO and UPDATE from SIPp: a DTMF-relay INFO is answered 200 and its digit
/// reported as `Event::Dtmf`, an INFO for an unknown Info-Package gets 469 (RFC 6086),
/// an UPDATE with a sendonly offer gets 200 with a recvonly answer and one without a body
/// 200 (RFC 3311); the call then ends with SIPp's BYE.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_info_dtmf_and_update() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-info-update", "udp");
    let dir = TestDir::new("sipp_uac_info_update").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uac_info_update.xml"));
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::silence(),
        Duration::from_secs(10),
    );
    run.assert_sipp_ok();
    let ended = run.assert_ended(&EndReason::RemoteHangup);
    assert_eq!(ended.dtmf, "7", "{}", run.logs);
    check_budget(started);
    entry.pass();
}

/// RFC 3262: SIPp requires 100rel; the phone's 180 carries `Require: 100rel` and an
/// `RSeq`, SIPp's PRACK (with the matching `RAck`) gets its 200, then the INVITE's 200.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_100rel_prack() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-100rel-prack", "udp");
    let dir = TestDir::new("sipp_uac_100rel_prack").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uac_100rel.xml"));
    // Answer after the PRACK round trip: the 200 (INVITE) must follow the 200 (PRACK).
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::After(
            Duration::from_millis(300),
            MediaOptions {
                source: AudioSource::Silence,
                record: None,
            },
        ),
        Duration::from_secs(10),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::RemoteHangup);
    check_budget(started);
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_180_has_contact() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-180-contact", "udp");
    let dir = TestDir::new("sipp_uac_180_has_contact").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uac_180_contact.xml"));
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::Never,
        Duration::from_secs(8),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::Cancelled);
    check_budget(started);
    entry.pass();
}

/// SIPp's `file` sends an INVITE Peerline must refuse before ringing: SIPp's scenario
/// checks the refusal (status, and its headers or reason where it says), and the INVITE
/// never reaches the user.
fn refused_before_ringing(file: &str, feature: &str, test: &str) {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", feature, "udp");
    let dir = TestDir::new(test).unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project(file));
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::Never,
        Duration::from_secs(8),
    );
    run.assert_sipp_ok();
    assert_eq!(
        (run.incoming, run.ended.len()),
        (0, 0),
        "{file}: the refused INVITE reached the user: {:?}\n{}",
        reasons(&run.ended),
        run.logs
    );
    check_budget(started);
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_require_unknown_gets_420() {
    refused_before_ringing(
        "uac_require_unknown.xml",
        "uac-require-420",
        "sipp_uac_require_unknown_gets_420",
    );
}

/// Session timers (RFC 4028): SIPp asks for 1800 s with itself as refresher; Peerline's
/// 200 carries `Session-Expires: 1800;refresher=uac` and `Require: timer`, and SIPp's
/// refreshing re-INVITE is answered with the same; the call ends with SIPp's BYE.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_session_timer_negotiated_and_refreshed() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-session-timer", "udp");
    let dir = TestDir::new("sipp_uac_session_timer").unwrap();
    let opts = SippOptions::new("sipp", SippScenario::project("uac_session_timer.xml"));
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcmu],
        AnswerMode::silence(),
        Duration::from_secs(10),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::RemoteHangup);
    check_budget(started);
    entry.pass();
}

/// RFC 4028 §9: `Session-Expires: 30` from a caller supporting timers is below our
/// minimum: 422 with `Min-SE: 90`, and the INVITE never reaches the user.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_session_interval_too_small_gets_422() {
    refused_before_ringing(
        "uac_session_too_small.xml",
        "uac-session-422",
        "sipp_uac_session_too_small",
    );
}

/// RFC 3891 §3 against SIPp: an INVITE whose `Replaces` names no dialog of ours gets 481,
/// and one whose `Replaces` is malformed gets a 400 naming the problem (the scenario
/// checks the reason phrase); neither rings as a new call.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_replaces_unknown_or_malformed_is_refused() {
    refused_before_ringing(
        "uac_replaces_unknown.xml",
        "uac-replaces-481",
        "sipp_uac_replaces_unknown",
    );
    refused_before_ringing(
        "uac_replaces_malformed.xml",
        "uac-replaces-400",
        "sipp_uac_replaces_malformed",
    );
}

/// What SIPp's built-in `uac_pcap` left in Peerline: the call and the recording.
struct PcapRun {
    ended: Ended,
    audio: peerline_audio::Audio,
    logs: String,
}

/// SIPp's built-in `uac_pcap`: INVITE offering PCMA and telephone-event, then 7.05 s of
/// G.711 A-law from `g711a.pcap` (30 ms packets; speech after 0.6 s of near silence, with
/// no pause) and an RFC 4733 digit `1` from `dtmf_2833_1.pcap` (its own SSRC), then BYE
/// ~9 s after the ACK. Peerline answers PCMA and records what it decodes.
fn run_uac_pcap(test: &str) -> PcapRun {
    let dir = TestDir::new(test).unwrap();
    let rec = dir.path().join("peerline-heard.wav");
    let opts = SippOptions::builtin("sipp", "uac_pcap");
    let run = sipp_calls_peerline(
        &dir,
        opts,
        &[CodecName::Pcma, CodecName::Pcmu],
        AnswerMode::Now(MediaOptions {
            source: AudioSource::Silence,
            record: Some(rec.clone()),
        }),
        Duration::from_secs(20),
    );
    run.assert_sipp_ok();
    run.assert_ended(&EndReason::RemoteHangup);
    let logs = run.logs;
    let ended = run.ended.into_iter().next().unwrap();
    assert_eq!(ended.media.codec, Some("PCMA"), "{:?}\n{logs}", ended.media);
    assert!(ended.media.error.is_none(), "{:?}", ended.media.error);
    let audio = peerline_audio::read_wav(&rec).unwrap();
    assert_eq!(audio.sample_rate, 8000);
    PcapRun { ended, audio, logs }
}

/// Non-silent (> -50 dBFS) flags of consecutive 100 ms blocks.
fn loud_blocks(samples: &[i16], rate: u32) -> Vec<bool> {
    let block = (rate / 10) as usize;
    samples
        .chunks(block)
        .filter(|b| b.len() == block)
        .map(|b| !peerline_media::is_silence(b, -50.0))
        .collect()
}

/// A picture of a recording, one character per 100 ms: `#` loud, `.` silent.
fn picture(loud: &[bool]) -> String {
    loud.iter().map(|l| if *l { '#' } else { '.' }).collect()
}

/// Issue 4 done-when 2: Peerline decodes SIPp's `uac_pcap` (non-silent for the capture's
/// duration) and receives its RFC 4733 digit.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_pcap_g711a_dtmf() {
    const PCAP_SECS: f32 = 7.05;
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-pcap-pcma-dtmf", "udp");
    let PcapRun { ended, audio, logs } = run_uac_pcap("sipp_uac_pcap_g711a_dtmf");
    // 236 audio packets plus the digit's events.
    assert!(
        ended.media.received.packets_received >= 236,
        "{:?}\n{logs}",
        ended.media
    );
    let loud = loud_blocks(&audio.samples, audio.sample_rate);
    let audible = loud.iter().filter(|l| **l).count() as f32 / 10.0;
    let recorded = audio.samples.len() as f32 / 8000.0;
    assert!(
        (audible - PCAP_SECS).abs() <= 0.7,
        "audible {audible:.1} s of {recorded:.1} s recorded, expected ~{PCAP_SECS} s: {}\n{:?}",
        picture(&loud),
        ended.media
    );
    assert_eq!(
        ended.dtmf, "1",
        "DTMF events; report says {:?}",
        ended.media.dtmf
    );
    eprintln!(
        "uac_pcap: {} packets, {audible:.1} s audible of {recorded:.1} s recorded, DTMF {:?}, \
         RTP from {:?}; test {:.1} s\n{}",
        ended.media.received.packets_received,
        ended.dtmf,
        ended.media.remote,
        started.elapsed().as_secs_f64(),
        picture(&loud)
    );
    check_budget(started);
    entry.pass();
}

/// The same capture must play out continuously: its speech has no pause, so once the
/// speech starts no 100 ms block of the recording may be silent, and the recording must be
/// as long as the call (the playout clock is the wall clock, whatever the peer's ptime).
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sipp_uac_pcap_30ms_playout_is_continuous() {
    let started = Instant::now();
    let entry = MatrixEntry::new("sipp", "uac-pcap-30ms-continuous", "udp");
    let PcapRun { ended, audio, logs } = run_uac_pcap("sipp_uac_pcap_30ms_playout_is_continuous");
    let loud = loud_blocks(&audio.samples, audio.sample_rate);
    let first = loud.iter().position(|l| *l).expect("nothing audible");
    let last = loud.iter().rposition(|l| *l).unwrap_or(first);
    let gaps = loud[first..=last].iter().filter(|l| !**l).count();
    let recorded = audio.samples.len() as f64 / 8000.0;
    let call = ended
        .incoming_at
        .map(|t| ended.ended_at.duration_since(t).as_secs_f64())
        .unwrap_or_default();
    assert!(
        gaps == 0 && (recorded - call).abs() <= 0.5,
        "{gaps} silent 100 ms blocks inside the speech; recorded {recorded:.2} s of a \
         {call:.2} s call; concealed frames {}: {}\n{logs}",
        ended.media.concealed_frames,
        picture(&loud)
    );
    check_budget(started);
    entry.pass();
}
