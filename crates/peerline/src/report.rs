//! What the CLI prints at the end of a call: media figures, the tone heard, the ledger.

use std::net::SocketAddr;
use std::path::Path;

use peerline_net::ledger::{Counter, Direction, Ledger, TrafficClass};
use peerline_ua::{EndReason, MediaReport};
use serde_json::json;

/// What a recording holds.
pub struct Heard {
    /// Strongest frequency over the whole recording, Hz.
    pub dominant_hz: f32,
    /// Seconds in which the expected tone dominated (when one was expected).
    pub expected_secs: Option<f32>,
}

/// Analyses a recorded WAV file.
pub fn analyse(path: &Path, expected_hz: Option<f32>) -> anyhow::Result<Heard> {
    let audio = peerline_audio::read_wav(path)?;
    // Skip the first 200 ms: jitter-buffer start-up is silence.
    let skip = (audio.sample_rate as usize / 5).min(audio.samples.len());
    let body = &audio.samples[skip..];
    Ok(Heard {
        dominant_hz: peerline_media::dominant_frequency(body, audio.sample_rate),
        expected_secs: expected_hz
            .map(|f| peerline_media::tone_seconds(body, audio.sample_rate, f, 0.5)),
    })
}

/// One call's report as JSON.
pub fn call_json(
    name: &str,
    reason: &EndReason,
    media: &MediaReport,
    heard: Option<&Heard>,
) -> serde_json::Value {
    json!({
        "phone": name,
        "ended": reason.to_string(),
        "codec": media.codec,
        "local_rtp": media.local.map(|a| a.to_string()),
        "remote_rtp": media.remote.map(|a| a.to_string()),
        // With ICE: the selected candidate pair (types, addresses, TURN server, RTT) and,
        // when our side of it is relayed, the bytes through our TURN server(s).
        "ice_path": media.path.as_ref().and_then(|p| {
            let mut v = serde_json::from_str::<serde_json::Value>(&p.to_json()).ok()?;
            if p.local_type.is_relay() {
                let t = turn_totals(&media.ledger);
                v["turn_bytes_sent"] = json!(t.0.bytes);
                v["turn_bytes_received"] = json!(t.1.bytes);
            }
            Some(v)
        }),
        // Traffic with the configured TURN server(s), by server address (also in "ledger").
        "turn": turn_rows(&media.ledger)
            .iter()
            .map(|(server, sent, received)| json!({
                "server": server.to_string(),
                "sent_packets": sent.packets,
                "sent_bytes": sent.bytes,
                "received_packets": received.packets,
                "received_bytes": received.bytes,
            }))
            .collect::<Vec<_>>(),
        "rtp_sent": media.sent.packets_sent,
        "rtp_received": media.received.packets_received,
        "rtp_lost": media.received.packets_lost,
        "rtp_malformed": media.received.malformed,
        "jitter_ms": media.jitter_ms,
        "concealed_frames": media.concealed_frames,
        "srtp": media.srtp,
        "srtp_auth_failures": media.srtp_auth_failures,
        "srtp_replays": media.srtp_replays,
        "rtt_ms": media.rtt_ms,
        "playout_delay_ms": media.playout_delay_ms,
        "mos": media.mos,
        "rtcp_sent": media.rtcp_sent,
        "rtcp_received": media.rtcp_received,
        "foreign_source_drops": media.foreign_source_drops,
        "dtmf": media.dtmf,
        "heard_dominant_hz": heard.map(|h| h.dominant_hz),
        "heard_expected_tone_secs": heard.and_then(|h| h.expected_secs),
        "media_error": media.error,
        "ledger": serde_json::from_str::<serde_json::Value>(&media.ledger.to_json()).unwrap_or_default(),
    })
}

/// (server address, sent, received) for each TURN server in the ledger.
fn turn_rows(ledger: &Ledger) -> Vec<(SocketAddr, Counter, Counter)> {
    let mut rows: Vec<(SocketAddr, Counter, Counter)> = Vec::new();
    for e in ledger.entries().filter(|e| e.class == TrafficClass::Turn) {
        let i = match rows.iter().position(|(a, _, _)| *a == e.remote) {
            Some(i) => i,
            None => {
                rows.push((e.remote, Counter::default(), Counter::default()));
                rows.len() - 1
            }
        };
        match e.direction {
            Direction::Sent => rows[i].1 = e.counter,
            Direction::Received => rows[i].2 = e.counter,
        }
    }
    rows
}

