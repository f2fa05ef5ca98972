//! SIPp 3.6.1 (Debian `sip-tester`): built-in scenarios (`-sn uac`/`uas`/…) or the project's
//! XML from `interop-tests/scenarios/`, run in the foreground with `-nostdin`, bounded by
//! `-timeout S -timeout_error`, statistics from `-trace_stat -stf FILE -fd 1`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::paths::{scenarios_dir, TestDir};
use crate::ports::alloc_port_block;
use crate::process::{Process, ProcessOptions};

/// Which scenario SIPp runs.
#[derive(Debug, Clone)]
pub enum SippScenario {
    /// A built-in scenario: `uac`, `uas`, `uac_pcap`, `regexp`, `branchc`, …
    BuiltIn(String),
    /// An XML scenario file (see [`SippScenario::project`]).
    File(PathBuf),
}

impl SippScenario {
    /// `interop-tests/scenarios/<name>` (the project's own XML).
    pub fn project(name: &str) -> Self {
        Self::File(scenarios_dir().join(name))
    }
}

/// SIPp transport mode (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SippTransport {
    /// `u1`: one UDP socket.
    Udp,
    /// `t1`: one TCP connection.
    Tcp,
}

impl SippTransport {
    fn flag(self) -> &'static str {
        match self {
            Self::Udp => "u1",
            Self::Tcp => "t1",
        }
    }
}

/// How to run one SIPp instance.
#[derive(Debug, Clone)]
pub struct SippOptions {
    name: String,
    scenario: SippScenario,
    remote: Option<String>,
    local_ip: String,
    local_port: Option<u16>,
    transport: SippTransport,
    calls: Option<u32>,
    rate: Option<u32>,
    timeout: Duration,
    service: Option<String>,
    extra: Vec<String>,
    netns: Option<String>,
}

impl SippOptions {
    pub fn new(name: &str, scenario: SippScenario) -> Self {
        Self {
            name: name.to_string(),
            scenario,
            remote: None,
            local_ip: "127.0.0.1".to_string(),
            local_port: None,
            transport: SippTransport::Udp,
            calls: None,
            rate: None,
            timeout: Duration::from_secs(15),
            service: None,
            extra: Vec::new(),
            netns: None,
        }
    }
    /// Built-in scenario by name.
    pub fn builtin(name: &str, scenario: &str) -> Self {
        Self::new(name, SippScenario::BuiltIn(scenario.to_string()))
    }
    /// Remote host:port (UAC side).
    pub fn remote(mut self, hostport: &str) -> Self {
        self.remote = Some(hostport.to_string());
        self
    }
    /// Local IP (`-i`, default 127.0.0.1).
    pub fn local_ip(mut self, ip: &str) -> Self {
        self.local_ip = ip.to_string();
        self
    }
    /// Local port (`-p`); default: allocated.
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = Some(port);
        self
    }
    pub fn transport(mut self, t: SippTransport) -> Self {
        self.transport = t;
        self
    }
    /// Stop after this many calls (`-m`).
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = Some(n);
        self
    }
    /// Calls per second (`-r`).
    pub fn rate(mut self, r: u32) -> Self {
        self.rate = Some(r);
        self
    }
    /// Overall bound (`-timeout S -timeout_error`), default 15 s.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Request-URI user (`-s`).
    pub fn service(mut self, s: &str) -> Self {
        self.service = Some(s.to_string());
        self
    }
    /// Extra raw arguments (e.g. `["-key", "user", "alice"]`, `["-rtp_echo"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }
}

/// Counters from the stat CSV (the `(C)` = cumulative columns of its last line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SippStats {
    pub successful: u64,
    pub failed: u64,
    pub total_created: u64,
    pub outgoing: u64,
    pub incoming: u64,
    /// FailedMaxUDPRetrans(C).
    pub failed_max_udp_retrans: u64,
    /// FailedUnexpectedMessage(C).
    pub failed_unexpected: u64,
}

/// A running SIPp.
#[derive(Debug)]
pub struct Sipp {
    process: Process,
    stat_csv: PathBuf,
    work_dir: PathBuf,
    local_ip: String,
    local_port: u16,
}

