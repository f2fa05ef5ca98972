//! The blind-transfer steps (RFC 3515 REFER): `transfer`, sent by the transferor leg,
//! and `expect_transfer`, where the transferee leg follows its call to the target.

use std::time::Duration;

use super::{get, Action, Parser, Part, Template, R};
use crate::tree::{Entry, Kind, Node};

/// How long a transfer may take by default: the transferee's call to the target rings.
const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

impl Parser {
    /// A URI template that, when it is plain text, must look like a SIP URI.
    fn sip_uri(&self, node: &Node, what: &str) -> R<Template> {
        let target = self.template(node, what)?;
        if let [Part::Text(t)] = target.0.as_slice() {
            if !(t.starts_with("sip:") || t.starts_with("sips:")) || !t.contains('@') {
                return self.err(
                    node.line,
                    format!("{what}: {t:?} is not a SIP URI like sip:user@host:port"),
                );
            }
        }
        Ok(target)
    }

    /// `{ transfer = URI, expect_status = 200, timeout = 30 }`.
    pub(super) fn transfer(&self, value: &Node, entries: &[Entry], line: usize) -> R<Action> {
        if !matches!(value.kind, Kind::Str(_)) {
            return self.err(
                line,
                format!(
                    "transfer: the target is a SIP URI string (e.g. \"${{leg.carol.uri}}\"), not {}",
                    value.kind.type_name()
                ),
            );
        }
        let target = self.sip_uri(value, "transfer")?;
        let status = match get(entries, "expect_status") {
            Some(e) => Some(self.status(&e.value, "expect_status", 200)?),
            None => None,
        };
        let within = self.opt_seconds(entries, "timeout", DEFAULT_TRANSFER_TIMEOUT)?;
        Ok(Action::Transfer {
            target,
            status,
            within,
        })
    }

