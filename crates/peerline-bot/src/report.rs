//! The report: four charts drawn with plotters' SVG backend (calls per second, setup
//! latency per call with its percentiles, MOS per call, jitter and loss per call), as an
//! SVG file or inside a self-contained HTML page with the step table.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::results::{esc, RunResult, Status};

fn e<E: std::fmt::Display>(err: E) -> String {
    format!("drawing the report: {err}")
}

fn range(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    let m = values.filter(|v| v.is_finite()).fold(floor, f64::max);
    if m <= 0.0 {
        1.0
    } else {
        m * 1.1
    }
}

/// Calls started and ended per one-second bucket.
pub fn calls_per_second(result: &RunResult) -> Vec<(f64, f64, f64)> {
    let end = result
        .calls
        .iter()
        .map(|c| c.start_secs + c.duration_secs)
        .fold(0.0, f64::max);
    let n = end.ceil().max(1.0) as usize;
    let n = n.min(100_000);
    let mut started = vec![0.0; n];
    let mut ended = vec![0.0; n];
    for c in result.calls.iter().filter(|c| c.outgoing) {
        let s = (c.start_secs.max(0.0) as usize).min(n - 1);
        started[s] += 1.0;
        let e = ((c.start_secs + c.duration_secs).max(0.0) as usize).min(n - 1);
        ended[e] += 1.0;
    }
    (0..n).map(|i| (i as f64, started[i], ended[i])).collect()
}

/// The charts as an SVG document.
pub fn svg(result: &RunResult) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 1200)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let root = root
            .titled(
                &format!("Peerline bot: {}", result.scenario),
                ("sans-serif", 24),
            )
            .map_err(e)?;
        let panels = root.split_evenly((4, 1));
        let tmax = result
            .calls
            .iter()
            .map(|c| c.start_secs + c.duration_secs)
            .fold(1.0, f64::max)
            .ceil();
        let font = ("sans-serif", 18);

        // 1. Calls per second.
        let cps = calls_per_second(result);
        let ymax = range(cps.iter().flat_map(|(_, s, e)| [*s, *e]), 1.0);
        let mut chart = ChartBuilder::on(&panels[0])
            .caption("Calls per second (started, ended)", font)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax, 0f64..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc("calls/s")
            .draw()
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(cps.iter().map(|(t, s, _)| (*t, *s)), &BLUE))
            .map_err(e)?
            .label("started")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                cps.iter().map(|(t, _, x)| (*t, *x)),
                &GREEN,
            ))
            .map_err(e)?
            .label("ended")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;

        // 2. Setup latency per call.
        let setup: Vec<(f64, f64)> = result
            .calls
            .iter()
            .filter_map(|c| c.setup_ms.map(|s| (c.start_secs, s)))
            .collect();
        let caption = match result
            .load
            .as_ref()
            .and_then(|l| l.setup_latency_ms.as_ref())
        {
            Some(p) => format!(
                "Setup latency, ms (p50 {:.1}, p90 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1})",
                p.p50, p.p90, p.p95, p.p99, p.max
            ),
            None => "Setup latency, ms (INVITE to answered)".into(),
        };
        let ymax = range(setup.iter().map(|(_, s)| *s), 1.0);
        let mut chart = ChartBuilder::on(&panels[1])
            .caption(caption, font)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax, 0f64..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("call start, s")
            .y_desc("ms")
            .draw()
            .map_err(e)?;
        chart
            .draw_series(setup.iter().map(|p| Circle::new(*p, 2, BLUE.filled())))
            .map_err(e)?;
        if let Some(p) = result
            .load
            .as_ref()
            .and_then(|l| l.setup_latency_ms.as_ref())
        {
            for (v, color) in [(p.p50, GREEN), (p.p95, RED)] {
                chart
                    .draw_series(LineSeries::new([(0.0, v), (tmax, v)], color))
                    .map_err(e)?;
            }
        }

        // 3. MOS per call.
        let mos: Vec<(f64, f64)> = result
            .calls
            .iter()
            .filter_map(|c| c.mos.map(|m| (c.start_secs, m)))
            .collect();
        let mut chart = ChartBuilder::on(&panels[2])
            .caption("MOS estimate per call (E-model, G.107)", font)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax, 1f64..5f64)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("call start, s")
            .y_desc("MOS")
            .draw()
            .map_err(e)?;
        chart
            .draw_series(mos.iter().map(|p| Circle::new(*p, 2, MAGENTA.filled())))
            .map_err(e)?;

        // 4. Jitter and loss per call.
        let jitter: Vec<(f64, f64)> = result
            .calls
            .iter()
            .map(|c| (c.start_secs, c.jitter_ms))
            .collect();
        let loss: Vec<(f64, f64)> = result
            .calls
            .iter()
            .map(|c| (c.start_secs, c.loss_percent))
            .collect();
        let ymax = range(jitter.iter().chain(loss.iter()).map(|(_, v)| *v), 1.0);
        let mut chart = ChartBuilder::on(&panels[3])
            .caption("Jitter (ms) and loss (%) per call", font)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax, 0f64..ymax)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("call start, s")
            .y_desc("ms / %")
            .draw()
            .map_err(e)?;
        chart
            .draw_series(jitter.iter().map(|p| Circle::new(*p, 2, BLUE.filled())))
            .map_err(e)?
            .label("jitter ms")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
        chart
            .draw_series(
                loss.iter()
                    .map(|p| TriangleMarker::new(*p, 3, RED.filled())),
            )
            .map_err(e)?
            .label("loss %")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 3, RED.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(out)
}

