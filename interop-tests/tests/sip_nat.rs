//! SIP itself through the NAT lab's NATs (issue 6): phones behind the lab's NAT routers
//! REGISTER to a Kamailio on the public segment and call each other by AOR through it,
//! with no signaling link: SIP crosses the NATs, media goes by ICE as in
//! `ice_call_nat.rs`. Kamailio runs `configs/kamailio-nat.cfg`, a registrar and
//! Record-Route proxy that does no NAT help at all (no nathelper): each phone learns the
//! public address the registrar saw (RFC 3581 `received`/`rport`), registers that as its
//! Contact, puts it in its calls' Contact, and keeps its NAT binding open with
//! keep-alives (a double CRLF every `keepalive_secs`).
//!
//! Each phone is this test binary run again inside its namespace (`ip netns exec`), as the
//! helper test `sip_nat_phone_helper`, told what to do through environment variables; it
//! writes its result as JSON into the test directory.
//!
//! Run as root: `cargo test -p peerline-interop --test sip_nat -- --ignored --test-threads=1`.

// Helpers outside #[test] fns are not covered by allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_phone;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netns_phone::{ledger_json, next, path_json, registered, tone_secs};
use peerline_interop::{
    configs_dir, in_ns, tails, wait_for, Coturn, CoturnOptions, Kamailio, KamailioOptions,
    MatrixEntry, Nat, NatLab, Process, ProcessOptions, TestDir,
};
use peerline_ua::{AccountConfig, AudioSource, Config, Event, MediaOptions, Phone};
use serde_json::{json, Value};

const ROLE: &str = "PEERLINE_SIPNAT_PHONE";
const DIR: &str = "PEERLINE_SIPNAT_DIR";
/// "1": relay through the lab's coturn is allowed.
const TURN: &str = "PEERLINE_SIPNAT_TURN";
/// The account's `keepalive_secs`.
const KEEPALIVE: &str = "PEERLINE_SIPNAT_KEEPALIVE";
/// Which side hangs up: "caller" or "callee".
const HANGUP: &str = "PEERLINE_SIPNAT_HANGUP";
/// Seconds the callee waits for the incoming call (and the caller for media).
const WAIT: &str = "PEERLINE_SIPNAT_WAIT";
const TURN_USER: &str = "peerline";
const TURN_PASS: &str = "lab-secret";
const DOMAIN: &str = "peerline.test";
const CALL_SECS: u64 = 3;

fn kamailio_addr() -> String {
    format!("{}:5060", NatLab::PUBLIC_SERVER_IP)
}

/// Runs one phone when started by [`run`] inside a namespace; does nothing otherwise.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_phone_helper() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR).unwrap());
    let rt = netns_phone::runtime();
    let result = rt.block_on(phone(&role, &dir));
    std::fs::write(
        dir.join(format!("{role}.result.json")),
        result.to_string() + "\n",
    )
    .unwrap();
}

