//! A NAT lab in Linux network namespaces: a "public" segment (a bridge in its own
//! namespace, where coturn runs) and home hosts, each either on the public segment itself
//! or behind its own NAT router namespace (iptables MASQUERADE).
//!
//! ```text
//!   pl-<pid>-<tag>-pub:  br0 203.0.113.1/24  (coturn listens here; optionally also on
//!                        203.0.113.2, `add_second_server_ip`, for RFC 5780)
//!        │ v1            │ v2
//!   pl-…-r1: wan 203.0.113.11   pl-…-h2: eth0 203.0.113.12  (Nat::None)
//!            lan 10.0.1.1
//!   pl-…-h1: eth0 10.0.1.2, default via 10.0.1.1
//! ```
//!
//! Everything is created inside namespaces named `pl-<pid>-<tag>-…` (veth pairs are created
//! straight across namespaces, so nothing appears in the root namespace) and deleted when
//! the [`NatLab`] drops, also on panic. Namespaces left by a killed earlier run (their PID
//! is gone) are deleted by [`NatLab::new`]. Addresses are from TEST-NET-3 and 10/8: no
//! route leads out of the lab (the public namespace and the hosts on the public segment
//! have a default route to a black hole, [`NatLab::INTERNET_GATEWAY_IP`]).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// NAT behaviour of a home router (measured on Debian 12, see the notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// No NAT: the host sits on the public segment.
    None,
    /// Plain MASQUERADE: endpoint-independent mapping, address-and-port-dependent
    /// filtering ("port-restricted cone").
    EndpointIndependent,
    /// MASQUERADE `--random-fully`: address-and-port-dependent mapping ("symmetric").
    Symmetric,
    /// MASQUERADE plus a DNAT of every new inbound UDP datagram to the host, same port:
    /// endpoint-independent mapping *and* filtering ("full cone").
    FullCone,
}

impl Nat {
    /// Short name for test and matrix names: `none`, `eim`, `sym`, `full`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::EndpointIndependent => "eim",
            Self::Symmetric => "sym",
            Self::FullCone => "full",
        }
    }
}

/// One host of the lab.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// The host's namespace (run peers with `ProcessOptions::netns(Some(&host.netns))`).
    pub netns: String,
    /// The host's own address (private behind a NAT).
    pub ip: Ipv4Addr,
    /// The address the public segment sees it as (router WAN, or `ip` without NAT).
    pub public_ip: Ipv4Addr,
    /// Its NAT.
    pub nat: Nat,
    /// The router namespace, if behind a NAT.
    pub router_netns: Option<String>,
}

/// The lab. Drop deletes every namespace it created (and with them their veths, bridge
/// and iptables rules), after killing by PID any process still running inside them.
#[derive(Debug)]
pub struct NatLab {
    prefix: String,
    created: Vec<String>,
    hosts: usize,
}

/// The public segment's prefix length.
const PUB_PREFIX: u8 = 24;

impl NatLab {
    /// The address of the public namespace's bridge (where a STUN/TURN server runs).
    pub const PUBLIC_SERVER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    /// The public segment's way out to "the Internet" (a black hole: see [`NatLab::new`]).
    pub const INTERNET_GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
    /// A second server address on the same bridge, added by
    /// [`NatLab::add_second_server_ip`] (an RFC 5780 STUN server needs two).
    pub const PUBLIC_SERVER_IP2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

    /// Creates the public namespace with its bridge. `tag` keeps labs of one test
    /// process apart (short: namespace names carry it).
    pub fn new(tag: &str) -> Result<Self> {
        cleanup_stale();
        let prefix = format!("pl-{}-{}", std::process::id(), tag);
        let mut lab = Self {
            prefix,
            created: Vec::new(),
            hosts: 0,
        };
        let p = lab.public_netns();
        lab.add_netns(&p)?;
        ip(&["-n", &p, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &p,
            "addr",
            "add",
            &format!("{}/{PUB_PREFIX}", Self::PUBLIC_SERVER_IP),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &p, "link", "set", "br0", "up"])?;
        // The rest of the Internet: a default route to a gateway that never answers (a
        // static neighbour whose MAC nobody has), so packets for addresses outside the lab,
        // such as a peer's private host candidate, leave and vanish as they would on a
        // real network. Without it sendto() fails with "Network is unreachable", and coturn
        // 4.6 then drops the allocation's relay socket: no relayed path at all.
        black_hole_default_route(&p, "br0")?;
        Ok(lab)
    }

    /// Adds [`Self::PUBLIC_SERVER_IP2`] to the public bridge, for a STUN server doing NAT
    /// behaviour discovery (RFC 5780: coturn listening on both addresses).
    pub fn add_second_server_ip(&self) -> Result<Ipv4Addr> {
        ip(&[
            "-n",
            &self.public_netns(),
            "addr",
            "add",
            &format!("{}/{PUB_PREFIX}", Self::PUBLIC_SERVER_IP2),
            "dev",
            "br0",
        ])?;
        Ok(Self::PUBLIC_SERVER_IP2)
    }

