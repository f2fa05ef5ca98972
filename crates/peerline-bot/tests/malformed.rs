//! Malformed scenarios are refused before any call, naming the file, the line and the
//! reason; steps the phone cannot do yet are refused as "not supported yet".

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use peerline_bot::Scenario;

fn refuse(text: &str) -> (usize, String) {
    let e = Scenario::parse(text, Path::new("docs/bots/bad.toml"), &BTreeMap::new())
        .expect_err("the scenario should be refused");
    let msg = e.to_string();
    assert!(msg.starts_with("docs/bots/bad.toml:"), "{msg}");
    (e.line().unwrap(), msg)
}

const CALLEE: &str = "[[leg]]\nname = \"callee\"\nsteps = [{ expect = \"incoming\" }, \"answer\", { expect_hangup = true }]\n";

fn caller(steps: &str) -> String {
    format!("{CALLEE}\n[[leg]]\nname = \"caller\"\nsteps = [\n  {{ call = \"${{leg.callee.uri}}\" }},\n{steps}\n]\n")
}

#[test]
fn toml_syntax_error_names_the_line() {
    let (line, msg) = refuse("name = \"x\"\n\n[[leg]]\nname = = \"a\"\n");
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("not valid TOML"), "{msg}");
}

#[test]
fn unknown_step_and_unknown_key() {
    // Lines: 1-3 callee, 4 blank, 5 [[leg]], 6 name, 7 steps = [, 8 call, 9 first step.
    let (line, msg) = refuse(&caller("  { dial = \"x\" },"));
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("dial"), "{msg}");
    let (line, msg) = refuse(&caller(
        "  \"hangup\",\n  { expect = \"answered\", withn = 2 },",
    ));
    assert_eq!(line, 10, "{msg}");
    assert!(msg.contains("`withn` does not apply to `expect`"), "{msg}");
    let (line, msg) = refuse("bogus = 1\n[[leg]]\nname = \"a\"\nsteps = [\"hangup\"]\n");
    assert_eq!(line, 1, "{msg}");
}

#[test]
fn bad_values() {
    let (line, msg) = refuse(&caller("  { expect = \"answerd\" },"));
    assert_eq!(line, 9, "{msg}");
    let (line, msg) = refuse(&caller("  { send_dtmf = \"12x\" },"));
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("'x' is not a DTMF digit"), "{msg}");
    let (_, msg) = refuse(&caller("  { wait = -1 },"));
    assert!(msg.contains("between 0 and"), "{msg}");
    let (_, msg) = refuse(&caller("  { expect_audio = { tone = 5 } },"));
    assert!(msg.contains("outside 50..20000"), "{msg}");
    let (_, msg) = refuse(&caller(
        "  { expect_audio = { correlates_with = \"missing.wav\" } },",
    ));
    assert!(msg.contains("missing.wav"), "{msg}");
    let (line, msg) = refuse("[[leg]]\nname = \"a\"\ncodecs = [\"GSM\"]\nsteps = [\"hangup\"]\n");
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("GSM"), "{msg}");
    let (line, msg) =
        refuse("[[leg]]\nname = \"a\"\n\nsrtp = \"sometimes\"\nsteps = [\"hangup\"]\n");
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("srtp"), "{msg}");
    assert!(!msg.contains("unknown key"), "srtp is a leg key: {msg}");
}

#[test]
fn leg_srtp_settings_are_accepted() {
    let text = "[[leg]]\nname = \"a\"\nsrtp = \"off\"\nsrtp_keying = \"sdes\"\nsteps = [{ call = \"sip:b@127.0.0.1\" }]\n";
    let s = Scenario::parse(text, Path::new("ok.toml"), &BTreeMap::new()).unwrap();
    let media = &s.legs[0].media;
    assert!(
        media.contains(&("srtp".to_string(), "off".to_string())),
        "{media:?}"
    );
    assert!(
        media.contains(&("srtp_keying".to_string(), "sdes".to_string())),
        "{media:?}"
    );
}

#[test]
fn unknown_variables_and_legs() {
    let (line, msg) =
        refuse("[[leg]]\nname = \"a\"\nsteps = [\n  { call = \"${leg.nobody.uri}\" },\n]\n");
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("there is no leg `nobody`"), "{msg}");
    let (_, msg) = refuse("[[leg]]\nname = \"a\"\nsteps = [{ call = \"${target}\" }]\n");
    assert!(msg.contains("unknown variable `${target}`"), "{msg}");
    let (_, msg) = refuse("[[leg]]\nname = \"a\"\nsteps = [{ call = \"sip:${row.user}@h\" }]\n");
    assert!(msg.contains("no [csv] file"), "{msg}");
    let (line, msg) = refuse("[[leg]]\nname = \"a\"\nsteps = [\"hangup\"]\n[[leg]]\nname = \"a\"\nsteps = [\"hangup\"]\n");
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("two legs are named `a`"), "{msg}");
}

#[test]
fn steps_out_of_order() {
    let (line, msg) = refuse("[[leg]]\nname = \"a\"\nsteps = [\n  \"answer\",\n]\n");
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("expect = \"incoming\""), "{msg}");
    let (line, msg) =
        refuse("[[leg]]\nname = \"a\"\nsteps = [\n  { wait = 1 },\n  { send_dtmf = \"1\" },\n]\n");
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("needs a call"), "{msg}");
}

#[test]
fn load_needs_answering_legs() {
    let text = format!("[load]\ncalls = 10\n\n{}", caller("  \"hangup\",")).replace(
        "steps = [{ expect = \"incoming\" }",
        "steps = [{ wait = 1 }, { expect = \"incoming\" }",
    );
    let (line, msg) = refuse(&text);
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("must start with"), "{msg}");
    let (line, msg) = refuse(&format!("[load]\ncalls = 0\n{}", caller("  \"hangup\",")));
    assert_eq!(line, 2, "{msg}");
}

#[test]
fn phone_features_that_are_missing_are_refused_as_not_supported_yet() {
    for (step, why) in [
        ("{ register = \"sip:alice@pbx\" }", "account"),
        ("{ transfer = \"sip:bob@pbx\" }", "REFER"),
        ("{ send_message = \"hello\" }", "MESSAGE"),
        ("{ expect_message = \"hello\", within = 2 }", "MESSAGE"),
    ] {
        let (line, msg) = refuse(&caller(&format!("  {step},")));
        assert_eq!(line, 9, "{msg}");
        assert!(msg.contains("not supported yet"), "{msg}");
        assert!(msg.contains(why), "{msg}");
    }
    // The phone cannot change a running call's source or recording.
    let (line, msg) = refuse(&caller("  { play = { tone = 600 } },"));
    assert_eq!(line, 9, "{msg}");
    assert!(
        msg.contains("not supported yet: `play` during a call"),
        "{msg}"
    );
    let (_, msg) = refuse(&caller("  { record = \"x.wav\" },"));
    assert!(
        msg.contains("not supported yet: `record` during a call"),
        "{msg}"
    );
}

#[test]
fn every_example_is_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bots");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 4);
}
