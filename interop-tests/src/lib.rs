//! Harness for interop tests: real peers started by PID, bounded waits, results for the matrix.
//!
//! Everything a test starts is a [`Process`]: its stdout/stderr go to log files in the
//! test's own directory (`target/interop/<test>/`), and it is stopped by PID (SIGTERM, then
//! SIGKILL to its process group after a grace period) when the guard drops — also when the
//! test panics. Waits are bounded ([`wait_for`]). Peers: [`Baresip`], [`Sipp`],
//! [`Kamailio`], [`Coturn`].
//! Results: [`MatrixEntry`] and [`render_matrix`].

mod audio;
mod baresip;
mod coturn;
mod error;
mod kamailio;
mod knot;
mod matrix;
mod netdelay;
mod netns;
mod paths;
mod ports;
mod process;
mod sipp;

pub use audio::{detect_tone, goertzel_ratio, read_wav_mono, write_tone_wav, ToneReport, WavMono};
pub use baresip::{Baresip, BaresipOptions};
pub use coturn::{stun_binding, Coturn, CoturnOptions};
pub use error::{Error, Result};
pub use kamailio::{Kamailio, KamailioOptions, KamailioTls, KamailioUser};
pub use knot::{start_knot, zone_from_template};
pub use matrix::{read_results, render_matrix, results_dir, MatrixEntry, MatrixResult};
pub use netdelay::{DelayRange, Jitter, JitterCounters};
pub use netns::{in_ns, is_lab_public, signaling_link, LabHost, Nat, NatLab, Netns};
pub use paths::{
    configs_dir, peerline_binary, scenarios_dir, socket_path, target_dir, workspace_dir, TestDir,
};
pub use ports::{alloc_port_block, free_udp_port};
pub use process::{tails, wait_for, Process, ProcessOptions};
pub use sipp::{parse_stat_csv, Sipp, SippOptions, SippScenario, SippStats, SippTransport};
