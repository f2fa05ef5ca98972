//! What the bench ran on: cores, CPU model, load average, and the versions compared.

use std::process::Command;

/// The machine and the versions, as written at the top of the results.
pub struct Machine {
    pub nproc: String,
    pub cpu_model: String,
    pub sipp: String,
    pub baresip: String,
    pub peerline_rev: String,
    pub rustc: String,
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        })
        .unwrap_or_default()
}

fn first_line_with(text: &str, needle: &str) -> String {
    text.lines()
        .find(|l| l.contains(needle))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let sipp = first_line_with(&output("sipp", &["-v"]), "SIPp v");
        let baresip = output("dpkg-query", &["-W", "-f=${Version}", "baresip-core"]);
        let rev = output("git", &["rev-parse", "--short=12", "HEAD"]);
        // docs/ is left out: a full run rewrites docs/benchmarks.md section by section, and
        // the later sections would otherwise call the tree changed by the run itself.
        let dirty = !output(
            "git",
            &[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)docs",
            ],
        )
        .trim()
        .is_empty();
        Self {
            nproc: output("nproc", &[]).trim().to_string(),
            cpu_model,
            sipp: sipp
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .trim_end_matches('.')
                .to_string(),
            baresip: if baresip.trim().is_empty() {
                "not installed".into()
            } else {
                format!("baresip-core {}", baresip.trim())
            },
            peerline_rev: format!(
                "{}{}",
                rev.trim(),
                if dirty {
                    " (working tree with uncommitted changes)"
                } else {
                    ""
                }
            ),
            rustc: output("rustc", &["--version"]).trim().to_string(),
        }
    }
}
