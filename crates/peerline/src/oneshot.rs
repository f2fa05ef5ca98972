//! `peerline call` and `peerline listen`: one phone, a bounded session, a report at the end.
//! These are what the interop tests drive against real peers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use peerline_ua::{AudioSource, Config, Event, MediaOptions, Phone};

use crate::report;

/// Options shared by `call` and `listen`.
#[derive(Args, Clone)]
pub struct SessionArgs {
    /// Address and port for SIP (overrides the config), e.g. 127.0.0.1:5070.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Our user name (overrides the config).
    #[arg(long)]
    user: Option<String>,
    /// What to send: `tone:HZ`, `wav:PATH`, `silence`, or `device` (talk and listen
    /// through the sound card: `[audio]` input/output of the config, else the system
    /// default; `device:INPUT` names the capture device).
    #[arg(long, default_value = "silence")]
    play: String,
    /// Record what we hear to this WAV file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Check that the recording holds this tone (Hz); exit 1 if not.
    #[arg(long)]
    expect_tone: Option<f32>,
    /// JSON for scripts: each phone event as a JSON line while the call runs (`"event"`:
    /// incoming, ringing, answered, media_up, dtmf, ended…), then the report as the last line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CallArgs {
    /// The SIP URI to call.
    target: String,
    /// Hang up after this many seconds of conversation.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// A call screen for a person: state, codec, path, encryption and live quality; keys
    /// hang up (h), hold/resume (o), mute (m), send digits (0-9 * #) and transfer (t).
    /// The call lasts until hung up (`--seconds` is ignored).
    #[arg(long, short = 'i')]
    interactive: bool,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
pub struct ListenArgs {
    /// Give up if no call arrives within this many seconds.
    #[arg(long, default_value_t = 60.0)]
    wait: f64,
    /// Hang up an answered call after this many seconds (0: wait for the caller to hang up).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// Give up on a call lasting longer than this many seconds.
    #[arg(long, default_value_t = 600.0)]
    max_call: f64,
    /// Show the incoming call and let a person answer (a) or reject (r) it, then the call
    /// screen of `call --interactive` (`--seconds` is ignored).
    #[arg(long, short = 'i')]
    interactive: bool,
    #[command(flatten)]
    session: SessionArgs,
}

fn parse_source(s: &str) -> Result<AudioSource> {
    Ok(match s.split_once(':') {
        Some(("tone", hz)) => AudioSource::Tone(hz.parse().context("tone:HZ needs a number")?),
        Some(("wav", path)) => AudioSource::Wav(PathBuf::from(path)),
        Some(("device", input)) => AudioSource::Device {
            input: Some(input.to_string()),
            output: None,
        },
        None if s == "silence" => AudioSource::Silence,
        None if s == "device" => AudioSource::Device {
            input: None,
            output: None,
        },
        _ => bail!("--play must be tone:HZ, wav:PATH, silence, device or device:INPUT, not {s:?}"),
    })
}

fn apply(mut config: Config, s: &SessionArgs) -> Config {
    if let Some(l) = s.listen {
        config.network.sip_listen = l;
    }
    if let Some(u) = &s.user {
        config.identity.user = u.clone();
    }
    config
}

/// The next phone event; with `--json` it is also printed as a JSON line (the event
/// stream scripts read; the report is the last line).
async fn next(events: &mut peerline_ua::Events, json: bool) -> Option<Event> {
    let ev = events.recv().await?;
    if json {
        println!("{}", report::event_json(&ev));
    }
    Some(ev)
}

fn secs(s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("bad duration {s}"))
}

