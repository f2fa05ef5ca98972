//! `peerline sip lint FILE|-`: is one SIP message valid per RFC 3261, and if not, why and
//! on which line. Exit 0 valid, 1 invalid, 2 unreadable.

use std::io::Read;

use anyhow::{Context, Result};

pub fn run(file: &str, json: bool) -> Result<bool> {
    let bytes = if file == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("cannot read standard input")?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))?
    };
    let report = peerline_sip::lint::lint(&bytes);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "valid": report.valid,
                "reason": report.reason,
                "line": report.line,
                "status_code": report.status_code,
                "summary": report.summary,
            })
        );
    } else if report.valid {
        println!("valid: {}", report.summary);
    } else {
        let line = report
            .line
            .map(|l| format!("line {l}: "))
            .unwrap_or_default();
        println!(
            "invalid: {line}{} (a UAS answers {})",
            report.reason.as_deref().unwrap_or(&report.summary),
            report
                .status_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "nothing: it is not a request".into())
        );
    }
    Ok(report.valid)
}
