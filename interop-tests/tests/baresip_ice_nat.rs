//! Peerline ↔ a real baresip 1.0.0 with ICE across the NAT lab: each in its own home
//! namespace (on the public segment or behind an endpoint-independent NAT router), coturn
//! on the public segment as the STUN server of both (`[ice] stun` for Peerline,
//! `medianat=ice;stunserver=stun:203.0.113.1:3478` for baresip). SIP crosses a separate
//! signaling link between the two homes, on which every UDP datagram not from port 5060 is
//! dropped, so media can only go through the NATs. baresip listens for SIP on that link
//! (`sip_listen 192.168.100.2:5060`) and takes its media address from its home interface
//! (`net_interface`); it runs with `rtcp_mux yes` (see `baresip_ice.rs`), plain RTP, PCMU,
//! a WAV tone from `aufile`, what it receives recorded by `sndfile`.
//!
//! The `*_through_kamailio` tests have no signaling link: Kamailio on the public segment
//! (`configs/kamailio.cfg`, a registrar and Record-Route proxy with nathelper's NAT help)
//! is the registrar of both, each registers from its home through its NAT, and the call
//! goes by AOR through Kamailio. Peerline learns its public address from the REGISTER
//! response (see `sip_nat.rs`); baresip does not, and relies on Kamailio's nathelper.
//!
//! Checked: the call connects, Peerline's pair is direct (host/srflx/prflx) between public
//! addresses (never the signaling link), baresip's ICE says it connected, and each side
//! hears the other's tone.
//!
//! Peerline runs as this test binary started again inside its namespace (the helper test
//! `netns_peerline_helper`, told what to do through environment variables; it writes its
//! result as JSON into the test directory), as in `ice_call_nat.rs`.
//!
//! Run as root: `cargo test -p peerline-interop --test baresip_ice_nat -- --ignored --test-threads=1`.

// Helpers outside #[test] fns are not covered by allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_phone;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netns_phone::{ledger_json, next, path_json, registered, tone_secs};
use peerline_interop::{
    configs_dir, tails, wait_for, write_tone_wav, Baresip, BaresipOptions, Coturn, CoturnOptions,
    Kamailio, KamailioOptions, LabHost, MatrixEntry, Nat, NatLab, Process, ProcessOptions, TestDir,
};
use peerline_ua::{AudioSource, CodecName, Config, Event, MediaOptions, Phone, SrtpMode};
use serde_json::{json, Value};

const ROLE: &str = "PEERLINE_BICE_ROLE";
const DIR: &str = "PEERLINE_BICE_DIR";
const TARGET: &str = "PEERLINE_BICE_TARGET";
/// Set: Peerline registers to the lab's Kamailio (and calls through it) instead of using
/// the signaling link.
const KAMAILIO: &str = "PEERLINE_BICE_KAMAILIO";
/// The SIP domain of the lab's Kamailio.
const DOMAIN: &str = "peerline.test";
/// Set (to anything) to capture packets in both homes with dumpcap, for a failure's cause.
const PCAP: &str = "PEERLINE_BICE_PCAP";
/// Peerline's side of the signaling link; baresip's.
const SIG_PEERLINE: &str = "192.168.100.1";
const SIG_BARESIP: &str = "192.168.100.2";
/// Both SIP ports (the signaling link passes only UDP from this port).
const SIP_PORT: u16 = 5060;
/// How long Peerline keeps a call it placed, once media is up.
const CALL_SECS: u64 = 4;
/// The length of baresip's WAV when it calls (aufile's end hangs the call up).
const BARESIP_CALL_SECS: f32 = 5.0;
/// Peerline sends this; baresip sends [`BARESIP_HZ`].
const PEERLINE_HZ: f32 = 440.0;
const BARESIP_HZ: f32 = 1000.0;

/// Runs Peerline when started by [`run`] inside a namespace; does nothing otherwise.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn netns_peerline_helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let rt = netns_phone::runtime();
    let result = rt.block_on(peerline(&role, &dir));
    std::fs::write(dir.join("peerline.result.json"), result.to_string() + "\n").unwrap();
}

