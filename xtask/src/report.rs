//! Turning collected results into the results file (the JSON contract in
//! SPEC.md) and Markdown tables with the papers' numbers beside ours.

use crate::bench::{BenchOptions, KernelResults, Meta, selected_ops};
use crate::qemu::Accel;
use benchmarks::budgets::budget;
use benchmarks::defs::{Op, Table};
use benchmarks::published::for_operation;
use benchmarks::stats::per_iteration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The results file, schema 1 (written by `bench`, read by `paper`).
#[derive(Serialize, Deserialize, Debug)]
pub struct ResultsFile {
    pub schema: u32,
    pub git: String,
    pub accel: String,
    pub unit: String,
    pub qemu: String,
    pub host_cpu: String,
    pub tsc_hz: u64,
    pub results: Vec<ResultRow>,
}

/// One cell: an operation on a kernel.
#[derive(Serialize, Deserialize, Debug)]
pub struct ResultRow {
    pub table: String,
    pub operation: String,
    pub kernel: String,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub runs: u32,
    pub iterations: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    /// `bench --profile`: the row's cost profile (see `profile.rs`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub profile: Option<crate::profile::ProfileJson>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn unit(accel: Accel) -> &'static str {
    match accel {
        Accel::Icount => "instructions",
        _ => "cycles",
    }
}

pub fn json(meta: &Meta, all: &BTreeMap<&'static str, KernelResults>) -> ResultsFile {
    let mut results = Vec::new();
    for op in benchmarks::OPS {
        for (kernel, r) in all {
            let Some(cell) = r.ops.get(op.name) else { continue };
            results.push(match cell {
                Ok(s) => ResultRow {
                    table: op.table.id().into(),
                    operation: op.name.into(),
                    kernel: kernel.to_string(),
                    median: Some(round2(per_iteration(s.median, s.iterations))),
                    min: Some(round2(per_iteration(s.min, s.iterations))),
                    max: Some(round2(per_iteration(s.max, s.iterations))),
                    runs: s.runs,
                    iterations: s.iterations,
                    note: None,
                    profile: r.profiles.get(op.name).map(crate::profile::json),
                },
                Err(note) => ResultRow {
                    table: op.table.id().into(),
                    operation: op.name.into(),
                    kernel: kernel.to_string(),
                    median: None,
                    min: None,
                    max: None,
                    runs: 0,
                    iterations: 0,
                    note: Some(note.clone()),
                    profile: None,
                },
            });
        }
    }
    ResultsFile {
        schema: 1,
        git: meta.git.clone(),
        accel: meta.accel.name().into(),
        unit: unit(meta.accel).into(),
        qemu: meta.qemu.clone(),
        host_cpu: meta.host_cpu.clone(),
        tsc_hz: meta.tsc_hz,
        results,
    }
}

fn median(all: &BTreeMap<&'static str, KernelResults>, kernel: &str, op: &str) -> Option<f64> {
    match all.get(kernel)?.ops.get(op)? {
        Ok(s) => Some(per_iteration(s.median, s.iterations)),
        Err(_) => None,
    }
}

/// How the Markdown header names the Linux baseline's kernel image (the
/// JSON schema has no field for it; `cargo xtask paper` reads this line).
pub const LINUX_GUEST_PREFIX: &str = "- Linux baseline kernel: ";