/// Registers `role@peerline.test` at Kamailio; the caller then calls
/// `callee@peerline.test` through it, the callee answers; one of them hangs up after
/// CALL_SECS of media.
async fn phone(role: &str, dir: &Path) -> Value {
    let mut config = Config::default();
    config.identity.user = role.into();
    config.network.sip_listen = SocketAddr::from(([0, 0, 0, 0], 5060));
    config.network.rtp_ports = peerline_net::PortRange::parse("20000-20099").unwrap();
    config.ice.enabled = true;
    config.ice.stun = vec![format!("stun:{}:3478", NatLab::PUBLIC_SERVER_IP)];
    if std::env::var(TURN).is_ok() {
        config.ice.turn = vec![peerline_ua::ice_settings::TurnEntry::with_password(
            &format!("turn:{}:3478?transport=udp", NatLab::PUBLIC_SERVER_IP),
            TURN_USER,
            TURN_PASS,
        )];
    }
    let keepalive = std::env::var(KEEPALIVE).unwrap_or_else(|_| "25".into());
    let proxy = format!("sip:{};transport=udp", kamailio_addr());
    let account: AccountConfig = toml::from_str(&format!(
        "aor = \"sip:{role}@{DOMAIN}\"\npassword = \"pw-{role}\"\nregistrar = \"{proxy}\"\n\
         outbound_proxy = \"{proxy}\"\nexpires = 300\nkeepalive_secs = {keepalive}\n"
    ))
    .unwrap();
    config.accounts = vec![account];
    let wait: u64 = std::env::var(WAIT)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let hangup = std::env::var(HANGUP).unwrap_or_else(|_| "caller".into());
    let rec = dir.join(format!("{role}.wav"));
    let (hz_out, hz_in) = if role == "caller" {
        (440.0, 1000.0)
    } else {
        (1000.0, 440.0)
    };
    let media = MediaOptions {
        source: AudioSource::Tone(hz_out),
        record: Some(rec.clone()),
    };
    let (phone, mut events) = match Phone::start(config).await {
        Ok(p) => p,
        Err(e) => return json!({"ok": false, "error": format!("start: {e}")}),
    };
    let mut out = json!({"ok": false});
    let r: Result<(), String> = async {
        registered(&mut events).await?;
        std::fs::write(dir.join(format!("{role}.registered")), "").map_err(|e| e.to_string())?;
        let call = if role == "caller" {
            phone
                .call(&format!("sip:callee@{DOMAIN}"), media)
                .await
                .map_err(|e| format!("call: {e}"))?
        } else {
            let call = loop {
                if let Event::Incoming { call, .. } = next(&mut events, wait, "incoming").await? {
                    break call;
                }
            };
            out["incoming"] = json!(true);
            phone
                .answer(call, media)
                .await
                .map_err(|e| format!("answer: {e}"))?;
            call
        };
        loop {
            match next(&mut events, wait.min(30), "media up").await? {
                Event::MediaUp { path, .. } => {
                    out["path"] = path_json(path.as_ref());
                    break;
                }
                Event::Ended { reason, .. } => return Err(format!("ended before media: {reason}")),
                _ => {}
            }
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(CALL_SECS);
        let mut ended = None;
        while let Ok(Some(e)) = tokio::time::timeout_at(until, events.recv()).await {
            eprintln!("during the call: {e:?}");
            if let e @ Event::Ended { .. } = e {
                ended = Some(e);
                break;
            }
        }
        if role == hangup && ended.is_none() {
            phone.hangup(call).await.map_err(|e| e.to_string())?;
            out["hung_up"] = json!(true);
        }
        loop {
            let e = match ended.take() {
                Some(e) => e,
                None => next(&mut events, 20, "end").await?,
            };
            if let Event::Ended { reason, media, .. } = e {
                out["reason"] = json!(format!("{reason:?}"));
                out["srtp"] = json!(media.srtp);
                out["media_error"] = json!(media.error);
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
    out["heard_secs"] = json!(tone_secs(&rec, hz_in));
    out["ok"] = json!(true);
    out
}

/// How a lab run goes.
struct Run {
    caller: Nat,
    callee: Nat,
    turn: bool,
    hangup: &'static str,
    /// The callee's `keepalive_secs`.
    callee_keepalive: u32,
    /// Short UDP conntrack timeouts (seconds) in the callee's NAT router, and how long to
    /// wait after the callee registered before the caller starts.
    expire: Option<(u32, u64)>,
    /// How long the callee waits for the call.
    wait: u64,
    /// Kamailio's config template in `interop-tests/configs/`.
    template: &'static str,
}

impl Run {
    fn new(caller: Nat, callee: Nat) -> Self {
        Self {
            caller,
            callee,
            turn: false,
            hangup: "caller",
            callee_keepalive: 25,
            expire: None,
            wait: 60,
            template: "kamailio-nat.cfg",
        }
    }
}

/// What a run left: both phones' results, Kamailio's location table (as each phone had
/// registered) and its log.
struct Outcome {
    caller: Value,
    callee: Value,
    location: String,
    kamailio_log: String,
    caller_public: String,
    callee_public: String,
}

fn run(r: Run) -> Outcome {
    let label = format!(
        "sip-nat-{}-{}{}",
        r.caller.name(),
        r.callee.name(),
        if r.template == "kamailio.cfg" {
            "-nathelper"
        } else {
            ""
        }
    );
    let dir = TestDir::new(&label).unwrap();
    let mut lab = NatLab::new(&format!("s{}{}", r.caller.name(), r.callee.name())).unwrap();
    let ha = lab.add_host(r.caller).unwrap();
    let hb = lab.add_host(r.callee).unwrap();
    let coturn_opts = CoturnOptions::new()
        .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
        .port(3478)
        .netns(&lab.public_netns())
        .allow_loopback_peers(false)
        .user(TURN_USER, TURN_PASS);
    let mut coturn = Coturn::start(coturn_opts, &dir).unwrap();
    coturn.wait_ready(Duration::from_secs(10)).unwrap();
    let kam_opts = KamailioOptions::new()
        .listen_ip(&NatLab::PUBLIC_SERVER_IP.to_string())
        .port(5060)
        .domain(DOMAIN)
        .user("caller", "pw-caller")
        .user("callee", "pw-callee")
        .template(&configs_dir().join(r.template))
        .netns(&lab.public_netns());
    let mut kam = Kamailio::start(kam_opts, &dir).unwrap();
    kam.wait_ready(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", kam.process().log_tail(40)));
    if let (Some((secs, _)), Some(router)) = (r.expire, hb.router_netns.as_deref()) {
        // This kernel keeps conntrack timeouts per network namespace: only the callee's
        // NAT forgets idle UDP bindings after `secs`.
        for key in [
            "nf_conntrack_udp_timeout",
            "nf_conntrack_udp_timeout_stream",
        ] {
            in_ns(
                router,
                "sysctl",
                &["-q", "-w", &format!("net.netfilter.{key}={secs}")],
            )
            .unwrap();
        }
    }
    let exe = std::env::current_exe().unwrap().display().to_string();
    let spawn = |role: &str, ns: &str, keepalive: u32| {
        let mut o = ProcessOptions::new(role, &exe)
            .args([
                "sip_nat_phone_helper",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(ROLE, role)
            .env(DIR, &dir.path().display().to_string())
            .env(KEEPALIVE, &keepalive.to_string())
            .env(HANGUP, r.hangup)
            .env(WAIT, &r.wait.to_string())
            .netns(Some(ns))
            .grace(Duration::from_secs(2));
        if r.turn {
            o = o.env(TURN, "1");
        }
        Process::spawn(o, dir.path()).unwrap()
    };
    let mut callee = spawn("callee", &hb.netns, r.callee_keepalive);
    wait_for(
        "the callee registered",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || dir.path().join("callee.registered").exists(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[&callee, kam.process()], 40)));
    if let Some((_, wait)) = r.expire {
        std::thread::sleep(Duration::from_secs(wait));
    }
    let mut caller = spawn("caller", &ha.netns, 25);
    wait_for(
        "the caller registered",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || dir.path().join("caller.registered").exists() || !caller.is_running(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[&caller, kam.process()], 40)));
    let location = kam.kamcmd(&["ul.dump"]).unwrap_or_default();
    let done = wait_for(
        "both phones to finish",
        Duration::from_secs(r.wait + 60),
        Duration::from_millis(100),
        || !caller.is_running() && !callee.is_running(),
    );
    let logs = tails(&[&caller, &callee, kam.process()], 40);
    done.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let read = |role: &str| -> Value {
        let text = std::fs::read_to_string(dir.path().join(format!("{role}.result.json")))
            .unwrap_or_else(|e| panic!("no result from the {role}: {e}\n{logs}"));
        serde_json::from_str(&text).unwrap()
    };
    let (ra, rb) = (read("caller"), read("callee"));
    eprintln!("{label}: caller {ra}\n{label}: callee {rb}\nlocation:\n{location}");
    let kamailio_log = kam.process().log_tail(400);
    drop((caller, callee));
    kam.stop();
    coturn.stop();
    drop((kam, coturn));
    drop(lab);
    Outcome {
        caller: ra,
        callee: rb,
        location,
        kamailio_log,
        caller_public: ha.public_ip.to_string(),
        callee_public: hb.public_ip.to_string(),
    }
}

/// Kamailio's location names each phone at its NAT's public address (the Contact the
/// phone registered after learning it), not its private one.
fn expect_public_contacts(o: &Outcome) {
    for (user, public) in [("caller", &o.caller_public), ("callee", &o.callee_public)] {
        let want = format!("sip:{user}@{public}:");
        assert!(
            o.location.contains(&want),
            "{user}: no Contact at {public} in the location:\n{}",
            o.location
        );
        assert!(
            !o.location.contains(&format!("sip:{user}@10.")),
            "{user}: a private Contact left in the location:\n{}",
            o.location
        );
    }
    if !o.kamailio_log.contains("LOOKUP") {
        return; // kamailio.cfg does not log its lookups
    }
    // Kamailio found the callee at its public address and relayed the INVITE there.
    let lookup = format!("LOOKUP callee -> sip:callee@{}:", o.callee_public);
    assert!(o.kamailio_log.contains(&lookup), "{}", o.kamailio_log);
}

/// The call was set up through Kamailio, both sides heard the other's tone over
/// DTLS-SRTP, and the BYE of the side that hung up crossed Kamailio and the NATs (the
/// other side saw a remote hangup).
fn expect_call(o: &Outcome, hangup: &str) {
    let (ra, rb) = (&o.caller, &o.callee);
    assert!(
        ra["ok"] == true && rb["ok"] == true,
        "caller {ra}\ncallee {rb}"
    );
    assert_eq!(rb["incoming"], true);
    for (name, r) in [("caller", ra), ("callee", rb)] {
        assert!(
            r["srtp"]
                .as_str()
                .is_some_and(|s| s.starts_with("DTLS-SRTP")),
            "{name}: {r}"
        );
        assert!(r["media_error"].is_null(), "{name}: {r}");
        let heard = r["heard_secs"].as_f64().unwrap_or(0.0);
        assert!(
            heard >= CALL_SECS as f64 - 1.0,
            "{name} heard the other tone for {heard} s of {CALL_SECS} s: {r}"
        );
        let reason = r["reason"].as_str().unwrap_or_default();
        if name == hangup {
            assert_eq!(r["hung_up"], true, "{name}: {r}");
        } else {
            assert!(
                reason.contains("Remote"),
                "{name} did not see the hangup: {r}"
            );
        }
    }
    // The BYE went through Kamailio (Record-Route) to the other side's public Contact.
    let (other, public) = if hangup == "caller" {
        ("callee", &o.callee_public)
    } else {
        ("caller", &o.caller_public)
    };
    let bye = format!("REQ BYE sip:{other}@{public}:");
    assert!(
        o.kamailio_log.contains(&bye),
        "no BYE to the {other}'s public Contact through Kamailio:\n{}",
        o.kamailio_log
    );
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_eim_eim_direct() {
    let mut entry = MatrixEntry::new("kamailio", "nat-call-eim-eim", "udp");
    let o = run(Run::new(Nat::EndpointIndependent, Nat::EndpointIndependent));
    expect_public_contacts(&o);
    expect_call(&o, "caller");
    for (name, r) in [("caller", &o.caller), ("callee", &o.callee)] {
        let path = &r["path"];
        assert_eq!(path["direct"], true, "{name}: {r}");
        for side in ["local_type", "remote_type"] {
            let k = path[side].as_str().unwrap_or_default();
            assert!(["srflx", "prflx"].contains(&k), "{name} {side} {k}: {r}");
        }
        let remote = path["remote_addr"].as_str().unwrap_or_default();
        assert!(peerline_interop::is_lab_public(remote), "{name}: {r}");
        // The ledger shows the STUN side of it: the Binding to coturn that found the
        // srflx address, and the connectivity checks with the peer's public address.
        let stun = format!("{}:3478", NatLab::PUBLIC_SERVER_IP);
        for (to, sent) in [
            (stun.as_str(), true),
            (stun.as_str(), false),
            (remote, true),
            (remote, false),
        ] {
            assert!(
                stun_bytes(r, to, sent) >= 20,
                "{name}: no STUN {} {to} in the ledger: {}",
                if sent { "to" } else { "from" },
                r["ledger"]
            );
        }
    }
    entry.note(pair_note("direct, no TURN configured", &o));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_sym_sym_relayed_callee_hangs_up() {
    let mut entry = MatrixEntry::new("kamailio", "nat-call-sym-sym", "udp");
    let mut r = Run::new(Nat::Symmetric, Nat::Symmetric);
    r.turn = true;
    r.hangup = "callee";
    let o = run(r);
    expect_public_contacts(&o);
    expect_call(&o, "callee");
    let relay = format!("{}:", NatLab::PUBLIC_SERVER_IP);
    let mut relays = 0;
    for (name, r) in [("caller", &o.caller), ("callee", &o.callee)] {
        let path = &r["path"];
        assert_eq!(path["direct"], false, "{name}: {r}");
        if path["local_type"] == "relay" {
            relays += 1;
            assert!(
                path["local_addr"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(&relay),
                "{name}: {r}"
            );
        }
    }
    assert!(relays >= 1, "no relay selected: {} {}", o.caller, o.callee);
    entry.note(pair_note("relayed, callee hangs up", &o));
    entry.pass();
}

/// The same through the project's other Kamailio config, which does NAT help (nathelper:
/// `fix_nated_register`, `add_contact_alias`, `handle_ruri_alias`): the phone's own
/// public Contact and the proxy's help do not get in each other's way.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_eim_eim_through_a_nathelper_proxy() {
    let mut r = Run::new(Nat::EndpointIndependent, Nat::EndpointIndependent);
    r.template = "kamailio.cfg";
    r.hangup = "callee";
    let o = run(r);
    expect_public_contacts(&o);
    expect_call(&o, "callee");
    assert_eq!(o.caller["path"]["direct"], true, "{}", o.caller);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_full_eim_direct() {
    let mut entry = MatrixEntry::new("kamailio", "nat-call-full-eim", "udp");
    let o = run(Run::new(Nat::FullCone, Nat::EndpointIndependent));
    expect_public_contacts(&o);
    expect_call(&o, "caller");
    assert_eq!(o.caller["path"]["direct"], true, "{}", o.caller);
    entry.note(pair_note("direct, no TURN configured", &o));
    entry.pass();
}

/// Bytes of STUN (class `stun`) sent to, or received from, `remote` in a phone's ledger.
fn stun_bytes(r: &Value, remote: &str, sent: bool) -> u64 {
    r["ledger"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|row| {
                    row["class"] == "stun" && row["remote"] == remote && row["sent"] == sent
                })
                .filter_map(|row| row["bytes"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// The matrix note of a call: how it went, the caller's pair and the tones heard.
fn pair_note(how: &str, o: &Outcome) -> String {
    format!(
        "{how}: {}-{}, tone {:.1}/{:.1} s",
        o.caller["path"]["local_type"].as_str().unwrap_or("?"),
        o.caller["path"]["remote_type"].as_str().unwrap_or("?"),
        o.caller["heard_secs"].as_f64().unwrap_or(0.0),
        o.callee["heard_secs"].as_f64().unwrap_or(0.0),
    )
}

/// A pair of the lab's NATs with SIP through Kamailio and coturn configured on both
/// phones: the call is direct wherever hole punching can work (even though a relay was
/// on offer) and relayed through the lab's coturn only where it cannot.
fn expect_pair_with_turn_on_offer(caller: Nat, callee: Nat, want_direct: bool) {
    let feature = format!("nat-call-{}-{}", caller.name(), callee.name());
    let mut entry = MatrixEntry::new("kamailio", &feature, "udp");
    let mut r = Run::new(caller, callee);
    r.turn = true;
    let o = run(r);
    expect_public_contacts(&o);
    expect_call(&o, "caller");
    let relay = format!("{}:", NatLab::PUBLIC_SERVER_IP);
    for (name, r) in [("caller", &o.caller), ("callee", &o.callee)] {
        let path = &r["path"];
        assert_eq!(path["direct"], want_direct, "{feature}: {name}: {r}");
        let (local, remote) = (
            path["local_type"].as_str().unwrap_or_default(),
            path["remote_type"].as_str().unwrap_or_default(),
        );
        if want_direct {
            assert!(
                local != "relay" && remote != "relay",
                "{feature}: {name} used a relay: {r}"
            );
        } else if local == "relay" {
            // Our relay: only ever on the configured coturn.
            assert!(
                path["local_addr"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(&relay),
                "{feature}: {name}: {r}"
            );
        }
    }
    if !want_direct {
        assert!(
            [&o.caller, &o.callee]
                .iter()
                .any(|r| r["path"]["local_type"] == "relay"),
            "{feature}: no relay selected: {} {}",
            o.caller,
            o.callee
        );
    }
    entry.note(pair_note(
        if want_direct {
            "direct with TURN on offer"
        } else {
            "relayed through coturn"
        },
        &o,
    ));
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_none_none_direct() {
    expect_pair_with_turn_on_offer(Nat::None, Nat::None, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_none_full_direct() {
    expect_pair_with_turn_on_offer(Nat::None, Nat::FullCone, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_sym_none_direct() {
    expect_pair_with_turn_on_offer(Nat::Symmetric, Nat::None, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_full_full_direct() {
    expect_pair_with_turn_on_offer(Nat::FullCone, Nat::FullCone, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_sym_full_direct() {
    expect_pair_with_turn_on_offer(Nat::Symmetric, Nat::FullCone, true);
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_eim_sym_relayed() {
    expect_pair_with_turn_on_offer(Nat::EndpointIndependent, Nat::Symmetric, false);
}

/// The callee's NAT forgets an idle UDP binding after 3 s; the caller calls 9 s after the
/// callee registered. With a keep-alive every second, the binding Kamailio knows is
/// still open and the INVITE reaches the callee; without keep-alives it does not.
#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn sip_nat_keepalive_holds_the_binding() {
    let mut r = Run::new(Nat::None, Nat::EndpointIndependent);
    r.callee_keepalive = 1;
    r.expire = Some((3, 9));
    let o = run(r);
    expect_public_contacts(&o);
    expect_call(&o, "caller");

    let mut r = Run::new(Nat::None, Nat::EndpointIndependent);
    r.callee_keepalive = 0;
    r.expire = Some((3, 9));
    r.wait = 15;
    let o = run(r);
    // Kamailio still had the binding and sent the INVITE there: the NAT dropped it.
    let lookup = format!("LOOKUP callee -> sip:callee@{}:", o.callee_public);
    assert!(o.kamailio_log.contains(&lookup), "{}", o.kamailio_log);
    assert_eq!(o.callee["ok"], false, "{}", o.callee);
    assert!(o.callee["incoming"].is_null(), "{}", o.callee);
    assert!(
        o.callee["error"]
            .as_str()
            .unwrap_or_default()
            .contains("incoming"),
        "{}",
        o.callee
    );
    assert_eq!(o.caller["ok"], false, "{}", o.caller);
}
