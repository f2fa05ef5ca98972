//! `peerline bot`: exit codes 0 (passed), 1 (a step failed, named on stderr) and 2
//! (refused with file:line), and the result files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn peerline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerline"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/bots")
        .join(name)
}

#[test]
fn check_accepts_examples_and_refuses_with_file_and_line() {
    for name in ["ivr.toml", "load-hold.toml"] {
        let out = peerline()
            .args(["bot", "check"])
            .arg(example(name))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    }

    let dir = std::env::temp_dir().join(format!("peerline-bot-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[leg]]\nname = \"a\"\nsteps = [\n  { transfer = \"sip:b@pbx\" },\n]\n",
    )
    .unwrap();
    let out = peerline().args(["bot", "run"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:4: `transfer` needs a call, but leg `a` has none here"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn run_writes_results_and_fails_with_the_step() {
    let dir = std::env::temp_dir().join(format!("peerline-bot-cli-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, junit, report) = (dir.join("r.json"), dir.join("r.xml"), dir.join("r.html"));
    let out = peerline()
        .args(["bot", "run"])
        .arg(example("ivr.toml"))
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["passed"], true);
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testsuite name=\"IVR menu.caller\""));
    assert!(std::fs::read_to_string(&report).unwrap().contains("<svg"));

    // A wrong choice: exit 1, the failing step with expected and observed on stderr.
    let out = peerline()
        .args(["bot", "run"])
        .arg(example("ivr.toml"))
        .args(["--var", "choice=2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ivr.toml:49 [caller] step 5 `expect_dtmf 1 within 3 s` failed: expected digits 1 within 3 s; observed digits 2"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn transfer_to_a_busy_target_exits_1_naming_the_step_and_status() {
    let dir = std::env::temp_dir().join(format!("peerline-bot-cli-xfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("busy.toml");
    std::fs::write(
        &file,
        "timeout = 30\n\
         [[leg]]\nname = \"alice\"\nsteps = [\n  { call = \"${leg.bob.uri}\" },\n  { expect = \"answered\", within = 5 },\n  { transfer = \"${leg.carol.uri}\", timeout = 10 },\n]\n\
         [[leg]]\nname = \"bob\"\nsteps = [{ expect = \"incoming\" }, \"answer\", { expect_hangup = true, within = 20 }]\n\
         [[leg]]\nname = \"carol\"\nsteps = [{ expect = \"incoming\" }, { reject = 486 }]\n",
    )
    .unwrap();
    let out = peerline().args(["bot", "run"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("busy.toml:7 [alice] step 3 `transfer to ${leg.carol.uri} ending 2xx within 10 s` failed"),
        "{err}"
    );
    assert!(err.contains("observed ended 486"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
