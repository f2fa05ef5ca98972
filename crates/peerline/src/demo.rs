//! `peerline demo`: two phones on loopback, no server. Alice calls Bob; Alice plays 440 Hz,
//! Bob 1000 Hz; each records what it hears, and the demo checks each heard the other's tone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use peerline_ua::{
    AudioSource, Config, EndReason, Event, Events, MediaOptions, MediaReport, Phone,
};

use crate::report;

#[derive(Args)]
pub struct DemoArgs {
    /// How long the call lasts, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Keep the recordings in this directory (a temporary one otherwise).
    #[arg(long)]
    record_dir: Option<std::path::PathBuf>,
}

const ALICE_HZ: f32 = 440.0;
const BOB_HZ: f32 = 1000.0;

fn phone_config(user: &str) -> Config {
    let mut c = Config::default();
    c.identity.user = user.into();
    c.network.sip_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}

async fn next_ended(events: &mut Events, limit: Duration) -> Result<(EndReason, MediaReport)> {
    let wait = async {
        while let Some(ev) = events.recv().await {
            if let Event::Ended { reason, media, .. } = ev {
                return Some((reason, *media));
            }
        }
        None
    };
    tokio::time::timeout(limit, wait)
        .await
        .context("timed out waiting for the call to end")?
        .context("phone stopped")
}

pub async fn run(args: DemoArgs) -> Result<bool> {
    if !(0.5..=600.0).contains(&args.seconds) {
        bail!("--seconds must be between 0.5 and 600");
    }
    let tmp = match &args.record_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => std::env::temp_dir().join(format!("peerline-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&tmp)?;
    let alice_rec = tmp.join("alice-heard.wav");
    let bob_rec = tmp.join("bob-heard.wav");

    let (alice, mut alice_events) = Phone::start(phone_config("alice")).await?;
    let (bob, mut bob_events) = Phone::start(phone_config("bob")).await?;
    if !args.json {
        println!(
            "alice at {}, bob at {}: alice calls bob",
            alice.uri("alice"),
            bob.uri("bob")
        );
    }
    let started = Instant::now();
    let call = alice
        .call(
            &bob.uri("bob"),
            MediaOptions {
                source: AudioSource::Tone(ALICE_HZ),
                record: Some(alice_rec.clone()),
            },
        )
        .await?;

    // Bob answers the first incoming call.
    let limit = Duration::from_secs(5);
    let incoming = tokio::time::timeout(limit, async {
        while let Some(ev) = bob_events.recv().await {
            if let Event::Incoming { call, from, .. } = ev {
                return Some((call, from));
            }
        }
        None
    })
    .await
    .context("bob got no call")?
    .context("bob's phone stopped")?;
    bob.answer(
        incoming.0,
        MediaOptions {
            source: AudioSource::Tone(BOB_HZ),
            record: Some(bob_rec.clone()),
        },
    )
    .await?;
    // Alice sees the answer.
    let answered = tokio::time::timeout(limit, async {
        while let Some(ev) = alice_events.recv().await {
            match ev {
                Event::Answered { .. } => return Ok(()),
                Event::Ended { reason, .. } => return Err(reason),
                _ => {}
            }
        }
        Err(EndReason::Timeout)
    })
    .await
    .context("alice's call was not answered")?;
    if let Err(reason) = answered {
        bail!("alice's call failed: {reason}");
    }
    let setup = started.elapsed();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    alice.hangup(call).await?;
    let (alice_reason, alice_media) = next_ended(&mut alice_events, limit).await?;
    let (bob_reason, bob_media) = next_ended(&mut bob_events, limit).await?;
    let alice_ledger = alice.ledger().await?;
    alice.shutdown().await;
    bob.shutdown().await;

    let alice_heard = report::analyse(&alice_rec, Some(BOB_HZ))?;
    let bob_heard = report::analyse(&bob_rec, Some(ALICE_HZ))?;
    // Each side must have heard the other's tone for most of the call.
    let need = (args.seconds as f32 * 0.6).max(0.3);
    let ok = alice_heard.expected_secs.unwrap_or(0.0) >= need
        && bob_heard.expected_secs.unwrap_or(0.0) >= need
        && alice_reason == EndReason::LocalHangup
        && bob_reason == EndReason::RemoteHangup;

    if args.json {
        let out = serde_json::json!({
            "ok": ok,
            "setup_ms": setup.as_secs_f64() * 1000.0,
            "calls": [
                report::call_json("alice", &alice_reason, &alice_media, Some(&alice_heard)),
                report::call_json("bob", &bob_reason, &bob_media, Some(&bob_heard)),
            ],
            "alice_process_ledger": serde_json::from_str::<serde_json::Value>(&alice_ledger.to_json()).unwrap_or_default(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "call set up in {:.1} ms; talked for {:.1} s",
            setup.as_secs_f64() * 1000.0,
            args.seconds
        );
        report::print_call("alice", &alice_reason, &alice_media, Some(&alice_heard));
        report::print_call("bob", &bob_reason, &bob_media, Some(&bob_heard));
        println!("\nalice's traffic ledger (every datagram, by peer and purpose):");
        print!("{alice_ledger}");
        println!(
            "\n{}: alice heard bob's {BOB_HZ} Hz for {:.1} s, bob heard alice's {ALICE_HZ} Hz for {:.1} s",
            if ok { "OK" } else { "FAILED" },
            alice_heard.expected_secs.unwrap_or(0.0),
            bob_heard.expected_secs.unwrap_or(0.0),
        );
        println!("recordings: {}", tmp.display());
    }
    Ok(ok)
}
