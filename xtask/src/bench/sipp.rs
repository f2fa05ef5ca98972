//! SIPp 3.6.1 for the bench: built-in `uac`/`uas` (or a scenario file) on 127.0.0.1,
//! bounded by `-timeout S -timeout_error`, counters from its `-trace_stat` CSV.
//!
//! A small std-only twin of `peerline_interop::Sipp`: xtask stays free of dependencies so
//! it builds in seconds before the build packages are installed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{free_udp_port, Proc};
use super::Result;

/// One SIPp run to start.
pub struct SippRun {
    pub name: String,
    /// `-sn NAME` or, if it ends in `.xml`, `-sf FILE`.
    pub scenario: String,
    /// `host:port` to call (UAC).
    pub remote: Option<String>,
    /// `-m`: stop after this many calls.
    pub calls: u64,
    /// `-r`: calls per second (UAC).
    pub rate: Option<u64>,
    /// `-l`: at most this many calls at once.
    pub limit: Option<u64>,
    /// `-d`: milliseconds of the scenario's pause (how long a call is held).
    pub hold_ms: Option<u64>,
    /// `-timeout`: SIPp gives up (with an error) after this.
    pub timeout: Duration,
    /// Pin to this core (`taskset -c`).
    pub cpu: Option<u32>,
}

impl SippRun {
    pub fn new(name: &str, scenario: &str, calls: u64, timeout: Duration) -> Self {
        Self {
            name: name.to_string(),
            scenario: scenario.to_string(),
            remote: None,
            calls,
            rate: None,
            limit: None,
            hold_ms: None,
            timeout,
            cpu: None,
        }
    }
}

/// A started SIPp.
pub struct Sipp {
    pub proc: Proc,
    pub port: u16,
    stat_csv: PathBuf,
}

impl Sipp {
    pub fn start(run: &SippRun, dir: &Path) -> Result<Self> {
        let port = free_udp_port()?;
        let media_port = free_udp_port()?;
        let stat_csv = dir.join(format!("{}_stat.csv", run.name));
        let _ = std::fs::remove_file(&stat_csv);
        let mut args: Vec<String> = Vec::new();
        if run.scenario.ends_with(".xml") {
            args.extend(["-sf".into(), run.scenario.clone()]);
        } else {
            args.extend(["-sn".into(), run.scenario.clone()]);
        }
        if let Some(r) = &run.remote {
            args.push(r.clone());
        }
        let s = |v: &str| v.to_string();
        args.extend([s("-i"), s("127.0.0.1"), s("-p"), port.to_string()]);
        args.extend([s("-mp"), media_port.to_string()]);
        args.extend([s("-t"), s("u1"), s("-nostdin"), s("-timeout_error")]);
        args.extend([s("-timeout"), format!("{}s", run.timeout.as_secs().max(1))]);
        args.extend([s("-trace_stat"), s("-fd"), s("1"), s("-stf")]);
        args.push(stat_csv.display().to_string());
        args.extend([s("-m"), run.calls.to_string()]);
        if let Some(r) = run.rate {
            args.extend([s("-r"), r.to_string()]);
        }
        if let Some(l) = run.limit {
            args.extend([s("-l"), l.to_string()]);
        }
        if let Some(d) = run.hold_ms {
            args.extend([s("-d"), d.to_string()]);
        }
        let proc = Proc::spawn(&run.name, Path::new("sipp"), &args, dir, run.cpu)?;
        Ok(Self {
            proc,
            port,
            stat_csv,
        })
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The last line of the stat CSV (SIPp writes one per second and one at exit).
    pub fn stats(&self) -> Result<SippStats> {
        let text = std::fs::read_to_string(&self.stat_csv)
            .map_err(|e| format!("{}: {e}", self.stat_csv.display()))?;
        SippStats::parse(&text).ok_or_else(|| format!("unparsable {}", self.stat_csv.display()))
    }
}

/// Cumulative counters from SIPp's stat CSV.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SippStats {
    pub created: u64,
    pub successful: u64,
    pub failed: u64,
    pub current: u64,
    /// `CallRate(C)`: calls created per second over the whole run.
    pub call_rate: f64,
    pub retransmissions: u64,
}

impl SippStats {
    /// Parses the header line and the last data line (`;`-separated).
    pub fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next()?.split(';').collect();
        let last: Vec<&str> = lines.next_back()?.split(';').collect();
        let field = |name: &str| -> Option<&str> {
            let i = header.iter().position(|h| h.trim() == name)?;
            last.get(i).map(|v| v.trim())
        };
        let int = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
        Some(Self {
            created: int("TotalCallCreated").unwrap_or(0),
            successful: int("SuccessfulCall(C)")?,
            failed: int("FailedCall(C)")?,
            current: int("CurrentCall").unwrap_or(0),
            call_rate: field("CallRate(C)")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            retransmissions: int("Retransmissions(C)").unwrap_or(0),
        })
    }
}

/// `sipp -sd uac` with its SDP offering Opus instead of PCMU, written to `dir`.
pub fn opus_uac_scenario(dir: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new("sipp")
        .args(["-sd", "uac"])
        .output()
        .map_err(|e| format!("sipp -sd uac: {e}"))?;
    let xml = String::from_utf8_lossy(&out.stdout)
        .replace("RTP/AVP 0", "RTP/AVP 111")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:111 opus/48000/2");
    if !xml.contains("opus/48000/2") {
        return Err("sipp -sd uac: no SDP to turn into an Opus offer".into());
    }
    let path = dir.join("uac_opus.xml");
    std::fs::write(&path, xml).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_line() {
        let csv = "TotalCallCreated;CurrentCall;CallRate(C);SuccessfulCall(C);FailedCall(C);\n\
                   5;5;10.0;0;0;\n\
                   20;0;996.016;19;1;\n";
        let s = SippStats::parse(csv).unwrap_or_default();
        assert_eq!((s.created, s.successful, s.failed), (20, 19, 1));
        assert!((s.call_rate - 996.016).abs() < 1e-9);
        assert!(SippStats::parse("only a header\n").is_none());
    }
}
