//! `cargo xtask bench`: boot each kernel in benchmark mode, collect its
//! result lines, and write the tables (stdout and target/bench/latest.md)
//! and the results file (target/bench/latest.json).

use crate::env::{self, root};
use crate::qemu::{self, Accel, RunSpec};
use crate::{Kernel, build};
use anyhow::{Context, Result, bail};
use benchmarks::defs::{OPS, Op, Settings};
use benchmarks::line::{self, Parsed};
use benchmarks::measure::Sample;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// What one kernel reported.
#[derive(Debug, Default)]
pub struct KernelResults {
    pub tsc_hz: Option<u64>,
    /// Operation name → measured sample or n/a note.
    pub ops: BTreeMap<&'static str, Result<Sample, String>>,
    pub done: bool,
}

/// Options of a benchmark run.
#[derive(Clone, Debug, Default)]
pub struct BenchOptions {
    pub quick: bool,
    pub only: Option<String>,
}

impl BenchOptions {
    fn settings(&self) -> Settings<'_> {
        Settings { quick: self.quick, only: self.only.as_deref() }
    }

    fn cmdline(&self) -> String {
        let mut c = String::from("mode=bench");
        if self.quick {
            c.push_str(" quick");
        }
        if let Some(o) = &self.only {
            c.push_str(" only=");
            c.push_str(&o.replace(' ', "_"));
        }
        c
    }

    /// Check `--only` names a table or an operation.
    pub fn validate(&self) -> Result<()> {
        if let Some(o) = &self.only {
            let known = benchmarks::Table::from_id(o).is_some() || benchmarks::defs::op_named(o).is_some();
            if !known {
                let tables: Vec<_> = benchmarks::Table::ALL.iter().map(|t| t.id()).collect();
                bail!(
                    "--only {o:?} names no table or operation; tables: {}; operations: {}",
                    tables.join(", "),
                    OPS.iter().map(|o| o.name).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(())
    }
}

/// Boot `kernel` in benchmark mode and parse what it reports. `progress`
/// sees each result as it arrives.
pub fn collect(
    kernel: Kernel,
    image: &Path,
    accel: Accel,
    timeout: Duration,
    opts: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<KernelResults> {
    let cmdline = opts.cmdline();
    let spec = RunSpec { image, cmdline: &cmdline, accel, timeout, gdb: false };
    let mut results = KernelResults::default();
    let mut errors = Vec::new();
    let outcome = qemu::run_captured(&spec, |text| {
        if let Some(k) = text.strip_prefix("@bench-done|v1|") {
            results.done = k == kernel.name();
            return;
        }
        match line::parse(text) {
            None => {}
            Some(Err(e)) => errors.push(format!("{e}: {text:?}")),
            Some(Ok(Parsed::Info { kernel: k, tsc_hz })) if k == kernel.name() => {
                results.tsc_hz = Some(tsc_hz)
            }
            Some(Ok(Parsed::Result { kernel: k, op, sample })) if k == kernel.name() => {
                progress(&format!("{:>40}: {:.1}", op.name, sample.median as f64 / sample.iterations as f64));
                results.ops.insert(op.name, Ok(sample));
            }
            Some(Ok(Parsed::NotApplicable { kernel: k, op, note })) if k == kernel.name() => {
                progress(&format!("{:>40}: n/a ({note})", op.name));
                results.ops.insert(op.name, Err(note.to_owned()));
            }
            Some(Ok(other)) => errors.push(format!("a result for another kernel: {other:?}")),
        }
    })?;
    if !errors.is_empty() {
        bail!("kernel-{} printed malformed result lines:\n  {}", kernel.name(), errors.join("\n  "));
    }
    if !outcome.passed() || !results.done {
        bail!(
            "kernel-{} did not finish its benchmarks: {}\n{}",
            kernel.name(),
            outcome.describe(),
            tail(&outcome.output, 40)
        );
    }
    let settings = opts.settings();
    let missing: Vec<_> = OPS
        .iter()
        .filter(|o| settings.wants(o) && !results.ops.contains_key(o.name))
        .map(|o| o.name)
        .collect();
    if !missing.is_empty() {
        bail!("kernel-{} did not report: {}", kernel.name(), missing.join(", "));
    }
    Ok(results)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The whole `cargo xtask bench` command.
pub fn run(accel: Option<Accel>, timeout: Duration, kernels: &[Kernel], opts: &BenchOptions) -> Result<()> {
    opts.validate()?;
    env::ensure_build_prerequisites()?;
    let qemu_version = env::ensure_qemu()?;
    let accel = accel.unwrap_or(match Accel::detect() {
        Accel::Kvm => Accel::Kvm,
        _ => Accel::Icount,
    });
    let mut all = BTreeMap::new();
    for &k in kernels {
        let image = build::image(k)?;
        eprintln!(
            "[bench] kernel-{} ({}, {})",
            k.name(),
            accel.name(),
            if opts.quick { "quick" } else { "full" }
        );
        let r = collect(k, &image, accel, timeout, opts, |p| eprintln!("[bench {}] {p}", k.name()))?;
        all.insert(k.name(), r);
    }
    let meta = Meta {
        git: git_commit(),
        accel,
        qemu: qemu_version,
        host_cpu: host_cpu(),
        host_kernel: host_kernel(),
        tsc_hz: all.values().find_map(|r| r.tsc_hz).unwrap_or(0),
    };
    let json = crate::report::json(&meta, &all);
    let md = crate::report::markdown(&meta, &all, opts);
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("latest.json"), serde_json::to_string_pretty(&json)? + "\n")
        .context("writing target/bench/latest.json")?;
    std::fs::write(dir.join("latest.md"), &md).context("writing target/bench/latest.md")?;
    println!("{md}");
    eprintln!("wrote target/bench/latest.json and target/bench/latest.md");
    Ok(())
}

/// The run's context, printed in headers and stored in the JSON.
pub struct Meta {
    pub git: String,
    pub accel: Accel,
    pub qemu: String,
    pub host_cpu: String,
    pub host_kernel: String,
    pub tsc_hz: u64,
}

fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if run(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()) => format!("{c}-dirty"),
        Some(c) => c,
        None => "unknown".into(),
    }
}

fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name"))?.split(':').nth(1).map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Operations of `table` that `opts` selects.
pub fn selected_ops(opts: &BenchOptions) -> impl Iterator<Item = &'static Op> + '_ {
    let only = opts.only.clone();
    OPS.iter().filter(move |o| Settings { quick: false, only: only.as_deref() }.wants(o))
}

/// Parse a `--kernel` list.
pub fn kernels(which: Option<Kernel>) -> Vec<Kernel> {
    which.map_or_else(|| Kernel::ALL.to_vec(), |k| vec![k])
}
