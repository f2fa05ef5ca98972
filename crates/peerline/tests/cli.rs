//! The `peerline` binary end to end: the demo's verdict and `sip lint`'s exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

fn peerline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerline"))
}

#[test]
fn demo_reports_two_way_audio_as_json() {
    let out = peerline()
        .args(["demo", "--seconds", "1.5", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    for c in calls {
        assert!(c["rtp_received"].as_u64().unwrap() >= 50, "{c}");
        assert_eq!(c["rtp_malformed"], 0);
    }
    assert_eq!(calls[0]["ended"], "local hangup");
    assert_eq!(calls[1]["ended"], "remote hangup");
    // Alice heard Bob's 1000 Hz, Bob heard Alice's 440 Hz.
    assert!((calls[0]["heard_dominant_hz"].as_f64().unwrap() - 1000.0).abs() < 20.0);
    assert!((calls[1]["heard_dominant_hz"].as_f64().unwrap() - 440.0).abs() < 10.0);
}

fn lint(input: &[u8]) -> (i32, String) {
    let mut child = peerline()
        .args(["sip", "lint", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn sip_lint_exit_codes_and_reasons() {
    let valid = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: x@1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let (code, out) = lint(valid);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("valid:"), "{out}");

    let bad = String::from_utf8_lossy(valid).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    let (code, out) = lint(bad.as_bytes());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 7"), "{out}");

    let out = peerline()
        .args(["sip", "lint", "/nonexistent/message.sip"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `peerline call` and `peerline listen` with `[ice] enabled` in the config: the JSON
/// report names the ICE pair (host candidates on loopback, direct).
#[test]
fn call_and_listen_report_the_ice_path() {
    let dir = std::env::temp_dir().join(format!("peerline-cli-ice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ice.toml");
    std::fs::write(&config, "[ice]\nenabled = true\n").unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen_addr = format!("127.0.0.1:{port}");
    let listener = peerline()
        .args(["--config", config.to_str().unwrap(), "listen", "--json"])
        .args([
            "--listen",
            &listen_addr,
            "--wait",
            "20",
            "--play",
            "tone:1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = peerline()
        .args(["--config", config.to_str().unwrap(), "call", "--json"])
        .arg(format!("sip:bob@{listen_addr}"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seconds",
            "1.5",
            "--play",
            "tone:440",
        ])
        .output()
        .unwrap();
    let listened = listener.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for (who, o) in [("call", &out), ("listen", &listened)] {
        assert!(
            o.status.success(),
            "{who}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // JSON lines: the event stream, then the report.
        let text = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{who}: {e}: {l}")))
            .collect();
        let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
        for wanted in ["media_up", "ended"] {
            assert!(events.contains(&wanted), "{who}: {events:?}");
        }
        let first_event = if who == "call" {
            "answered"
        } else {
            "incoming"
        };
        assert!(events.contains(&first_event), "{who}: {events:?}");
        let v = lines.last().unwrap();
        assert!(
            v.get("event").is_none(),
            "{who}: the report comes last: {v}"
        );
        let path = &v["ice_path"];
        assert_eq!(path["local_type"], "host", "{who}: {v}");
        assert_eq!(path["remote_type"], "host", "{who}: {v}");
        assert_eq!(path["direct"], true, "{who}: {v}");
        assert!(v["rtp_received"].as_u64().unwrap() >= 50, "{who}: {v}");
    }
}

/// Nothing lost, nothing silently truncated (issue 10): `peerline listen --record` killed
/// (SIGKILL) in the middle of a call leaves no file under the recording's name, and a
/// `.partial` file beside it that is a valid WAV holding the call up to its last second.
#[test]
fn a_recording_killed_mid_call_is_left_partial_and_valid() {
    let dir = std::env::temp_dir().join(format!("peerline-cli-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("heard.wav");
    let partial = dir.join("heard.wav.partial");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen_addr = format!("127.0.0.1:{port}");
    let mut listener = peerline()
        .args(["listen", "--listen", &listen_addr, "--wait", "20"])
        .args(["--play", "tone:1000", "--record", rec.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut caller = peerline()
        .args(["call", &format!("sip:bob@{listen_addr}")])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seconds",
            "20",
            "--play",
            "tone:440",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (at most 15 s) until the partial recording holds over 2 s of audio.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut secs = 0.0;
    while std::time::Instant::now() < deadline {
        if let Ok(a) = peerline_audio::read_wav(&partial) {
            secs = a.duration_secs();
            if secs > 2.0 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    listener.kill().unwrap(); // SIGKILL: no destructor, no finalize
    listener.wait().unwrap();
    caller.kill().unwrap();
    caller.wait().unwrap();
    assert!(
        secs > 2.0,
        "the partial recording never held 2 s ({secs} s)"
    );
    assert!(
        !rec.exists(),
        "a killed recording must not take the final name"
    );
    let audio = peerline_audio::read_wav(&partial).unwrap();
    assert!(audio.duration_secs() >= 2.0, "{} s", audio.duration_secs());
    let heard = peerline_media::tone_seconds(&audio.samples, audio.sample_rate, 440.0, 0.5);
    assert!(
        heard >= 1.5,
        "the partial file holds {heard} s of the caller's tone"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_cli(args: &[String], config: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = peerline();
    if let Some(c) = config {
        cmd.args(["--config", c.to_str().unwrap()]);
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `peerline message URI TEXT`: delivered to a phone on loopback (exit 0, the status
/// printed, the phone gets the text); to a port where nothing listens, exit 1 naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_command_delivers_or_says_why_not() {
    let mut config = peerline_ua::Config::default();
    config.identity.user = "bob".into();
    config.network.sip_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (bob, mut events) = peerline_ua::Phone::start(config).await.unwrap();
    let uri = bob.uri("bob");
    let args = vec![
        "message".to_string(),
        uri,
        "hello from the CLI".into(),
        "--json".into(),
    ];
    let (code, out) = tokio::task::spawn_blocking(move || run_cli(&args, None))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (v["ok"].clone(), v["status"].clone()),
        (true.into(), 200.into()),
        "{v}"
    );
    let body = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(ev) = events.recv().await {
            if let peerline_ua::Event::Message { body, .. } = ev {
                return body;
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert_eq!(body, "hello from the CLI");
    bob.shutdown().await;

    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let args = vec![
        "message".to_string(),
        format!("sip:nobody@{closed};transport=tcp"),
        "anyone?".into(),
    ];
    let (code, out) = tokio::task::spawn_blocking(move || run_cli(&args, None))
        .await
        .unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not delivered"), "{out}");
}

/// `peerline register`: each account's outcome from a stand-in registrar on loopback
/// (200: registered for its 120 s, exit 0; 403: named, exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_command_reports_each_account() {
    let dir = std::env::temp_dir().join(format!("peerline-cli-register-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (status, want_code, want) in [
        ("200 OK", 0, "registered sip:alice@example.com for 120 s"),
        (
            "403 Forbidden",
            1,
            "not registered sip:alice@example.com: 403 Forbidden",
        ),
    ] {
        let (registrar, task) = peerline_bot::testing::loopback_registrar(status)
            .await
            .unwrap();
        let config = dir.join("phone.toml");
        std::fs::write(
            &config,
            format!(
                "[network]\nsip_listen = \"127.0.0.1:0\"\n\n[[account]]\naor = \"sip:alice@example.com\"\n\
                 password = \"secret\"\nregistrar = \"sip:{registrar}\"\n"
            ),
        )
        .unwrap();
        let args = vec!["register".to_string(), "--wait".into(), "5".into()];
        let cfg = config.clone();
        let (code, out) = tokio::task::spawn_blocking(move || run_cli(&args, Some(&cfg)))
            .await
            .unwrap();
        task.abort();
        assert_eq!(code, want_code, "{status}: {out}");
        assert!(out.contains(want), "{status}: {out}");
        assert!(!out.contains("secret"), "the password leaked: {out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
