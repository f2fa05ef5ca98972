//! `peerline call URI --interactive` and `peerline listen --interactive`: the call screen
//! of a person at a terminal (`listen` first shows the incoming call: `a` answers, `r`
//! rejects). It shows
//! the call's state, codec, media path, encryption and live quality (redrawn twice a
//! second) and takes single keys:
//!
//! | key | does |
//! |---|---|
//! | `h` or `q` | hang up |
//! | `o` | hold, or resume a held call |
//! | `m` | mute, or unmute |
//! | `0`–`9`, `*`, `#`, `A`–`D` | send the digit (RFC 4733) |
//! | `t` | blind transfer: type the target URI, Enter sends the REFER, Esc cancels |
//!
//! The terminal is in raw mode while the screen runs and restored on every way out.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal;
use peerline_ua::{CallId, EndReason, Event, Events, LiveStats, Phone};
use tokio::sync::mpsc;

/// What the screen shows.
#[derive(Debug, Default)]
struct Screen {
    /// The first line: who the call is with.
    title: String,
    state: String,
    codec: String,
    path: String,
    stats: Option<LiveStats>,
    held: bool,
    digits: String,
    /// The transfer target being typed, while in that mode.
    typing: Option<String>,
    note: String,
}

impl Screen {
    fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("Peerline - {}", self.title),
            format!("state: {}", self.state),
            format!(
                "codec: {}   path: {}",
                or_dash(&self.codec),
                or_dash(&self.path)
            ),
        ];
        match &self.stats {
            Some(s) => {
                out.push(format!(
                    "encryption: {}",
                    s.srtp.as_deref().unwrap_or("none (plain RTP)")
                ));
                out.push(format!(
                    "quality: MOS {}   loss {:.1} %   jitter {:.1} ms   RTT {}",
                    s.mos.map_or("-".to_string(), |m| format!("{m:.1}")),
                    s.loss_percent,
                    s.jitter_ms,
                    s.rtt_ms.map_or("-".to_string(), |r| format!("{r:.1} ms"))
                ));
                out.push(format!(
                    "packets: sent {}   received {}   lost {}   muted: {}",
                    s.packets_sent,
                    s.packets_received,
                    s.packets_lost,
                    if s.muted { "yes" } else { "no" }
                ));
            }
            None => out.push("encryption: -".into()),
        }
        out.push(format!("digits sent: {}", or_dash(&self.digits)));
        match &self.typing {
            Some(uri) => out.push(format!("transfer to: {uri}_   (Enter sends, Esc cancels)")),
            None => out.push(
                "keys: [h] hang up  [o] hold/resume  [m] mute  [0-9*#] digits  [t] transfer".into(),
            ),
        }
        if !self.note.is_empty() {
            out.push(self.note.clone());
        }
        out
    }

    fn draw(&self) {
        let mut out = std::io::stdout();
        // Clear, home, then each line with CR LF (raw mode does not translate LF).
        let _ = write!(out, "\x1b[2J\x1b[H");
        for l in self.lines() {
            let _ = write!(out, "{l}\r\n");
        }
        let _ = out.flush();
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Raw mode for as long as it lives.
pub struct RawMode;

impl RawMode {
    pub fn enable() -> Result<Self> {
        terminal::enable_raw_mode()
            .context("--interactive needs a terminal (raw mode could not be set)")?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
    }
}

/// Key presses.
pub type Keys = mpsc::UnboundedReceiver<KeyEvent>;

/// Reads key presses on a thread of its own (crossterm's `read` blocks).
pub fn keys() -> Keys {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        match crossterm::event::read() {
            Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                if tx.send(k).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });
    rx
}

/// The call screen of our outgoing call to `target`, until it ends; `Ok(true)` when it
/// was answered and ended without a media error.
pub async fn call(phone: &Phone, events: &mut Events, call: CallId, target: &str) -> Result<bool> {
    let _raw = RawMode::enable()?;
    let mut keys = keys();
    run(
        phone,
        events,
        &mut keys,
        call,
        format!("call to {target}"),
        false,
    )
    .await
}

/// An incoming call `call` from `from`: `a` answers with `media` (then the call screen),
/// `r` rejects (486). `Ok(true)` when it was answered and ended cleanly.
pub async fn incoming(
    phone: &Phone,
    events: &mut Events,
    call: CallId,
    from: &str,
    media: peerline_ua::MediaOptions,
) -> Result<bool> {
    let _raw = RawMode::enable()?;
    let mut keys = keys();
    let mut screen = Screen {
        title: format!("call from {from}"),
        state: "incoming - [a] answer  [r] reject".into(),
        ..Screen::default()
    };
    screen.draw();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Ended { call: c, reason, .. }) if c == call => {
                    screen.state = format!("ended: {reason}");
                    screen.draw();
                    return Ok(false);
                }
                Some(_) => {}
                None => bail!("the phone stopped"),
            },
            Some(k) = keys.recv() => match k.code {
                KeyCode::Char('a') => {
                    phone.answer(call, media).await?;
                    break;
                }
                KeyCode::Char('r') => {
                    phone.reject(call, 486).await?;
                    screen.state = "ended: rejected (486 Busy Here)".into();
                    screen.draw();
                    return Ok(true);
                }
                _ => {}
            },
        }
    }
    run(phone, events, &mut keys, call, screen.title, true).await
}

