//! baresip 1.0.0 (Debian `baresip-core`), headless: a config dir the harness writes, `menu`
//! driven by `-e "/dial URI"` and bounded by `-t SECONDS`, optional `ctrl_tcp` for commands
//! after start, media from a WAV (`aufile`), what it receives recorded by `sndfile`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audio::{read_wav_mono, WavMono};
use crate::error::{io_err, Error, Result};
use crate::paths::TestDir;
use crate::ports::alloc_port_block;
use crate::process::{wait_for, Process, ProcessOptions};

const MODULE_PATH: &str = "/usr/lib/baresip/modules";

/// Everything needed to write one baresip config dir and start it.
#[derive(Debug, Clone)]
pub struct BaresipOptions {
    name: String,
    user: String,
    listen_ip: String,
    net_interface: Option<String>,
    sip_port: Option<u16>,
    rtp_ports: Option<(u16, u16)>,
    audio_source: Option<PathBuf>,
    srate: u32,
    channels: u8,
    audio_codecs: Option<String>,
    mediaenc: Option<String>,
    medianat: Option<String>,
    answermode: String,
    account_params: Vec<String>,
    account_uri: Option<String>,
    modules: Vec<String>,
    extra_config: Vec<String>,
    contact: Option<String>,
    ctrl_tcp: bool,
    netns: Option<String>,
    dial: Option<String>,
    verbose: bool,
    run_for: Duration,
}

