//! Figure 6: the idle cost of a registered phone. `peerline register --stay` (default
//! settings: REGISTER for 600 s, refreshed before it runs out) against SIPp acting as a
//! registrar (a scenario that answers every REGISTER with 200) on loopback, for
//! `idle_secs`. Bytes are counted outside Peerline, from a `dumpcap` capture of the
//! phone's SIP port (UDP payload, each way, and the messages by their first line); CPU
//! from the kernel's `utime + stime` of the phone's process. `cargo xtask bench idle`
//! runs only this figure (ten minutes) and writes its own section of docs/benchmarks.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::process::{free_udp_port, Proc};
use super::sipp::{Sipp, SippRun};
use super::{Bench, Result};

/// SIPp as a registrar: every REGISTER of the phone's registration (one Call-ID) gets a
/// 200 with the Contact it sent, for 600 s.
pub(super) const REGISTRAR_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="peerline bench registrar">
  <label id="1"/>
  <recv request="REGISTER"/>
  <send next="1">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]reg[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:];expires=600
      Expires: 600
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

/// What an idle registered phone cost.
#[derive(Debug, Clone)]
pub struct Idle {
    pub secs: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// First lines of what the phone sent and received, with counts.
    pub messages: MessageCounts,
    pub cpu_secs: f64,
}

impl Idle {
    pub fn bytes_per_minute(&self) -> f64 {
        (self.bytes_sent + self.bytes_received) as f64 * 60.0 / self.secs.max(1.0)
    }
    pub fn cpu_percent(&self) -> f64 {
        self.cpu_secs * 100.0 / self.secs.max(1.0)
    }
}

/// Runs the figure: SIPp registrar, capture, phone; everything stopped by its PID.
pub fn measure(bench: &Bench, secs: u64) -> Result<Idle> {
    let dir = bench.work.join("idle");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let scenario = dir.join("registrar.xml");
    std::fs::write(&scenario, REGISTRAR_XML).map_err(|e| format!("{e}"))?;
    let run = SippRun::new(
        "registrar",
        &scenario.display().to_string(),
        10,
        Duration::from_secs(secs + 60),
    );
    let mut registrar = Sipp::start(&run, &dir)?;
    let phone_port = free_udp_port()?;
    let config = dir.join("phone.toml");
    std::fs::write(
        &config,
        format!(
            "[identity]\nuser = \"idle\"\n\n[network]\nsip_listen = \"127.0.0.1:{phone_port}\"\n\n\
             [[account]]\naor = \"sip:idle@127.0.0.1\"\nregistrar = \"sip:127.0.0.1:{}\"\n",
            registrar.port
        ),
    )
    .map_err(|e| format!("{e}"))?;
    let pcap = dir.join("idle.pcapng");
    let filter = format!("udp port {phone_port}");
    let mut capture = Proc::spawn(
        "dumpcap",
        Path::new("dumpcap"),
        &[
            "-q".into(),
            "-i".into(),
            "lo".into(),
            "-f".into(),
            filter,
            "-w".into(),
            pcap.display().to_string(),
        ],
        &dir,
        None,
    )?;
    // dumpcap has no "ready" line on -q; its capture starts well within this.
    sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut phone = Proc::spawn(
        "phone",
        &bench.binary("peerline"),
        &[
            "--config".into(),
            config.display().to_string(),
            "register".into(),
            "--stay".into(),
            secs.to_string(),
        ],
        &dir,
        None,
    )?;
    let ticks_at_start = cpu_ticks(phone.pid());
    sleep(Duration::from_secs(secs));
    let ticks = cpu_ticks(phone.pid()).saturating_sub(ticks_at_start);
    let elapsed = started.elapsed().as_secs_f64();
    // `--stay` ends by itself (it unregisters); stop it by its PID if it has not.
    let status = phone.wait_exit(Duration::from_secs(10));
    if status.is_none() {
        phone.stop();
    }
    sleep(Duration::from_millis(500));
    capture.stop();
    registrar.proc.stop();
    let registered = phone.stdout_text();
    if !registered.contains("registered sip:idle@127.0.0.1")
        || registered.contains("not registered")
    {
        return Err(format!("the phone did not register: {registered}"));
    }
    let (bytes_sent, bytes_received, messages) = count(&pcap, phone_port)?;
    Ok(Idle {
        secs: elapsed,
        bytes_sent,
        bytes_received,
        messages,
        cpu_secs: ticks as f64 / clock_ticks_per_sec(),
    })
}

/// `utime + stime` of a process, in clock ticks (0 if it is gone).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: count fields after its closing parenthesis.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    get(11) + get(12)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Messages by direction and first line ("sent REGISTER sip:…"), with counts.
type MessageCounts = Vec<(String, u64)>;

/// UDP payload bytes from and to `port` in the capture, and the SIP first lines.
fn count(pcap: &Path, port: u16) -> Result<(u64, u64, MessageCounts)> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(pcap)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "udp.srcport",
            "-e",
            "udp.length",
            "-e",
            "sip.Request-Line",
            "-e",
            "sip.Status-Line",
        ])
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark -r {}: {}",
            pcap.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let (mut sent, mut received) = (0u64, 0u64);
    let mut messages: MessageCounts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        let (Some(src), Some(len)) = (f.first(), f.get(1)) else {
            continue;
        };
        let payload = len.parse::<u64>().unwrap_or(8).saturating_sub(8);
        let outgoing = src.parse::<u16>().ok() == Some(port);
        if outgoing {
            sent += payload;
        } else {
            received += payload;
        }
        let first = f
            .get(2)
            .filter(|s| !s.is_empty())
            .or(f.get(3))
            .map(|s| s.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let key = format!("{} {}", if outgoing { "sent" } else { "received" }, first);
        match messages.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => messages.push((key, 1)),
        }
    }
    Ok((sent, received, messages))
}

/// The figure as a section of docs/benchmarks.md.
pub fn markdown(i: &Idle, machine: &str, when: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Idle cost of a registered phone (figure 6)\n");
    let _ = writeln!(
        s,
        "Written by `cargo xtask bench idle` ({when}; {machine}). `peerline register --stay` with \
         default settings (REGISTER for 600 s) against SIPp as a registrar on loopback, for \
         {:.0} s. Bytes from a `dumpcap` capture of the phone's SIP port (UDP payload), CPU \
         from the process's `utime + stime`.\n",
        i.secs
    );
    let _ = writeln!(s, "| figure | measured | target |");
    let _ = writeln!(s, "|---|---|---|");
    let _ = writeln!(
        s,
        "| bytes per minute (both ways) | {:.0} B/min ({} B sent, {} B received) | ≤ 1 KB/min |",
        i.bytes_per_minute(),
        i.bytes_sent,
        i.bytes_received
    );
    let _ = writeln!(
        s,
        "| CPU | {:.3} % ({:.2} s in {:.0} s) | ≈ 0 % |",
        i.cpu_percent(),
        i.cpu_secs,
        i.secs
    );
    let list: Vec<String> = i
        .messages
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect();
    let _ = writeln!(s, "\nWhat went over the wire: {}.", list.join(", "));
    s
}