/// A self-contained HTML page: verdict, load summary, the charts, every step.
pub fn html(result: &RunResult) -> Result<String, String> {
    let chart = svg(result)?;
    let mut h = String::new();
    let verdict = if result.passed { "PASSED" } else { "FAILED" };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — {verdict}</title>\n<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} .passed{{color:#070}} .failed{{color:#b00;font-weight:bold}} .skipped{{color:#777}}</style></head><body>\n",
        esc(&result.scenario)
    );
    let _ = writeln!(
        h,
        "<h1>{} <span class=\"{}\">{verdict}</span></h1>\n<p>{} — {:.1} s, {} calls</p>",
        esc(&result.scenario),
        verdict.to_ascii_lowercase(),
        esc(&result.file),
        result.duration_secs,
        result.calls.len()
    );
    if let Some(l) = &result.load {
        let _ = writeln!(
            h,
            "<h2>Load</h2><table id=\"load\"><tr><th>calls</th><th>attempted</th><th>succeeded</th><th>failed</th><th>concurrency (max seen, max established)</th><th>calls/s</th><th>setup p50 / p95 / p99 ms</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({}, {})</td><td>{:.1}</td><td>{}</td></tr></table>",
            l.calls,
            l.attempted,
            l.succeeded,
            l.failed,
            l.concurrency,
            l.max_concurrent,
            l.max_established,
            l.calls_per_sec,
            l.setup_latency_ms
                .as_ref()
                .map(|p| format!("{:.1} / {:.1} / {:.1}", p.p50, p.p95, p.p99))
                .unwrap_or_else(|| "–".into())
        );
    }
    let _ = writeln!(h, "<h2>Charts</h2>\n<div id=\"charts\">{chart}</div>");
    h.push_str("<h2>Steps</h2>\n<table id=\"steps\"><tr><th>leg</th><th>step</th><th>line</th><th>action</th><th>status</th><th>expected</th><th>observed</th></tr>\n");
    for s in &result.steps {
        let status = match s.status {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.leg),
            esc(&s.step),
            s.line,
            esc(&s.action),
            esc(&s.expected),
            esc(&s.observed)
        );
    }
    h.push_str("</table>\n</body></html>\n");
    Ok(h)
}
