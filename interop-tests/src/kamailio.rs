//! Kamailio 5.6.3 as registrar + proxy with digest auth. Config from the project's template
//! `interop-tests/configs/kamailio.cfg`; users in an SQLite db the harness builds with the
//! package's schema (needs `kamailio-sqlite-modules` and `sqlite3`). With
//! [`KamailioOptions::tls`] it also listens for SIP over TLS on a second port (needs
//! `kamailio-tls-modules`): the template's `#!ifdef WITH_TLS` blocks are enabled by `-A
//! WITH_TLS` and the harness writes the tls module's `tls.cfg` next to the config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::paths::{configs_dir, socket_path, TestDir};
use crate::ports::alloc_port_block;
use crate::process::{wait_for, Process, ProcessOptions};

const SCHEMA_DIR: &str = "/usr/share/kamailio/db_sqlite";

/// A digest user (`subscriber` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KamailioUser {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone)]
pub struct KamailioOptions {
    listen_ip: String,
    port: Option<u16>,
    domain: String,
    users: Vec<KamailioUser>,
    template: PathBuf,
    netns: Option<String>,
    udp: bool,
    tcp: bool,
    tls: Option<KamailioTls>,
}

/// The server certificate chain and key (PEM files) of Kamailio's TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KamailioTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for KamailioOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl KamailioOptions {
    /// 127.0.0.1 on an allocated port, domain `peerline.test`, no users yet.
    pub fn new() -> Self {
        Self {
            listen_ip: "127.0.0.1".into(),
            port: None,
            domain: "peerline.test".into(),
            users: Vec::new(),
            template: configs_dir().join("kamailio.cfg"),
            netns: None,
            udp: true,
            tcp: true,
            tls: None,
        }
    }
    pub fn listen_ip(mut self, ip: &str) -> Self {
        self.listen_ip = ip.into();
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// SIP domain (also the digest realm: the From domain).
    pub fn domain(mut self, d: &str) -> Self {
        self.domain = d.into();
        self
    }
    pub fn user(mut self, username: &str, password: &str) -> Self {
        self.users.push(KamailioUser {
            username: username.into(),
            password: password.into(),
        });
        self
    }
    /// Another config template (same placeholders).
    pub fn template(mut self, path: &Path) -> Self {
        self.template = path.to_path_buf();
        self
    }
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }
    /// Which SIP transports it listens on (both by default): the template's
    /// `listen=udp:` / `listen=tcp:` lines are dropped for the others.
    pub fn transports(mut self, udp: bool, tcp: bool) -> Self {
        self.udp = udp;
        self.tcp = tcp;
        self
    }
    /// Also listen for SIP over TLS (`listen=tls:IP:TLSPORT`, a second allocated port) with
    /// this certificate chain and private key (PEM). Server side only: TLSv1.2 or newer, no
    /// client certificate asked for. Needs a template with the `WITH_TLS` blocks (the
    /// project's has them).
    pub fn tls(mut self, cert_pem: &Path, key_pem: &Path) -> Self {
        self.tls = Some(KamailioTls {
            cert_file: cert_pem.to_path_buf(),
            key_file: key_pem.to_path_buf(),
        });
        self
    }
}

/// The tls module's config: our certificate as server (TLSv1.2+, no client certificate
/// required or checked); as client (relaying to a TLS contact) it does not verify either.
fn tls_cfg(tls: &KamailioTls) -> String {
    format!(
        "# Written by the interop harness (KamailioOptions::tls).\n\
         [server:default]\n\
         method = TLSv1.2+\n\
         verify_certificate = no\n\
         require_certificate = no\n\
         certificate = {}\n\
         private_key = {}\n\
         \n\
         [client:default]\n\
         method = TLSv1.2+\n\
         verify_certificate = no\n\
         require_certificate = no\n",
        tls.cert_file.display(),
        tls.key_file.display()
    )
}