/// (sent, received) with all TURN servers.
fn turn_totals(ledger: &Ledger) -> (Counter, Counter) {
    (
        ledger.total(TrafficClass::Turn, Direction::Sent),
        ledger.total(TrafficClass::Turn, Direction::Received),
    )
}

/// One call's report for people.
pub fn print_call(name: &str, reason: &EndReason, media: &MediaReport, heard: Option<&Heard>) {
    println!("{name}: call ended ({reason})");
    if let (Some(codec), Some(local), Some(remote)) = (media.codec, media.local, media.remote) {
        println!(
            "  media      {codec}  {local} <-> {remote} (direct), {}",
            media.srtp.as_deref().unwrap_or("plain RTP (not encrypted)")
        );
    }
    if let Some(path) = &media.path {
        println!(
            "  ice path   {path}, connected in {:.0} ms",
            path.connect_time.as_secs_f64() * 1000.0
        );
    }
    for (server, sent, received) in turn_rows(&media.ledger) {
        println!(
            "  turn       {server}  sent {} packets {} bytes  received {} packets {} bytes",
            sent.packets, sent.bytes, received.packets, received.bytes
        );
    }
    println!(
        "  rtp        sent {}  received {}  lost {}  malformed {}  jitter {:.1} ms  concealed {}",
        media.sent.packets_sent,
        media.received.packets_received,
        media.received.packets_lost,
        media.received.malformed,
        media.jitter_ms,
        media.concealed_frames
    );
    println!(
        "  quality    rtt {}  playout delay {:.0} ms  MOS {}  rtcp sent {} received {}",
        media
            .rtt_ms
            .map(|r| format!("{r:.1} ms"))
            .unwrap_or_else(|| "n/a".into()),
        media.playout_delay_ms,
        media
            .mos
            .map(|m| format!("{m:.2}"))
            .unwrap_or_else(|| "n/a".into()),
        media.rtcp_sent,
        media.rtcp_received
    );
    if let Some(h) = heard {
        match h.expected_secs {
            Some(s) => println!(
                "  heard      dominant {:.0} Hz; expected tone present for {s:.1} s",
                h.dominant_hz
            ),
            None => println!("  heard      dominant {:.0} Hz", h.dominant_hz),
        }
    }
    if let Some(e) = &media.error {
        println!("  media error: {e}");
    }
}

/// One phone event as a JSON object (`"event"` names it), for `--json`'s event stream.
pub fn event_json(ev: &peerline_ua::Event) -> serde_json::Value {
    use peerline_ua::Event as E;
    use serde_json::json;
    match ev {
        E::Registered { aor, expires } => {
            json!({"event": "registered", "aor": aor, "expires": expires})
        }
        E::RegistrationFailed { aor, code, reason } => {
            json!({"event": "registration_failed", "aor": aor, "code": code, "reason": reason})
        }
        E::Unregistered { aor } => json!({"event": "unregistered", "aor": aor}),
        E::Incoming { call, from, to } => {
            json!({"event": "incoming", "call": call, "from": from, "to": to})
        }
        E::Ringing { call, status } => json!({"event": "ringing", "call": call, "status": status}),
        E::Answered { call } => json!({"event": "answered", "call": call}),
        E::MediaUp {
            call,
            local,
            remote,
            codec,
            path,
        } => json!({
            "event": "media_up", "call": call, "local": local.to_string(),
            "remote": remote.to_string(), "codec": codec,
            "path": path.as_ref().map(ToString::to_string),
        }),
        E::Hold { call, held } => json!({"event": "hold", "call": call, "held": held}),
        E::RemoteUpdate {
            call,
            send,
            receive,
        } => {
            json!({"event": "remote_update", "call": call, "send": send, "receive": receive})
        }
        E::Dtmf { call, digit } => {
            json!({"event": "dtmf", "call": call, "digit": digit.to_string()})
        }
        E::Message {
            from,
            to,
            content_type,
            body,
        } => json!({
            "event": "message", "from": from, "to": to, "content_type": content_type, "body": body,
        }),
        E::Transfer {
            call,
            status,
            target,
            new_call,
        } => json!({
            "event": "transfer", "call": call, "status": status, "target": target, "new_call": new_call,
        }),
        E::Replaced {
            call,
            replaced,
            from,
        } => {
            json!({"event": "replaced", "call": call, "replaced": replaced, "from": from})
        }
        E::Ended { call, reason, .. } => {
            json!({"event": "ended", "call": call, "reason": reason.to_string()})
        }
        other => json!({"event": "other", "call": other.call()}),
    }
}
