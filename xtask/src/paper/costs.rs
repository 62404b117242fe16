//! "Where the time goes": the report's section on the cost profile
//! (`cargo xtask bench --profile`): a stacked figure of estimated cycles per
//! row by cause, the rows' estimates, and every verdict judged again in
//! estimated cycles.

use super::Results;
use super::verdicts::{self, Claim};
use crate::report::ResultsFile;
use anyhow::Result;
use plotters::prelude::*;
use std::fmt::Write;
use std::path::Path;

const CAUSES: [(&str, RGBColor); 4] = [
    ("instructions", RGBColor(0x4c, 0x72, 0xb0)),
    ("privilege switches", RGBColor(0xdd, 0x84, 0x52)),
    ("address-space changes", RGBColor(0x55, 0xa8, 0x68)),
    ("cache misses", RGBColor(0xc4, 0x4e, 0x52)),
];
const SYSTEMS: [&str; 3] = ["exo", "spin", "linux"];

fn profiled(r: &Results) -> bool {
    r.file.results.iter().any(|row| row.profile.is_some())
}

/// The same results with every profiled row's figure replaced by its
/// estimated cycles (rows without a profile become n/a), so the verdicts
/// can be judged in that currency by the same code.
fn in_estimated_cycles(r: &Results) -> Option<Results> {
    let results = r
        .file
        .results
        .iter()
        .map(|row| {
            let mut row = crate::report::ResultRow { profile: None, ..clone_row(row) };
            match &r.row(&row.kernel, &row.operation).and_then(|x| x.profile.clone()) {
                Some(p) => {
                    row.median = Some(p.est_cycles);
                    row.min = Some(p.est_cycles);
                    row.max = Some(p.est_cycles);
                }
                None => {
                    row.median = None;
                    row.min = None;
                    row.max = None;
                    row.note = Some("no cost profile".into());
                }
            }
            row
        })
        .collect();
    let file = ResultsFile { results, unit: "cycles".into(), ..clone_file(&r.file) };
    let text = serde_json::to_string(&file).ok()?;
    Results::parse(&text).ok()
}

fn clone_row(r: &crate::report::ResultRow) -> crate::report::ResultRow {
    serde_json::from_value(serde_json::to_value(r).expect("serialisable")).expect("round trip")
}

fn clone_file(f: &ResultsFile) -> ResultsFile {
    ResultsFile {
        results: Vec::new(),
        ..serde_json::from_value(serde_json::to_value(f).expect("ok")).expect("ok")
    }
}

/// The section's Markdown (the figure is `figures/where-the-time-goes.svg`).
pub fn section(r: &Results, claims: &[Claim]) -> String {
    let mut md = String::from("\n## Where the time goes\n\n");
    if !profiled(r) {
        md.push_str(
            "These results carry no cost profile; `cargo xtask bench --profile` adds one (see the \
             README's bench section) and this section then shows estimated cycles by cause.\n",
        );
        return md;
    }
    md.push_str(
        "Instruction counts weigh a `syscall`, an `iretq`, a `mov cr3` and a cache miss like an `add`. \
         The cost profile (a TCG plugin counting, between the same fenced `rdtsc` reads, privilege \
         switches, CR3 writes, TLB invalidations and misses in a simulated Golden Cove cache \
         hierarchy; instruction counts equal to the benchmark's) turns each row into *estimated \
         cycles* with a cost table whose every constant names a source in `latest.md` (`COSTS` in \
         `xtask/src/profile.rs`). The constants are approximate literature figures that have not \
         yet been checked against those sources, so the verdicts in estimated cycles below are \
         provisional. It is a model: no overlap between events, no branch prediction, caches cold \
         at boot.\n\n![Estimated cycles per operation by cause](figures/where-the-time-goes.svg)\n\n",
    );
    md.push_str("| operation | system | instructions | est. cycles | of which: instructions | switches | address space | misses |\n|---|---|---|---|---|---|---|---|\n");
    for op in benchmarks::OPS {
        for s in SYSTEMS {
            let Some(p) = r.row(s, op.name).and_then(|x| x.profile.as_ref()) else { continue };
            let c = p.est_by_cause;
            let _ = writeln!(
                md,
                "| {} | {s} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                op.name, p.instructions, p.est_cycles, c[0], c[1], c[2], c[3]
            );
        }
    }
    md.push_str("\n### Each verdict in both currencies\n\n| paper | claim | in instructions | in estimated cycles |\n|---|---|---|---|\n");
    let again = in_estimated_cycles(r).map(|e| verdicts::evaluate(&e)).unwrap_or_default();
    let mut changed = Vec::new();
    for c in claims {
        let other = again.iter().find(|x| x.claim == c.claim);
        let label = other.map_or("—", |o| o.verdict.label());
        let _ = writeln!(md, "| {} | {} | {} | {} |", c.paper, c.claim, c.verdict.label(), label);
        if let Some(o) = other.filter(|o| o.verdict != c.verdict) {
            changed.push(format!(
                "*{}* ({} in instructions, {} in estimated cycles: {})",
                c.claim,
                c.verdict.label(),
                o.verdict.label(),
                o.evidence
            ));
        }
    }
    if changed.is_empty() {
        md.push_str("\nNo verdict changes in estimated cycles.\n");
    } else {
        let _ = writeln!(md, "\nVerdicts that change in estimated cycles: {}.", changed.join("; "));
    }
    md
}

/// A stacked bar per (row, system): estimated cycles by cause, log-free.
pub fn figure(r: &Results, path: &Path) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow::anyhow!("drawing {}: {e:?}", path.display());
    let bars: Vec<(String, [f64; 4])> = benchmarks::OPS
        .iter()
        .flat_map(|op| {
            SYSTEMS.iter().filter_map(move |s| {
                let p = r.row(s, op.name)?.profile.as_ref()?;
                Some((format!("{} ({s})", op.name), p.est_by_cause))
            })
        })
        .collect();
    let height = 80 + 18 * bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let hi = bars.iter().map(|(_, c)| c.iter().sum::<f64>()).fold(1.0, f64::max) * 1.05;
    let n = bars.len().max(1);
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("Estimated cycles per operation, by cause", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(260)
        .build_cartesian_2d((1f64..hi).log_scale(), 0f64..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let i = (*y - 0.5).round();
            if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(n - 1 - i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("estimated cycles (log scale)")
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(err)?;
    for (k, (cause, color)) in CAUSES.iter().enumerate() {
        let rects: Vec<_> = bars
            .iter()
            .enumerate()
            .filter_map(|(i, (_, c))| {
                let y = (n - 1 - i) as f64;
                let start: f64 = 1.0 + c[..k].iter().sum::<f64>();
                let end = start + c[k];
                (c[k] > 0.0).then(|| Rectangle::new([(start, y + 0.15), (end, y + 0.85)], color.filled()))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(*cause)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
