//! One Peerline ICE session as a process, so a NAT-lab test can run each side inside its
//! own network namespace (`ip netns exec NS ice-peer …`).
//!
//! ```text
//! ice-peer --name a --peer b --dir DIR --role controlling|controlled
//!          [--stun IP:PORT] [--turn IP:PORT|turn:…?transport=tcp|turns:…
//!                              (--turn-user U --turn-pass P
//!                               | --turn-secret S [--turn-user LABEL]) [--turn-ca PEM]]
//!          [--port-range 20000-20099] [--timeout-ms 20000] [--pings 5]
//! ```
//!
//! 1. gathers and writes `DIR/<name>.local.json` (ufrag, pwd, `a=candidate` values);
//! 2. waits (bounded) for `DIR/<peer>.local.json` — the peers' "signaling" is the file
//!    system, so no control traffic crosses the lab's network;
//! 3. connects; the controlling side sends `ping N` datagrams, the controlled side answers
//!    `pong N`, then `bye`;
//! 4. writes `DIR/<name>.result.json` and prints it: `{"ok":true,"path":{…},"pings":…}` or
//!    `{"ok":false,"error":"…"}`. Exit 0 on success, 2 on ICE failure, 1 on bad usage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use peerline_net::{
    IceConfig, IceSession, PortRange, StunServer, TurnCredential, TurnServer, DEFAULT_REST_LABEL,
    DEFAULT_REST_TTL,
};
use peerline_sdp::{Attribute, RemoteIce};
use serde_json::{json, Value};

struct Args {
    name: String,
    peer: String,
    dir: PathBuf,
    controlling: bool,
    stun: Option<String>,
    turn: Option<(String, TurnCredential)>,
    /// Trust anchors for a `turns:` server (PEM), else the system roots.
    turn_ca: Option<PathBuf>,
    port_range: PortRange,
    timeout: Duration,
    pings: u32,
}

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let key = k
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {k}"))?;
        let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        m.insert(key.to_owned(), v.clone());
    }
    let get = |k: &str| m.get(k).cloned();
    let need = |k: &str| get(k).ok_or_else(|| format!("--{k} is required"));
    let turn = match get("turn") {
        // A coturn shared secret: TURN REST credentials derived when the session gathers.
        Some(t) => match get("turn-secret") {
            Some(secret) => Some((
                t,
                TurnCredential::SharedSecret {
                    secret,
                    label: get("turn-user").unwrap_or_else(|| DEFAULT_REST_LABEL.into()),
                    ttl: DEFAULT_REST_TTL,
                },
            )),
            None => Some((
                t,
                TurnCredential::Static {
                    username: need("turn-user")?,
                    password: need("turn-pass")?,
                },
            )),
        },
        None => None,
    };
    Ok(Args {
        name: need("name")?,
        peer: need("peer")?,
        dir: PathBuf::from(need("dir")?),
        controlling: match need("role")?.as_str() {
            "controlling" => true,
            "controlled" => false,
            r => return Err(format!("bad role {r}")),
        },
        stun: get("stun"),
        turn,
        turn_ca: get("turn-ca").map(PathBuf::from),
        port_range: PortRange::parse(&get("port-range").unwrap_or_else(|| "20000-20099".into()))
            .map_err(|e| e.to_string())?,
        timeout: Duration::from_millis(
            get("timeout-ms")
                .unwrap_or_else(|| "20000".into())
                .parse()
                .map_err(|_| "bad --timeout-ms".to_string())?,
        ),
        pings: get("pings")
            .unwrap_or_else(|| "5".into())
            .parse()
            .map_err(|_| "bad --pings".to_string())?,
    })
}

/// A rustls client configuration trusting only the CAs in `ca` (PEM).
fn turn_tls(ca: &Path) -> Result<std::sync::Arc<peerline_net::TurnTlsConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("{}: {e}", ca.display()))?
    {
        roots
            .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

fn write_atomic(path: &Path, v: &Value) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, v.to_string() + "\n").map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

