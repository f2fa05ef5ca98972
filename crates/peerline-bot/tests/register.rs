//! The `register` step against a minimal registrar on loopback: it passes when the
//! account is registered, and a refusal or silence fails it naming the status and reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use peerline_bot::{RunOptions, RunResult, Scenario, Status};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Answers every REGISTER with `status` (200 grants 120 s in `Expires`); returns its
/// address.
async fn registrar(status: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !request.starts_with("REGISTER ") {
                continue;
            }
            let mut response = format!("SIP/2.0 {status}\r\n");
            for line in request.lines() {
                let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                match name.as_str() {
                    "via" | "from" | "call-id" | "cseq" => {
                        response.push_str(line);
                        response.push_str("\r\n");
                    }
                    "to" => response.push_str(&format!("{line};tag=reg1\r\n")),
                    _ => {}
                }
            }
            if status.starts_with("200") {
                response.push_str("Expires: 120\r\n");
            }
            response.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(response.as_bytes(), from).await;
        }
    });
    (addr, task)
}

async fn run_register(registrar: SocketAddr, within: &str) -> RunResult {
    let text = format!(
        "[[leg]]\nname = \"alice\"\naccount = {{ aor = \"sip:alice@{registrar}\", password = \"pw\", registrar = \"sip:{registrar}\" }}\nsteps = [\n  {{ register = true, within = {within} }},\n]\n"
    );
    let scenario = Scenario::parse(&text, Path::new("register.toml"), &BTreeMap::new()).unwrap();
    peerline_bot::run(scenario, &RunOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_passes_when_the_registrar_accepts() {
    let (addr, task) = registrar("200 OK").await;
    let r = run_register(addr, "5").await;
    assert!(r.passed, "{:#?}", r.failures());
    assert_eq!(r.steps.len(), 1);
    assert_eq!(r.steps[0].status, Status::Passed);
    assert_eq!(r.steps[0].observed, "registered for 120 s");
    assert_eq!(
        r.steps[0].expected,
        format!("sip:alice@{addr} registered within 5 s")
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fails_naming_the_status_and_reason() {
    let (addr, task) = registrar("403 Forbidden").await;
    let r = run_register(addr, "5").await;
    assert!(!r.passed);
    let f = r.failures();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with("register.toml:5 [alice] step 1 `register within 5 s` failed"),
        "{f:#?}"
    );
    assert!(
        f[0].contains("observed registration failed: 403 Forbidden"),
        "{f:#?}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fails_when_the_registrar_is_silent() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let r = run_register(silent.local_addr().unwrap(), "1").await;
    assert!(!r.passed);
    assert_eq!(
        r.steps[0].observed, "no registration outcome within 1 s",
        "{:?}",
        r.steps[0]
    );
}