    /// The public segment's namespace (run coturn here).
    pub fn public_netns(&self) -> String {
        format!("{}-pub", self.prefix)
    }

    /// Names of every namespace created so far.
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }

    /// Adds a host with the given NAT in front of it.
    pub fn add_host(&mut self, nat: Nat) -> Result<LabHost> {
        self.hosts += 1;
        let i = self.hosts;
        let i8 = u8::try_from(i).map_err(|_| lab_err("too many hosts".into()))?;
        if i8 > 200 {
            return Err(lab_err("too many hosts".into()));
        }
        let public = self.public_netns();
        let wan_ip = Ipv4Addr::new(203, 0, 113, 10 + i8);
        let host_ns = format!("{}-h{i}", self.prefix);
        let bridge_port = format!("v{i}");
        self.add_netns(&host_ns)?;
        match nat {
            Nat::None => {
                self.uplink(&public, &bridge_port, &host_ns, "eth0", wan_ip)?;
                // A host on the Internet has a default route too. Without it, sending to a
                // peer's private host candidate fails with "Network is unreachable", and
                // baresip 1.0 (libre) then leaves that ICE pair in progress for good: its
                // check list never completes, so it never nominates, and a controlled peer
                // waits in vain (`baresip_ice_nat.rs`).
                black_hole_default_route(&host_ns, "eth0")?;
                Ok(LabHost {
                    netns: host_ns,
                    ip: wan_ip,
                    public_ip: wan_ip,
                    nat,
                    router_netns: None,
                })
            }
            Nat::EndpointIndependent | Nat::Symmetric | Nat::FullCone => {
                let router = format!("{}-r{i}", self.prefix);
                self.add_netns(&router)?;
                self.uplink(&public, &bridge_port, &router, "wan", wan_ip)?;
                let lan_gw = Ipv4Addr::new(10, 0, i8, 1);
                let host_ip = Ipv4Addr::new(10, 0, i8, 2);
                ip(&[
                    "-n", &router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0",
                    "netns", &host_ns,
                ])?;
                ip(&[
                    "-n",
                    &router,
                    "addr",
                    "add",
                    &format!("{lan_gw}/24"),
                    "dev",
                    "lan",
                ])?;
                ip(&["-n", &router, "link", "set", "lan", "up"])?;
                ip(&[
                    "-n",
                    &host_ns,
                    "addr",
                    "add",
                    &format!("{host_ip}/24"),
                    "dev",
                    "eth0",
                ])?;
                ip(&["-n", &host_ns, "link", "set", "eth0", "up"])?;
                ip(&[
                    "-n",
                    &host_ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &lan_gw.to_string(),
                ])?;
                in_ns(&router, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
                let mut rule = vec![
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-o",
                    "wan",
                    "-j",
                    "MASQUERADE",
                ];
                if nat == Nat::Symmetric {
                    rule.push("--random-fully");
                }
                in_ns(&router, "iptables", &rule)?;
                if nat == Nat::FullCone {
                    // Anyone may send to a mapping: a new datagram to the WAN address goes
                    // to the host on the same port (MASQUERADE keeps the host's port when
                    // it is free, as it is in the lab), so the mapping filters nothing.
                    let host = host_ip.to_string();
                    in_ns(
                        &router,
                        "iptables",
                        &[
                            "-t",
                            "nat",
                            "-A",
                            "PREROUTING",
                            "-i",
                            "wan",
                            "-p",
                            "udp",
                            "-j",
                            "DNAT",
                            "--to-destination",
                            &host,
                        ],
                    )?;
                }
                // Unsolicited packets to the WAN address are dropped *before* conntrack
                // confirms an entry for them. Without this, a peer's early check (sent
                // before ours went out) leaves an unreplied entry whose tuple clashes with
                // our later outgoing mapping, and MASQUERADE then picks another port: hole
                // punching fails even between two endpoint-independent NATs. Home routers
                // drop such packets the same way.
                in_ns(
                    &router,
                    "iptables",
                    &[
                        "-A",
                        "INPUT",
                        "-i",
                        "wan",
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "NEW",
                        "-j",
                        "DROP",
                    ],
                )?;
                Ok(LabHost {
                    netns: host_ns,
                    ip: host_ip,
                    public_ip: wan_ip,
                    nat,
                    router_netns: Some(router),
                })
            }
        }
    }

    fn add_netns(&mut self, name: &str) -> Result<()> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// A veth from the public bridge to `ns` (interface `ifname`, address `addr`/24).
    fn uplink(
        &self,
        public: &str,
        bridge_port: &str,
        ns: &str,
        ifname: &str,
        addr: Ipv4Addr,
    ) -> Result<()> {
        ip(&[
            "-n",
            public,
            "link",
            "add",
            bridge_port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            ns,
        ])?;
        ip(&["-n", public, "link", "set", bridge_port, "master", "br0"])?;
        ip(&["-n", public, "link", "set", bridge_port, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/{PUB_PREFIX}"),
            "dev",
            ifname,
        ])?;
        ip(&["-n", ns, "link", "set", ifname, "up"])
    }

    /// Deletes everything now (also done on drop). Returns the namespaces that could not
    /// be deleted.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        for ns in self.created.drain(..).rev() {
            kill_pids_in(&ns);
            if ip(&["netns", "del", &ns]).is_err() && netns_exists(&ns) {
                failed.push(ns);
            }
        }
        failed
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        let failed = self.teardown();
        if !failed.is_empty() {
            eprintln!("NatLab: could not delete namespaces {failed:?}");
        }
    }
}

