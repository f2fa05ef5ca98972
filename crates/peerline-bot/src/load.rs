//! Load mode: the load leg's steps run once per call, `calls` times, at most
//! `concurrency` at once and `rate` new calls per second (ramping up linearly over
//! `ramp_up_secs`), all on one phone. The other legs answer: one task per incoming call.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::results::{CallRecord, LoadSummary, Percentiles, RunResult, Status, StepResult};
use crate::runner::{start_phones, LegRun, Shared};
use crate::scenario::{Load, Scenario};
use crate::BotError;

/// Seconds after the start at which call `k` (0-based) may start: the rate ramps from 0
/// to `rate` over `ramp` seconds, so `R t² / 2T` calls have started by `t < T`.
pub fn start_offset(k: u32, rate: Option<f64>, ramp: Duration) -> Duration {
    let Some(r) = rate else {
        return Duration::ZERO;
    };
    let k = f64::from(k);
    let t = ramp.as_secs_f64();
    let secs = if t <= 0.0 {
        k / r
    } else if k <= r * t / 2.0 {
        (2.0 * k * t / r).sqrt()
    } else {
        t + (k - r * t / 2.0) / r
    };
    Duration::from_secs_f64(secs.clamp(0.0, 1.0e7))
}

/// Whether to draw a progress bar: stderr is a terminal and this is not a CI job.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

type CallOutcome = (bool, Vec<StepResult>, Vec<CallRecord>);

