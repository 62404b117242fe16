//! `cargo xtask bench`: boot each kernel (and the Linux baseline) in
//! benchmark mode, collect the result lines, and write the tables (stdout
//! and target/bench/latest.md) and the results file (target/bench/latest.json).

use crate::env::{self, root};
use crate::qemu::{self, Accel, Boot, RunSpec};
use crate::{Kernel, build, linux};
use anyhow::{Context, Result, bail};
use benchmarks::defs::{OPS, Op, Settings};
use benchmarks::line::{self, Parsed};
use benchmarks::measure::Sample;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one system reported.
#[derive(Debug, Default)]
pub struct KernelResults {
    pub tsc_hz: Option<u64>,
    /// Operation name → measured sample or n/a note.
    pub ops: BTreeMap<&'static str, Result<Sample, String>>,
    /// Secondary measurements: (operation, label, sample).
    pub extras: Vec<(&'static str, String, Sample)>,
    pub done: bool,
    /// Operation name → cost profile (`--profile` only).
    pub profiles: BTreeMap<&'static str, crate::profile::RowProfile>,
}

/// Which systems to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    Exo,
    Spin,
    Linux,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Exo => "exo",
            System::Spin => "spin",
            System::Linux => "linux",
        }
    }
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
        // The networking rows: two NICs on one QEMU hub.
        let mut c = String::from("mode=bench nics=2");
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

/// Boot one of our kernels in benchmark mode and parse what it reports.
pub fn collect_kernel(
    kernel: Kernel,
    image: &Path,
    accel: Accel,
    timeout: Duration,
    opts: &BenchOptions,
    progress: impl FnMut(&str),
) -> Result<KernelResults> {
    let cmdline = opts.cmdline();
    let spec = RunSpec { boot: Boot::Disk(image), cmdline: &cmdline, accel, timeout, gdb: false };
    collect(kernel.name(), &spec, opts, progress)
}