/// As `caller`, calls `TARGET` and hangs up after CALL_SECS of media; as `callee`, answers
/// and waits for baresip's BYE. Reports the ICE path, the tone heard and the ledger.
async fn peerline(role: &str, dir: &Path) -> Value {
    let mut config = Config::default();
    config.identity.user = "peerline".into();
    config.network.sip_listen = SocketAddr::from(([0, 0, 0, 0], SIP_PORT));
    config.network.rtp_ports = peerline_net::PortRange::parse("20000-20099").unwrap();
    config.media.codecs = vec![CodecName::Pcmu];
    config.media.srtp = SrtpMode::Off;
    config.ice.enabled = true;
    config.ice.stun = vec![format!("stun:{}:3478", NatLab::PUBLIC_SERVER_IP)];
    let through_kamailio = std::env::var_os(KAMAILIO).is_some();
    if through_kamailio {
        let proxy = format!("sip:{}:5060;transport=udp", NatLab::PUBLIC_SERVER_IP);
        let account: peerline_ua::AccountConfig = match toml::from_str(&format!(
            "aor = \"sip:peerline@{DOMAIN}\"\npassword = \"pw-peerline\"\n\
             registrar = \"{proxy}\"\noutbound_proxy = \"{proxy}\"\nexpires = 300\n"
        )) {
            Ok(a) => a,
            Err(e) => return json!({"ok": false, "error": format!("account: {e}")}),
        };
        config.accounts = vec![account];
    }
    let rec = dir.join("peerline.wav");
    let media = MediaOptions {
        source: AudioSource::Tone(PEERLINE_HZ),
        record: Some(rec.clone()),
    };
    let (phone, mut events) = match Phone::start(config).await {
        Ok(p) => p,
        Err(e) => return json!({"ok": false, "error": format!("start: {e}")}),
    };
    let mut out = json!({"ok": false});
    let r: Result<(), String> = async {
        if through_kamailio {
            registered(&mut events).await?;
        }
        std::fs::write(dir.join("peerline.ready"), "").map_err(|e| e.to_string())?;
        let call = if role == "caller" {
            let target = std::env::var(TARGET).map_err(|e| e.to_string())?;
            phone
                .call(&target, media)
                .await
                .map_err(|e| format!("call: {e}"))?
        } else {
            let call = loop {
                if let Event::Incoming { call, .. } = next(&mut events, 30, "incoming").await? {
                    break call;
                }
            };
            phone
                .answer(call, media)
                .await
                .map_err(|e| format!("answer: {e}"))?;
            call
        };
        loop {
            match next(&mut events, 20, "media up").await? {
                Event::MediaUp { path, .. } => {
                    out["path"] = path_json(path.as_ref());
                    break;
                }
                Event::Ended { reason, media, .. } => {
                    return Err(format!("ended before media: {reason} ({:?})", media.error))
                }
                _ => {}
            }
        }
        let mut ended = None;
        if role == "caller" {
            let until = tokio::time::Instant::now() + Duration::from_secs(CALL_SECS);
            while let Ok(Some(e)) = tokio::time::timeout_at(until, events.recv()).await {
                eprintln!("during the call: {e:?}");
                if matches!(e, Event::Ended { .. }) {
                    ended = Some(e);
                    break;
                }
            }
            if ended.is_none() {
                phone.hangup(call).await.map_err(|e| e.to_string())?;
            }
        }
        loop {
            let e = match ended.take() {
                Some(e) => e,
                None => next(&mut events, 20, "end").await?,
            };
            if let Event::Ended { reason, media, .. } = e {
                out["reason"] = json!(format!("{reason:?}"));
                out["media_error"] = json!(media.error);
                out["packets_received"] = json!(media.received.packets_received);
                out["ledger"] = ledger_json(&media.ledger);
                break;
            }
        }
        Ok(())
    }
    .await;
    phone.shutdown().await;
    if let Err(e) = r {
        out["error"] = json!(e);
        return out;
    }
    out["heard_secs"] = json!(tone_secs(&rec, BARESIP_HZ));
    out["ok"] = json!(true);
    out
}

/// Who places the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Peerline,
    Baresip,
}

/// How SIP goes between the two homes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The signaling link (only UDP from port 5060 passes).
    Link,
    /// The lab's Kamailio on the public segment, through both NATs.
    Kamailio,
}

