//! Scenario files: the model and a checking parser. Everything a scenario can get wrong is
//! found here, before any socket is bound, and reported as `file:line: reason`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tree::{self, Entry, Kind, Node};

mod account;
mod message_steps;
mod transfer_steps;

pub use account::LegAccount;

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file (or a file it names) could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The scenario is malformed or uses a step the phone cannot do yet.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl ScenarioError {
    /// The line the error is about, if it is about a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Invalid { line, .. } => Some(*line),
            Self::Read { .. } => None,
        }
    }
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it came from (or a name for inline text).
    pub path: PathBuf,
    /// `name`, or the file stem.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `timeout`: a bound on the whole run (default 120 s).
    pub timeout: Duration,
    /// `[vars]` after `--var` overrides.
    pub vars: BTreeMap<String, String>,
    /// `[csv]`: rows for `${row.COLUMN}`.
    pub rows: Option<Rows>,
    /// `[[leg]]`, in file order.
    pub legs: Vec<Leg>,
    /// `[load]`.
    pub load: Option<Load>,
}

/// Rows of a CSV file (the first line names the columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, one `Vec` per row, as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

/// `[load]`: run the load leg's steps `calls` times.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Index into [`Scenario::legs`] of the leg whose steps make one call.
    pub leg: usize,
    /// Calls in total.
    pub calls: u32,
    /// Calls in progress at most.
    pub concurrency: u32,
    /// New calls per second at most (after ramp-up); `None` is as fast as concurrency allows.
    pub rate: Option<f64>,
    /// Seconds over which the rate rises linearly from 0 to `rate`.
    pub ramp_up: Duration,
    /// Line of `[load]`.
    pub line: usize,
}

/// One phone and what it does.
#[derive(Debug, Clone)]
pub struct Leg {
    /// Unique name, used in `${leg.NAME.uri}`.
    pub name: String,
    /// Line of the leg's `name`.
    pub line: usize,
    /// SIP user (default: the leg's name).
    pub user: String,
    /// SIP listen address (default `127.0.0.1:0`, a free port).
    pub listen: SocketAddr,
    /// RTP port range, `"LOW-HIGH"`.
    pub rtp_ports: Option<String>,
    /// Codecs in order of preference (leg `codecs`, or from its `call` step).
    pub codecs: Option<Vec<String>>,
    /// Packetisation time.
    pub ptime: Option<u32>,
    /// Other `[media]` settings of the leg's phone, checked by the phone's config parser:
    /// `srtp` (mandatory, optional, off) and `srtp_keying`.
    pub media: Vec<(String, String)>,
    /// `allow_sdes_without_tls = true`: SDES keys in SDP over UDP/TCP too (the phone's
    /// `media.allow_sdes_without_tls`; benchmarks and labs without TLS).
    pub allow_sdes_without_tls: bool,
    /// `account`: registers at the leg's start; calls and messages go through it.
    pub account: Option<LegAccount>,
    /// `auth`: the phone's `[auth]` table (an authenticating UAS), as TOML.
    pub auth: Option<String>,
    /// The steps.
    pub steps: Vec<Step>,
    /// Some step analyses received audio, so every call of this leg is recorded.
    pub needs_recording: bool,
}

/// A step and the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line.
    pub line: usize,
    /// What to do.
    pub action: Action,
    /// `timeout`: bound on commands to the phone (default 5 s).
    pub timeout: Duration,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Place a call; give up (CANCEL) when it is not answered within `setup_timeout`.
    Call {
        /// The SIP URI.
        target: Template,
        /// How long the call may take to be answered.
        setup_timeout: Duration,
    },
    /// Wait for a call event.
    Expect {
        /// Which.
        what: Expectation,
        /// How long.
        within: Duration,
    },
    /// Answer the offered call with the leg's current source and recording.
    Answer,
    /// Refuse the offered call.
    Reject {
        /// Final status, 300..=699.
        status: u16,
    },
    /// What the next `call` or `answer` sends.
    Play(Source),
    /// Where the next `call` or `answer` records what it receives.
    Record(Template),
    /// Send RFC 4733 digits.
    SendDtmf {
        /// The digits.
        digits: Template,
    },
    /// Receive these digits.
    ExpectDtmf {
        /// The digits.
        digits: Template,
        /// How long.
        within: Duration,
    },
    /// Branch on received digits.
    OnDtmf {
        /// Digit strings and their steps.
        branches: Vec<(String, Vec<Step>)>,
        /// Steps for digits that match no branch (else the step fails).
        other: Option<Vec<Step>>,
        /// Steps when no digit arrives within `within` (else the step fails).
        none: Option<Vec<Step>>,
        /// How long to wait for digits.
        within: Duration,
    },
    /// Check what was received over the next `within` seconds (evaluated when the call ends).
    ExpectAudio {
        /// What to look for.
        check: AudioCheck,
        /// How many seconds of the window must match.
        duration: Duration,
        /// The window.
        within: Duration,
    },
    /// Sleep.
    Wait(Duration),
    /// Re-INVITE sendonly, wait for it to be accepted.
    Hold,
    /// Re-INVITE sendrecv, wait for it to be accepted.
    Resume,
    /// Send silence instead of the source.
    Mute,
    /// Send the source again.
    Unmute,
    /// End the call and wait for it to be over.
    Hangup,
    /// Wait for the remote party to end the call.
    ExpectHangup {
        /// How long.
        within: Duration,
    },
    /// Wait until the leg's account is registered (the phone registers it at start).
    Register {
        /// How long.
        within: Duration,
    },
    /// Send an instant message (SIP MESSAGE, RFC 3428), outside any call.
    SendMessage {
        /// Its recipient, a SIP URI.
        to: Template,
        /// The text.
        text: Template,
        /// The final status expected; `None` is any 2xx.
        status: Option<u16>,
    },
    /// Receive an instant message: the next one to arrive (or already queued) must match.
    ExpectMessage {
        /// What its text must be.
        text: TextMatch,
        /// A substring its sender (From) must contain.
        from: Option<Template>,
        /// How long.
        within: Duration,
    },
    /// Blind transfer (RFC 3515 REFER): ask the remote party of the answered call to
    /// call `target`, and wait for the transfer's final status.
    Transfer {
        /// Where the remote party is sent, a SIP URI.
        target: Template,
        /// The final status expected (REFER refused, or the NOTIFYed status of the
        /// transferee's call to the target); `None` is any 2xx.
        status: Option<u16>,
        /// How long the transfer may take.
        within: Duration,
    },
    /// Being transferred: the remote party's REFER leads to our call to its target
    /// being answered; that call becomes the leg's call.
    ExpectTransfer {
        /// The `Refer-To` target we must be sent to, if checked.
        target: Option<Template>,
        /// How long.
        within: Duration,
    },
    /// Repeat steps.
    Loop {
        /// How many times.
        count: u32,
        /// The steps.
        steps: Vec<Step>,
    },
}

