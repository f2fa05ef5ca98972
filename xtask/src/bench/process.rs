//! Processes the bench starts: output to log files, bounded waits, stopped by PID
//! (SIGTERM, then SIGKILL after a grace period) when done or dropped, RSS from /proc.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::Result;

/// One started process and its log files.
pub struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `program args…` in `dir`, stdout/stderr to `dir/NAME.stdout.log` / `.stderr.log`;
    /// with `cpu`, pinned to that core through `taskset -c CPU` (which execs, so the PID is
    /// the program's own).
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
        cpu: Option<u32>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let stdout = dir.join(format!("{name}.stdout.log"));
        let stderr = dir.join(format!("{name}.stderr.log"));
        let out = File::create(&stdout).map_err(|e| format!("{}: {e}", stdout.display()))?;
        let err = File::create(&stderr).map_err(|e| format!("{}: {e}", stderr.display()))?;
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(program);
                c
            }
            None => Command::new(program),
        };
        let _ = std::fs::write(
            dir.join(format!("{name}.cmdline")),
            format!("{cmd:?} {args:?}\n"),
        );
        let child = cmd
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            stdout,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Whether it has exited (and its status then).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits at most `limit` for it to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        // Bounded in count too: one poll per 20 ms.
        for _ in 0..=(limit.as_millis() / 20) {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if start.elapsed() >= limit {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        self.try_status()
    }

    /// Waits at most `limit` for a stdout line starting with `prefix`; returns the rest.
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> Result<String> {
        let start = Instant::now();
        for _ in 0..=(limit.as_millis() / 20) {
            if let Some(rest) = self
                .stdout_text()
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
            {
                return Ok(rest.trim().to_string());
            }
            if self.try_status().is_some() || start.elapsed() >= limit {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{} did not print {prefix:?} within {limit:?} (see {})",
            self.name,
            self.stdout.display()
        ))
    }

    /// Resident set size in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no VmRSS in {path}"))
    }

    /// CPU time it has used so far (utime + stime of /proc/PID/stat), in seconds.
    pub fn cpu_secs(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.pid());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let ticks = stat_cpu_ticks(&text).ok_or_else(|| format!("no utime/stime in {path}"))?;
        Ok(ticks as f64 / clock_ticks_per_sec())
    }

    /// Time its threads have spent runnable but waiting for a CPU (the second field of
    /// /proc/PID/task/TID/schedstat, summed over at most 20,000 threads), in seconds: how
    /// much other load on its core held it back.
    pub fn runqueue_wait_secs(&self) -> Result<f64> {
        let dir = format!("/proc/{}/task", self.pid());
        let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
        let mut ns = 0u64;
        for task in tasks.take(20_000).flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += schedstat_wait_ns(&text).unwrap_or(0);
        }
        Ok(ns as f64 / 1e9)
    }

    /// SIGTERM to its PID, then SIGKILL if it is still there after 3 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.try_status().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                self.status = self.child.wait().ok();
            }
        }
        self.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line; the command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The run-queue wait (ns) of a schedstat line: `on-cpu-ns wait-ns timeslices`.
pub fn schedstat_wait_ns(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// `getconf CLK_TCK` (USER_HZ), 100 if it cannot be read.
fn clock_ticks_per_sec() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&hz: &f64| hz > 0.0)
            .unwrap_or(100.0)
    })
}

/// A UDP port on 127.0.0.1 that was free a moment ago (the kernel's choice).
pub fn free_udp_port() -> Result<u16> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_a_stat_line() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 120 35 0 0 20 0 9 0 100 1000 50";
        assert_eq!(stat_cpu_ticks(line), Some(155));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(stat_cpu_ticks("no parenthesis"), None);
        assert_eq!(schedstat_wait_ns("0 3699825 1\n"), Some(3_699_825));
        assert_eq!(schedstat_wait_ns(""), None);
    }
}