impl Sipp {
    pub fn start(opts: SippOptions, dir: &TestDir) -> Result<Self> {
        let work_dir = dir.subdir(&opts.name)?;
        let local_port = match opts.local_port {
            Some(p) => p,
            None => alloc_port_block(2)?,
        };
        let stat_csv = work_dir.join(format!("{}_stat.csv", opts.name));
        let mut po = ProcessOptions::new(&opts.name, "sipp")
            .cwd(&work_dir)
            .netns(opts.netns.as_deref());
        match &opts.scenario {
            SippScenario::BuiltIn(sn) => {
                if sn == "uac_pcap" {
                    copy_pcaps(&work_dir)?;
                }
                po = po.args(["-sn", sn.as_str()]);
            }
            SippScenario::File(f) => {
                if !f.is_file() {
                    return Err(Error::Peer {
                        peer: opts.name.clone(),
                        reason: format!("scenario file {} not found", f.display()),
                    });
                }
                po = po.arg("-sf").arg(f.display().to_string());
            }
        }
        if let Some(r) = &opts.remote {
            po = po.arg(r.clone());
        }
        let timeout_s = opts.timeout.as_secs().max(1);
        po = po
            .args(["-i", opts.local_ip.as_str()])
            .arg("-p")
            .arg(local_port.to_string())
            .args(["-t", opts.transport.flag()])
            .args(["-nostdin", "-timeout_error", "-trace_stat", "-fd", "1"])
            .arg("-timeout")
            .arg(format!("{timeout_s}s"))
            .arg("-stf")
            .arg(stat_csv.display().to_string())
            .args(["-trace_err", "-error_file"])
            .arg(
                work_dir
                    .join(format!("{}_errors.log", opts.name))
                    .display()
                    .to_string(),
            );
        if let Some(m) = opts.calls {
            po = po.arg("-m").arg(m.to_string());
        }
        if let Some(r) = opts.rate {
            po = po.arg("-r").arg(r.to_string());
        }
        if let Some(s) = &opts.service {
            po = po.arg("-s").arg(s.clone());
        }
        po = po.args(opts.extra.iter().cloned());
        let process = Process::spawn(po, dir.path())?;
        let mut sipp = Self {
            process,
            stat_csv,
            work_dir,
            local_ip: opts.local_ip,
            local_port,
        };
        // A SIPp without a remote is a server: callers must not dial before it listens
        // (over TCP an early call is refused, and a UAC does not retry a refused connect).
        if opts.remote.is_none() {
            sipp.wait_listening(opts.transport, Duration::from_secs(5))?;
        }
        Ok(sipp)
    }

    /// Waits (bounded) until SIPp's socket on its local port is bound (UDP) or listening
    /// (TCP), read from `/proc/PID/net/{udp,tcp}{,6}`: the process's own network
    /// namespace, and no packet sent to find out.
    pub fn wait_listening(&mut self, transport: SippTransport, limit: Duration) -> Result<()> {
        let (files, state) = match transport {
            SippTransport::Udp => (["udp", "udp6"], "07"),
            SippTransport::Tcp => (["tcp", "tcp6"], "0A"),
        };
        let port = format!("{:04X}", self.local_port);
        let deadline = std::time::Instant::now() + limit;
        loop {
            let pid = self.process.pid();
            let listening = files.iter().any(|f| {
                std::fs::read_to_string(format!("/proc/{pid}/net/{f}"))
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .any(|l| {
                        let cols: Vec<&str> = l.split_whitespace().collect();
                        cols.get(1).and_then(|a| a.rsplit(':').next()) == Some(port.as_str())
                            && cols.get(3) == Some(&state)
                    })
            });
            if listening {
                return Ok(());
            }
            if !self.process.is_running() || std::time::Instant::now() >= deadline {
                return Err(Error::Peer {
                    peer: "sipp".into(),
                    reason: format!(
                        "not listening on port {} after {limit:?} (running: {})",
                        self.local_port,
                        self.process.is_running()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ip:port` it listens on (what a UAC dials for a UAS).
    pub fn address(&self) -> String {
        format!("{}:{}", self.local_ip, self.local_port)
    }
    pub fn local_port(&self) -> u16 {
        self.local_port
    }
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
    pub fn process(&self) -> &Process {
        &self.process
    }
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Bounded wait for SIPp to exit by itself (exit 0: all calls OK; 1: some failed;
    /// 99: no call processed; 255/254: fatal/bind error).
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }

    /// Parse the last line of the stat CSV.
    pub fn stats(&self) -> Result<SippStats> {
        let text = std::fs::read_to_string(&self.stat_csv).map_err(io_err(&self.stat_csv))?;
        parse_stat_csv(&text).ok_or_else(|| Error::Peer {
            peer: self.process.name().to_string(),
            reason: format!("unparsable stat CSV {}", self.stat_csv.display()),
        })
    }
}

fn copy_pcaps(work_dir: &Path) -> Result<()> {
    let src = Path::new("/usr/share/sip-tester");
    let dst = work_dir.join("pcap");
    std::fs::create_dir_all(&dst).map_err(io_err(&dst))?;
    for e in std::fs::read_dir(src).map_err(io_err(src))?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "pcap") {
            if let Some(n) = p.file_name() {
                let to = dst.join(n);
                std::fs::copy(&p, &to).map_err(io_err(&to))?;
            }
        }
    }
    Ok(())
}

/// Parse SIPp's `-trace_stat` CSV (`;`-separated, header line first, one line per dump).
pub fn parse_stat_csv(text: &str) -> Option<SippStats> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let last: Vec<&str> = lines.next_back()?.split(';').collect();
    let get = |name: &str| -> Option<u64> {
        let i = header.iter().position(|h| h.trim() == name)?;
        last.get(i)?.trim().parse().ok()
    };
    Some(SippStats {
        successful: get("SuccessfulCall(C)")?,
        failed: get("FailedCall(C)")?,
        total_created: get("TotalCallCreated").unwrap_or(0),
        outgoing: get("OutgoingCall(C)").unwrap_or(0),
        incoming: get("IncomingCall(C)").unwrap_or(0),
        failed_max_udp_retrans: get("FailedMaxUDPRetrans(C)").unwrap_or(0),
        failed_unexpected: get("FailedUnexpectedMessage(C)").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_csv_last_line() {
        let csv = "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n\
                   2026-11-26\t09:23:19;0;0;0;0;0;\n\
                   2026-11-26\t09:23:20;10;0;9;0;1;\n";
        let s = parse_stat_csv(csv).unwrap();
        assert_eq!((s.total_created, s.successful, s.failed), (10, 9, 1));
        assert!(parse_stat_csv("only a header\n").is_none());
    }
}
