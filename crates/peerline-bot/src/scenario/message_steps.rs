//! The steps about the leg rather than its call: `register`, `send_message` and
//! `expect_message` (SIP MESSAGE, RFC 3428), and the checks they need before any call.

use std::time::Duration;

use super::{get, Action, LegAccount, Parser, Part, Step, TextMatch, R};
use crate::tree::{Entry, Kind, Node};

impl Parser {
    /// `{ send_message = "text", to = URI, status = 200, timeout = 5 }`.
    pub(super) fn send_message(&self, value: &Node, entries: &[Entry], line: usize) -> R<Action> {
        let text = self.template(value, "send_message")?;
        if matches!(text.0.as_slice(), [Part::Text(t)] if t.is_empty()) {
            return self.err(value.line, "send_message: no text");
        }
        let Some(to) = get(entries, "to") else {
            return self.err(
                line,
                "send_message needs `to`, the recipient's SIP URI (e.g. to = \"${leg.bob.uri}\")",
            );
        };
        let target = self.template(&to.value, "to")?;
        if let [Part::Text(t)] = target.0.as_slice() {
            if !(t.starts_with("sip:") || t.starts_with("sips:")) || !t.contains('@') {
                return self.err(
                    to.line,
                    format!("send_message: to {t:?} is not a SIP URI like sip:user@host"),
                );
            }
        }
        let status = match get(entries, "status") {
            Some(e) => Some(self.status(&e.value, "status", 200)?),
            None => None,
        };
        Ok(Action::SendMessage {
            to: target,
            text,
            status,
        })
    }

    /// `{ expect_message = "exact" | { text = "exact" } | { contains = "part" } | true,
    /// from = "alice", within = 5 }`.
    pub(super) fn expect_message(
        &self,
        value: Option<&Node>,
        entries: &[Entry],
        within: Duration,
    ) -> R<Action> {
        let shape =
            "\"exact text\", { contains = \"part\" }, { text = \"exact text\" } or true (any text)";
        let text = match value.map(|v| (v, &v.kind)) {
            None | Some((_, Kind::Bool(true))) => TextMatch::Any,
            Some((v, Kind::Str(_))) => TextMatch::Exact(self.template(v, "expect_message")?),
            Some((v, Kind::Table(t))) => {
                self.only_keys(t, &["text", "contains"], "expect_message")?;
                match t.as_slice() {
                    [] => TextMatch::Any,
                    [e] if e.key == "text" => TextMatch::Exact(self.template(&e.value, "text")?),
                    [e] if e.key == "contains" => {
                        let part = self.template(&e.value, "contains")?;
                        if matches!(part.0.as_slice(), [Part::Text(t)] if t.is_empty()) {
                            return self.err(e.line, "expect_message: `contains` is empty");
                        }
                        TextMatch::Contains(part)
                    }
                    _ => return self.err(v.line, "expect_message: `text` or `contains`, not both"),
                }
            }
            Some((v, _)) => return self.err(v.line, format!("expect_message: {shape}")),
        };
        let from = match get(entries, "from") {
            Some(e) => Some(self.template(&e.value, "from")?),
            None => None,
        };
        Ok(Action::ExpectMessage { text, from, within })
    }

    /// `register` waits for the leg's account: the leg needs one that registers.
    pub(super) fn check_register(
        &self,
        steps: &[Step],
        account: Option<&LegAccount>,
        leg: &str,
    ) -> R<()> {
        let Some(line) = first_line(steps, &|a| matches!(a, Action::Register { .. })) else {
            return Ok(());
        };
        match account {
            None => self.err(line, format!("`register` needs an account: give leg `{leg}` one, e.g. account = {{ aor = \"sip:{leg}@pbx.example.net\", password = \"…\" }}")),
            Some(a) if !a.registers => self.err(line, format!("`register` but the account of leg `{leg}` has register = false (line {})", a.line)),
            Some(_) => Ok(()),
        }
    }
}

/// The line of the first step (in branches and loops too) for which `f` holds.
fn first_line(steps: &[Step], f: &dyn Fn(&Action) -> bool) -> Option<usize> {
    steps.iter().find_map(|s| {
        if f(&s.action) {
            return Some(s.line);
        }
        match &s.action {
            Action::Loop { steps, .. } => first_line(steps, f),
            Action::OnDtmf {
                branches,
                other,
                none,
                ..
            } => branches
                .iter()
                .map(|(_, b)| b)
                .chain(other.iter())
                .chain(none.iter())
                .find_map(|b| first_line(b, f)),
            _ => None,
        }
    })
}
