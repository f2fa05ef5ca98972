//! `peerline`: the command line of the Peerline softphone and call-bot engine.

mod account_cmds;
mod bot;
mod demo;
mod doctor;
mod interactive;
mod oneshot;
mod report;
mod sip_lint;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "peerline",
    version,
    about = "SIP softphone and call-bot engine built around direct peering"
)]
struct Cli {
    /// Config file (TOML). Defaults apply when omitted.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Two phones on loopback call each other; each plays a tone and checks it heard the other's.
    Demo(demo::DemoArgs),
    /// Call a SIP URI, play a source, record what comes back, hang up after a while.
    Call(oneshot::CallArgs),
    /// Wait for calls, answer them, play a source, record what comes in.
    Listen(oneshot::ListenArgs),
    /// Register the config's accounts and report each outcome (exit 1 on a failure).
    Register(account_cmds::RegisterArgs),
    /// Send one instant message (RFC 3428 MESSAGE); exit 1 unless answered 2xx.
    Message(account_cmds::MessageArgs),
    /// Check the config against the network: DNS location and OPTIONS probe of each
    /// account's servers, STUN/TURN servers, ports and policies. Exit 1 when a check fails.
    Doctor(doctor::DoctorArgs),
    /// List audio devices.
    Devices,
    /// Call bots: run or check a scenario (docs/bots/README.md).
    Bot {
        #[command(subcommand)]
        command: bot::BotCommand,
    },
    /// Tools for SIP interop engineers.
    Sip {
        #[command(subcommand)]
        command: SipCommand,
    },
}

#[derive(Subcommand)]
enum SipCommand {
    /// Check one SIP message: exit 0 valid, 1 invalid (with the reason and line), 2 unreadable.
    Lint {
        /// The message file, or `-` for standard input.
        file: String,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result: Result<bool> = (|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let config = match &cli.config {
            Some(path) => peerline_ua::Config::load(path)?,
            None => peerline_ua::Config::default(),
        };
        match cli.command {
            Command::Demo(args) => runtime.block_on(demo::run(args)),
            Command::Call(args) => runtime.block_on(oneshot::call(config, args)),
            Command::Listen(args) => runtime.block_on(oneshot::listen(config, args)),
            Command::Register(args) => runtime.block_on(account_cmds::register(config, args)),
            Command::Message(args) => runtime.block_on(account_cmds::message(config, args)),
            Command::Doctor(args) => runtime.block_on(doctor::run(config, args)),
            Command::Bot { command } => runtime.block_on(bot::run(command)),
            Command::Sip {
                command: SipCommand::Lint { file, json },
            } => sip_lint::run(&file, json),
            Command::Devices => {
                for d in peerline_audio::list_devices()? {
                    println!("{d:?}");
                }
                Ok(true)
            }
        }
    })();
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("peerline: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
