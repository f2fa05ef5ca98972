//! Processes started by tests: logs to files, stopped by PID, bounded waits.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{io_err, Error, Result};

/// Poll `cond` every `poll` until it is true or `timeout` has passed.
///
/// Bounded in time *and* count: at most `timeout / poll + 1` polls (`poll` is clamped to
/// at least 1 ms). Returns [`Error::Timeout`] naming `what` on failure.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<()> {
    let poll = poll.max(Duration::from_millis(1));
    let max_polls = timeout.as_millis() / poll.as_millis() + 1;
    let start = Instant::now();
    for _ in 0..=max_polls {
        if cond() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            break;
        }
        sleep(poll.min(timeout.saturating_sub(start.elapsed())));
    }
    if cond() {
        return Ok(());
    }
    Err(Error::Timeout {
        what: what.to_string(),
        after: start.elapsed(),
    })
}

/// How to start a [`Process`].
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    name: String,
    program: String,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    netns: Option<String>,
    grace: Duration,
}

impl ProcessOptions {
    /// `name` names the log files (`<name>.stdout.log`, `<name>.stderr.log`).
    pub fn new(name: &str, program: &str) -> Self {
        Self {
            name: name.to_string(),
            program: program.to_string(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            netns: None,
            grace: Duration::from_secs(3),
        }
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// Working directory (default: the log dir).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
    /// Run inside a network namespace the test created (`ip netns exec NS …`, which execs,
    /// so the recorded PID is the peer's own).
    pub fn netns(mut self, ns: Option<&str>) -> Self {
        self.netns = ns.map(str::to_string);
        self
    }
    /// Time between SIGTERM and SIGKILL when stopping (default 3 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The full command line, for logs.
    pub fn command_line(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            v.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        v.push(&self.program);
        v.extend(self.args.iter().map(String::as_str));
        v.join(" ")
    }
}

/// A running peer. Stopped by PID on [`Process::stop`] or on drop (also during a panic):
/// SIGTERM to the PID, then after the grace period SIGKILL to its process group (each
/// process is started as the leader of its own group, so forked workers go too).
#[derive(Debug)]
pub struct Process {
    name: String,
    pid: u32,
    child: Child,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl Process {
    /// Start the process with stdin from /dev/null and stdout/stderr to log files in `log_dir`.
    pub fn spawn(opts: ProcessOptions, log_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(log_dir).map_err(io_err(log_dir))?;
        let stdout_log = log_dir.join(format!("{}.stdout.log", opts.name));
        let stderr_log = log_dir.join(format!("{}.stderr.log", opts.name));
        let out = File::create(&stdout_log).map_err(io_err(&stdout_log))?;
        let err = File::create(&stderr_log).map_err(io_err(&stderr_log))?;
        let cmdline_path = log_dir.join(format!("{}.cmdline", opts.name));
        std::fs::write(&cmdline_path, opts.command_line() + "\n").map_err(io_err(&cmdline_path))?;

        let mut cmd = match &opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str(), opts.program.as_str()]);
                c
            }
            None => Command::new(&opts.program),
        };
        cmd.args(&opts.args)
            .current_dir(opts.cwd.as_deref().unwrap_or(log_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: opts.command_line(),
            source,
        })?;
        Ok(Self {
            name: opts.name,
            pid: child.id(),
            child,
            stdout_log,
            stderr_log,
            grace: opts.grace,
            status: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_log
    }
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_log
    }