/// What one call gave: Peerline's JSON result, baresip's log tail and what it heard.
struct Outcome {
    peerline: Value,
    baresip_ice_connected: bool,
    baresip_heard_secs: f32,
    logs: String,
}

/// Peerline behind `pl_nat`, baresip behind `b_nat`; `caller` dials.
fn run(pl_nat: Nat, b_nat: Nat, caller: Caller, via: Via) -> Outcome {
    let label = format!(
        "baresip-ice-nat-{}-{}-{}{}",
        pl_nat.name(),
        b_nat.name(),
        if caller == Caller::Peerline {
            "out"
        } else {
            "in"
        },
        if via == Via::Kamailio { "-kam" } else { "" }
    );
    let dir = TestDir::new(&label).unwrap();
    let mut lab = NatLab::new(&format!(
        "{}{}{}",
        if via == Via::Kamailio { "k" } else { "b" },
        pl_nat.name(),
        b_nat.name()
    ))
    .unwrap();
    let hp: LabHost = lab.add_host(pl_nat).unwrap();
    let hb: LabHost = lab.add_host(b_nat).unwrap();
    let kam = match via {
        Via::Link => {
            peerline_interop::signaling_link(
                &hp.netns,
                SIG_PEERLINE,
                &hb.netns,
                SIG_BARESIP,
                SIP_PORT,
            )
            .unwrap();
            None
        }
        Via::Kamailio => {
            let opts = KamailioOptions::new()
                .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
                .port(5060)
                .domain(DOMAIN)
                .user("peerline", "pw-peerline")
                .user("b", "pw-b")
                .template(&configs_dir().join("kamailio.cfg"))
                .netns(&lab.public_netns());
            let mut kam = Kamailio::start(opts, &dir).unwrap();
            kam.wait_ready(Duration::from_secs(15))
                .unwrap_or_else(|e| panic!("{e}\n{}", kam.process().log_tail(40)));
            Some(kam)
        }
    };
    let mut coturn = Coturn::start(
        CoturnOptions::new()
            .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
            .port(3478)
            .netns(&lab.public_netns())
            .allow_loopback_peers(false),
        &dir,
    )
    .unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();
    // PEERLINE_BICE_PCAP=1: capture everything in both homes (`<test dir>/*.pcapng`).
    let captures: Vec<Process> = if std::env::var_os(PCAP).is_some() {
        [("peerline", &hp.netns), ("baresip", &hb.netns)]
            .into_iter()
            .map(|(who, ns)| {
                let file = dir.path().join(format!("{who}.pcapng"));
                let o = ProcessOptions::new(&format!("dumpcap-{who}"), "dumpcap")
                    .args(["-q", "-i", "any", "-w"])
                    .arg(file.display().to_string())
                    .netns(Some(ns));
                let mut p = Process::spawn(o, dir.path()).unwrap();
                p.wait_for_log("Capturing on", Duration::from_secs(10)).ok();
                p
            })
            .collect()
    } else {
        Vec::new()
    };

    let wav = dir.path().join("baresip-tone.wav");
    let wav_secs = if caller == Caller::Baresip {
        BARESIP_CALL_SECS
    } else {
        // Longer than Peerline's call: aufile's end would hang up.
        20.0
    };
    write_tone_wav(
        &wav,
        f64::from(BARESIP_HZ),
        8000,
        1,
        f64::from(wav_secs),
        0.5,
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap().display().to_string();
    let target = match &kam {
        Some(k) => k.aor("b"),
        None => format!("sip:b@{SIG_BARESIP}:{SIP_PORT}"),
    };
    let spawn_peerline = |role: &str| {
        let mut o = ProcessOptions::new("peerline", &exe)
            .args([
                "netns_peerline_helper",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(ROLE, role)
            .env(DIR, &dir.path().display().to_string())
            .env(TARGET, &target)
            .netns(Some(&hp.netns))
            .grace(Duration::from_secs(2));
        if kam.is_some() {
            o = o.env(KAMAILIO, "1");
        }
        Process::spawn(o, dir.path()).unwrap()
    };
    let baresip_opts = || {
        let o = BaresipOptions::new("b");
        let o = match &kam {
            Some(k) => o
                .listen_ip(&hb.ip.to_string())
                .account_uri(&k.aor("b"))
                .account_param("auth_pass=pw-b")
                .account_param(&format!("outbound=\"{}\"", k.proxy_uri()))
                .account_param("regint=60"),
            None => o.listen_ip(SIG_BARESIP),
        };
        o.net_interface(&hb.ip.to_string())
            .sip_port(SIP_PORT)
            .audio_source(&wav)
            .audio_format(8000, 1)
            .audio_codecs("PCMU")
            .medianat("ice")
            .account_param(&format!(
                "stunserver=stun:{}:3478",
                NatLab::PUBLIC_SERVER_IP
            ))
            .config_line("rtcp_mux yes")
            .netns(&hb.netns)
            .verbose()
            .run_for(Duration::from_secs(25))
    };
    let (mut peerline, mut b) = match caller {
        Caller::Peerline => {
            let mut b = Baresip::start(baresip_opts(), &dir).unwrap();
            b.wait_ready(Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
            if let Some(k) = &kam {
                k.wait_registered("b", Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process(), k.process()], 40)));
            }
            (spawn_peerline("caller"), b)
        }
        Caller::Baresip => {
            let p = spawn_peerline("callee");
            wait_for(
                "Peerline to start",
                Duration::from_secs(20),
                Duration::from_millis(50),
                || dir.path().join("peerline.ready").exists(),
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[&p], 30)));
            let dial = match &kam {
                Some(k) => k.aor("peerline"),
                None => format!("sip:peerline@{SIG_PEERLINE}:{SIP_PORT}"),
            };
            let b = Baresip::start(baresip_opts().dial(&dial), &dir).unwrap();
            (p, b)
        }
    };
    let done = wait_for(
        "Peerline to finish",
        Duration::from_secs(40),
        Duration::from_millis(100),
        || !peerline.is_running(),
    );
    b.wait_call_end(Duration::from_secs(5)).ok();
    b.stop();
    let mut procs = vec![&peerline, b.process(), coturn.process()];
    if let Some(k) = &kam {
        procs.push(k.process());
    }
    let logs = tails(&procs, 60);
    done.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let text = std::fs::read_to_string(dir.path().join("peerline.result.json"))
        .unwrap_or_else(|e| panic!("no result from Peerline: {e}\n{logs}"));
    let result: Value = serde_json::from_str(&text).unwrap();
    eprintln!("{label}: peerline {result}");
    let baresip_ice_connected = b.process().log_contains("mnat 'ice' connected");
    let baresip_heard_secs = b
        .recordings(true)
        .last()
        .map(|p| tone_secs(p, PEERLINE_HZ))
        .unwrap_or(0.0);
    peerline.stop();
    drop(captures);
    drop(b);
    if let Some(mut k) = kam {
        k.stop();
    }
    coturn.stop();
    drop(coturn);
    drop(lab);
    Outcome {
        peerline: result,
        baresip_ice_connected,
        baresip_heard_secs,
        logs,
    }
}

