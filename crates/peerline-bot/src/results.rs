//! What a run produced: per-step verdicts, per-call quality, load statistics; as JSON
//! and as JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// A step's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The step did what it should.
    Passed,
    /// It did not; see expected and observed.
    Failed,
    /// It did not run because an earlier step of its leg failed.
    Skipped,
}

/// One step's result (in load mode, all calls' results of that step together).
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// The leg.
    pub leg: String,
    /// Position: `3`, or `4.1.2` inside loops and branches (1-based).
    pub step: String,
    /// Line in the scenario file.
    pub line: usize,
    /// The step, in words.
    pub action: String,
    /// Outcome.
    pub status: Status,
    /// What was expected.
    pub expected: String,
    /// What was observed (in load mode, the first failure's observation).
    pub observed: String,
    /// Seconds from the start of the run (of the first call, in load mode).
    pub at_secs: f64,
    /// How long the step took.
    pub duration_secs: f64,
    /// How many times it passed.
    pub passes: u64,
    /// How many times it failed.
    pub failures: u64,
}

/// One call as a leg saw it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// The leg.
    pub leg: String,
    /// The load-mode call number (0 outside load mode).
    pub index: u64,
    /// We placed it.
    pub outgoing: bool,
    /// Seconds from the start of the run to the INVITE (or its arrival).
    pub start_secs: f64,
    /// INVITE → answered, for outgoing calls that were answered.
    pub setup_ms: Option<f64>,
    /// Until the call ended.
    pub duration_secs: f64,
    /// Every step of the call passed.
    pub ok: bool,
    /// Why the call ended.
    pub end_reason: String,
    /// The codec.
    pub codec: Option<String>,
    /// RTP packets received.
    pub packets_received: u64,
    /// RTP packets lost.
    pub packets_lost: u64,
    /// RTP packets sent.
    pub packets_sent: u64,
    /// Frames that arrived after their playout time (the jitter buffer's `late`).
    pub late_frames: u64,
    /// Lost / expected, in percent.
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
    /// Frames filled by concealment.
    pub concealed_frames: u64,
    /// The phone's E-model (ITU-T G.107) MOS estimate from codec, loss and delay.
    pub mos: Option<f64>,
    /// Round-trip time from RTCP, when the peer sent reports.
    pub rtt_ms: Option<f64>,
}

/// Percentiles of a set of values.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// How many values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` for no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[i.clamp(1, v.len()) - 1]
        };
        Some(Self {
            count: v.len(),
            min: v[0],
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: rank(50.0),
            p90: rank(90.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: v[v.len() - 1],
        })
    }
}

/// Load-mode statistics.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// Calls asked for.
    pub calls: u32,
    /// Calls placed.
    pub attempted: u32,
    /// Calls whose every step passed.
    pub succeeded: u32,
    /// Calls with a failed step.
    pub failed: u32,
    /// Concurrency limit.
    pub concurrency: u32,
    /// Most calls in progress at once (call tasks holding a concurrency permit, from
    /// before the INVITE until the call's end).
    pub max_concurrent: u32,
    /// Most placed calls established at the same instant: answered and not yet ended,
    /// swept over each call's answer and end times (when the phone reported them).
    pub max_established: u32,
    /// Rate limit, calls/s.
    pub rate: Option<f64>,
    /// Ramp-up seconds.
    pub ramp_up_secs: f64,
    /// From the first INVITE to the last call's end.
    pub elapsed_secs: f64,
    /// Calls placed per second, overall.
    pub calls_per_sec: f64,
    /// INVITE → answered, milliseconds.
    pub setup_latency_ms: Option<Percentiles>,
    /// Failure observations and how often each happened (at most 20 kinds).
    pub failure_reasons: BTreeMap<String, u32>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// Every step passed.
    pub passed: bool,
    /// Wall-clock seconds.
    pub duration_secs: f64,
    /// Steps in order of legs and position.
    pub steps: Vec<StepResult>,
    /// Calls, in order of start.
    pub calls: Vec<CallRecord>,
    /// Load statistics, in load mode.
    pub load: Option<LoadSummary>,
}

