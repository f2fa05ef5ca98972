//! `peerline doctor` end to end against a test-owned UDP socket playing a registrar that
//! answers OPTIONS, and against a closed port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn doctor(config: &str, name: &str, extra: &[&str]) -> Output {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("phone.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_peerline"))
        .arg("--config")
        .arg(&path)
        .arg("doctor")
        .args(extra)
        .output()
        .unwrap()
}

fn config_for(port: u16) -> String {
    format!(
        "[network]\nsip_listen = \"127.0.0.1:0\"\nrtp_ports = \"31000-31099\"\n\
         [[account]]\naor = \"sip:alice@127.0.0.1:{port}\"\npassword = \"s3cret\"\n"
    )
}

/// Answers every OPTIONS with 200 (Via, From, To, Call-ID, CSeq copied) until stopped;
/// counts what it answered.
fn answer_options(sock: UdpSocket, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut answered = 0;
        let mut buf = [0u8; 4096];
        // Bounded: at most 300 × 100 ms.
        for _ in 0..300 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !req.starts_with("OPTIONS ") {
                continue;
            }
            let copied: String = req
                .lines()
                .filter(|l| {
                    ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                        .iter()
                        .any(|h| l.starts_with(h))
                })
                .map(|l| format!("{l}\r\n"))
                .collect();
            let resp = format!("SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n");
            sock.send_to(resp.as_bytes(), from).unwrap();
            answered += 1;
        }
        answered
    })
}

#[test]
fn doctor_shows_the_target_and_the_200_of_a_registrar() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let responder = answer_options(sock, stop.clone());
    let out = doctor(&config_for(port), "doctor_answered", &[]);
    stop.store(true, Ordering::Relaxed);
    let answered = responder.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("chosen: UDP 127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("OPTIONS over UDP to 127.0.0.1:{port}: 200")),
        "{text}"
    );
    assert!(text.contains("RTP ports: 31000-31099"), "{text}");
    assert!(text.contains("SRTP: mandatory (DTLS-SRTP)"), "{text}");
    assert!(text.contains("relay only through: none"), "{text}");
    assert!(text.contains("doctor: ok"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(answered, 1, "one OPTIONS, answered once");

    // The same as JSON.
    let sock = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let responder = answer_options(sock, stop.clone());
    let out = doctor(&config_for(port), "doctor_answered_json", &["--json"]);
    stop.store(true, Ordering::Relaxed);
    responder.join().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let d = &v["accounts"][0]["destinations"][0];
    assert_eq!(d["chosen"]["transport"], "UDP", "{v}");
    assert_eq!(d["chosen"]["addr"], format!("127.0.0.1:{port}"), "{v}");
    assert_eq!(d["probe"]["status"], 200, "{v}");
}

#[test]
fn doctor_reports_no_answer_from_a_closed_port_and_fails() {
    // A port nobody listens on: bound, then closed.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = doctor(&config_for(port), "doctor_closed", &["--timeout", "0.5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "OPTIONS over UDP to 127.0.0.1:{port}: FAIL no answer"
        )),
        "{text}"
    );
    assert!(text.contains("doctor: FAILED"), "{text}");
}
