//! `peerline doctor`: how each account's servers resolve and answer, the STUN/TURN servers,
//! ports and policies (the checks live in `peerline_ua::doctor`).

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use peerline_ua::doctor::{self, DoctorOptions};
use peerline_ua::Config;

#[derive(Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// How long each OPTIONS probe waits for an answer, in seconds.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
}

/// Runs the checks and prints the report; `Ok(false)` (exit 1) when something failed.
pub async fn run(config: Config, args: DoctorArgs) -> Result<bool> {
    let options = DoctorOptions {
        probe_timeout: Duration::from_secs_f64(args.timeout.clamp(0.1, 60.0)),
        ..DoctorOptions::default()
    };
    let report = doctor::run(&config, &options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.ok)
}
