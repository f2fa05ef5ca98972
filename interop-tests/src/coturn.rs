//! coturn 4.6.1 (`turnserver`) as STUN/TURN server with long-term credentials (static users,
//! or a shared secret for TURN REST credentials: [`CoturnOptions::rest_secret`]), plus a tiny
//! STUN Binding client ([`stun_binding`]) used for readiness and NAT probes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::paths::TestDir;
use crate::ports::alloc_port_block;
use crate::process::{wait_for, Process, ProcessOptions};

#[derive(Debug, Clone)]
pub struct CoturnOptions {
    listen_ip: String,
    second_listen_ip: Option<String>,
    relay_ip: Option<String>,
    port: Option<u16>,
    relay_ports: Option<(u16, u16)>,
    realm: String,
    users: Vec<(String, String)>,
    rest_secret: Option<String>,
    allow_loopback_peers: bool,
    netns: Option<String>,
    tls: Option<(PathBuf, PathBuf)>,
    tls_port: Option<u16>,
    no_udp: bool,
    extra: Vec<String>,
}

impl Default for CoturnOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl CoturnOptions {
    /// 127.0.0.1 on an allocated port, relay ports from an allocated block of 40, realm
    /// `peerline.test`, loopback peers allowed (needed when peers are on 127.x).
    pub fn new() -> Self {
        Self {
            listen_ip: "127.0.0.1".into(),
            second_listen_ip: None,
            relay_ip: None,
            port: None,
            relay_ports: None,
            realm: "peerline.test".into(),
            users: Vec::new(),
            rest_secret: None,
            allow_loopback_peers: true,
            netns: None,
            tls: None,
            tls_port: None,
            no_udp: false,
            extra: Vec::new(),
        }
    }
    /// TURN over TLS (`turns:`) with this certificate chain and key (PEM), on
    /// [`CoturnOptions::tls_port`] (default: the listening port plus one). Without it
    /// coturn runs with `--no-tls`. TCP is always on, on the listening port.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }
    pub fn tls_port(mut self, port: u16) -> Self {
        self.tls_port = Some(port);
        self
    }
    /// `--no-udp`: no UDP listener, so clients can only reach it over TCP or TLS (STUN
    /// over UDP does not answer either).
    pub fn no_udp(mut self) -> Self {
        self.no_udp = true;
        self
    }
    pub fn listen_ip(mut self, ip: &str) -> Self {
        self.listen_ip = ip.into();
        self
    }
    /// A second `--listening-ip` (same family): coturn then does RFC 5780 NAT behaviour
    /// discovery (OTHER-ADDRESS, CHANGE-REQUEST), its other address being this IP and the
    /// listening port plus one.
    pub fn second_listen_ip(mut self, ip: &str) -> Self {
        self.second_listen_ip = Some(ip.into());
        self
    }
    /// Relay address (default: the listen address).
    pub fn relay_ip(mut self, ip: &str) -> Self {
        self.relay_ip = Some(ip.into());
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn relay_ports(mut self, lo: u16, hi: u16) -> Self {
        self.relay_ports = Some((lo, hi));
        self
    }
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = realm.into();
        self
    }
    pub fn user(mut self, user: &str, pass: &str) -> Self {
        self.users.push((user.into(), pass.into()));
        self
    }
    /// TURN REST credentials (`--use-auth-secret --static-auth-secret=SECRET`): user
    /// names `<expiry>:<label>`, passwords `base64(HMAC-SHA1(SECRET, user name))`. Replaces
    /// the static users (`--lt-cred-mech`/`--user` are not passed).
    pub fn rest_secret(mut self, secret: &str) -> Self {
        self.rest_secret = Some(secret.into());
        self
    }
    pub fn allow_loopback_peers(mut self, allow: bool) -> Self {
        self.allow_loopback_peers = allow;
        self
    }
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }
    /// Extra raw `turnserver` arguments.
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }
}

/// A running `turnserver`.
#[derive(Debug)]
pub struct Coturn {
    process: Process,
    work_dir: PathBuf,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    realm: String,
    in_netns: bool,
    no_udp: bool,
}

