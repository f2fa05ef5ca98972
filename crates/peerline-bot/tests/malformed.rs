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
fn leg_sdes_without_tls_is_a_boolean() {
    let text = "[[leg]]\nname = \"a\"\nsrtp_keying = \"sdes\"\nallow_sdes_without_tls = true\nsteps = [{ call = \"sip:b@127.0.0.1\" }]\n";
    let s = Scenario::parse(text, Path::new("ok.toml"), &BTreeMap::new()).unwrap();
    assert!(s.legs[0].allow_sdes_without_tls);
    let text = "[[leg]]\nname = \"a\"\nsteps = [{ call = \"sip:b@127.0.0.1\" }]\n";
    let s = Scenario::parse(text, Path::new("ok.toml"), &BTreeMap::new()).unwrap();
    assert!(!s.legs[0].allow_sdes_without_tls, "off by default");
    let (line, msg) =
        refuse("[[leg]]\nname = \"a\"\nallow_sdes_without_tls = \"yes\"\nsteps = [\"hangup\"]\n");
    assert_eq!(line, 3, "{msg}");
    assert!(
        msg.contains("allow_sdes_without_tls: true or false"),
        "{msg}"
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
fn message_steps_are_accepted_in_and_outside_calls() {
    let text = caller(
        "  { send_message = \"hi ${leg.callee.uri}\", to = \"${leg.callee.uri}\", status = 202, timeout = 2 },\n  { expect_message = { contains = \"bye\" }, from = \"callee\", within = 3 },\n  \"hangup\",\n  { send_message = \"after\", to = \"sip:x@127.0.0.1\" },\n  \"expect_message\",",
    );
    let s = Scenario::parse(&text, Path::new("ok.toml"), &BTreeMap::new()).unwrap();
    let steps = &s.legs[1].steps;
    assert_eq!(steps.len(), 6);
    assert_eq!(
        steps[1].action.to_string(),
        "send_message \"hi ${leg.callee.uri}\" to ${leg.callee.uri}"
    );
    assert_eq!(steps[1].timeout.as_secs(), 2);
    assert_eq!(
        steps[2].action.to_string(),
        "expect_message containing \"bye\" from callee within 3 s"
    );
    assert_eq!(
        steps[5].action.to_string(),
        "expect_message any text within 10 s"
    );
}

#[test]
fn malformed_message_steps_name_their_line() {
    let (line, msg) = refuse(&caller("  { send_message = \"hi\" },"));
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("send_message needs `to`"), "{msg}");
    let (line, msg) = refuse(&caller(
        "  \"hangup\",\n  { send_message = \"hi\", to = \"bob@pbx\" },",
    ));
    assert_eq!(line, 10, "{msg}");
    assert!(msg.contains("is not a SIP URI"), "{msg}");
    let (_, msg) = refuse(&caller("  { send_message = \"\", to = \"sip:b@h\" },"));
    assert!(msg.contains("send_message: no text"), "{msg}");
    let (_, msg) = refuse(&caller(
        "  { send_message = \"x\", to = \"sip:b@h\", status = 100 },",
    ));
    assert!(
        msg.contains("status must be a whole number from 200 to 699"),
        "{msg}"
    );
    let (line, msg) = refuse(&caller("  { expect_message = 5 },"));
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("expect_message: \"exact text\""), "{msg}");
    let (_, msg) = refuse(&caller(
        "  { expect_message = { text = \"a\", contains = \"b\" } },",
    ));
    assert!(msg.contains("not both"), "{msg}");
    let (_, msg) = refuse(&caller("  { expect_message = { like = \"a\" } },"));
    assert!(
        msg.contains("unknown key `like` in expect_message"),
        "{msg}"
    );
    let (_, msg) = refuse(&caller("  { expect_message = \"a\", to = \"bob\" },"));
    assert!(
        msg.contains("`to` does not apply to `expect_message`"),
        "{msg}"
    );
    let (_, msg) = refuse(&caller("  { expect_message = \"${nobody}\" },"));
    assert!(msg.contains("unknown variable `${nobody}`"), "{msg}");
}

#[test]
fn register_needs_an_account_that_registers() {
    let (line, msg) =
        refuse("[[leg]]\nname = \"a\"\nsteps = [\n  { wait = 1 },\n  \"register\",\n]\n");
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("`register` needs an account"), "{msg}");
    let (line, msg) = refuse("[[leg]]\nname = \"a\"\naccount = { aor = \"sip:a@pbx\", register = false }\nsteps = [\n  { register = true, within = 2 },\n]\n");
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("register = false (line 3)"), "{msg}");
    let (line, msg) = refuse("[[leg]]\nname = \"a\"\naccount = { aor = \"sip:a@pbx\" }\nsteps = [\n  { register = \"sip:a@pbx\" },\n]\n");
    assert_eq!(line, 5, "{msg}");
    assert!(msg.contains("`register` takes no value"), "{msg}");
    // A sub-table works as well as an inline table.
    let s = Scenario::parse(
        "[[leg]]\nname = \"a\"\nsteps = [\"register\"]\n[leg.account]\naor = \"sip:a@pbx\"\npassword = \"pw\"\n",
        Path::new("ok.toml"),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(s.legs[0].account.as_ref().unwrap().aor, "sip:a@pbx");
}

/// `expect_message` works in load mode (each call takes the first message matching its
/// own expectation; docs/bots/load-messages.toml), so it is not refused.
#[test]
fn load_mode_accepts_expect_message() {
    let text = format!(
        "[load]\ncalls = 10\n\n{}",
        caller("  { expect_message = \"hi ${call.index}\" },\n  \"hangup\",")
    );
    Scenario::parse(&text, Path::new("load.toml"), &BTreeMap::new()).unwrap();
}

#[test]
fn auth_without_a_password_is_refused_with_its_line() {
    let text = "[[leg]]\nname = \"gate\"\nauth = { user = \"alice\" }\nsteps = [{ expect = \"incoming\" }, \"answer\"]\n";
    let (line, msg) = refuse(text);
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("auth needs `user` and `password`"), "{msg}");
    let text = "[[leg]]\nname = \"gate\"\nauth = { user = \"alice\", password = \"x\", nonce = 1 }\nsteps = [\"answer\"]\n";
    let (_, msg) = refuse(text);
    assert!(msg.contains("nonce"), "{msg}");
}