/// Runs the load; the result holds every call and the aggregated steps.
pub(crate) async fn run_load(
    scenario: Arc<Scenario>,
    load: Load,
    progress: bool,
) -> Result<RunResult, BotError> {
    let t0 = Instant::now();
    let (phones, a) = start_phones(&scenario).await?;
    let shared = Arc::new(Shared {
        scenario: scenario.clone(),
        uris: a.uris,
        addrs: a.addrs,
        t0,
        deadline: t0 + scenario.timeout,
    });
    let (release_tx, release_rx) = watch::channel(false);
    let (_released_tx, released_rx) = watch::channel(true);
    let mut handles = Vec::new();
    let mut answerers = JoinSet::new();
    let mut load_phone = None;
    for (i, lp) in phones.into_iter().enumerate() {
        handles.push(lp.phone.clone());
        if i == load.leg {
            load_phone = Some((lp.phone, lp.router));
            continue;
        }
        // One task per incoming call, each running this leg's steps.
        let (shared, release) = (shared.clone(), release_rx.clone());
        let mut incoming = lp.incoming;
        answerers.spawn(async move {
            let mut calls = JoinSet::new();
            let mut n = 0u64;
            let mut release_wait = release.clone();
            loop {
                tokio::select! {
                    offered = incoming.recv() => {
                        let Some(offered) = offered else { break };
                        let (tx, rx) = mpsc::unbounded_channel();
                        let _ = tx.send(offered);
                        let mut run = LegRun::new(shared.clone(), i, lp.phone.clone(), lp.router.clone(), rx, n, release.clone());
                        n += 1;
                        calls.spawn(async move {
                            run.run_steps_only().await;
                            run.finish().await;
                            (run.ok(), run.results, run.calls)
                        });
                    }
                    r = release_wait.wait_for(|r| *r) => {
                        let _ = r;
                        break;
                    }
                }
            }
            let mut out: Vec<CallOutcome> = Vec::new();
            while let Some(r) = calls.join_next().await {
                if let Ok(r) = r {
                    out.push(r);
                }
            }
            out
        });
    }
    let Some((phone, router)) = load_phone else {
        return Err(BotError::Phone {
            leg: String::new(),
            message: "no load leg".into(),
        });
    };

    let bar = if progress {
        let b = ProgressBar::with_draw_target(
            Some(u64::from(load.calls)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let permits = Arc::new(Semaphore::new(load.concurrency as usize));
    let active = Arc::new(AtomicU32::new(0));
    let max_active = Arc::new(AtomicU32::new(0));
    let (ok_n, fail_n) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let mut calls = JoinSet::new();
    let start = Instant::now();
    let mut attempted = 0u32;
    for k in 0..load.calls {
        let at = start + start_offset(k, load.rate, load.ramp_up);
        if at >= shared.deadline {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = tokio::time::sleep_until(shared.deadline.into()) => break,
        };
        attempted += 1;
        let now_active = active.fetch_add(1, Ordering::SeqCst) + 1;
        max_active.fetch_max(now_active, Ordering::SeqCst);
        let (_, rx) = mpsc::unbounded_channel();
        let mut run = LegRun::new(
            shared.clone(),
            load.leg,
            phone.clone(),
            router.clone(),
            rx,
            u64::from(k),
            released_rx.clone(),
        );
        let (active, ok_n, fail_n, bar) =
            (active.clone(), ok_n.clone(), fail_n.clone(), bar.clone());
        calls.spawn(async move {
            run.run_steps_only().await;
            run.finish().await;
            let ok = run.ok();
            // Count the call out before its permit lets the next one in.
            let a = active.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
            drop(permit);
            if ok {
                ok_n.fetch_add(1, Ordering::Relaxed);
            } else {
                fail_n.fetch_add(1, Ordering::Relaxed);
            }
            bar.inc(1);
            bar.set_message(format!(
                "ok {} failed {} active {a}",
                ok_n.load(Ordering::Relaxed),
                fail_n.load(Ordering::Relaxed)
            ));
            (ok, run.results, run.calls)
        });
    }
    let mut outcomes: Vec<CallOutcome> = Vec::new();
    while let Some(r) = calls.join_next().await {
        if let Ok(r) = r {
            outcomes.push(r);
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let _ = release_tx.send(true);
    let mut answered: Vec<CallOutcome> = Vec::new();
    let wait = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(r) = answerers.join_next().await {
            if let Ok(r) = r {
                answered.extend(r);
            }
        }
    });
    if wait.await.is_err() {
        answerers.abort_all();
    }
    for h in &handles {
        h.shutdown().await;
    }

    let succeeded = outcomes.iter().filter(|o| o.0).count() as u32;
    let failed = outcomes.len() as u32 - succeeded;
    let mut records: Vec<CallRecord> = Vec::new();
    let mut steps = Aggregate::default();
    for (_, s, c) in outcomes.iter().chain(answered.iter()) {
        steps.add(s);
        records.extend(c.iter().cloned());
    }
    records.sort_by(|a, b| a.start_secs.total_cmp(&b.start_secs));
    let setup: Vec<f64> = records
        .iter()
        .filter(|r| r.outgoing)
        .filter_map(|r| r.setup_ms)
        .collect();
    let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
    for (_, s, _) in &outcomes {
        if let Some(f) = s.iter().find(|r| r.status == Status::Failed) {
            let key = format!("step {} `{}`: {}", f.step, f.action, f.observed);
            if reasons.len() < 20 || reasons.contains_key(&key) {
                *reasons.entry(key).or_default() += 1;
            }
        }
    }
    let summary = LoadSummary {
        calls: load.calls,
        attempted,
        succeeded,
        failed,
        concurrency: load.concurrency,
        max_concurrent: max_active.load(Ordering::SeqCst),
        max_established: max_established(&records),
        rate: load.rate,
        ramp_up_secs: load.ramp_up.as_secs_f64(),
        elapsed_secs: elapsed.as_secs_f64(),
        calls_per_sec: f64::from(attempted) / elapsed.as_secs_f64().max(1e-3),
        setup_latency_ms: Percentiles::of(&setup),
        failure_reasons: reasons,
    };
    let steps = steps.finish();
    Ok(RunResult {
        scenario: scenario.name.clone(),
        file: scenario.path.display().to_string(),
        passed: failed == 0
            && attempted == load.calls
            && steps.iter().all(|s| s.status != Status::Failed),
        duration_secs: t0.elapsed().as_secs_f64(),
        steps,
        calls: records,
        load: Some(summary),
    })
}

/// The most placed calls that were up at the same instant: each answered outgoing call
/// counts from its answer (`start + setup`) to its end (`start + duration`); at equal
/// instants an end is counted before an answer.
pub fn max_established(records: &[CallRecord]) -> u32 {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for r in records.iter().filter(|r| r.outgoing) {
        if let Some(setup_ms) = r.setup_ms {
            let up = r.start_secs + setup_ms / 1000.0;
            let down = r.start_secs + r.duration_secs;
            if down > up {
                edges.push((up, 1));
                edges.push((down, -1));
            }
        }
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max.max(0) as u32
}

/// Step results of many calls, merged per leg and step.
#[derive(Default)]
struct Aggregate {
    order: Vec<(String, String)>,
    by_key: BTreeMap<(String, String), (StepResult, f64)>,
}

impl Aggregate {
    fn add(&mut self, results: &[StepResult]) {
        for r in results {
            let key = (r.leg.clone(), r.step.clone());
            match self.by_key.get_mut(&key) {
                None => {
                    self.order.push(key.clone());
                    self.by_key.insert(key, (r.clone(), r.duration_secs));
                }
                Some((agg, total)) => {
                    agg.passes += r.passes;
                    agg.failures += r.failures;
                    *total += r.duration_secs;
                    if r.status == Status::Failed && agg.status != Status::Failed {
                        agg.status = Status::Failed;
                        agg.observed = r.observed.clone();
                        agg.expected = r.expected.clone();
                    }
                    if agg.status == Status::Skipped && r.status == Status::Passed {
                        agg.status = Status::Passed;
                        agg.observed = r.observed.clone();
                    }
                }
            }
        }
    }

    fn finish(mut self) -> Vec<StepResult> {
        let mut legs: Vec<String> = Vec::new();
        for (l, _) in &self.order {
            if !legs.contains(l) {
                legs.push(l.clone());
            }
        }
        let mut out = Vec::new();
        for leg in legs {
            for key in self.order.iter().filter(|(l, _)| *l == leg) {
                if let Some((mut r, total)) = self.by_key.remove(key) {
                    let n = (r.passes + r.failures).max(1);
                    r.duration_secs = total / n as f64;
                    if r.status == Status::Failed {
                        r.observed = format!(
                            "{} of {} failed; first: {}",
                            r.failures,
                            r.passes + r.failures,
                            r.observed
                        );
                    } else if r.passes > 1 {
                        r.observed = format!("passed {} times; e.g. {}", r.passes, r.observed);
                    }
                    out.push(r);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: f64, setup_ms: Option<f64>, duration: f64) -> CallRecord {
        CallRecord {
            leg: "l".into(),
            index: 0,
            outgoing: true,
            start_secs: start,
            setup_ms,
            duration_secs: duration,
            ok: true,
            end_reason: String::new(),
            codec: None,
            packets_received: 0,
            packets_lost: 0,
            packets_sent: 0,
            late_frames: 0,
            loss_percent: 0.0,
            jitter_ms: 0.0,
            concealed_frames: 0,
            mos: None,
            rtt_ms: None,
        }
    }

    #[test]
    fn max_established_sweeps_answer_and_end_times() {
        assert_eq!(max_established(&[]), 0);
        // Up over [0.1, 2], [1.1, 3], [2.5, 4]: two at once at most; the unanswered call
        // and an incoming one do not count.
        let mut calls = vec![
            record(0.0, Some(100.0), 2.0),
            record(1.0, Some(100.0), 2.0),
            record(2.0, Some(500.0), 2.0),
            record(0.5, None, 3.0),
        ];
        let mut incoming = record(0.0, Some(1.0), 5.0);
        incoming.outgoing = false;
        calls.push(incoming);
        assert_eq!(max_established(&calls), 2);
        // One ends exactly when the next is answered: not at once.
        let touching = [record(0.0, Some(0.0), 1.0), record(1.0, Some(0.0), 1.0)];
        assert_eq!(max_established(&touching), 1);
    }

    #[test]
    fn start_offsets_follow_rate_and_ramp() {
        assert_eq!(start_offset(5, None, Duration::ZERO), Duration::ZERO);
        assert!((start_offset(10, Some(10.0), Duration::ZERO).as_secs_f64() - 1.0).abs() < 1e-9);
        // Ramp over 2 s to 10/s: 10 calls in the ramp; call 10 at 2 s, call 20 at 3 s.
        let r = Some(10.0);
        let t = Duration::from_secs(2);
        assert!((start_offset(10, r, t).as_secs_f64() - 2.0).abs() < 1e-9);
        assert!((start_offset(20, r, t).as_secs_f64() - 3.0).abs() < 1e-9);
        assert!(start_offset(1, r, t) > start_offset(0, r, t));
        assert!(
            start_offset(2, r, t).as_secs_f64() - start_offset(1, r, t).as_secs_f64()
                < start_offset(1, r, t).as_secs_f64()
        );
    }
}