impl BaresipOptions {
    /// A UA named `name` (also the SIP user), listening on 127.0.0.1 at a freshly allocated
    /// port, auto-answering, recording what it receives, quitting after 30 s at the latest.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            user: name.to_string(),
            listen_ip: "127.0.0.1".to_string(),
            net_interface: None,
            sip_port: None,
            rtp_ports: None,
            audio_source: None,
            srate: 8000,
            channels: 1,
            audio_codecs: None,
            mediaenc: None,
            medianat: None,
            answermode: "auto".to_string(),
            account_params: Vec::new(),
            account_uri: None,
            modules: Vec::new(),
            extra_config: Vec::new(),
            contact: None,
            ctrl_tcp: false,
            netns: None,
            dial: None,
            verbose: false,
            run_for: Duration::from_secs(30),
        }
    }
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }
    /// Listen/bind address (e.g. a veth address inside a namespace). Never an interface
    /// name: `net_interface lo` makes baresip 1.0.0 fail to start.
    pub fn listen_ip(mut self, ip: &str) -> Self {
        self.listen_ip = ip.to_string();
        self
    }
    /// Its media address (`net_interface`: the SDP's `c=`, where RTP binds, the ICE default
    /// candidate) when it differs from the SIP listen address, e.g. SIP on a signaling
    /// link and media through a NAT. Default: [`Self::listen_ip`]. An address, never an
    /// interface name. baresip's ICE still gathers host candidates on every interface.
    pub fn net_interface(mut self, ip: &str) -> Self {
        self.net_interface = Some(ip.to_string());
        self
    }
    /// Fixed SIP port (UDP+TCP on P, TLS on P+1). Default: allocated.
    pub fn sip_port(mut self, port: u16) -> Self {
        self.sip_port = Some(port);
        self
    }
    /// RTP port range. Default: an allocated block of 20 ports.
    pub fn rtp_ports(mut self, lo: u16, hi: u16) -> Self {
        self.rtp_ports = Some((lo, hi));
        self
    }
    /// The WAV it sends (`aufile`); its rate/channels must match [`Self::audio_format`].
    /// When it reaches the end of the file, baresip (menu) hangs the call up.
    pub fn audio_source(mut self, wav: &Path) -> Self {
        self.audio_source = Some(wav.to_path_buf());
        self
    }
    /// `ausrc_srate`/`auplay_srate` and channels (default 8000 Hz mono).
    pub fn audio_format(mut self, srate: u32, channels: u8) -> Self {
        self.srate = srate;
        self.channels = channels;
        self
    }
    /// Account `audio_codecs=` (e.g. `PCMU`, `G722`, `opus/48000/2` — plain `opus` silently
    /// falls back to PCMU in 1.0.0). Loads the codec modules named.
    pub fn audio_codecs(mut self, codecs: &str) -> Self {
        self.audio_codecs = Some(codecs.to_string());
        self
    }
    /// Account `mediaenc=` (`srtp`, `srtp-mand`, `srtp-mandf`, `dtls_srtp`, …).
    pub fn mediaenc(mut self, enc: &str) -> Self {
        self.mediaenc = Some(enc.to_string());
        self
    }
    /// [`Self::mediaenc`] when `Some`; no media encryption otherwise.
    pub fn mediaenc_opt(mut self, enc: Option<&str>) -> Self {
        self.mediaenc = enc.map(str::to_string);
        self
    }
    /// Account `medianat=` (`ice`, `stun`, `turn`); put `stunserver=`/`stunuser=`/`stunpass=`
    /// in [`Self::account_param`].
    pub fn medianat(mut self, nat: &str) -> Self {
        self.medianat = Some(nat.to_string());
        self
    }
    /// `answermode=` (default `auto`; `manual` to leave calls ringing).
    pub fn answermode(mut self, mode: &str) -> Self {
        self.answermode = mode.to_string();
        self
    }
    /// Extra `;key=value` account parameter (e.g. `auth_pass=secret`, `regint=60`,
    /// `outbound="sip:127.0.0.1:5060"`). Without `regint=` the harness adds `regint=0`.
    pub fn account_param(mut self, param: &str) -> Self {
        self.account_params.push(param.to_string());
        self
    }
    /// Account AOR instead of `sip:USER@LISTEN_IP:PORT` (e.g. `sip:alice@example.test`).
    pub fn account_uri(mut self, uri: &str) -> Self {
        self.account_uri = Some(uri.to_string());
        self
    }
    /// Load an extra module (`name` or `name.so`).
    pub fn module(mut self, m: &str) -> Self {
        self.modules.push(m.trim_end_matches(".so").to_string());
        self
    }
    /// An extra raw config line.
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra_config.push(line.to_string());
        self
    }
    /// A contact (`sip:…`) in its contacts file, made the current one: the `contact`
    /// module's `message` command sends MESSAGEs to it.
    pub fn contact(mut self, uri: &str) -> Self {
        self.contact = Some(uri.to_string());
        if !self.modules.iter().any(|m| m == "contact") {
            self.modules.push("contact".into());
        }
        self
    }

    /// Enable `ctrl_tcp` on an allocated port, for [`Baresip::command`].
    pub fn ctrl_tcp(mut self) -> Self {
        self.ctrl_tcp = true;
        self
    }
    /// Run inside this network namespace.
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }
    /// Dial this URI right after start (`-e "/dial URI"`).
    pub fn dial(mut self, uri: &str) -> Self {
        self.dial = Some(uri.to_string());
        self
    }
    /// Debug logging (`-v`): ICE gathering, checks and pair states in its log.
    pub fn verbose(mut self) -> Self {
        self.verbose = true;
        self
    }
    /// Upper bound on its life (`-t SECONDS`, rounded up). Default 30 s.
    pub fn run_for(mut self, d: Duration) -> Self {
        self.run_for = d;
        self
    }

    fn module_list(&self) -> Vec<String> {
        let mut m: Vec<String> = vec!["g711".into()];
        if let Some(c) = &self.audio_codecs {
            let lc = c.to_ascii_lowercase();
            if lc.contains("opus") {
                m.push("opus".into());
            }
            if lc.contains("g722") {
                m.push("g722".into());
            }
        }
        m.extend(["aufile", "alsa", "sndfile"].map(String::from));
        if let Some(enc) = &self.mediaenc {
            if enc.starts_with("dtls") {
                m.push("dtls_srtp".into());
            } else if enc.starts_with("srtp") {
                m.push("srtp".into());
            }
        }
        if let Some(nat) = &self.medianat {
            match nat.as_str() {
                "ice" => m.extend(["stun", "turn", "ice"].map(String::from)),
                "turn" => m.extend(["stun", "turn"].map(String::from)),
                "stun" => m.push("stun".into()),
                other => m.push(other.to_string()),
            }
        }
        m.extend(self.modules.iter().cloned());
        if self.ctrl_tcp {
            m.push("ctrl_tcp".into());
        }
        m.extend(["menu", "account"].map(String::from));
        let mut seen = std::collections::HashSet::new();
        m.retain(|x| seen.insert(x.clone()));
        m
    }
}