impl RunResult {
    /// The failed steps, one line each: `file:line [leg] step N action: expected …, observed …`.
    pub fn failures(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.status == Status::Failed)
            .map(|s| {
                format!(
                    "{}:{} [{}] step {} `{}` failed{}: expected {}; observed {}",
                    self.file,
                    s.line,
                    s.leg,
                    s.step,
                    s.action,
                    if s.passes + s.failures > 1 {
                        format!(" {} of {} times", s.failures, s.passes + s.failures)
                    } else {
                        String::new()
                    },
                    s.expected,
                    s.observed
                )
            })
            .collect()
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// JUnit XML: one test suite per leg, one test case per step; load mode adds a
    /// `load` test case that fails when any call failed.
    pub fn to_junit(&self) -> String {
        let mut legs: Vec<&str> = Vec::new();
        for s in &self.steps {
            if !legs.contains(&s.leg.as_str()) {
                legs.push(&s.leg);
            }
        }
        let total = self.steps.len() + usize::from(self.load.is_some());
        let failed = self
            .steps
            .iter()
            .filter(|s| s.status == Status::Failed)
            .count()
            + usize::from(self.load.as_ref().is_some_and(|l| l.failed > 0));
        let skipped = self
            .steps
            .iter()
            .filter(|s| s.status == Status::Skipped)
            .count();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failed}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            esc(&self.scenario),
            self.duration_secs
        );
        for leg in legs {
            let steps: Vec<&StepResult> = self.steps.iter().filter(|s| s.leg == leg).collect();
            let _ = writeln!(
                x,
                "  <testsuite name=\"{}.{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
                esc(&self.scenario),
                esc(leg),
                steps.len(),
                steps.iter().filter(|s| s.status == Status::Failed).count(),
                steps.iter().filter(|s| s.status == Status::Skipped).count(),
                steps.iter().map(|s| s.duration_secs).sum::<f64>()
            );
            for s in steps {
                let name = format!("step {} (line {}): {}", s.step, s.line, s.action);
                let _ = write!(
                    x,
                    "    <testcase classname=\"{}.{}\" name=\"{}\" file=\"{}\" line=\"{}\" time=\"{:.3}\"",
                    esc(&self.scenario),
                    esc(leg),
                    esc(&name),
                    esc(&self.file),
                    s.line,
                    s.duration_secs
                );
                match s.status {
                    Status::Passed => x.push_str("/>\n"),
                    Status::Skipped => {
                        x.push_str("><skipped message=\"an earlier step failed\"/></testcase>\n")
                    }
                    Status::Failed => {
                        let _ = writeln!(
                            x,
                            "><failure message=\"expected {}; observed {}\" type=\"assertion\">{}:{}: expected {}\nobserved {}</failure></testcase>",
                            esc(&s.expected),
                            esc(&s.observed),
                            esc(&self.file),
                            s.line,
                            esc(&s.expected),
                            esc(&s.observed)
                        );
                    }
                }
            }
            x.push_str("  </testsuite>\n");
        }
        if let Some(l) = &self.load {
            let _ = writeln!(
                x,
                "  <testsuite name=\"{}.load\" tests=\"1\" failures=\"{}\" time=\"{:.3}\">",
                esc(&self.scenario),
                u32::from(l.failed > 0),
                l.elapsed_secs
            );
            let _ = write!(
                x,
                "    <testcase classname=\"{}.load\" name=\"{} calls\" time=\"{:.3}\"",
                esc(&self.scenario),
                l.calls,
                l.elapsed_secs
            );
            if l.failed > 0 || l.attempted < l.calls {
                let _ = writeln!(
                    x,
                    "><failure message=\"{} of {} calls failed\" type=\"load\">{}</failure></testcase>",
                    l.failed,
                    l.calls,
                    esc(&format!("{:?}", l.failure_reasons))
                );
            } else {
                x.push_str("/>\n");
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 forbids.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' => o.push_str("&#10;"),
            '\t' | '\r' => o.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v).unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p95, p.p99, p.max),
            (50.0, 90.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(&[]), None);
        assert_eq!(Percentiles::of(&[7.0]).unwrap().p99, 7.0);
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            esc("a<b & \"c\" 'd'>\u{1}"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
    }
}