/// Waits for the call to end; returns `Ok(true)` when the checks passed.
async fn finish(
    events: &mut peerline_ua::Events,
    session: &SessionArgs,
    limit: Duration,
) -> Result<bool> {
    let ended = tokio::time::timeout(limit, async {
        while let Some(ev) = next(events, session.json).await {
            match ev {
                Event::Ended { reason, media, .. } => return Some((reason, media)),
                Event::Dtmf { digit, .. } if !session.json => println!("dtmf: {digit}"),
                _ => {}
            }
        }
        None
    })
    .await
    .context("the call did not end in time")?
    .context("the phone stopped")?;
    let (reason, media) = ended;
    let heard = match &session.record {
        Some(path) => Some(report::analyse(path, session.expect_tone)?),
        None => None,
    };
    let ok = match (session.expect_tone, &heard) {
        (Some(_), Some(h)) => h.expected_secs.unwrap_or(0.0) >= 1.0,
        (Some(_), None) => bail!("--expect-tone needs --record"),
        _ => media.error.is_none(),
    };
    if session.json {
        let mut v = report::call_json("peerline", &reason, &media, heard.as_ref());
        v["ok"] = serde_json::json!(ok);
        println!("{v}");
    } else {
        report::print_call("peerline", &reason, &media, heard.as_ref());
    }
    Ok(ok)
}

pub async fn call(config: Config, args: CallArgs) -> Result<bool> {
    let source = parse_source(&args.session.play)?;
    let talk = secs(args.seconds)?;
    let (phone, mut events) = Phone::start(apply(config, &args.session)).await?;
    let id = phone
        .call(
            &args.target,
            MediaOptions {
                source,
                record: args.session.record.clone(),
            },
        )
        .await?;
    if args.interactive {
        let ok = crate::interactive::call(&phone, &mut events, id, &args.target).await;
        phone.shutdown().await;
        return ok;
    }
    // Wait for the answer (at most 32 s, Timer B) then talk.
    let answered = tokio::time::timeout(Duration::from_secs(40), async {
        while let Some(ev) = next(&mut events, args.session.json).await {
            match ev {
                Event::Answered { .. } => return Ok(true),
                Event::Ended { reason, media, .. } => return Err((reason, media)),
                _ => {}
            }
        }
        Ok(false)
    })
    .await
    .context("no answer")?;
    match answered {
        Ok(true) => {}
        Ok(false) => bail!("the phone stopped"),
        Err((reason, _)) => {
            eprintln!("call failed: {reason}");
            return Ok(false);
        }
    }
    tokio::time::sleep(talk).await;
    let _ = phone.hangup(id).await;
    let ok = finish(&mut events, &args.session, Duration::from_secs(40)).await;
    phone.shutdown().await;
    ok
}

pub async fn listen(config: Config, args: ListenArgs) -> Result<bool> {
    let source = parse_source(&args.session.play)?;
    let (phone, mut events) = Phone::start(apply(config, &args.session)).await?;
    if !args.session.json {
        println!("listening on {}", phone.sip_addr());
    }
    let incoming = tokio::time::timeout(secs(args.wait)?, async {
        while let Some(ev) = next(&mut events, args.session.json).await {
            if let Event::Incoming { call, from, .. } = ev {
                return Some((call, from));
            }
        }
        None
    })
    .await
    .context("no call arrived")?
    .context("the phone stopped")?;
    let media = MediaOptions {
        source: source.clone(),
        record: args.session.record.clone(),
    };
    if args.interactive {
        let ok =
            crate::interactive::incoming(&phone, &mut events, incoming.0, &incoming.1, media).await;
        phone.shutdown().await;
        return ok;
    }
    if !args.session.json {
        println!("call from {}", incoming.1);
    }
    phone
        .answer(
            incoming.0,
            MediaOptions {
                source,
                record: args.session.record.clone(),
            },
        )
        .await?;
    if args.seconds > 0.0 {
        tokio::time::sleep(secs(args.seconds)?).await;
        let _ = phone.hangup(incoming.0).await;
    }
    let ok = finish(&mut events, &args.session, secs(args.max_call)?).await;
    phone.shutdown().await;
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn play_sources_parse_and_bad_ones_are_named() {
        assert_eq!(parse_source("silence").unwrap(), AudioSource::Silence);
        assert_eq!(parse_source("tone:440").unwrap(), AudioSource::Tone(440.0));
        assert_eq!(
            parse_source("device").unwrap(),
            AudioSource::Device {
                input: None,
                output: None
            }
        );
        assert_eq!(
            parse_source("device:hw:1,0").unwrap(),
            AudioSource::Device {
                input: Some("hw:1,0".into()),
                output: None
            }
        );
        let e = parse_source("mic").unwrap_err().to_string();
        assert!(e.contains("\"mic\""), "{e}");
    }
}