/// A default route in `ns` to [`NatLab::INTERNET_GATEWAY_IP`] on `dev`, a static
/// neighbour whose MAC nobody has: packets for addresses outside the lab leave and vanish,
/// as on a real network, instead of failing at `sendto()`.
fn black_hole_default_route(ns: &str, dev: &str) -> Result<()> {
    let gw = NatLab::INTERNET_GATEWAY_IP.to_string();
    ip(&[
        "-n",
        ns,
        "neigh",
        "add",
        &gw,
        "lladdr",
        "02:00:00:00:00:fe",
        "dev",
        dev,
        "nud",
        "permanent",
    ])?;
    ip(&["-n", ns, "route", "add", "default", "via", &gw])
}

fn lab_err(reason: String) -> Error {
    Error::Peer {
        peer: "netns".into(),
        reason,
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(lab_err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

/// Runs `program args` inside the namespace `ns` (`ip netns exec`); an error names the
/// command when it fails.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<()> {
    let mut v = vec!["netns", "exec", ns, program];
    v.extend_from_slice(args);
    run("ip", &v)
}

/// A veth `sig` between two lab namespaces for SIP only: `a_ip`/`b_ip` on a /24 of
/// 192.168.100.0, and every UDP datagram from those addresses that is not from
/// `sip_port` dropped, so ICE cannot use the link for media (both agents offer a host
/// candidate on it) and media must cross the NATs. It goes with the namespaces.
pub fn signaling_link(a_ns: &str, a_ip: &str, b_ns: &str, b_ip: &str, sip_port: u16) -> Result<()> {
    ip(&[
        "-n", a_ns, "link", "add", "sig", "type", "veth", "peer", "name", "sig", "netns", b_ns,
    ])?;
    let port = sip_port.to_string();
    for (ns, addr) in [(a_ns, a_ip), (b_ns, b_ip)] {
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "sig"])?;
        ip(&["-n", ns, "link", "set", "sig", "up"])?;
        in_ns(
            ns,
            "iptables",
            &[
                "-A",
                "OUTPUT",
                "-s",
                "192.168.100.0/24",
                "-p",
                "udp",
                "!",
                "--sport",
                &port,
                "-j",
                "DROP",
            ],
        )?;
    }
    Ok(())
}

/// Whether `addr` (`IP:port`) is on the lab's public segment (TEST-NET-3, 203.0.113.0/24).
pub fn is_lab_public(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>().map(|a| a.ip()) {
        Ok(std::net::IpAddr::V4(v4)) => v4.octets()[..3] == [203, 0, 113],
        _ => false,
    }
}

fn netns_exists(ns: &str) -> bool {
    list_netns().iter().any(|n| n == ns)
}

fn list_netns() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL, by PID, every process still inside a namespace this lab created (each was
/// started by the test; normally their own guards stopped them already).
fn kill_pids_in(ns: &str) {
    let Ok(out) = Command::new("ip")
        .args(["netns", "pids", ns])
        .stdin(Stdio::null())
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes `pl-<pid>-…` namespaces whose creating process is gone (a run killed before its
/// guards ran).
fn cleanup_stale() {
    for ns in list_netns() {
        let Some(rest) = ns.strip_prefix("pl-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_pids_in(&ns);
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}

/// One network namespace with only `lo` (up), for tests that impair traffic with
/// iptables inside it. Named `pl-<pid>-<tag>` so a crashed run's namespace is cleaned up
/// by the next [`NatLab::new`] or [`Netns::new`]; deleted on drop (after killing what
/// still runs in it).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings `lo` up.
    pub fn new(tag: &str) -> Result<Self> {
        cleanup_stale();
        let name = format!("pl-{}-{}", std::process::id(), tag);
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name (for `ip netns exec`, `ProcessOptions::netns`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `program args` inside the namespace; an error names the command.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<()> {
        in_ns(&self.name, program, args)
    }

    /// Runs `f` on a new thread that has entered the namespace (setns(2)); threads it
    /// creates, such as a tokio runtime's workers, and processes they start are in the
    /// namespace too. Returns what `f` returns.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        use std::os::fd::AsRawFd;
        let path = format!("/var/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).map_err(|e| lab_err(format!("{path}: {e}")))?;
        let thread = std::thread::spawn(move || {
            nix::sched::setns(file.as_raw_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| lab_err(format!("setns({path}): {e}")))?;
            Ok(f())
        });
        thread
            .join()
            .map_err(|_| lab_err("the thread in the namespace panicked".into()))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_pids_in(&self.name);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