/// A running baresip. Stopped (SIGTERM, which also finalises its recordings) on drop.
#[derive(Debug)]
pub struct Baresip {
    process: Process,
    config_dir: PathBuf,
    rec_dir: PathBuf,
    user: String,
    listen_ip: String,
    sip_port: u16,
    ctrl_port: Option<u16>,
}

impl Baresip {
    /// Write `<test dir>/<name>/{config,accounts,contacts}` and start baresip.
    pub fn start(opts: BaresipOptions, dir: &TestDir) -> Result<Self> {
        let config_dir = dir.subdir(&opts.name)?;
        let rec_dir =
            crate::paths::short_dir(&format!("{}-rec", opts.name), &config_dir.join("rec"))?;
        let sip_port = match opts.sip_port {
            Some(p) => p,
            None => alloc_port_block(2)?,
        };
        let (rtp_lo, rtp_hi) = match opts.rtp_ports {
            Some(r) => r,
            None => {
                let lo = alloc_port_block(20)?;
                (lo, lo + 19)
            }
        };
        let ctrl_port = if opts.ctrl_tcp {
            Some(alloc_port_block(1)?)
        } else {
            None
        };
        let mut cfg = vec![
            "# written by peerline-interop".to_string(),
            "poll_method epoll".into(),
            format!("sip_listen {}:{}", opts.listen_ip, sip_port),
            format!(
                "net_interface {}",
                opts.net_interface.as_deref().unwrap_or(&opts.listen_ip)
            ),
            format!("rtp_ports {rtp_lo}-{rtp_hi}"),
            "audio_player alsa,null".into(),
            "audio_alert alsa,null".into(),
            match &opts.audio_source {
                Some(wav) => format!("audio_source aufile,{}", wav.display()),
                None => "audio_source alsa,null".into(),
            },
            format!("ausrc_srate {}", opts.srate),
            format!("auplay_srate {}", opts.srate),
            format!("ausrc_channels {}", opts.channels),
            format!("auplay_channels {}", opts.channels),
            format!("snd_path {}", rec_dir.display()),
            format!("module_path {MODULE_PATH}"),
        ];
        if let Some(p) = ctrl_port {
            cfg.push(format!("ctrl_tcp_listen 127.0.0.1:{p}"));
        }
        cfg.extend(opts.module_list().iter().map(|m| format!("module {m}.so")));
        cfg.extend(opts.extra_config.iter().cloned());
        let cfg_path = config_dir.join("config");
        std::fs::write(&cfg_path, cfg.join("\n") + "\n").map_err(io_err(&cfg_path))?;

        let aor = opts
            .account_uri
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}:{}", opts.user, opts.listen_ip, sip_port));
        let mut acc = format!("<{aor}>");
        if !opts.account_params.iter().any(|p| p.starts_with("regint=")) {
            acc.push_str(";regint=0");
        }
        acc.push_str(&format!(";answermode={}", opts.answermode));
        if let Some(c) = &opts.audio_codecs {
            acc.push_str(&format!(";audio_codecs={c}"));
        }
        if let Some(e) = &opts.mediaenc {
            acc.push_str(&format!(";mediaenc={e}"));
        }
        if let Some(n) = &opts.medianat {
            acc.push_str(&format!(";medianat={n}"));
        }
        for p in &opts.account_params {
            acc.push(';');
            acc.push_str(p);
        }
        let acc_path = config_dir.join("accounts");
        std::fs::write(&acc_path, acc + "\n").map_err(io_err(&acc_path))?;
        let contacts = config_dir.join("contacts");
        let listed = match &opts.contact {
            Some(uri) => {
                let current = config_dir.join("current_contact");
                std::fs::write(&current, uri).map_err(io_err(&current))?;
                format!("\"Peer\" <{uri}>;access=allow\n")
            }
            None => String::new(),
        };
        std::fs::write(&contacts, listed).map_err(io_err(&contacts))?;