/// What the text of an expected message must be.
#[derive(Debug, Clone, PartialEq)]
pub enum TextMatch {
    /// Any text.
    Any,
    /// Exactly this.
    Exact(Template),
    /// Containing this.
    Contains(Template),
}

/// A call event `expect` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// A call arrives (it becomes the leg's call).
    Incoming,
    /// 180 or 183.
    Ringing,
    /// 200 and ACK.
    Answered,
    /// A final or provisional status: 180/183 (ringing), 200 (answered), 300-699 (refused).
    Status(u16),
}

/// What a call plays.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Digital silence.
    Silence,
    /// A sine tone.
    Tone(f32),
    /// A WAV file, looped.
    Wav(PathBuf),
    /// Nothing (`play = "none"`): no RTP or RTCP is sent (load tests at thousands of
    /// calls; see [`peerline_ua::AudioSource::NoRtp`]).
    None,
}

/// What `expect_audio` looks for in a window of received audio.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioCheck {
    /// A tone at this frequency (±5 Hz).
    Tone(f32),
    /// Level below -45 dBFS.
    Silence,
    /// Energy that comes and goes like speech, not a steady tone.
    SpeechLike,
    /// The received audio matches a reference recording.
    CorrelatesWith {
        /// The reference.
        wav: PathBuf,
        /// Minimum normalised cross-correlation, 0..1.
        threshold: f32,
    },
}

/// A string with `${name}` references, resolved when the step runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Vec<Part>);

/// A piece of a [`Template`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// `${row.COLUMN}`: a column of the call's CSV row.
    Row(String),
    /// `${leg.NAME.uri}`: the SIP URI of another leg's phone.
    LegUri(String),
    /// `${leg.NAME.addr}`: another leg's SIP address, `IP:port`.
    LegAddr(String),
    /// `${call.index}`: the call's number (0 outside load mode).
    CallIndex,
}

impl Template {
    /// Literal text, no references.
    pub fn text(s: impl Into<String>) -> Self {
        Template(vec![Part::Text(s.into())])
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Part::Text(t) => write!(f, "{t}")?,
                Part::Row(c) => write!(f, "${{row.{c}}}")?,
                Part::LegUri(l) => write!(f, "${{leg.{l}.uri}}")?,
                Part::LegAddr(l) => write!(f, "${{leg.{l}.addr}}")?,
                Part::CallIndex => write!(f, "${{call.index}}")?,
            }
        }
        Ok(())
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Call { target, .. } => write!(f, "call {target}"),
            Action::Expect { what, within } => {
                let what = match what {
                    Expectation::Incoming => "incoming".to_string(),
                    Expectation::Ringing => "ringing".to_string(),
                    Expectation::Answered => "answered".to_string(),
                    Expectation::Status(s) => format!("status {s}"),
                };
                write!(f, "expect {what} within {}", secs(*within))
            }
            Action::Answer => write!(f, "answer"),
            Action::Reject { status } => write!(f, "reject {status}"),
            Action::Play(s) => write!(f, "play {s}"),
            Action::Record(p) => write!(f, "record {p}"),
            Action::SendDtmf { digits } => write!(f, "send_dtmf {digits}"),
            Action::ExpectDtmf { digits, within } => {
                write!(f, "expect_dtmf {digits} within {}", secs(*within))
            }
            Action::OnDtmf {
                branches, within, ..
            } => {
                let keys: Vec<&str> = branches.iter().map(|(k, _)| k.as_str()).collect();
                write!(f, "on_dtmf [{}] within {}", keys.join(", "), secs(*within))
            }
            Action::ExpectAudio {
                check,
                duration,
                within,
            } => write!(
                f,
                "expect_audio {check} for {} within {}",
                secs(*duration),
                secs(*within)
            ),
            Action::Wait(d) => write!(f, "wait {}", secs(*d)),
            Action::Hold => write!(f, "hold"),
            Action::Resume => write!(f, "resume"),
            Action::Mute => write!(f, "mute"),
            Action::Unmute => write!(f, "unmute"),
            Action::Hangup => write!(f, "hangup"),
            Action::ExpectHangup { within } => {
                write!(f, "expect_hangup within {}", secs(*within))
            }
            Action::Register { within } => write!(f, "register within {}", secs(*within)),
            Action::SendMessage { to, text, .. } => {
                write!(f, "send_message {:?} to {to}", text.to_string())
            }
            Action::ExpectMessage { text, from, within } => {
                write!(f, "expect_message {text}")?;
                if let Some(from) = from {
                    write!(f, " from {from}")?;
                }
                write!(f, " within {}", secs(*within))
            }
            Action::Transfer {
                target,
                status,
                within,
            } => {
                write!(f, "transfer to {target}")?;
                match status {
                    Some(s) => write!(f, " ending {s}")?,
                    None => write!(f, " ending 2xx")?,
                }
                write!(f, " within {}", secs(*within))
            }
            Action::ExpectTransfer { target, within } => {
                write!(f, "expect_transfer")?;
                if let Some(t) = target {
                    write!(f, " to {t}")?;
                }
                write!(f, " within {}", secs(*within))
            }
            Action::Loop { count, steps } => {
                write!(f, "loop {count} × {} steps", steps.len())
            }
        }
    }
}

impl fmt::Display for TextMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextMatch::Any => write!(f, "any text"),
            TextMatch::Exact(t) => write!(f, "{:?}", t.to_string()),
            TextMatch::Contains(t) => write!(f, "containing {:?}", t.to_string()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Silence => write!(f, "silence"),
            Source::Tone(hz) => write!(f, "tone {hz} Hz"),
            Source::Wav(p) => write!(f, "wav {}", p.display()),
            Source::None => write!(f, "none (no RTP)"),
        }
    }
}

impl fmt::Display for AudioCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioCheck::Tone(hz) => write!(f, "tone {hz} Hz"),
            AudioCheck::Silence => write!(f, "silence"),
            AudioCheck::SpeechLike => write!(f, "speech_like"),
            AudioCheck::CorrelatesWith { wav, threshold } => {
                write!(f, "correlates_with {} ≥ {threshold}", wav.display())
            }
        }
    }
}

/// Steps the runner refuses for now, and why.
pub const NOT_SUPPORTED: &[(&str, &str)] = &[];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_WITHIN: Duration = Duration::from_secs(10);
const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_SECS: f64 = 86_400.0;

