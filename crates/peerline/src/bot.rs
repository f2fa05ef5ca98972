//! `peerline bot`: run and check call-bot scenarios (see docs/bots/README.md).
//! Exit codes: 0 every step passed, 1 a step failed, 2 the scenario was refused or could
//! not run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use peerline_bot::{RunOptions, Scenario, Status};

/// `peerline bot …`.
#[derive(Subcommand)]
pub enum BotCommand {
    /// Run a scenario: exit 0 when every step passed, 1 when one failed, 2 when refused.
    Run(RunArgs),
    /// Check a scenario without placing any call: exit 0 valid, 2 refused (file:line: reason).
    Check(CheckArgs),
}

/// `peerline bot run`.
#[derive(Args)]
pub struct RunArgs {
    /// The scenario (TOML).
    file: PathBuf,
    /// Write the results as JSON.
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Write the results as JUnit XML.
    #[arg(long, value_name = "OUT")]
    junit: Option<PathBuf>,
    /// Write a report: OUT.svg (charts) or OUT.html (charts and every step).
    #[arg(long, value_name = "OUT")]
    report: Option<PathBuf>,
    /// Set a scenario variable, overriding [vars] (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

/// `peerline bot check`.
#[derive(Args)]
pub struct CheckArgs {
    /// The scenario (TOML).
    file: PathBuf,
    /// Set a scenario variable, overriding [vars] (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

fn vars(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--var {p:?}: write NAME=VALUE");
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

/// Each call of a load holds two descriptors per leg (RTP and RTCP sockets; SIP shares
/// one socket): with the usual soft limit of 1024 open files a load of a few hundred calls
/// at once would fail to bind. Raises the soft `RLIMIT_NOFILE` to the hard limit when
/// `concurrency` calls may need more than it allows, and warns when even the hard limit
/// is short (the calls that cannot bind then fail, counted, rather than the run).
fn raise_open_files(concurrency: u32, legs: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // RTP + RTCP per call on each leg that takes part (the load leg places the calls,
    // the others answer them), with room for the phones' own sockets and files.
    let need = u64::from(concurrency) * 2 * legs.max(1) as u64 + 256;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= need {
        return;
    }
    let target = hard.min(need.max(soft));
    if target > soft {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            eprintln!("warning: could not raise the open-file limit from {soft} to {target}: {e}");
            return;
        }
    }
    if target < need {
        eprintln!(
            "warning: {concurrency} calls at once may need {need} open files; the hard limit is \
             {hard} (raise it with `ulimit -Hn` or the service's LimitNOFILE)"
        );
    }
}

/// Runs a `bot` subcommand; `Ok(false)` when a step failed.
pub async fn run(command: BotCommand) -> Result<bool> {
    match command {
        BotCommand::Check(a) => {
            let s = Scenario::load(&a.file, &vars(&a.vars)?)?;
            let steps: usize = s.legs.iter().map(|l| l.steps.len()).sum();
            let legs: Vec<&str> = s.legs.iter().map(|l| l.name.as_str()).collect();
            println!(
                "{}: ok: {:?}, legs {}, {steps} steps{}",
                a.file.display(),
                s.name,
                legs.join(", "),
                s.load
                    .as_ref()
                    .map(|l| format!(", load {} calls × {} concurrent", l.calls, l.concurrency))
                    .unwrap_or_default()
            );
            Ok(true)
        }
        BotCommand::Run(a) => {
            let scenario = Scenario::load(&a.file, &vars(&a.vars)?)?;
            if let Some(load) = &scenario.load {
                raise_open_files(load.concurrency, scenario.legs.len());
            }
            let options = RunOptions {
                progress: peerline_bot::progress_wanted(),
            };
            let result = peerline_bot::run(scenario, &options).await?;
            for s in &result.steps {
                let mark = match s.status {
                    Status::Passed => "pass",
                    Status::Failed => "FAIL",
                    Status::Skipped => "skip",
                };
                println!("{mark} [{}] {} {}: {}", s.leg, s.step, s.action, s.observed);
            }
            if let Some(l) = &result.load {
                println!(
                    "load: {} of {} calls succeeded, {} failed, {:.1} calls/s, at most {} at once ({} established)",
                    l.succeeded, l.calls, l.failed, l.calls_per_sec, l.max_concurrent, l.max_established
                );
                if let Some(p) = &l.setup_latency_ms {
                    println!(
                        "setup latency ms: p50 {:.1}  p90 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}",
                        p.p50, p.p90, p.p95, p.p99, p.max
                    );
                }
            }
            if let Some(p) = &a.json {
                peerline_bot::write_json(&result, p)?;
            }
            if let Some(p) = &a.junit {
                peerline_bot::write_junit(&result, p)?;
            }
            if let Some(p) = &a.report {
                peerline_bot::write_report(&result, p)?;
            }
            for f in result.failures() {
                eprintln!("{f}");
            }
            println!(
                "{}: {}",
                result.scenario,
                if result.passed { "passed" } else { "FAILED" }
            );
            Ok(result.passed)
        }
    }
}