fn fmt_num(x: f64) -> String {
    if x >= 1000.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

/// A ratio with two decimals, or two significant digits when it is
/// smaller than 0.1 (ours against Linux is often 1/100 or less, and
/// "0.00" would hide how much).
fn fmt_ratio(r: f64) -> String {
    if r >= 0.1 || r <= 0.0 || !r.is_finite() {
        return format!("{r:.2}");
    }
    let decimals = (-r.log10()).ceil() as usize + 1;
    format!("{r:.decimals$}")
}

/// One kernel's cell: the median, its spread, and the budget verdict.
fn cell(all: &BTreeMap<&'static str, KernelResults>, kernel: &str, op: &Op, meta: &Meta) -> String {
    let Some(r) = all.get(kernel) else { return "—".into() };
    match r.ops.get(op.name) {
        None => "—".into(),
        Some(Err(note)) => format!("n/a: {note}"),
        Some(Ok(s)) => {
            let m = per_iteration(s.median, s.iterations);
            let spread = if s.min == s.max {
                String::new()
            } else {
                format!(
                    " [{}–{}]",
                    fmt_num(per_iteration(s.min, s.iterations)),
                    fmt_num(per_iteration(s.max, s.iterations))
                )
            };
            let ns = if meta.accel == Accel::Kvm && meta.tsc_hz > 0 {
                format!(" ({:.0} ns)", m * 1e9 / meta.tsc_hz as f64)
            } else {
                String::new()
            };
            let verdict = match budget(op.name, kernel)
                .and_then(|b| b.resolve(kernel, op.name, |system, name| median(all, system, name)))
            {
                Some(limit) if meta.accel == Accel::Icount => {
                    if m <= limit {
                        format!(" ✓ ≤{}", fmt_num(limit))
                    } else {
                        format!(" ✗ >{}", fmt_num(limit))
                    }
                }
                _ => String::new(),
            };
            format!("{}{spread}{ns}{verdict}", fmt_num(m))
        }
    }
}

fn published_cell(op: &Op) -> String {
    let parts: Vec<String> = for_operation(op.name)
        .map(|p| format!("{} {} µs ({:.0} cyc)", p.system, p.micros, p.cycles()))
        .collect();
    if parts.is_empty() { "—".into() } else { parts.join("; ") }
}

pub fn markdown(meta: &Meta, all: &BTreeMap<&'static str, KernelResults>, opts: &BenchOptions) -> String {
    let unit = unit(meta.accel);
    let mut md = String::new();
    let _ = writeln!(md, "# Microbenchmarks: exokernel vs SPIN-style kernel\n");
    let _ = writeln!(
        md,
        "- accelerator: **{}** — unit: **{unit} per operation**{}",
        meta.accel.name(),
        if meta.accel == Accel::Icount {
            " (TCG `-icount shift=0`: the TSC counts guest instructions; exact and machine-independent)"
        } else {
            " (TSC ticks; wall-clock figures on shared machines are noisy)"
        }
    );
    let _ = writeln!(
        md,
        "- QEMU: {} — host CPU: {} — host kernel: {}",
        meta.qemu, meta.host_cpu, meta.host_kernel
    );
    if let Some(image) = &meta.linux_guest {
        let _ = writeln!(md, "{LINUX_GUEST_PREFIX}{image}");
    }
    let _ = writeln!(
        md,
        "- git: {} — guest TSC: {} Hz — {}",
        meta.git,
        meta.tsc_hz,
        if opts.quick { "quick run" } else { "full run" }
    );
    let _ = writeln!(
        md,
        "- each cell: median over runs of (run total / iterations), loop overhead included (see *empty loop*); \
         [min–max] when runs differ; ✓/✗: within/over the instruction budget (benchmarks/src/budgets.rs)"
    );
    let _ = writeln!(
        md,
        "- published: the papers' figures in µs and in cycles of the original machine (SPIN: 133 MHz Alpha; Aegis: 25 MHz DECstation)\n"
    );

    // Column order: exo, spin, linux (whichever ran).
    let kernels: Vec<&str> = ["exo", "spin", "linux"].into_iter().filter(|k| all.contains_key(k)).collect();
    let ratios: Vec<(&str, &str)> = [("exo", "spin"), ("exo", "linux"), ("spin", "linux")]
        .into_iter()
        .filter(|(a, b)| kernels.contains(a) && kernels.contains(b))
        .collect();
    for table in Table::ALL {
        let ops: Vec<&Op> = selected_ops(opts).filter(|o| o.table == table).collect();
        if ops.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {}\n", table.title());
        let mut header = String::from("| operation |");
        let mut rule = String::from("|---|");
        for k in &kernels {
            let _ = write!(header, " {k} |");
            rule.push_str("---|");
        }
        for (a, b) in &ratios {
            let _ = write!(header, " {a}/{b} |");
            rule.push_str("---|");
        }
        header.push_str(" published |");
        rule.push_str("---|");
        let _ = writeln!(md, "{header}\n{rule}");
        let mut notes = Vec::new();
        for op in &ops {
            let mut row = format!("| {} |", op.name);
            for k in &kernels {
                let _ = write!(row, " {} |", cell(all, k, op, meta));
            }
            for (a, b) in &ratios {
                let r = match (median(all, a, op.name), median(all, b, op.name)) {
                    (Some(x), Some(y)) if y > 0.0 => fmt_ratio(x / y),
                    _ => "—".into(),
                };
                let _ = write!(row, " {r} |");
            }
            let _ = write!(row, " {} |", published_cell(op));
            let _ = writeln!(md, "{row}");
            for k in &kernels {
                for (name, label, s) in &all[k].extras {
                    if *name == op.name {
                        notes.push(format!(
                            "- {k}, {}: {label}: {} {unit}",
                            op.name,
                            fmt_num(per_iteration(s.median, s.iterations))
                        ));
                    }
                }
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(md, "\nAlso measured:\n{}", notes.join("\n"));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::fmt_ratio;

    #[test]
    fn ratios_keep_two_significant_digits_below_a_tenth() {
        assert_eq!(fmt_ratio(0.53), "0.53");
        assert_eq!(fmt_ratio(1.0), "1.00");
        assert_eq!(fmt_ratio(0.08), "0.080");
        assert_eq!(fmt_ratio(548.0 / 110766.0), "0.0049");
        assert_eq!(fmt_ratio(0.0), "0.00");
    }
}
