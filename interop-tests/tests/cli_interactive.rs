//! The interactive CLI tested as a person would use it (issue 7, done-when 4): `peerline
//! call URI --interactive` runs in a tmux pane (its own tmux server, stopped by PID),
//! calls a real baresip that answers with a tone, and the test presses keys with
//! `send-keys` and reads the screen with `capture-pane`: the call is talking with PCMU and
//! live quality, `o` holds it (baresip accepts the re-INVITE), `o` again resumes it, and
//! `h` hangs up; the screen's content is asserted at each step. And `peerline listen
//! --interactive` shows baresip's incoming call, `a` answers it, `h` hangs up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use peerline_interop::{
    free_udp_port, tails, write_tone_wav, Baresip, BaresipOptions, MatrixEntry, Process,
    ProcessOptions, TestDir,
};

/// A tmux server of our own (`-L`), killed by its PID when dropped.
struct Tmux {
    socket: String,
    pid: Option<u32>,
    dir: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let mut p = Process::spawn(
            ProcessOptions::new("tmux", "tmux")
                .args(["-L", self.socket.as_str(), "-f", "/dev/null"])
                .args(args.iter().copied())
                .grace(Duration::from_millis(200)),
            &self.dir,
        )
        .unwrap();
        let st = p.wait_exit(Duration::from_secs(5)).unwrap();
        assert!(st.success(), "tmux {args:?}: {st}");
        p.stdout_text()
    }

    fn start(dir: &TestDir, command: &str) -> Self {
        let mut t = Tmux {
            socket: format!("peerline-{}", std::process::id()),
            pid: None,
            dir: dir.path().to_path_buf(),
        };
        t.run(&[
            "new-session",
            "-d",
            "-s",
            "call",
            "-x",
            "120",
            "-y",
            "24",
            command,
        ]);
        let pid = t.run(&["display-message", "-p", "#{pid}"]);
        t.pid = Some(pid.trim().parse().unwrap());
        t
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "call"])
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "call", keys]);
    }

    /// Waits (at most 10 s) until the screen holds every one of `wanted`.
    fn wait_screen(&self, wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.screen();
            if wanted.iter().all(|w| s.contains(w)) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {wanted:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn interactive_call_to_baresip_holds_resumes_and_hangs_up() {
    let entry = MatrixEntry::new("baresip", "cli-interactive-hold-resume-hangup", "udp");
    let dir = TestDir::new("cli_interactive_call_to_baresip").unwrap();
    let bin = peerline_interop::peerline_binary().unwrap();
    let wav = dir.path().join("tone1000.wav");
    write_tone_wav(&wav, 1000.0, 8000, 1, 30.0, 0.5).unwrap();
    let mut b = Baresip::start(
        BaresipOptions::new("b")
            .audio_source(&wav)
            .audio_format(8000, 1)
            .audio_codecs("PCMU")
            .run_for(Duration::from_secs(40)),
        &dir,
    )
    .unwrap();
    b.wait_ready(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 40)));
    let config = dir
        .write(
            "phone.toml",
            "[media]\nsrtp = \"off\"\ncodecs = [\"PCMU\"]\n",
        )
        .unwrap();
    let command = format!(
        "{} --config {} call {} --interactive --play tone:440 --listen 127.0.0.1:0; sleep 30",
        bin.display(),
        config.display(),
        b.uri()
    );
    let tmux = Tmux::start(&dir, &command);

    let s = tmux.wait_screen(&["state: talking", "codec: PCMU", "quality: MOS"]);
    assert!(
        s.contains(&format!("Peerline - call to {}", b.uri())),
        "{s}"
    );
    assert!(s.contains("encryption: none (plain RTP)"), "{s}");
    assert!(s.contains("keys: [h] hang up"), "{s}");
    // Live quality: packets both ways.
    let s = tmux.wait_screen(&["received "]);
    let received: u64 = s
        .split("received ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(received > 0, "no packets received on the screen:\n{s}");

    tmux.keys("o");
    tmux.wait_screen(&["state: on hold"]);
    tmux.keys("o");
    tmux.wait_screen(&["state: talking", "resuming"]);
    tmux.keys("5");
    tmux.wait_screen(&["digits sent: 5"]);
    tmux.keys("h");
    let s = tmux.wait_screen(&["state: ended: local hangup"]);
    assert!(s.contains("codec: PCMU"), "{s}");
    drop(tmux);
    b.stop();
    entry.pass();
}

#[test]
#[ignore = "needs real peers; run by cargo xtask test"]
fn interactive_listen_answers_baresip_and_hangs_up() {
    let entry = MatrixEntry::new("baresip", "cli-interactive-answer-hangup", "udp");
    let dir = TestDir::new("cli_interactive_listen").unwrap();
    let bin = peerline_interop::peerline_binary().unwrap();
    let port = free_udp_port().unwrap();
    let config = dir
        .write(
            "phone.toml",
            "[media]\nsrtp = \"off\"\ncodecs = [\"PCMU\"]\n",
        )
        .unwrap();
    let command = format!(
        "{} --config {} listen --interactive --listen 127.0.0.1:{port} --wait 20 --play tone:440; sleep 30",
        bin.display(),
        config.display(),
    );
    let tmux = Tmux::start(&dir, &command);
    tmux.wait_screen(&[&format!("listening on 127.0.0.1:{port}")]);
    let wav = dir.path().join("tone600.wav");
    write_tone_wav(&wav, 600.0, 8000, 1, 30.0, 0.5).unwrap();
    let mut b = Baresip::start(
        BaresipOptions::new("b")
            .audio_source(&wav)
            .audio_format(8000, 1)
            .audio_codecs("PCMU")
            .dial(&format!("sip:peerline@127.0.0.1:{port}"))
            .run_for(Duration::from_secs(30)),
        &dir,
    )
    .unwrap();
    let s = tmux.wait_screen(&["Peerline - call from", "[a] answer  [r] reject"]);
    assert!(s.contains("sip:b@"), "the caller is named:\n{s}");
    tmux.keys("a");
    tmux.wait_screen(&["state: talking", "codec: PCMU", "quality: MOS"]);
    b.wait_established(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&[b.process()], 30)));
    tmux.keys("h");
    tmux.wait_screen(&["state: ended: local hangup"]);
    drop(tmux);
    b.stop();
    entry.pass();
}