/// A running Kamailio (foreground, `-DD -E`), stopped by SIGTERM to its main PID.
#[derive(Debug)]
pub struct Kamailio {
    process: Process,
    work_dir: PathBuf,
    listen_ip: String,
    port: u16,
    tls_port: Option<u16>,
    domain: String,
    /// Its ctl (binrpc) Unix socket, outside the test dir: see [`socket_path`].
    ctl_path: PathBuf,
    ctl: String,
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Kamailio {
    pub fn start(opts: KamailioOptions, dir: &TestDir) -> Result<Self> {
        let work_dir = dir.subdir("kamailio")?;
        let port = match opts.port {
            Some(p) => p,
            None => alloc_port_block(2)?,
        };
        // SQLite db from the package's schema.
        let db = work_dir.join("kamailio.sqlite");
        let mut po = ProcessOptions::new("sqlite3", "sqlite3")
            .arg(db.display().to_string())
            .arg(format!(".read {SCHEMA_DIR}/standard-create.sql"))
            .arg(format!(".read {SCHEMA_DIR}/auth_db-create.sql"));
        for u in &opts.users {
            po = po.arg(format!(
                "INSERT INTO subscriber (username, domain, password) VALUES ({}, {}, {});",
                sql_quote(&u.username),
                sql_quote(&opts.domain),
                sql_quote(&u.password)
            ));
        }
        let mut sq = Process::spawn(po, &work_dir)?;
        let st = sq.wait_exit(Duration::from_secs(10))?;
        if !st.success() {
            return Err(Error::Peer {
                peer: "sqlite3".into(),
                reason: format!(
                    "building {} failed: {st}\n{}",
                    db.display(),
                    sq.log_tail(20)
                ),
            });
        }

        let template = std::fs::read_to_string(&opts.template).map_err(io_err(&opts.template))?;
        let tls_port = match &opts.tls {
            Some(tls) => {
                if !template.contains("#!ifdef WITH_TLS") {
                    return Err(Error::Peer {
                        peer: "kamailio".into(),
                        reason: format!(
                            "TLS asked for but {} has no `#!ifdef WITH_TLS` block",
                            opts.template.display()
                        ),
                    });
                }
                let tls_cfg_path = work_dir.join("tls.cfg");
                std::fs::write(&tls_cfg_path, tls_cfg(tls)).map_err(io_err(&tls_cfg_path))?;
                Some(alloc_port_block(1)?)
            }
            None => None,
        };
        let ctl_path = socket_path("kamailio-ctl")?;
        let mut cfg = template.clone();
        if let Some(p) = tls_port {
            cfg = cfg.replace("@TLS_PORT@", &p.to_string());
        }
        let cfg = cfg
            .replace("@LISTEN_IP@", &opts.listen_ip)
            .replace("@PORT@", &port.to_string())
            .replace("@DOMAIN@", &opts.domain)
            .replace("@CTL@", &ctl_path.display().to_string())
            .replace("@RUNDIR@", &work_dir.display().to_string())
            .replace("@DB@", &db.display().to_string())
            .lines()
            .filter(|l| {
                (opts.udp || !l.starts_with("listen=udp:"))
                    && (opts.tcp || !l.starts_with("listen=tcp:"))
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let cfg_path = work_dir.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).map_err(io_err(&cfg_path))?;

        let mut po = ProcessOptions::new("kamailio", "kamailio");
        if tls_port.is_some() {
            po = po.args(["-A", "WITH_TLS"]);
        }
        let po = po
            .arg("-f")
            .arg(cfg_path.display().to_string())
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(work_dir.display().to_string())
            .arg("-P")
            .arg(work_dir.join("kamailio.pid").display().to_string())
            .cwd(&work_dir)
            .netns(opts.netns.as_deref());
        let process = Process::spawn(po, dir.path())?;
        Ok(Self {
            process,
            ctl: format!("unix:{}", ctl_path.display()),
            ctl_path,
            work_dir,
            listen_ip: opts.listen_ip,
            port,
            tls_port,
            domain: opts.domain,
        })
    }

    /// `ip:port` of its SIP listener.
    pub fn address(&self) -> String {
        format!("{}:{}", self.listen_ip, self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// `sip:user@domain`.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.domain)
    }
    /// `sip:IP:PORT;transport=udp`, e.g. for a UA's outbound proxy.
    pub fn proxy_uri(&self) -> String {
        format!("sip:{}:{};transport=udp", self.listen_ip, self.port)
    }
    /// The SIP-over-TLS port, when started with [`KamailioOptions::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }
    /// `ip:tlsport` of its TLS listener, when it has one.
    pub fn tls_address(&self) -> Option<String> {
        self.tls_port.map(|p| format!("{}:{p}", self.listen_ip))
    }
    /// `sip:IP:TLSPORT;transport=tls`, for a UA's registrar/outbound proxy over TLS.
    pub fn tls_proxy_uri(&self) -> Option<String> {
        self.tls_port
            .map(|p| format!("sip:{}:{p};transport=tls", self.listen_ip))
    }
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// Bounded wait until its ctl socket answers `core.version`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let sock = self.ctl_path.clone();
        let deadline = std::time::Instant::now() + timeout;
        let mut exited = false;
        wait_for(
            "kamailio ctl socket",
            timeout,
            Duration::from_millis(50),
            || {
                exited = !self.process.is_running();
                exited || sock.exists()
            },
        )?;
        if exited {
            return Err(Error::Peer {
                peer: "kamailio".into(),
                reason: format!("exited during start\n{}", self.process.log_tail(40)),
            });
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        wait_for(
            "kamailio core.version",
            left,
            Duration::from_millis(100),
            || self.kamcmd(&["core.version"]).is_ok(),
        )
    }

    /// Run `kamcmd -s <ctl> ARGS…` (bounded to 5 s) and return its stdout.
    pub fn kamcmd(&self, args: &[&str]) -> Result<String> {
        let po = ProcessOptions::new("kamcmd", "kamcmd")
            .args(["-s", self.ctl.as_str()])
            .args(args.iter().copied())
            .grace(Duration::from_millis(500));
        let mut p = Process::spawn(po, &self.work_dir)?;
        let st = p.wait_exit(Duration::from_secs(5))?;
        if st.success() {
            Ok(p.stdout_text())
        } else {
            Err(Error::Peer {
                peer: "kamcmd".into(),
                reason: format!("{args:?}: {st}: {}", p.stderr_text().trim()),
            })
        }
    }

    /// `ul.dump brief`: the current registrations (text).
    pub fn registrations(&self) -> Result<String> {
        self.kamcmd(&["ul.dump", "brief"])
    }

    /// Bounded wait until `user` has a registration.
    pub fn wait_registered(&self, user: &str, timeout: Duration) -> Result<()> {
        wait_for(
            &format!("{user} registered at kamailio"),
            timeout,
            Duration::from_millis(100),
            || {
                self.registrations()
                    .map(|t| t.contains(user))
                    .unwrap_or(false)
            },
        )
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}