/// The matrix feature is `ice-nat-<Peerline's NAT>-<baresip's NAT>`, `-in` when baresip
/// called. The call connected directly through the NAT(s): Peerline's pair is direct between
/// public addresses, media only with that address, baresip's ICE connected, and each side
/// heard the other's tone.
fn expect_direct(pl_nat: Nat, b_nat: Nat, caller: Caller, kinds: &[&str]) {
    expect_direct_via(pl_nat, b_nat, caller, Via::Link, kinds);
}

/// As [`expect_direct`], with SIP by `via`; the matrix feature ends in `-kamailio` when SIP
/// went through Kamailio.
fn expect_direct_via(pl_nat: Nat, b_nat: Nat, caller: Caller, via: Via, kinds: &[&str]) {
    let feature = format!(
        "ice-nat-{}-{}{}{}",
        pl_nat.name(),
        b_nat.name(),
        if caller == Caller::Baresip { "-in" } else { "" },
        if via == Via::Kamailio {
            "-kamailio"
        } else {
            ""
        }
    );
    let mut entry = MatrixEntry::new("baresip", &feature, "udp");
    let o = run(pl_nat, b_nat, caller, via);
    let (r, logs) = (&o.peerline, &o.logs);
    assert_eq!(r["ok"], true, "{feature}: {r}\n{logs}");
    let path = &r["path"];
    assert_eq!(path["direct"], true, "{feature}: {r}\n{logs}");
    for side in ["local_type", "remote_type"] {
        let k = path[side].as_str().unwrap_or_default();
        assert!(kinds.contains(&k), "{feature}: {side} {k}: {r}\n{logs}");
    }
    let remote = path["remote_addr"].as_str().unwrap_or_default();
    assert!(
        peerline_interop::is_lab_public(remote),
        "{feature}: remote {remote} not a public address\n{logs}"
    );
    let local_public = path["local_addr"]
        .as_str()
        .is_some_and(peerline_interop::is_lab_public)
        || path["local_type"] != "host";
    assert!(local_public, "{feature}: local {path}\n{logs}");
    assert!(r["media_error"].is_null(), "{feature}: {r}\n{logs}");
    // Media only with the pair's remote address; nothing over the signaling link.
    for row in r["ledger"].as_array().unwrap() {
        if row["class"] == "media" {
            assert_eq!(row["remote"].as_str(), Some(remote), "{feature}: {row}");
        }
    }
    assert!(
        o.baresip_ice_connected,
        "{feature}: baresip's ICE did not connect\n{logs}"
    );
    let heard = r["heard_secs"].as_f64().unwrap_or(0.0);
    let expected = if caller == Caller::Peerline {
        CALL_SECS as f64
    } else {
        f64::from(BARESIP_CALL_SECS)
    };
    assert!(
        heard >= expected - 1.5,
        "{feature}: Peerline heard baresip's tone for {heard} s of {expected} s\n{logs}"
    );
    assert!(
        f64::from(o.baresip_heard_secs) >= expected - 2.0,
        "{feature}: baresip heard Peerline's tone for {} s of {expected} s\n{logs}",
        o.baresip_heard_secs
    );
    entry.note(format!(
        "direct {}-{} {} -> {}, connect {:.0} ms, tone {:.1}/{:.1} s",
        path["local_type"].as_str().unwrap_or("?"),
        path["remote_type"].as_str().unwrap_or("?"),
        path["local_addr"].as_str().unwrap_or("?"),
        remote,
        path["connect_ms"].as_f64().unwrap_or(-1.0),
        heard,
        o.baresip_heard_secs,
    ));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_public_calls_baresip_behind_eim_nat() {
    expect_direct(
        Nat::None,
        Nat::EndpointIndependent,
        Caller::Peerline,
        &["host", "srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_eim_calls_baresip_eim_hole_punching() {
    expect_direct(
        Nat::EndpointIndependent,
        Nat::EndpointIndependent,
        Caller::Peerline,
        &["srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_eim_calls_peerline_eim_hole_punching() {
    expect_direct(
        Nat::EndpointIndependent,
        Nat::EndpointIndependent,
        Caller::Baresip,
        &["srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_public_calls_baresip_behind_symmetric_nat() {
    // baresip's srflx (learnt from coturn) is useless to Peerline behind a symmetric NAT:
    // its checks to Peerline come from a fresh mapping, which Peerline learns as
    // peer-reflexive and answers; the pair is Peerline's host with that prflx.
    expect_direct(
        Nat::None,
        Nat::Symmetric,
        Caller::Peerline,
        &["host", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_public_calls_peerline_behind_eim_nat() {
    // The other way round from the first test: baresip on the public segment dials
    // Peerline behind the NAT; Peerline's check opens its NAT.
    expect_direct(
        Nat::EndpointIndependent,
        Nat::None,
        Caller::Baresip,
        &["host", "srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn peerline_eim_calls_baresip_eim_through_kamailio() {
    // Both behind NATs, both registered to Kamailio: the INVITE goes by AOR through it.
    expect_direct_via(
        Nat::EndpointIndependent,
        Nat::EndpointIndependent,
        Caller::Peerline,
        Via::Kamailio,
        &["srflx", "prflx"],
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn baresip_eim_calls_peerline_eim_through_kamailio() {
    expect_direct_via(
        Nat::EndpointIndependent,
        Nat::EndpointIndependent,
        Caller::Baresip,
        Via::Kamailio,
        &["srflx", "prflx"],
    );
}