    /// The exit status if it has exited (reaps it), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
            }
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Wait (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let what = format!("{} (pid {}) to exit", self.name, self.pid);
        wait_for(&what, timeout, Duration::from_millis(20), || {
            self.try_wait().is_some()
        })?;
        self.status.ok_or(Error::Timeout {
            what,
            after: timeout,
        })
    }

    /// Send a signal by name (e.g. "TERM", "KILL", "HUP") to the PID, or to the process
    /// group when `group` is true. Only while the child has not been reaped, so the PID
    /// cannot have been reused.
    pub fn signal(&mut self, sig: &str, group: bool) -> bool {
        if self.try_wait().is_some() {
            return false;
        }
        let target = if group {
            format!("-{}", self.pid)
        } else {
            self.pid.to_string()
        };
        Command::new("kill")
            .args([&format!("-{sig}"), "--", &target])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// SIGTERM, wait up to the grace period, then SIGKILL the group. Returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(st) = self.try_wait() {
            return Some(st);
        }
        self.signal("TERM", false);
        if self.wait_exit(self.grace).is_err() {
            self.signal("KILL", true);
            // The child ignores nothing after SIGKILL; bounded anyway.
            let _ = self.wait_exit(Duration::from_secs(5));
            if self.status.is_none() {
                let _ = self.child.kill();
                if let Ok(st) = self.child.wait() {
                    self.status = Some(st);
                }
            }
        }
        self.status
    }

    /// Whole stdout log as text (lossy).
    pub fn stdout_text(&self) -> String {
        read_lossy(&self.stdout_log)
    }

    /// Whole stderr log as text (lossy).
    pub fn stderr_text(&self) -> String {
        read_lossy(&self.stderr_log)
    }

    /// Does stdout or stderr contain `needle`?
    pub fn log_contains(&self, needle: &str) -> bool {
        self.stdout_text().contains(needle) || self.stderr_text().contains(needle)
    }

    /// Bounded wait until the log contains `needle`; fails early if the process exits first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let what = format!("{:?} in the log of {}", needle, self.name);
        let mut exited = false;
        let r = wait_for(&what, timeout, Duration::from_millis(50), || {
            if self.log_contains(needle) {
                return true;
            }
            if self.try_wait().is_some() {
                exited = true;
                return true;
            }
            false
        });
        if exited && !self.log_contains(needle) {
            return Err(Error::Peer {
                peer: self.name.clone(),
                reason: format!(
                    "exited ({:?}) before logging {needle:?}\n{}",
                    self.status,
                    self.log_tail(30)
                ),
            });
        }
        r
    }

    /// The last `n` lines of stdout and stderr (status-line `\r` spam split and trimmed),
    /// for panic messages.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "----- {} (pid {}, {:?}) stdout: {}\n{}\n----- {} stderr: {}\n{}",
            self.name,
            self.pid,
            self.status,
            self.stdout_log.display(),
            last_lines(&self.stdout_text(), n),
            self.name,
            self.stderr_log.display(),
            last_lines(&self.stderr_text(), n)
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `n` log lines of each process, for `assert!(…, "{}", tails(&[&a, &b], 40))`.
pub fn tails(procs: &[&Process], n: usize) -> String {
    procs
        .iter()
        .map(|p| p.log_tail(n))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<String> = text
        .split(['\n', '\r'])
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if l.chars().count() > 300 {
                let s: String = l.chars().take(300).collect();
                s + " …"
            } else {
                l.to_string()
            }
        })
        .collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A reaped child has no /proc entry (zombies are reaped by stop()).
        Path::new(&format!("/proc/{pid}")).exists()
    }

    fn log_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("peerline-proc-{name}-{}", std::process::id()))
    }

    #[test]
    fn drop_during_panic_stops_the_process() {
        let dir = log_dir("panic");
        let pid = std::sync::Mutex::new(0u32);
        let r = std::panic::catch_unwind(|| {
            let p =
                Process::spawn(ProcessOptions::new("sleeper", "sleep").arg("30"), &dir).unwrap();
            *pid.lock().unwrap() = p.pid();
            panic!("test failure while a peer runs");
        });
        assert!(r.is_err());
        let pid = *pid.lock().unwrap();
        assert!(pid > 0 && !alive(pid), "pid {pid} still alive");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn term_ignoring_group_is_killed_after_grace() {
        let dir = log_dir("grace");
        let mut p = Process::spawn(
            ProcessOptions::new("stubborn", "sh")
                .args(["-c", "trap '' TERM; sleep 30 & wait; sleep 30"])
                .grace(Duration::from_millis(300)),
            &dir,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let st = p.stop();
        assert!(st.is_some());
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(!alive(p.pid()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wait_for_is_bounded() {
        let mut n = 0;
        let t = Instant::now();
        let r = wait_for(
            "never",
            Duration::from_millis(100),
            Duration::from_millis(10),
            || {
                n += 1;
                false
            },
        );
        assert!(r.is_err());
        assert!(n <= 13, "{n} polls");
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