/// Boot `spec` and parse the result lines of `system`. `progress` sees each
/// result as it arrives.
pub fn collect(
    system: &str,
    spec: &RunSpec,
    opts: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<KernelResults> {
    let mut results = KernelResults::default();
    let mut errors = Vec::new();
    crate::profile::before_boot(system, spec); // --profile: the plugin rides along
    let outcome = qemu::run_captured(spec, |text| {
        if let Some(k) = text.strip_prefix("@bench-done|v1|") {
            results.done = k == system;
            return;
        }
        match line::parse(text) {
            None => {}
            Some(Err(e)) => errors.push(format!("{e}: {text:?}")),
            Some(Ok(Parsed::Info { kernel, tsc_hz })) if kernel == system => results.tsc_hz = Some(tsc_hz),
            Some(Ok(Parsed::Result { kernel, op, sample })) if kernel == system => {
                progress(&format!("{:>28}: {:.1}", op.name, sample.median as f64 / sample.iterations as f64));
                results.ops.insert(op.name, Ok(sample));
            }
            Some(Ok(Parsed::NotApplicable { kernel, op, note })) if kernel == system => {
                progress(&format!("{:>28}: n/a", op.name));
                results.ops.insert(op.name, Err(note.to_owned()));
            }
            Some(Ok(Parsed::Extra { kernel, op, label, sample })) if kernel == system => {
                results.extras.push((op.name, label.to_owned(), sample));
            }
            Some(Ok(other)) => errors.push(format!("a result for another system: {other:?}")),
        }
    })?;
    results.profiles = crate::profile::after_boot(system, spec, &outcome)?;
    if !errors.is_empty() {
        bail!("{system} printed malformed result lines:\n  {}", errors.join("\n  "));
    }
    if !outcome.passed() || !results.done {
        bail!(
            "{system} did not finish its benchmarks: {}\n{}",
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
        bail!("{system} did not report: {}", missing.join(", "));
    }
    Ok(results)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A column whose system could not run at all: every selected operation
/// n/a with the reason.
fn unavailable(opts: &BenchOptions, why: &str) -> KernelResults {
    let mut r = KernelResults { done: true, ..Default::default() };
    for op in selected_ops(opts) {
        r.ops.insert(op.name, Err(format!("not available: {why}")));
    }
    r
}

/// Boot the Linux baseline (fetching the kernel if needed) and collect its results.
pub fn run_linux(
    accel: Accel,
    timeout: Duration,
    opts: &BenchOptions,
    kernel_image: Option<&Path>,
    mut progress: impl FnMut(&str),
) -> Result<KernelResults> {
    let kernel = linux::kernel(kernel_image)?;
    progress(&format!("booting {}", kernel.file_name().unwrap_or_default().to_string_lossy()));
    let initrd = linux::initramfs()?;
    let append = linux::append(opts.quick, opts.only.as_deref());
    let spec = RunSpec {
        boot: Boot::Linux { kernel: &kernel, initrd: &initrd, append: &append },
        cmdline: "",
        accel,
        timeout,
        gdb: false,
    };
    collect("linux", &spec, opts, progress)
}

/// The whole `cargo xtask bench` command.
pub fn run(
    accel: Option<Accel>,
    timeout: Duration,
    systems: &[System],
    opts: &BenchOptions,
    linux_kernel: Option<PathBuf>,
) -> Result<()> {
    opts.validate()?;
    env::ensure_build_prerequisites()?;
    let qemu_version = env::ensure_qemu()?;
    let accel = accel.unwrap_or(match Accel::detect() {
        Accel::Kvm => Accel::Kvm,
        _ => Accel::Icount,
    });
    let mut all = BTreeMap::new();
    let mut linux_guest = None;
    for &system in systems {
        let results = match system {
            System::Exo | System::Spin => {
                let k = if system == System::Exo { Kernel::Exo } else { Kernel::Spin };
                let image = build::image(k)?;
                eprintln!(
                    "[bench] kernel-{} ({}, {})",
                    k.name(),
                    accel.name(),
                    if opts.quick { "quick" } else { "full" }
                );
                collect_kernel(k, &image, accel, timeout, opts, |p| eprintln!("[bench {}] {p}", k.name()))?
            }
            System::Linux => {
                eprintln!("[bench] linux ({}, {})", accel.name(), if opts.quick { "quick" } else { "full" });
                match run_linux(accel, timeout, opts, linux_kernel.as_deref(), |p| {
                    if let Some(image) = p.strip_prefix("booting ") {
                        linux_guest = Some(image.to_owned());
                    }
                    eprintln!("[bench linux] {p}")
                }) {
                    Ok(r) => r,
                    Err(e) => {
                        let why = format!("{e:#}").lines().next().unwrap_or("unknown error").to_owned();
                        eprintln!("[bench linux] not available: {why}");
                        unavailable(opts, &why)
                    }
                }
            }
        };
        all.insert(system.name(), results);
    }
    let meta = Meta {
        git: git_commit(),
        accel,
        qemu: qemu_version,
        host_cpu: host_cpu(),
        host_kernel: host_kernel(),
        linux_guest,
        tsc_hz: ["exo", "spin", "linux"].iter().find_map(|k| all.get(k).and_then(|r| r.tsc_hz)).unwrap_or(0),
    };
    let json = crate::report::json(&meta, &all);
    let mut md = crate::report::markdown(&meta, &all, opts);
    if crate::profile::enabled() {
        md.push_str(&crate::profile::markdown(&all, accel == Accel::Kvm));
    }
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
    /// The Linux baseline's kernel image (file name), when it ran.
    pub linux_guest: Option<String>,
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
        // paper/ is generated from these results, so edits there do not
        // make the measured code differ from the commit.
        Some(c) if run(&["status", "--porcelain", "--", ".", ":!paper"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c}-dirty")
        }
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

/// The operations `opts` selects.
pub fn selected_ops(opts: &BenchOptions) -> impl Iterator<Item = &'static Op> + '_ {
    OPS.iter().filter(move |o| opts.settings().wants(o))
}