impl Scenario {
    /// Reads and checks a scenario file; `vars` override its `[vars]`.
    pub fn load(path: &Path, vars: &BTreeMap<String, String>) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, vars)
    }

    /// Checks scenario text. `path` names it in errors; relative files it names (`wav`,
    /// `[csv] file`) are found next to it.
    pub fn parse(
        text: &str,
        path: &Path,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, ScenarioError> {
        let root = tree::parse(text).map_err(|e| ScenarioError::Invalid {
            path: path.to_path_buf(),
            line: e.line,
            message: format!("not valid TOML: {}", e.message),
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let mut p = Parser {
            path: path.to_path_buf(),
            dir,
            vars: BTreeMap::new(),
            columns: Vec::new(),
            legs: Vec::new(),
        };
        p.scenario(&root, vars)
    }
}

struct Parser {
    path: PathBuf,
    dir: PathBuf,
    vars: BTreeMap<String, String>,
    columns: Vec<String>,
    legs: Vec<String>,
}

type R<T> = Result<T, ScenarioError>;

/// Where a leg stands at a point of its steps, for checking step order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Idle,
    Offered,
    Up,
}

fn table(node: &Node) -> Option<&[Entry]> {
    match &node.kind {
        Kind::Table(t) => Some(t),
        _ => None,
    }
}

fn get<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.key == key)
}

impl Parser {
    fn err<T>(&self, line: usize, message: impl Into<String>) -> R<T> {
        Err(ScenarioError::Invalid {
            path: self.path.clone(),
            line,
            message: message.into(),
        })
    }