async fn read_peer(path: &Path, deadline: Instant) -> Result<RemoteIce, String> {
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            let mut candidates = Vec::new();
            for c in v["candidates"].as_array().cloned().unwrap_or_default() {
                let line = c.as_str().unwrap_or_default();
                if let Ok(Attribute::Candidate(c)) = Attribute::parse(&format!("candidate:{line}"))
                {
                    candidates.push(c);
                }
            }
            return Ok(RemoteIce {
                ufrag: s("ufrag"),
                pwd: s("pwd"),
                options: vec![],
                candidates,
                remote_candidates: vec![],
                end_of_candidates: true,
                lite: false,
            });
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {}", path.display()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(a: &Args) -> Result<Value, (u8, Value)> {
    let fail = |code: u8, e: String| (code, json!({"ok": false, "error": e}));
    let deadline = Instant::now() + a.timeout;
    let mut cfg = IceConfig {
        controlling: a.controlling,
        port_range: a.port_range,
        connect_timeout: Duration::from_secs(12),
        ..IceConfig::default()
    };
    if let Some(s) = &a.stun {
        cfg.stun_servers
            .push(StunServer::parse(s).map_err(|e| fail(1, e.to_string()))?);
    }
    if let Some((url, credential)) = &a.turn {
        // A bare IP:PORT is `turn:IP:PORT` (UDP); a full turn:/turns: URL is taken as is.
        let url = if url.starts_with("turn:") || url.starts_with("turns:") {
            url.clone()
        } else {
            format!("turn:{url}")
        };
        cfg.turn_servers.push(
            TurnServer::parse_with(&url, credential.clone()).map_err(|e| fail(1, e.to_string()))?,
        );
    }
    if let Some(ca) = &a.turn_ca {
        cfg.turn_tls = Some(turn_tls(ca).map_err(|e| fail(1, e))?);
    }
    let session = IceSession::gather(cfg)
        .await
        .map_err(|e| fail(2, e.to_string()))?;
    let local = session.local_params();
    let cands: Vec<String> = local.candidates.iter().map(ToString::to_string).collect();
    eprintln!("{}: gathered {cands:?}", a.name);
    write_atomic(
        &a.dir.join(format!("{}.local.json", a.name)),
        &json!({"ufrag": local.ufrag, "pwd": local.pwd, "candidates": cands}),
    )
    .map_err(|e| fail(1, e))?;
    let local_kinds: Vec<&str> = session.local_kinds().iter().map(|k| k.as_str()).collect();

    let remote = read_peer(&a.dir.join(format!("{}.local.json", a.peer)), deadline)
        .await
        .map_err(|e| fail(2, e))?;
    let connected = match session.connect(&remote).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", a.name);
            session.close().await;
            return Err((
                2,
                json!({"ok": false, "error": e.to_string(), "local_kinds": local_kinds}),
            ));
        }
    };
    eprintln!("{}: connected {}", a.name, connected.path);
    let conn = connected.conn.clone();
    let mut buf = vec![0u8; 1500];
    let mut rtts: Vec<Duration> = Vec::new();
    let mut answered = 0u32;
    if a.controlling {
        'outer: for n in 0..a.pings {
            // Up to 10 tries per ping, 300 ms each: bounded.
            for _ in 0..10 {
                let t = Instant::now();
                if conn.send(format!("ping {n}").as_bytes()).await.is_err() {
                    break 'outer;
                }
                let want = format!("pong {n}");
                let until = t + Duration::from_millis(300);
                while let Ok(Ok(len)) =
                    tokio::time::timeout_at(until.into(), conn.recv(&mut buf)).await
                {
                    if buf.get(..len) == Some(want.as_bytes()) {
                        rtts.push(t.elapsed());
                        continue 'outer;
                    }
                }
            }
        }
        for _ in 0..3 {
            let _ = conn.send(b"bye").await;
        }
    } else {
        loop {
            let r = tokio::time::timeout_at(deadline.into(), conn.recv(&mut buf)).await;
            let Ok(Ok(len)) = r else { break };
            let msg = String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).to_string();
            if let Some(n) = msg.strip_prefix("ping ") {
                let _ = conn.send(format!("pong {n}").as_bytes()).await;
                answered += 1;
            } else if msg == "bye" {
                break;
            }
        }
    }
    let mut path = session.path_report().unwrap_or(connected.path);
    if let Some(min) = rtts.iter().min() {
        path = path.with_rtt(*min);
    }
    // What the loopback bridges to TCP/TLS TURN servers carried (before close ends them).
    let bridges: Vec<Value> = session
        .turn_bridge_stats()
        .into_iter()
        .map(|(server, st, running)| {
            json!({"server": server, "to_server": st.to_server, "from_server": st.from_server,
                   "dropped": st.dropped, "bindings_refused": st.bindings_refused,
                   "framing_errors": st.framing_errors, "running": running})
        })
        .collect();
    session.close().await;
    let path_json: Value = serde_json::from_str(&path.to_json()).unwrap_or(Value::Null);
    let ok = if a.controlling {
        rtts.len() as u32 == a.pings
    } else {
        answered > 0
    };
    let v = json!({
        "ok": ok,
        "path": path_json,
        "pongs_received": rtts.len(),
        "pings_answered": answered,
        "local_kinds": local_kinds,
        "turn_bridges": bridges,
    });
    if ok {
        Ok(v)
    } else {
        Err((2, v))
    }
}

fn main() -> ExitCode {
    // RUST_LOG=turn=debug,webrtc_ice=debug shows the ICE agent and TURN client at work.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ice-peer: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ice-peer: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let (code, v) = match rt.block_on(run(&args)) {
        Ok(v) => (0, v),
        Err((c, v)) => (c, v),
    };
    println!("{v}");
    if let Err(e) = write_atomic(&args.dir.join(format!("{}.result.json", args.name)), &v) {
        eprintln!("ice-peer: {e}");
        return ExitCode::from(1);
    }
    ExitCode::from(code)
}
