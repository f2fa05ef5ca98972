//! Delay and jitter without `sch_netem`: the `netdelay` binary (src/bin/netdelay.rs) holds
//! packets that an iptables NFQUEUE rule hands it and accepts each after a random delay.
//!
//! [`Jitter::start`] starts it inside a namespace (a [`Process`], stopped by PID), waits
//! until it has bound its queue, then appends the rule
//! `iptables -A CHAIN MATCH… -j NFQUEUE --queue-num Q --queue-bypass` in that namespace
//! (`--queue-bypass`: traffic flows if the program dies). [`Jitter::stop`] deletes the rule,
//! stops the program with SIGTERM and returns the counters it printed. Dropping a
//! `Jitter` deletes the rule and stops the program too (also during a panic).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::{Process, ProcessOptions};

/// The delays: `base_ms` plus a uniform draw in `0..jitter_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    pub base_ms: u32,
    pub jitter_ms: u32,
}

/// What `netdelay` counted, from the line it prints on exit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterCounters {
    /// Packets the queue handed it.
    pub packets: u64,
    /// Packets accepted after their delay (or at the stop).
    pub delayed: u64,
    /// Packets accepted at once because `max_queued` were already held.
    pub overflow: u64,
    pub max_delay_ms: f64,
    pub mean_delay_ms: f64,
    /// Most packets held at once.
    pub max_held: u64,
}

impl JitterCounters {
    /// Parses `netdelay: packets=… delayed=… …`; `None` without such a line.
    pub fn parse(text: &str) -> Option<Self> {
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with("netdelay: packets="))?;
        let mut c = Self::default();
        for kv in line.trim_start_matches("netdelay:").split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "packets" => c.packets = v.parse().ok()?,
                "delayed" => c.delayed = v.parse().ok()?,
                "overflow" => c.overflow = v.parse().ok()?,
                "max_delay_ms" => c.max_delay_ms = v.parse().ok()?,
                "mean_delay_ms" => c.mean_delay_ms = v.parse().ok()?,
                "max_held" => c.max_held = v.parse().ok()?,
                _ => {}
            }
        }
        Some(c)
    }
}

/// A running injector and its iptables rule.
#[derive(Debug)]
pub struct Jitter {
    netns: String,
    /// The rule as passed after `-A`/`-D`.
    rule: Vec<String>,
    rule_installed: bool,
    process: Process,
}

impl Jitter {
    /// Starts `program` (the `netdelay` binary; tests pass `env!("CARGO_BIN_EXE_netdelay")`)
    /// in `netns` on `queue` and sends it the packets of `chain` that `matches` selects
    /// (e.g. `["-p", "udp", "--dport", "20000:20099"]`). Logs go to `log_dir`.
    pub fn start(
        program: &str,
        netns: &str,
        queue: u16,
        range: DelayRange,
        chain: &str,
        matches: &[&str],
        log_dir: &Path,
    ) -> Result<Self> {
        let opts = ProcessOptions::new(&format!("netdelay-q{queue}"), program)
            .args([
                "--queue".to_string(),
                queue.to_string(),
                "--delay-ms".into(),
                range.base_ms.to_string(),
                "--jitter-ms".into(),
                range.jitter_ms.to_string(),
            ])
            .netns(Some(netns));
        let mut process = Process::spawn(opts, log_dir)?;
        process.wait_for_log("netdelay: ready", Duration::from_secs(10))?;
        let mut rule = vec![chain.to_string()];
        rule.extend(matches.iter().map(|s| s.to_string()));
        rule.extend(
            [
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue.to_string(),
                "--queue-bypass",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut j = Self {
            netns: netns.to_string(),
            rule,
            rule_installed: false,
            process,
        };
        j.iptables("-A")?;
        j.rule_installed = true;
        Ok(j)
    }

    /// The injector's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Packets the rule has matched so far (its iptables counter).
    pub fn rule_packets(&self) -> Result<u64> {
        let chain = self.rule.first().map(String::as_str).unwrap_or("INPUT");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "iptables", "-L", chain])
            .args(["-v", "-x", "-n"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                program: "ip netns exec … iptables -L".into(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("NFQUEUE"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    /// Deletes the rule, stops the injector (SIGTERM; it accepts what it holds) and
    /// returns its counters.
    pub fn stop(mut self) -> Result<JitterCounters> {
        self.remove_rule()?;
        self.process.stop();
        let out = self.process.stdout_text();
        JitterCounters::parse(&out).ok_or_else(|| Error::Peer {
            peer: "netdelay".into(),
            reason: format!(
                "no counters on exit (stdout: {:?}, log tail: {:?})",
                out.trim(),
                self.process.log_tail(5)
            ),
        })
    }

    fn remove_rule(&mut self) -> Result<()> {
        if self.rule_installed {
            self.rule_installed = false;
            self.iptables("-D")?;
        }
        Ok(())
    }

    fn iptables(&self, op: &str) -> Result<()> {
        let st = Command::new("ip")
            .args(["netns", "exec", &self.netns, "iptables", op])
            .args(&self.rule)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| Error::Spawn {
                program: format!("iptables {op} {}", self.rule.join(" ")),
                source,
            })?;
        if st.success() {
            Ok(())
        } else {
            Err(Error::Peer {
                peer: "iptables".into(),
                reason: format!("{op} {} in {}: {st}", self.rule.join(" "), self.netns),
            })
        }
    }
}

impl Drop for Jitter {
    fn drop(&mut self) {
        let _ = self.remove_rule();
        // The Process guard stops the injector by PID when it drops right after this.
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_exit_line() {
        let c = JitterCounters::parse(
            "netdelay: ready queue=3\nnetdelay: packets=10 delayed=9 overflow=1 max_delay_ms=199.5 mean_delay_ms=101.0 max_held=4 verdict_errors=0\n",
        )
        .unwrap();
        assert_eq!(c.packets, 10);
        assert_eq!(c.delayed, 9);
        assert_eq!(c.overflow, 1);
        assert!((c.max_delay_ms - 199.5).abs() < 1e-9);
        assert_eq!(c.max_held, 4);
        assert!(JitterCounters::parse("netdelay: ready queue=3\n").is_none());
    }
}