        let secs = opts.run_for.as_secs() + u64::from(opts.run_for.subsec_nanos() > 0);
        let mut po = ProcessOptions::new(&opts.name, "baresip")
            .arg("-f")
            .arg(config_dir.display().to_string())
            .arg("-t")
            .arg(secs.max(1).to_string())
            .cwd(&config_dir)
            .netns(opts.netns.as_deref());
        if opts.verbose {
            po = po.arg("-v");
        }
        if let Some(uri) = &opts.dial {
            po = po.arg("-e").arg(format!("/dial {uri}"));
        }
        let process = Process::spawn(po, dir.path())?;
        Ok(Self {
            process,
            config_dir,
            rec_dir,
            user: opts.user,
            listen_ip: opts.listen_ip,
            sip_port,
            ctrl_port,
        })
    }

    /// `sip:USER@IP:PORT` — where to dial it directly.
    pub fn uri(&self) -> String {
        format!("sip:{}@{}:{}", self.user, self.listen_ip, self.sip_port)
    }
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }
    /// Where `sndfile` writes `dump-<time>-dec.wav` (received) and `-enc.wav` (sent).
    pub fn recordings_dir(&self) -> &Path {
        &self.rec_dir
    }
    pub fn process(&self) -> &Process {
        &self.process
    }
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Bounded wait for "baresip is ready." (fails early if it exits).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        self.process.wait_for_log("baresip is ready.", timeout)?;
        if let Some(port) = self.ctrl_port {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_for(
                "baresip ctrl_tcp to listen",
                timeout,
                Duration::from_millis(50),
                || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            )?;
        }
        Ok(())
    }

    /// Bounded wait for "Call established".
    pub fn wait_established(&mut self, timeout: Duration) -> Result<()> {
        self.process.wait_for_log("Call established", timeout)
    }

    /// Bounded wait for the call to end (its log says "terminated", or it exited).
    pub fn wait_call_end(&mut self, timeout: Duration) -> Result<()> {
        self.process.wait_for_log("terminated (duration", timeout)
    }

    /// Stop by PID (SIGTERM: baresip hangs up and finalises its WAV recordings).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Recordings, oldest first: `dec == true` → what it received, else what it sent.
    pub fn recordings(&self, dec: bool) -> Vec<PathBuf> {
        let suffix = if dec { "-dec.wav" } else { "-enc.wav" };
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.rec_dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.ends_with(suffix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The (last) recording of what it received, downmixed to mono.
    /// Stop it first so the WAV header is final.
    pub fn received_audio(&self) -> Result<WavMono> {
        let p = self.recordings(true).pop().ok_or_else(|| Error::Peer {
            peer: self.process.name().to_string(),
            reason: format!("no *-dec.wav recording in {}", self.rec_dir.display()),
        })?;
        read_wav_mono(&p)
    }

    /// Send a `ctrl_tcp` command (netstring-framed JSON) and return the response JSON text.
    /// E.g. `command("dial", "sip:b@127.0.0.1:5070")`, `command("hangup", "")`.
    pub fn command(&self, command: &str, params: &str) -> Result<String> {
        let port = self.ctrl_port.ok_or_else(|| Error::Peer {
            peer: self.process.name().to_string(),
            reason: "ctrl_tcp not enabled (BaresipOptions::ctrl_tcp)".into(),
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let ctx = format!("ctrl_tcp 127.0.0.1:{port}");
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io_err(&ctx))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(io_err(&ctx))?;
        let body = serde_json::json!({"command": command, "params": params, "token": "peerline"})
            .to_string();
        s.write_all(format!("{}:{},", body.len(), body).as_bytes())
            .map_err(io_err(&ctx))?;
        // Read netstrings until the response carrying our token (events may come first).
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        for _ in 0..64 {
            while let Some((msg, rest)) = split_netstring(&buf) {
                let text = String::from_utf8_lossy(msg).into_owned();
                buf = rest.to_vec();
                if text.contains("\"response\"") {
                    return Ok(text);
                }
            }
            let n = s.read(&mut chunk).map_err(io_err(&ctx))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Err(Error::Peer {
            peer: self.process.name().to_string(),
            reason: format!("no ctrl_tcp response to {command:?}"),
        })
    }
}

fn split_netstring(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = buf.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&buf[..colon])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let end = colon + 1 + len;
    if buf.len() <= end || buf[end] != b',' {
        return None;
    }
    Some((&buf[colon + 1..end], &buf[end + 1..]))
}