impl Coturn {
    pub fn start(opts: CoturnOptions, dir: &TestDir) -> Result<Self> {
        let work_dir = dir.subdir("coturn")?;
        let ip: IpAddr = opts.listen_ip.parse().map_err(|_| Error::Peer {
            peer: "coturn".into(),
            reason: format!("listen ip {:?} is not an IP address", opts.listen_ip),
        })?;
        let port = match opts.port {
            Some(p) => p,
            None => alloc_port_block(2)?,
        };
        let (lo, hi) = match opts.relay_ports {
            Some(r) => r,
            None => {
                let lo = alloc_port_block(40)?;
                (lo, lo + 39)
            }
        };
        let userdb = work_dir.join("turndb.sqlite");
        let relay_ip = opts
            .relay_ip
            .clone()
            .unwrap_or_else(|| opts.listen_ip.clone());
        let tls_port = opts.tls_port.unwrap_or(port + 1);
        let mut po = ProcessOptions::new("coturn", "turnserver")
            .args(["-n", "-v", "--no-dtls", "--no-cli", "--simple-log"])
            .arg("--log-file=stdout")
            .arg(format!("--listening-ip={}", opts.listen_ip))
            .arg(format!("--listening-port={port}"))
            .arg(format!("--relay-ip={relay_ip}"))
            .arg(format!("--min-port={lo}"))
            .arg(format!("--max-port={hi}"))
            .arg(format!("--realm={}", opts.realm))
            .arg(format!("--userdb={}", userdb.display()))
            .arg(format!(
                "--pidfile={}",
                work_dir.join("turnserver.pid").display()
            ))
            .cwd(&work_dir)
            .netns(opts.netns.as_deref());
        if let Some(second) = &opts.second_listen_ip {
            po = po.arg(format!("--listening-ip={second}"));
        }
        match &opts.tls {
            Some((cert, key)) => {
                po = po
                    .arg(format!("--cert={}", cert.display()))
                    .arg(format!("--pkey={}", key.display()))
                    .arg(format!("--tls-listening-port={tls_port}"));
            }
            None => po = po.arg("--no-tls"),
        }
        if opts.no_udp {
            po = po.arg("--no-udp");
        }
        match &opts.rest_secret {
            Some(secret) => {
                po = po
                    .arg("--use-auth-secret")
                    .arg(format!("--static-auth-secret={secret}"));
            }
            None => {
                po = po.arg("--lt-cred-mech");
                for (u, p) in &opts.users {
                    po = po.arg(format!("--user={u}:{p}"));
                }
            }
        }
        if opts.allow_loopback_peers {
            po = po.arg("--allow-loopback-peers");
        }
        po = po.args(opts.extra.iter().cloned());
        let process = Process::spawn(po, dir.path())?;
        Ok(Self {
            process,
            work_dir,
            addr: SocketAddr::new(ip, port),
            tls_addr: opts.tls.as_ref().map(|_| SocketAddr::new(ip, tls_port)),
            realm: opts.realm,
            in_netns: opts.netns.is_some(),
            no_udp: opts.no_udp,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.addr
    }
    /// The TLS listener, when started with [`CoturnOptions::tls`].
    pub fn tls_address(&self) -> Option<SocketAddr> {
        self.tls_addr
    }
    pub fn realm(&self) -> &str {
        &self.realm
    }
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Bounded wait until it answers a STUN Binding request (from this process's network
    /// namespace; inside a test namespace, only waits for the log line).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        if self.in_netns {
            return self
                .process
                .wait_for_log("Relay ports initialization done", timeout);
        }
        if self.no_udp {
            // No STUN over UDP to probe with: wait until the TCP listener accepts.
            let addr = self.addr;
            return wait_for(
                "coturn to accept TCP",
                timeout,
                Duration::from_millis(100),
                || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            );
        }
        let addr = self.addr;
        let mut exited = false;
        wait_for(
            "coturn to answer STUN",
            timeout,
            Duration::from_millis(100),
            || {
                exited = !self.process.is_running();
                exited || stun_binding(addr, Duration::from_millis(200)).is_ok()
            },
        )?;
        if exited {
            return Err(Error::Peer {
                peer: "coturn".into(),
                reason: format!("exited during start\n{}", self.process.log_tail(40)),
            });
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// Send one STUN Binding request (RFC 5389) from an ephemeral UDP port on the same address
/// family and return the XOR-MAPPED-ADDRESS. Bounded by `timeout`.
pub fn stun_binding(server: SocketAddr, timeout: Duration) -> Result<SocketAddr> {
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let ctx = format!("STUN to {server}");
    let sock = UdpSocket::bind(bind).map_err(io_err(&ctx))?;
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(io_err(&ctx))?;
    let txid: [u8; 12] = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        let b = t.to_be_bytes();
        let mut id = [0u8; 12];
        id.copy_from_slice(&b[4..16]);
        id
    };
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&txid);
    sock.send_to(&req, server).map_err(io_err(&ctx))?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).map_err(io_err(&ctx))?;
    parse_binding_response(&buf[..n], &txid).ok_or_else(|| Error::Peer {
        peer: server.to_string(),
        reason: "no XOR-MAPPED-ADDRESS in STUN response".into(),
    })
}

fn parse_binding_response(msg: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    if msg.len() < 20 || msg[0..2] != [0x01, 0x01] || msg[8..20] != txid[..] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let body = msg.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let ty = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let v = body.get(i + 4..i + 4 + alen)?;
        if ty == 0x0020 && alen >= 8 && v[1] == 0x01 {
            let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
            let ip = Ipv4Addr::new(v[4] ^ 0x21, v[5] ^ 0x12, v[6] ^ 0xA4, v[7] ^ 0x42);
            return Some(SocketAddr::new(IpAddr::V4(ip), port));
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    None
}
