//! `peerline register` and `peerline message URI TEXT`: one-shot account actions for
//! scripts and for checking a PBX account by hand.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use peerline_ua::{Config, Event, Phone};

#[derive(Args)]
pub struct RegisterArgs {
    /// Give up on an account that has no answer after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    wait: f64,
    /// Stay registered (refreshing) for this many seconds, then unregister and exit.
    #[arg(long, default_value_t = 0.0)]
    stay: f64,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Registers every `[[account]]` with `register = true`; `Ok(false)` (exit 1) when one
/// failed or did not answer.
pub async fn register(config: Config, args: RegisterArgs) -> Result<bool> {
    let expected: Vec<String> = config
        .accounts
        .iter()
        .filter(|a| a.register)
        .map(|a| a.aor.clone())
        .collect();
    if expected.is_empty() {
        bail!("no [[account]] to register in the config (see README: Using it)");
    }
    let (phone, mut events) = Phone::start(config).await?;
    let mut outcomes: Vec<(String, Result<u32, String>)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.wait.max(0.1));
    while outcomes.len() < expected.len() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Registered { aor, expires })) => {
                if !outcomes.iter().any(|(a, _)| *a == aor) {
                    outcomes.push((aor, Ok(expires)));
                }
            }
            Ok(Some(Event::RegistrationFailed { aor, code, reason })) => {
                if !outcomes.iter().any(|(a, _)| *a == aor) {
                    let why = if code > 0 {
                        format!("{code} {reason}")
                    } else {
                        reason
                    };
                    outcomes.push((aor, Err(why)));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    for aor in &expected {
        if !outcomes.iter().any(|(a, _)| a == aor) {
            outcomes.push((
                aor.clone(),
                Err(format!("no answer within {} s", args.wait)),
            ));
        }
    }
    let ok = outcomes.iter().all(|(_, r)| r.is_ok());
    if args.json {
        let list: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|(aor, r)| match r {
                Ok(expires) => {
                    serde_json::json!({"aor": aor, "registered": true, "expires": expires})
                }
                Err(why) => serde_json::json!({"aor": aor, "registered": false, "error": why}),
            })
            .collect();
        println!("{}", serde_json::json!({"ok": ok, "accounts": list}));
    } else {
        for (aor, r) in &outcomes {
            match r {
                Ok(expires) => println!("registered {aor} for {expires} s"),
                Err(why) => println!("not registered {aor}: {why}"),
            }
        }
    }
    if ok && args.stay > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(args.stay)).await;
    }
    phone.shutdown().await; // unregisters
    Ok(ok)
}

#[derive(Args)]
pub struct MessageArgs {
    /// Who to send it to (`sip:user@host[:port]`, through the first account if any).
    target: String,
    /// The text (sent as `text/plain;charset=UTF-8`).
    text: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Sends one MESSAGE; `Ok(false)` (exit 1) unless it was answered 2xx.
pub async fn message(config: Config, args: MessageArgs) -> Result<bool> {
    let (phone, _events) = Phone::start(config).await?;
    let outcome = phone.send_message(&args.target, &args.text).await;
    phone.shutdown().await;
    let (ok, line) = match &outcome {
        Ok(status) => (true, format!("delivered: {status}")),
        Err(e) => (false, format!("not delivered: {e}")),
    };
    if args.json {
        let mut v = serde_json::json!({"ok": ok, "target": args.target});
        match outcome {
            Ok(status) => v["status"] = serde_json::json!(status),
            Err(e) => v["error"] = serde_json::json!(e.to_string()),
        }
        println!("{v}");
    } else {
        println!("{line}");
    }
    Ok(ok)
}
