//! Knot DNS (Debian package `knot`) as an authoritative server for one zone on loopback,
//! for the RFC 3263 location tests: the config template `configs/dns/knot.conf` filled
//! in, the zone text the test wrote, `knotd` started and waited for until the zone loaded.

use std::time::Duration;

use crate::error::{io_err, Error, Result};
use crate::paths::{configs_dir, socket_path, TestDir};
use crate::process::{tails, Process, ProcessOptions};

/// Writes `zone_text` as the zone `domain` and a knot.conf into `dir/<name>/`, starts
/// `knotd` answering on 127.0.0.1:`dns_port`, and waits (at most 10 s) until the zone is
/// loaded. The process is stopped by its PID when dropped.
pub fn start_knot(
    dir: &TestDir,
    name: &str,
    domain: &str,
    zone_text: &str,
    dns_port: u16,
) -> Result<Process> {
    let work = dir.subdir(name)?;
    let zone_file = work.join(format!("{domain}.zone"));
    std::fs::write(&zone_file, zone_text).map_err(io_err(&zone_file))?;
    let template = configs_dir().join("dns/knot.conf");
    let conf = std::fs::read_to_string(&template)
        .map_err(io_err(&template))?
        .replace("@DIR@", &work.display().to_string())
        .replace("@CONTROL@", &socket_path("knot")?.display().to_string())
        .replace("@LISTEN@", &format!("127.0.0.1@{dns_port}"))
        .replace("@ZONEFILE@", &zone_file.display().to_string())
        .replace("@ZONE@", domain);
    let conf_file = work.join("knot.conf");
    std::fs::write(&conf_file, conf).map_err(io_err(&conf_file))?;
    let po = ProcessOptions::new(name, "knotd")
        .arg("-c")
        .arg(conf_file.display().to_string())
        .grace(Duration::from_secs(2));
    let mut p = Process::spawn(po, dir.path())?;
    if let Err(e) = p.wait_for_log("loaded, serial", Duration::from_secs(10)) {
        return Err(Error::Peer {
            peer: "knotd".into(),
            reason: format!("the zone did not load: {e}\n{}", tails(&[&p], 40)),
        });
    }
    Ok(p)
}

/// A zone template from `configs/dns/`, its `@NAME@` placeholders replaced.
pub fn zone_from_template(file: &str, values: &[(&str, String)]) -> Result<String> {
    let path = configs_dir().join("dns").join(file);
    let mut text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    for (k, v) in values {
        text = text.replace(&format!("@{k}@"), v);
    }
    Ok(text)
}
