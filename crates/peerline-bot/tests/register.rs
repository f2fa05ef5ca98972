//! The `register` step against a minimal registrar on loopback: it passes when the
//! account is registered, and a refusal or silence fails it naming the status and reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use peerline_bot::{RunOptions, RunResult, Scenario, Status};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

async fn registrar(status: &'static str) -> (SocketAddr, JoinHandle<()>) {
    peerline_bot::testing::loopback_registrar(status)
        .await
        .unwrap()
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