    /// `"expect_transfer"`, `{ expect_transfer = true, within = 10 }` or
    /// `{ expect_transfer = URI }` (the `Refer-To` target must be that URI).
    pub(super) fn expect_transfer(&self, value: Option<&Node>, within: Duration) -> R<Action> {
        let target = match value.map(|v| (v, &v.kind)) {
            None | Some((_, Kind::Bool(true))) => None,
            Some((v, Kind::Str(_))) => Some(self.sip_uri(v, "expect_transfer")?),
            Some((v, _)) => {
                return self.err(
                    v.line,
                    "expect_transfer: true (any target) or the target's SIP URI",
                )
            }
        };
        Ok(Action::ExpectTransfer { target, within })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::time::Duration;

    use crate::scenario::{Action, Part, Scenario, Template};

    /// Legs alice (calls bob, then runs `alice`), bob (answers, then runs `bob`) and carol.
    fn scenario(alice: &str, bob: &str) -> Result<Scenario, crate::ScenarioError> {
        let text = format!(
            "[[leg]]\nname = \"alice\"\nsteps = [\n  {{ call = \"${{leg.bob.uri}}\" }},\n  {{ expect = \"answered\" }},\n  {alice}\n]\n\
             [[leg]]\nname = \"bob\"\nsteps = [\n  {{ expect = \"incoming\" }},\n  \"answer\",\n  {bob}\n]\n\
             [[leg]]\nname = \"carol\"\nsteps = [{{ expect = \"incoming\" }}, \"answer\", \"hangup\"]\n"
        );
        Scenario::parse(&text, Path::new("t.toml"), &BTreeMap::new())
    }

    fn refused(alice: &str, bob: &str) -> (usize, String) {
        let e = scenario(alice, bob).expect_err("should be refused");
        (e.line().unwrap(), e.to_string())
    }

    #[test]
    fn transfer_with_defaults_and_with_every_key() {
        let s = scenario(
            "{ transfer = \"${leg.carol.uri}\" },",
            "{ expect_transfer = true }, \"hangup\",",
        )
        .unwrap();
        assert_eq!(
            s.legs[0].steps[2].action,
            Action::Transfer {
                target: Template(vec![Part::LegUri("carol".into())]),
                status: None,
                within: Duration::from_secs(30),
            }
        );
        assert_eq!(s.legs[0].steps[2].line, 6);
        assert_eq!(
            s.legs[1].steps[2].action,
            Action::ExpectTransfer {
                target: None,
                within: Duration::from_secs(10),
            }
        );
        let s = scenario(
            "{ transfer = \"sip:carol@127.0.0.1:5070\", expect_status = 486, timeout = 4 }, \"hangup\",",
            "{ expect_transfer = \"${leg.carol.uri}\", within = 3 }, \"hangup\",",
        )
        .unwrap();
        assert_eq!(
            s.legs[0].steps[2].action,
            Action::Transfer {
                target: Template::text("sip:carol@127.0.0.1:5070"),
                status: Some(486),
                within: Duration::from_secs(4),
            }
        );
        assert_eq!(
            s.legs[1].steps[2].action,
            Action::ExpectTransfer {
                target: Some(Template(vec![Part::LegUri("carol".into())])),
                within: Duration::from_secs(3),
            }
        );
        assert_eq!(
            s.legs[0].steps[2].action.to_string(),
            "transfer to sip:carol@127.0.0.1:5070 ending 486 within 4 s"
        );
    }

    #[test]
    fn a_successful_transfer_ends_the_call_a_refused_one_does_not() {
        // After a transfer expected to succeed, the leg has no call: hangup is refused.
        let (line, msg) = refused("{ transfer = \"${leg.carol.uri}\" },\n  \"hangup\",", "");
        assert_eq!(line, 7, "{msg}");
        assert!(
            msg.contains("`hangup` but leg `alice` has no call"),
            "{msg}"
        );
        // ...and a new call may follow.
        scenario(
            "{ transfer = \"${leg.carol.uri}\" },\n  { call = \"${leg.carol.uri}\" },",
            "",
        )
        .unwrap();
        // Expecting a refusal keeps the call up.
        scenario(
            "{ transfer = \"${leg.carol.uri}\", expect_status = 603 },\n  \"hangup\",",
            "",
        )
        .unwrap();
    }

    #[test]
    fn malformed_transfer_steps_name_file_line_and_reason() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("{ transfer = \"carol\" },", "", 6, "is not a SIP URI"),
            (
                "{ transfer = 5060 },",
                "",
                6,
                "the target is a SIP URI string",
            ),
            ("\"transfer\",", "", 6, "`transfer` needs a value"),
            (
                "{ transfer = \"${leg.dave.uri}\" },",
                "",
                6,
                "there is no leg `dave`",
            ),
            (
                "{ transfer = \"${leg.carol.uri}\", expect_status = 99 },",
                "",
                6,
                "expect_status must be a whole number from 200 to 699",
            ),
            (
                "{ transfer = \"${leg.carol.uri}\", within = 3 },",
                "",
                6,
                "`within` does not apply to `transfer` (it takes: expect_status, timeout)",
            ),
            (
                "",
                "{ expect_transfer = 3 },",
                13,
                "expect_transfer: true (any target) or the target's SIP URI",
            ),
            (
                "",
                "{ expect_transfer = \"bob\" },",
                13,
                "expect_transfer: \"bob\" is not a SIP URI",
            ),
        ];
        for (alice, bob, line, want) in cases {
            let (l, msg) = refused(alice, bob);
            assert!(msg.starts_with("t.toml:"), "{msg}");
            assert!(msg.contains(want), "{alice}{bob}: {msg}");
            assert_eq!(l, *line, "{alice}{bob}: {msg}");
        }
    }

    #[test]
    fn transfer_needs_a_call() {
        let text = "[[leg]]\nname = \"a\"\nsteps = [{ transfer = \"sip:b@h\" }]\n";
        let e = Scenario::parse(text, Path::new("t.toml"), &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("`transfer` needs a call"), "{e}");
        let text = "[[leg]]\nname = \"a\"\nsteps = [\"expect_transfer\"]\n";
        let e = Scenario::parse(text, Path::new("t.toml"), &BTreeMap::new()).unwrap_err();
        assert!(
            e.to_string().contains("`expect_transfer` needs a call"),
            "{e}"
        );
    }
}
