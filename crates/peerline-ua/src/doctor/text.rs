//! The human-readable form of a doctor [`Report`].

use std::fmt::Write;

use super::{DestinationCheck, NatCheck, Report, ServerCheck};

impl Report {
    /// Plain text for people, one finding per line, ending with the verdict.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "SIP: {}", self.sip_listen);
        let _ = writeln!(s, "RTP ports: {}", self.rtp_ports);
        let _ = writeln!(s, "SRTP: {}", self.srtp);
        let _ = writeln!(s, "ICE in calls: {}", self.ice);
        let _ = writeln!(s, "{}", self.relay_policy);
        if self.accounts.is_empty() {
            let _ = writeln!(s, "\nno [[account]] configured");
        }
        for a in &self.accounts {
            let _ = writeln!(s, "\naccount {}", a.aor);
            for d in &a.destinations {
                destination(&mut s, d);
            }
        }
        servers(&mut s, "STUN", &self.stun);
        servers(&mut s, "TURN", &self.turn);
        nat(&mut s, &self.nat);
        let _ = writeln!(
            s,
            "\n{}",
            if self.ok {
                "doctor: ok"
            } else {
                "doctor: FAILED (see the lines marked FAIL)"
            }
        );
        s
    }
}

fn destination(s: &mut String, d: &DestinationCheck) {
    let _ = writeln!(s, "  {} {}", d.role, d.uri);
    for r in &d.records {
        let _ = writeln!(s, "    {r}");
    }
    for (i, t) in d.targets.iter().enumerate() {
        let _ = writeln!(
            s,
            "    target {}: {} {} (from {}, ttl {} s)",
            i + 1,
            t.transport,
            t.addr,
            t.from,
            t.ttl_secs
        );
    }
    if let Some(e) = &d.error {
        let _ = writeln!(s, "    FAIL location: {e}");
    }
    if let Some(c) = &d.chosen {
        let _ = writeln!(s, "    chosen: {} {}", c.transport, c.addr);
    }
    if let Some(p) = &d.probe {
        let verdict = match p.status {
            Some(_) if p.answered() => format!("{} ({} ms)", p.detail, p.rtt_ms.unwrap_or(0)),
            Some(_) => format!("FAIL {}", p.detail),
            None => format!("FAIL {}", p.detail),
        };
        let _ = writeln!(
            s,
            "    OPTIONS over {} to {}: {verdict}",
            p.transport, p.target
        );
    }
}

fn servers(s: &mut String, kind: &str, list: &[ServerCheck]) {
    if list.is_empty() {
        let _ = writeln!(s, "\n{kind}: none configured");
        return;
    }
    let _ = writeln!(s);
    for c in list {
        let mark = if c.ok { "" } else { "FAIL " };
        let _ = writeln!(s, "{kind} {}: {mark}{}", c.server, c.result);
    }
}

fn nat(s: &mut String, n: &NatCheck) {
    let via = n
        .server
        .as_deref()
        .map(|v| format!(" via {v}"))
        .unwrap_or_default();
    let _ = writeln!(s, "\nNAT behaviour (RFC 5780){via}: {}", n.result);
    match n.udp {
        Some(true) => {
            let seen = match (&n.local_address, &n.mapped_address) {
                (Some(l), Some(m)) => format!(" ({l} is seen as {m})"),
                (None, Some(m)) => format!(" (seen as {m})"),
                _ => String::new(),
            };
            let _ = writeln!(s, "  UDP: gets out{seen}");
        }
        Some(false) => {
            let _ = writeln!(s, "  UDP: no answer from the STUN server");
        }
        None => {}
    }
    if let Some(o) = &n.other_address {
        let _ = writeln!(s, "  server's other address: {o}");
    }
    if let Some(b) = n.behind_nat {
        let _ = writeln!(
            s,
            "  NAT: {}",
            if b { "yes" } else { "no (public address)" }
        );
    }
    let unknown = || "unknown".to_string();
    let _ = writeln!(
        s,
        "  mapping: {}",
        n.mapping.clone().unwrap_or_else(unknown)
    );
    let _ = writeln!(
        s,
        "  filtering: {}",
        n.filtering.clone().unwrap_or_else(unknown)
    );
    if let Some(reachable) = n.reachable_from_outside {
        let at = n.mapped_address.as_deref().unwrap_or("our mapped address");
        let _ = writeln!(
            s,
            "  reachable from outside: {}",
            if reachable {
                format!("yes (any host can send to {at})")
            } else {
                format!("no (only hosts we sent to first can reach {at})")
            }
        );
    }
    let _ = writeln!(s, "  likely call path: {}", n.path_detail);
}