/// The screen loop of `call` (already answered when `answered`).
async fn run(
    phone: &Phone,
    events: &mut Events,
    keys: &mut Keys,
    call: CallId,
    title: String,
    answered: bool,
) -> Result<bool> {
    let mut screen = Screen {
        title,
        state: if answered { "talking" } else { "calling" }.into(),
        ..Screen::default()
    };
    let mut answered = answered;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    screen.draw();
    let ended = loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { bail!("the phone stopped") };
                match ev {
                    Event::Ringing { call: c, status } if c == call => {
                        screen.state = format!("ringing ({status})");
                    }
                    Event::Answered { call: c } if c == call => {
                        answered = true;
                        screen.state = "talking".into();
                    }
                    Event::MediaUp { call: c, codec, remote, path, .. } if c == call => {
                        screen.codec = codec.to_string();
                        screen.path = match path {
                            Some(p) => p.to_string(),
                            None => format!("direct to {remote}"),
                        };
                    }
                    Event::Hold { call: c, held } if c == call => {
                        screen.held = held;
                        screen.state = if held { "on hold".into() } else { "talking".into() };
                    }
                    Event::Dtmf { call: c, digit } if c == call => {
                        screen.note = format!("received digit {digit}");
                    }
                    Event::Transfer { call: c, status, .. } if c == call => {
                        screen.note = format!("transfer: {status}");
                    }
                    Event::Ended { call: c, reason, media } if c == call => {
                        break (reason, media);
                    }
                    _ => {}
                }
            }
            Some(k) = keys.recv() => {
                if let Some(done) = key(phone, call, &mut screen, k).await {
                    if done {
                        screen.state = "hanging up".into();
                    }
                }
            }
            _ = tick.tick() => {
                if answered {
                    screen.stats = phone.call_stats(call).await.ok().or(screen.stats.take());
                }
            }
        }
        screen.draw();
    };
    let (reason, media) = ended;
    screen.state = format!("ended: {reason}");
    screen.typing = None;
    screen.draw();
    Ok(answered
        && media.error.is_none()
        && matches!(
            reason,
            EndReason::LocalHangup | EndReason::RemoteHangup | EndReason::Transferred
        ))
}

/// Handles one key; `Some(true)` when it hung up.
async fn key(phone: &Phone, call: CallId, screen: &mut Screen, k: KeyEvent) -> Option<bool> {
    if let Some(uri) = screen.typing.as_mut() {
        match k.code {
            KeyCode::Enter => {
                let uri = std::mem::take(uri);
                screen.typing = None;
                screen.note = match phone.transfer(call, &uri).await {
                    Ok(()) => format!("transfer to {uri}: REFER sent"),
                    Err(e) => format!("transfer to {uri} failed: {e}"),
                };
            }
            KeyCode::Esc => {
                screen.typing = None;
                screen.note = "transfer cancelled".into();
            }
            KeyCode::Backspace => {
                uri.pop();
            }
            KeyCode::Char(c) => uri.push(c),
            _ => {}
        }
        return None;
    }
    let KeyCode::Char(c) = k.code else {
        return None;
    };
    if c == 'c' && k.modifiers.contains(KeyModifiers::CONTROL) || c == 'h' || c == 'q' {
        let _ = phone.hangup(call).await;
        return Some(true);
    }
    let result = match c {
        'o' if screen.held => phone.resume(call).await.map(|()| "resuming".to_string()),
        'o' => phone
            .hold(call)
            .await
            .map(|()| "putting on hold".to_string()),
        'm' => {
            let mute = !screen.stats.as_ref().is_some_and(|s| s.muted);
            phone
                .mute(call, mute)
                .await
                .map(|()| if mute { "muted" } else { "unmuted" }.to_string())
        }
        't' => {
            screen.typing = Some(String::new());
            Ok(String::new())
        }
        d if d.is_ascii_digit() || "*#ABCD".contains(d) => {
            let r = phone.send_dtmf(call, &d.to_string()).await;
            if r.is_ok() {
                screen.digits.push(d);
            }
            r.map(|()| format!("sent digit {d}"))
        }
        _ => return None,
    };
    screen.note = match result {
        Ok(n) => n,
        Err(e) => format!("{c}: {e}"),
    };
    if c == 'm' {
        if let Ok(s) = phone.call_stats(call).await {
            screen.stats = Some(s);
        }
    }
    None
}