    fn only_keys(&self, entries: &[Entry], allowed: &[&str], what: &str) -> R<()> {
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                return self.err(
                    e.line,
                    format!(
                        "unknown key `{}` in {what} (allowed: {})",
                        e.key,
                        allowed.join(", ")
                    ),
                );
            }
        }
        Ok(())
    }

    fn table<'a>(&self, node: &'a Node, what: &str) -> R<&'a [Entry]> {
        match table(node) {
            Some(t) => Ok(t),
            None => self.err(
                node.line,
                format!("{what} must be a table, not {}", node.kind.type_name()),
            ),
        }
    }

    fn array<'a>(&self, node: &'a Node, what: &str) -> R<&'a [Node]> {
        match &node.kind {
            Kind::Array(a) => Ok(a),
            k => self.err(
                node.line,
                format!("{what} must be an array, not {}", k.type_name()),
            ),
        }
    }

    /// A string with `[vars]` substituted; other references are kept for run time.
    fn template(&self, node: &Node, what: &str) -> R<Template> {
        let s = match &node.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(i) => i.to_string(),
            k => {
                return self.err(
                    node.line,
                    format!("{what} must be a string, not {}", k.type_name()),
                )
            }
        };
        self.template_str(&s, node.line, what)
    }

    fn template_str(&self, s: &str, line: usize, what: &str) -> R<Template> {
        self.template_at(s, line, what, 0)
    }

    fn template_at(&self, s: &str, line: usize, what: &str, depth: u8) -> R<Template> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return self.err(line, format!("{what}: `${{` without a closing `}}`"));
            };
            let name = after[..end].trim();
            rest = &after[end + 1..];
            if let Some(v) = self.vars.get(name) {
                if !v.contains("${") {
                    text.push_str(v);
                    continue;
                }
                if depth > 0 {
                    return self.err(
                        line,
                        format!(
                            "{what}: `${{{name}}}`: a variable cannot refer to another variable"
                        ),
                    );
                }
                for part in self.template_at(v, line, what, 1)?.0 {
                    match part {
                        Part::Text(t) => text.push_str(&t),
                        other => {
                            if !text.is_empty() {
                                parts.push(Part::Text(std::mem::take(&mut text)));
                            }
                            parts.push(other);
                        }
                    }
                }
                continue;
            }
            let part = if let Some(col) = name.strip_prefix("row.") {
                if !self.columns.iter().any(|c| c == col) {
                    return self.err(
                        line,
                        if self.columns.is_empty() {
                            format!("{what}: `${{{name}}}` but the scenario has no [csv] file")
                        } else {
                            format!(
                                "{what}: `${{{name}}}`: the CSV file has no column `{col}` (columns: {})",
                                self.columns.join(", ")
                            )
                        },
                    );
                }
                Part::Row(col.to_string())
            } else if let Some((leg, field)) = name
                .strip_prefix("leg.")
                .and_then(|l| l.rsplit_once('.'))
                .filter(|(_, f)| *f == "uri" || *f == "addr")
            {
                if !self.legs.iter().any(|l| l == leg) {
                    return self.err(
                        line,
                        format!(
                            "{what}: `${{{name}}}`: there is no leg `{leg}` (legs: {})",
                            self.legs.join(", ")
                        ),
                    );
                }
                if field == "uri" {
                    Part::LegUri(leg.to_string())
                } else {
                    Part::LegAddr(leg.to_string())
                }
            } else if name == "call.index" {
                Part::CallIndex
            } else {
                return self.err(
                    line,
                    format!(
                        "{what}: unknown variable `${{{name}}}` (define it in [vars], or use row.COLUMN, leg.NAME.uri, leg.NAME.addr, call.index)"
                    ),
                );
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
        }
        text.push_str(rest);
        if !text.is_empty() || parts.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    /// A string that must be fully known when the scenario is checked (only `[vars]`).
    fn static_str(&self, node: &Node, what: &str) -> R<String> {
        let t = self.template(node, what)?;
        match t.0.as_slice() {
            [Part::Text(s)] => Ok(s.clone()),
            _ => self.err(
                node.line,
                format!("{what}: only [vars] can be used here, not `{t}`"),
            ),
        }
    }

    fn number(&self, node: &Node, what: &str) -> R<f64> {
        let v = match &node.kind {
            Kind::Int(i) => *i as f64,
            Kind::Float(f) => *f,
            Kind::Str(_) => {
                let s = self.static_str(node, what)?;
                match s.trim().parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => return self.err(node.line, format!("{what}: {s:?} is not a number")),
                }
            }
            k => {
                return self.err(
                    node.line,
                    format!("{what} must be a number, not {}", k.type_name()),
                )
            }
        };
        if !v.is_finite() {
            return self.err(node.line, format!("{what} must be a finite number"));
        }
        Ok(v)
    }

    fn integer(&self, node: &Node, what: &str, min: i64, max: i64) -> R<i64> {
        let v = self.number(node, what)?;
        if v.fract() != 0.0 || v < min as f64 || v > max as f64 {
            return self.err(
                node.line,
                format!("{what} must be a whole number from {min} to {max}, not {v}"),
            );
        }
        Ok(v as i64)
    }

    fn seconds(&self, node: &Node, what: &str) -> R<Duration> {
        let v = self.number(node, what)?;
        if !(0.0..=MAX_SECS).contains(&v) {
            return self.err(
                node.line,
                format!("{what} must be between 0 and {MAX_SECS} seconds, not {v}"),
            );
        }
        Ok(Duration::from_secs_f64(v))
    }

    fn opt_seconds(&self, entries: &[Entry], key: &str, default: Duration) -> R<Duration> {
        match get(entries, key) {
            Some(e) => self.seconds(&e.value, key),
            None => Ok(default),
        }
    }

    fn status(&self, node: &Node, what: &str, min: i64) -> R<u16> {
        Ok(self.integer(node, what, min, 699)? as u16)
    }

    fn wav(&self, node: &Node, what: &str) -> R<PathBuf> {
        let s = self.static_str(node, what)?;
        let p = self.dir.join(&s);
        if let Err(e) = peerline_audio::read_wav(&p) {
            return self.err(node.line, format!("{what}: {}: {e}", p.display()));
        }
        Ok(p)
    }

    /// Codec names, checked by asking the phone's own config parser (so codecs the phone
    /// learns are accepted here without a change).
    fn codecs(&self, node: &Node) -> R<Vec<String>> {
        let items = self.array(node, "codecs")?;
        if items.is_empty() {
            return self.err(node.line, "codecs: at least one codec is needed");
        }
        items
            .iter()
            .map(|n| match &n.kind {
                Kind::Str(s) => {
                    let probe = format!("[media]\ncodecs = [{s:?}]\n");
                    match peerline_ua::Config::parse(&probe, &self.path) {
                        Ok(_) => Ok(s.clone()),
                        Err(_) => self.err(
                            n.line,
                            format!("codecs: the phone does not know {s:?} (e.g. \"PCMU\", \"PCMA\", \"opus\"; names are case-sensitive)"),
                        ),
                    }
                }
                k => self.err(n.line, format!("codecs: a codec name is a string, not {}", k.type_name())),
            })
            .collect()
    }

    fn scenario(&mut self, root: &Node, overrides: &BTreeMap<String, String>) -> R<Scenario> {
        let top = self.table(root, "the scenario")?;
        self.only_keys(
            top,
            &[
                "name",
                "description",
                "timeout",
                "vars",
                "csv",
                "load",
                "leg",
            ],
            "the scenario",
        )?;
        // [vars] first: everything else may use them.
        if let Some(v) = get(top, "vars") {
            for e in self.table(&v.value, "[vars]")? {
                let value = match &e.value.kind {
                    Kind::Str(s) => s.clone(),
                    Kind::Int(i) => i.to_string(),
                    Kind::Float(f) => f.to_string(),
                    Kind::Bool(b) => b.to_string(),
                    k => {
                        return self.err(
                            e.line,
                            format!(
                                "[vars] {}: a variable is a string or a number, not {}",
                                e.key,
                                k.type_name()
                            ),
                        )
                    }
                };
                if value.contains("${") {
                    return self.err(
                        e.line,
                        format!(
                            "[vars] {}: variables cannot refer to other variables",
                            e.key
                        ),
                    );
                }
                self.vars.insert(e.key.clone(), value);
            }
        }
        for (k, v) in overrides {
            self.vars.insert(k.clone(), v.clone());
        }
        let name = match get(top, "name") {
            Some(e) => self.static_str(&e.value, "name")?,
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into()),
        };
        let description = match get(top, "description") {
            Some(e) => Some(self.static_str(&e.value, "description")?),
            None => None,
        };
        let timeout = self.opt_seconds(top, "timeout", DEFAULT_RUN_TIMEOUT)?;
        let rows = match get(top, "csv") {
            Some(e) => Some(self.csv(&e.value)?),
            None => None,
        };
        if let Some(r) = &rows {
            self.columns = r.columns.clone();
        }
        let Some(legs_entry) = get(top, "leg") else {
            return self.err(1, "no legs: add at least one [[leg]] with name and steps");
        };
        let leg_nodes = self.array(&legs_entry.value, "leg")?;
        if leg_nodes.is_empty() {
            return self.err(legs_entry.line, "no legs: add at least one [[leg]]");
        }
        // Names first, so legs can refer to each other in any order.
        for n in leg_nodes {
            let t = self.table(n, "[[leg]]")?;
            let Some(e) = get(t, "name") else {
                return self.err(n.line, "[[leg]] without a `name`");
            };
            let name = self.static_str(&e.value, "leg name")?;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return self.err(
                    e.line,
                    format!("leg name {name:?}: use letters, digits, `_` and `-`"),
                );
            }
            if self.legs.contains(&name) {
                return self.err(e.line, format!("two legs are named `{name}`"));
            }
            self.legs.push(name);
        }
        let mut legs = Vec::new();
        for (i, n) in leg_nodes.iter().enumerate() {
            legs.push(self.leg(n, self.legs[i].clone())?);
        }
        let load = match get(top, "load") {
            Some(e) => Some(self.load(&e.value, &legs)?),
            None => None,
        };
        Ok(Scenario {
            path: self.path.clone(),
            name,
            description,
            timeout,
            vars: self.vars.clone(),
            rows,
            legs,
            load,
        })
    }

    fn csv(&self, node: &Node) -> R<Rows> {
        let t = self.table(node, "[csv]")?;
        self.only_keys(t, &["file", "delimiter"], "[csv]")?;
        let Some(file) = get(t, "file") else {
            return self.err(node.line, "[csv] needs `file`");
        };
        let delimiter = match get(t, "delimiter") {
            Some(e) => {
                let d = self.static_str(&e.value, "delimiter")?;
                match d.as_bytes() {
                    [b] if d.is_ascii() => *b,
                    _ => return self.err(e.line, "delimiter must be one ASCII character"),
                }
            }
            None => b',',
        };
        let rel = self.static_str(&file.value, "file")?;
        let path = self.dir.join(rel);
        let mut reader = match csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_path(&path)
        {
            Ok(r) => r,
            Err(e) => return self.err(file.line, format!("{}: {e}", path.display())),
        };
        let columns: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(str::to_string).collect(),
            Err(e) => return self.err(file.line, format!("{}: {e}", path.display())),
        };
        if columns.iter().any(String::is_empty) {
            return self.err(
                file.line,
                format!("{}: the first line must name every column", path.display()),
            );
        }
        let mut rows = Vec::new();
        for r in reader.records() {
            match r {
                Ok(r) => rows.push(r.iter().map(str::to_string).collect()),
                Err(e) => return self.err(file.line, format!("{}: {e}", path.display())),
            }
        }
        if rows.is_empty() {
            return self.err(
                file.line,
                format!("{}: no rows after the header", path.display()),
            );
        }
        Ok(Rows { columns, rows })
    }

    fn load(&self, node: &Node, legs: &[Leg]) -> R<Load> {
        let t = self.table(node, "[load]")?;
        self.only_keys(
            t,
            &["calls", "concurrency", "rate", "ramp_up_secs", "leg"],
            "[load]",
        )?;
        let Some(calls) = get(t, "calls") else {
            return self.err(node.line, "[load] needs `calls` (how many in total)");
        };
        let calls = self.integer(&calls.value, "calls", 1, 10_000_000)? as u32;
        let concurrency = match get(t, "concurrency") {
            Some(e) => self.integer(&e.value, "concurrency", 1, 100_000)? as u32,
            None => calls.min(100),
        };
        let rate = match get(t, "rate") {
            Some(e) => {
                let r = self.number(&e.value, "rate")?;
                if !(r > 0.0 && r <= 100_000.0) {
                    return self.err(
                        e.line,
                        format!("rate must be above 0 and at most 100000 calls/s, not {r}"),
                    );
                }
                Some(r)
            }
            None => None,
        };
        let ramp_up = self.opt_seconds(t, "ramp_up_secs", Duration::ZERO)?;
        if !ramp_up.is_zero() && rate.is_none() {
            let line = get(t, "ramp_up_secs").map(|e| e.line).unwrap_or(node.line);
            return self.err(line, "ramp_up_secs needs a `rate` to ramp up to");
        }
        let leg = match get(t, "leg") {
            Some(e) => {
                let name = self.static_str(&e.value, "leg")?;
                match legs.iter().position(|l| l.name == name) {
                    Some(i) => i,
                    None => {
                        return self.err(e.line, format!("[load] leg: there is no leg `{name}`"))
                    }
                }
            }
            None => {
                let callers: Vec<usize> = (0..legs.len())
                    .filter(|&i| {
                        legs[i]
                            .steps
                            .iter()
                            .any(|s| matches!(s.action, Action::Call { .. }))
                    })
                    .collect();
                match callers.as_slice() {
                    [i] => *i,
                    _ => {
                        return self.err(
                            node.line,
                            "[load]: say which leg places the calls with `leg = \"NAME\"`",
                        )
                    }
                }
            }
        };
        if !legs[leg]
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::Call { .. }))
        {
            return self.err(
                legs[leg].line,
                format!("[load]: leg `{}` places no call", legs[leg].name),
            );
        }
        for (i, l) in legs.iter().enumerate() {
            let answers = matches!(
                l.steps.first().map(|s| &s.action),
                Some(Action::Expect {
                    what: Expectation::Incoming,
                    ..
                })
            );
            if i != leg && !answers {
                return self.err(
                    l.line,
                    format!("[load]: leg `{}` must start with {{ expect = \"incoming\" }}: in load mode the other legs answer the load leg's calls, one task per call", l.name),
                );
            }
        }
        Ok(Load {
            leg,
            calls,
            concurrency,
            rate,
            ramp_up,
            line: node.line,
        })
    }

    fn leg(&self, node: &Node, name: String) -> R<Leg> {
        let t = self.table(node, "[[leg]]")?;
        self.only_keys(
            t,
            &[
                "name",
                "user",
                "listen",
                "rtp_ports",
                "codecs",
                "ptime",
                "srtp",
                "srtp_keying",
                "allow_sdes_without_tls",
                "account",
                "auth",
                "steps",
            ],
            "[[leg]]",
        )?;
        let line = get(t, "name").map(|e| e.line).unwrap_or(node.line);
        let user = match get(t, "user") {
            Some(e) => {
                let u = self.static_str(&e.value, "user")?;
                if u.is_empty()
                    || !u
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'+".contains(c))
                {
                    return self.err(e.line, format!("user {u:?} is not a plain SIP user name"));
                }
                u
            }
            None => name.clone(),
        };
        let listen = match get(t, "listen") {
            Some(e) => {
                let s = self.static_str(&e.value, "listen")?;
                match s.parse::<SocketAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        return self.err(e.line, format!("listen: {s:?} is not an IP:port address"))
                    }
                }
            }
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let rtp_ports = match get(t, "rtp_ports") {
            Some(e) => {
                let s = self.static_str(&e.value, "rtp_ports")?;
                let ok = s
                    .split_once('-')
                    .and_then(|(a, b)| {
                        Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
                    })
                    .is_some_and(|(a, b)| a > 0 && a < b);
                if !ok {
                    return self.err(e.line, format!("rtp_ports: {s:?} is not \"LOW-HIGH\""));
                }
                Some(s)
            }
            None => None,
        };
        let mut codecs = match get(t, "codecs") {
            Some(e) => Some(self.codecs(&e.value)?),
            None => None,
        };
        let ptime = match get(t, "ptime") {
            Some(e) => {
                let p = self.integer(&e.value, "ptime", 10, 120)?;
                if p % 10 != 0 {
                    return self.err(e.line, format!("ptime: {p} ms is not one of 10, 20, … 120"));
                }
                Some(p as u32)
            }
            None => None,
        };
        let mut media = Vec::new();
        for key in ["srtp", "srtp_keying"] {
            if let Some(e) = get(t, key) {
                let v = self.static_str(&e.value, key)?;
                let probe = format!("[media]\n{key} = {v:?}\n");
                if let Err(err) = peerline_ua::Config::parse(&probe, &self.path) {
                    let why = err.to_string();
                    let why = why
                        .split_once(": ")
                        .map(|(_, w)| w.to_string())
                        .unwrap_or(why);
                    return self.err(e.line, format!("{key}: {why}"));
                }
                media.push((key.to_string(), v));
            }
        }
        let allow_sdes_without_tls = match get(t, "allow_sdes_without_tls") {
            Some(e) => match &e.value.kind {
                Kind::Bool(b) => *b,
                _ => return self.err(e.line, "allow_sdes_without_tls: true or false"),
            },
            None => false,
        };
        let Some(steps) = get(t, "steps") else {
            return self.err(line, format!("leg `{name}` has no `steps`"));
        };
        let mut call_codecs = Vec::new();
        let steps = self.steps(&steps.value, &mut call_codecs)?;
        if steps.is_empty() {
            return self.err(line, format!("leg `{name}` has no steps"));
        }
        for (line, c) in call_codecs {
            match &codecs {
                Some(existing) if *existing != c => {
                    return self.err(
                        line,
                        "not supported yet: different codecs for calls of one leg (the phone takes its codecs from its config; use one codec list per leg)",
                    )
                }
                _ => codecs = Some(c),
            }
        }
        let account = match get(t, "account") {
            Some(e) => Some(self.account(&e.value)?),
            None => None,
        };
        let auth = match get(t, "auth") {
            Some(e) => Some(self.leg_auth(&e.value)?),
            None => None,
        };
        self.check_register(&steps, account.as_ref(), &name)?;
        let mut state = CallState::Idle;
        self.check_order(&steps, &mut state, &name)?;
        let needs_recording = any_step(&steps, &|a| matches!(a, Action::ExpectAudio { .. }));
        Ok(Leg {
            name,
            line,
            user,
            listen,
            rtp_ports,
            codecs,
            ptime,
            media,
            allow_sdes_without_tls,
            account,
            auth,
            steps,
            needs_recording,
        })
    }

    fn steps(&self, node: &Node, codecs: &mut Vec<(usize, Vec<String>)>) -> R<Vec<Step>> {
        self.array(node, "steps")?
            .iter()
            .map(|n| self.step(n, codecs))
            .collect()
    }

    fn step(&self, node: &Node, codecs: &mut Vec<(usize, Vec<String>)>) -> R<Step> {
        let line = node.line;
        let (action_key, value, entries): (&str, Option<&Node>, &[Entry]) = match &node.kind {
            Kind::Str(s) => (s.as_str(), None, &[]),
            Kind::Table(entries) => {
                let Some(first) = entries.iter().find(|e| {
                    ACTIONS.contains(&e.key.as_str())
                        || NOT_SUPPORTED.iter().any(|(k, _)| *k == e.key)
                }) else {
                    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
                    return self.err(
                        line,
                        format!(
                            "a step needs one action ({}), found only: {}",
                            ACTIONS.join(", "),
                            keys.join(", ")
                        ),
                    );
                };
                if let Some(second) = entries
                    .iter()
                    .find(|e| e.key != first.key && ACTIONS.contains(&e.key.as_str()))
                {
                    return self.err(
                        second.line,
                        format!(
                            "one action per step: `{}` and `{}` (split them into two steps)",
                            first.key, second.key
                        ),
                    );
                }
                (first.key.as_str(), Some(&first.value), entries.as_slice())
            }
            k => {
                return self.err(
                    line,
                    format!(
                        "a step is a string like \"hangup\" or a table like {{ wait = 1 }}, not {}",
                        k.type_name()
                    ),
                )
            }
        };
        if let Some((_, why)) = NOT_SUPPORTED.iter().find(|(k, _)| *k == action_key) {
            return self.err(line, format!("`{action_key}` is not supported yet: {why}"));
        }
        if !ACTIONS.contains(&action_key) {
            return self.err(
                line,
                format!(
                    "unknown step `{action_key}` (steps: {})",
                    ACTIONS.join(", ")
                ),
            );
        }
        let modifiers: &[&str] = match action_key {
            "call" => &["timeout", "codecs"],
            "expect" | "expect_dtmf" | "expect_hangup" => &["within"],
            "on_dtmf" => &["within"],
            "expect_audio" => &["for", "within", "threshold"],
            "loop" => &["count"],
            "register" => &["within"],
            "send_message" => &["to", "status", "timeout"],
            "expect_message" => &["from", "within"],
            "transfer" => &["expect_status", "timeout"],
            "expect_transfer" => &["within"],
            _ => &["timeout"],
        };
        for e in entries {
            if e.key != action_key && !modifiers.contains(&e.key.as_str()) {
                return self.err(
                    e.line,
                    format!(
                        "`{}` does not apply to `{action_key}`{}",
                        e.key,
                        if modifiers.is_empty() {
                            String::new()
                        } else {
                            format!(" (it takes: {})", modifiers.join(", "))
                        }
                    ),
                );
            }
        }
        let need = |what: &str| -> R<&Node> {
            match value {
                Some(v) => Ok(v),
                None => self.err(line, format!("`{action_key}` needs a value: {what}")),
            }
        };
        let no_value = || -> R<()> {
            match value.map(|v| &v.kind) {
                None | Some(Kind::Bool(true)) => Ok(()),
                Some(Kind::Table(t)) if t.is_empty() => Ok(()),
                Some(_) => self.err(
                    line,
                    format!("`{action_key}` takes no value: write \"{action_key}\" or {{ {action_key} = true }}"),
                ),
            }
        };
        let timeout = self.opt_seconds(entries, "timeout", DEFAULT_TIMEOUT)?;
        let within = self.opt_seconds(entries, "within", DEFAULT_WITHIN)?;
        let action = match action_key {
            "call" => {
                let target =
                    self.template(need("a SIP URI, e.g. \"${leg.callee.uri}\"")?, "call")?;
                if let Some(e) = get(entries, "codecs") {
                    codecs.push((e.line, self.codecs(&e.value)?));
                }
                if let [Part::Text(t)] = target.0.as_slice() {
                    if !(t.starts_with("sip:") || t.starts_with("sips:")) || !t.contains('@') {
                        return self.err(
                            line,
                            format!("call: {t:?} is not a SIP URI like sip:user@host:port"),
                        );
                    }
                }
                Action::Call {
                    target,
                    setup_timeout: self.opt_seconds(entries, "timeout", Duration::from_secs(30))?,
                }
            }
            "expect" => {
                let v = need("\"incoming\", \"ringing\", \"answered\" or a status like 486")?;
                let what = match &v.kind {
                    Kind::Str(s) if s == "incoming" => Expectation::Incoming,
                    Kind::Str(s) if s == "ringing" => Expectation::Ringing,
                    Kind::Str(s) if s == "answered" => Expectation::Answered,
                    Kind::Int(_) => Expectation::Status(self.status(v, "expect status", 180)?),
                    Kind::Table(t) => {
                        self.only_keys(t, &["status"], "expect")?;
                        match get(t, "status") {
                            Some(e) => {
                                Expectation::Status(self.status(&e.value, "expect status", 180)?)
                            }
                            None => return self.err(
                                v.line,
                                "expect: write { expect = { status = 486 } } or { expect = 486 }",
                            ),
                        }
                    }
                    _ => {
                        return self.err(
                            v.line,
                            "expect: \"incoming\", \"ringing\", \"answered\" or a status like 486",
                        )
                    }
                };
                if let Expectation::Status(s) = what {
                    if !(s == 180 || s == 183 || s == 200 || (300..=699).contains(&s)) {
                        return self.err(
                            v.line,
                            format!(
                                "expect status {s}: the phone reports 180, 183, 200 and 300-699"
                            ),
                        );
                    }
                }
                Action::Expect { what, within }
            }
            "answer" => {
                no_value()?;
                Action::Answer
            }
            "reject" => Action::Reject {
                status: self.status(need("a status, e.g. 486")?, "reject", 300)?,
            },
            "play" => Action::Play(self.source(need(
                "{ tone = 440 }, { wav = \"prompt.wav\" } or \"silence\"",
            )?)?),
            "record" => Action::Record(self.template(need("a WAV path")?, "record")?),
            "send_dtmf" => {
                let digits = self.template(need("digits, e.g. \"123#\"")?, "send_dtmf")?;
                self.check_digits(&digits, line)?;
                Action::SendDtmf { digits }
            }
            "expect_dtmf" => {
                let digits = self.template(need("digits, e.g. \"123#\"")?, "expect_dtmf")?;
                self.check_digits(&digits, line)?;
                Action::ExpectDtmf { digits, within }
            }
            "on_dtmf" => {
                let t = self.table(need("a table of digits to steps")?, "on_dtmf")?;
                let mut branches = Vec::new();
                let (mut other, mut none) = (None, None);
                for e in t {
                    let steps = self.steps(&e.value, codecs)?;
                    match e.key.as_str() {
                        "other" => other = Some(steps),
                        "timeout" => none = Some(steps),
                        k => {
                            if k.is_empty() || !k.chars().all(is_dtmf) {
                                return self.err(e.line, format!("on_dtmf: {k:?} is not DTMF digits (0-9 * # A-D), \"other\" or \"timeout\""));
                            }
                            let k = k.to_ascii_uppercase();
                            if branches.iter().any(|(b, _): &(String, Vec<Step>)| {
                                b.starts_with(&k) || k.starts_with(b.as_str())
                            }) {
                                return self.err(e.line, format!("on_dtmf: {k:?} overlaps another branch (one would never be chosen)"));
                            }
                            branches.push((k, steps));
                        }
                    }
                }
                if branches.is_empty() {
                    return self.err(line, "on_dtmf needs at least one digit branch");
                }
                Action::OnDtmf {
                    branches,
                    other,
                    none,
                    within,
                }
            }
            "expect_audio" => {
                let v = need("{ tone = 440 }, \"silence\", \"speech_like\" or { correlates_with = \"ref.wav\" }")?;
                let check = match &v.kind {
                    Kind::Str(s) if s == "silence" => AudioCheck::Silence,
                    Kind::Str(s) if s == "speech_like" => AudioCheck::SpeechLike,
                    Kind::Table(t) => {
                        self.only_keys(t, &["tone", "correlates_with"], "expect_audio")?;
                        match t.as_slice() {
                            [e] if e.key == "tone" => AudioCheck::Tone(self.frequency(&e.value)?),
                            [e] if e.key == "correlates_with" => {
                                let threshold = match get(entries, "threshold") {
                                    Some(th) => {
                                        let x = self.number(&th.value, "threshold")?;
                                        if !(0.0..=1.0).contains(&x) {
                                            return self.err(th.line, "threshold is between 0 and 1");
                                        }
                                        x as f32
                                    }
                                    None => 0.6,
                                };
                                AudioCheck::CorrelatesWith { wav: self.wav(&e.value, "correlates_with")?, threshold }
                            }
                            _ => return self.err(v.line, "expect_audio: one of { tone = HZ } or { correlates_with = \"ref.wav\" }"),
                        }
                    }
                    _ => return self.err(v.line, "expect_audio: { tone = 440 }, \"silence\", \"speech_like\" or { correlates_with = \"ref.wav\" }"),
                };
                if get(entries, "threshold").is_some()
                    && !matches!(check, AudioCheck::CorrelatesWith { .. })
                {
                    let l = get(entries, "threshold").map(|e| e.line).unwrap_or(line);
                    return self.err(l, "threshold only applies to correlates_with");
                }
                let duration = self.opt_seconds(entries, "for", Duration::from_secs(1))?;
                if duration < Duration::from_millis(200) {
                    return self.err(line, "expect_audio: `for` must be at least 0.2 s (audio is analysed in 100 ms blocks)");
                }
                let within = self.opt_seconds(entries, "within", duration)?;
                if within < duration {
                    return self.err(line, "expect_audio: `within` must be at least `for`");
                }
                Action::ExpectAudio {
                    check,
                    duration,
                    within,
                }
            }
            "wait" => Action::Wait(self.seconds(need("seconds")?, "wait")?),
            "hold" => {
                no_value()?;
                Action::Hold
            }
            "resume" => {
                no_value()?;
                Action::Resume
            }
            "mute" => {
                no_value()?;
                Action::Mute
            }
            "unmute" => {
                no_value()?;
                Action::Unmute
            }
            "hangup" => {
                no_value()?;
                Action::Hangup
            }
            "expect_hangup" => {
                no_value()?;
                Action::ExpectHangup { within }
            }
            "register" => {
                no_value()?;
                Action::Register { within }
            }
            "send_message" => self.send_message(need("the text")?, entries, line)?,
            "expect_message" => self.expect_message(value, entries, within)?,
            "transfer" => self.transfer(need("the target's SIP URI")?, entries, line)?,
            "expect_transfer" => self.expect_transfer(value, within)?,
            "loop" => {
                let steps = self.steps(need("an array of steps")?, codecs)?;
                if steps.is_empty() {
                    return self.err(line, "loop: no steps");
                }
                let count = match get(entries, "count") {
                    Some(e) => self.integer(&e.value, "count", 1, 1_000_000)? as u32,
                    None => return self.err(line, "loop needs `count`"),
                };
                Action::Loop { count, steps }
            }
            _ => return self.err(line, format!("unknown step `{action_key}`")),
        };
        Ok(Step {
            line,
            action,
            timeout,
        })
    }

    fn frequency(&self, node: &Node) -> R<f32> {
        let hz = self.number(node, "tone")?;
        if !(50.0..=20_000.0).contains(&hz) {
            return self.err(node.line, format!("tone: {hz} Hz is outside 50..20000 Hz"));
        }
        Ok(hz as f32)
    }

    fn source(&self, node: &Node) -> R<Source> {
        match &node.kind {
            Kind::Str(s) if s == "silence" => Ok(Source::Silence),
            Kind::Str(s) if s == "none" => Ok(Source::None),
            Kind::Table(t) => {
                self.only_keys(t, &["tone", "wav", "silence"], "play")?;
                match t.as_slice() {
                    [e] if e.key == "tone" => Ok(Source::Tone(self.frequency(&e.value)?)),
                    [e] if e.key == "wav" => Ok(Source::Wav(self.wav(&e.value, "wav")?)),
                    [e] if e.key == "silence" => Ok(Source::Silence),
                    _ => self.err(
                        node.line,
                        "play: one of { tone = HZ }, { wav = \"file.wav\" }, \"silence\" or \"none\"",
                    ),
                }
            }
            _ => self.err(
                node.line,
                "play: { tone = 440 }, { wav = \"file.wav\" }, \"silence\" or \"none\"",
            ),
        }
    }

    fn check_digits(&self, t: &Template, line: usize) -> R<()> {
        for p in &t.0 {
            if let Part::Text(s) = p {
                if let Some(c) = s.chars().find(|c| !is_dtmf(*c)) {
                    return self.err(line, format!("{c:?} is not a DTMF digit (0-9, *, #, A-D)"));
                }
            }
        }
        if let [Part::Text(s)] = t.0.as_slice() {
            if s.is_empty() {
                return self.err(line, "no digits");
            }
        }
        Ok(())
    }

    /// Checks that every step makes sense where it is: a call to act on, `play` and
    /// `record` before the call starts, `answer` after `expect incoming`.
    fn check_order(&self, steps: &[Step], state: &mut CallState, leg: &str) -> R<()> {
        for s in steps {
            let needs_call = |what: &str| -> R<()> {
                if *state == CallState::Up {
                    Ok(())
                } else {
                    self.err(s.line, format!("`{what}` needs a call, but leg `{leg}` has none here (place one with `call`, or `expect = \"incoming\"` then `answer`)"))
                }
            };
            match &s.action {
                Action::Call { .. } => {
                    if *state != CallState::Idle {
                        return self.err(s.line, format!("not supported yet: a second call while leg `{leg}` has one (one call per leg at a time; hang up first)"));
                    }
                    *state = CallState::Up;
                }
                Action::Expect {
                    what: Expectation::Incoming,
                    ..
                } => {
                    if *state != CallState::Idle {
                        return self.err(s.line, format!("`expect incoming` while leg `{leg}` already has a call (one call per leg at a time)"));
                    }
                    *state = CallState::Offered;
                }
                Action::Expect { what, .. } => {
                    needs_call("expect")?;
                    if matches!(what, Expectation::Status(s) if *s >= 300) {
                        *state = CallState::Idle;
                    }
                }
                Action::Answer | Action::Reject { .. } => {
                    if *state != CallState::Offered {
                        return self.err(s.line, format!("`{}` needs an offered call: put {{ expect = \"incoming\" }} before it", if matches!(s.action, Action::Answer) { "answer" } else { "reject" }));
                    }
                    *state = if matches!(s.action, Action::Answer) {
                        CallState::Up
                    } else {
                        CallState::Idle
                    };
                }
                Action::Play(_) | Action::Record(_) => {
                    if *state == CallState::Up {
                        let what = if matches!(s.action, Action::Play(_)) {
                            "play"
                        } else {
                            "record"
                        };
                        return self.err(s.line, format!("not supported yet: `{what}` during a call (peerline-ua cannot change a running call's source or recording; put `{what}` before `call` or `answer`)"));
                    }
                }
                Action::SendDtmf { .. } => needs_call("send_dtmf")?,
                Action::ExpectDtmf { .. } => needs_call("expect_dtmf")?,
                Action::ExpectAudio { .. } => needs_call("expect_audio")?,
                Action::Hold => needs_call("hold")?,
                Action::Resume => needs_call("resume")?,
                Action::Mute => needs_call("mute")?,
                Action::Unmute => needs_call("unmute")?,
                Action::Hangup => {
                    if *state == CallState::Idle {
                        return self
                            .err(s.line, format!("`hangup` but leg `{leg}` has no call here"));
                    }
                    *state = CallState::Idle;
                }
                Action::ExpectHangup { .. } => {
                    needs_call("expect_hangup")?;
                    *state = CallState::Idle;
                }
                Action::Transfer { status, .. } => {
                    needs_call("transfer")?;
                    // A transfer that succeeds ends our call; a refused one leaves it up.
                    if status.is_none_or(|s| (200..300).contains(&s)) {
                        *state = CallState::Idle;
                    }
                }
                // The call to the transfer target becomes the leg's call.
                Action::ExpectTransfer { .. } => needs_call("expect_transfer")?,
                // Messages and registration concern the leg, not its call.
                Action::Wait(_)
                | Action::Register { .. }
                | Action::SendMessage { .. }
                | Action::ExpectMessage { .. } => {}
                Action::OnDtmf {
                    branches,
                    other,
                    none,
                    ..
                } => {
                    needs_call("on_dtmf")?;
                    let start = *state;
                    let mut end = None;
                    for b in branches
                        .iter()
                        .map(|(_, b)| b)
                        .chain(other.iter())
                        .chain(none.iter())
                    {
                        let mut st = start;
                        self.check_order(b, &mut st, leg)?;
                        if end.is_some_and(|e| e != st) {
                            return self.err(s.line, "on_dtmf: every branch must end with the call in the same state (all hang up, or none does)");
                        }
                        end = Some(st);
                    }
                    if other.is_none() || none.is_none() {
                        // A missing branch fails the step and ends the leg, so only the
                        // branches that run matter.
                    }
                    *state = end.unwrap_or(start);
                }
                Action::Loop { count, steps } => {
                    let start = *state;
                    self.check_order(steps, state, leg)?;
                    if *count > 1 && *state != start {
                        let mut again = *state;
                        self.check_order(steps, &mut again, leg)?;
                        *state = again;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The step names a scenario can use (besides the refused ones in [`NOT_SUPPORTED`]).
pub const ACTIONS: &[&str] = &[
    "call",
    "expect",
    "answer",
    "reject",
    "play",
    "record",
    "send_dtmf",
    "expect_dtmf",
    "on_dtmf",
    "expect_audio",
    "wait",
    "hold",
    "resume",
    "mute",
    "unmute",
    "hangup",
    "expect_hangup",
    "register",
    "send_message",
    "expect_message",
    "transfer",
    "expect_transfer",
    "loop",
];

fn is_dtmf(c: char) -> bool {
    "0123456789*#ABCDabcd".contains(c)
}

fn any_step(steps: &[Step], f: &dyn Fn(&Action) -> bool) -> bool {
    steps.iter().any(|s| {
        f(&s.action)
            || match &s.action {
                Action::Loop { steps, .. } => any_step(steps, f),
                Action::OnDtmf {
                    branches,
                    other,
                    none,
                    ..
                } => {
                    branches.iter().any(|(_, b)| any_step(b, f))
                        || other.as_deref().is_some_and(|b| any_step(b, f))
                        || none.as_deref().is_some_and(|b| any_step(b, f))
                }
                _ => false,
            }
    })
}
