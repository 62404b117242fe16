//! `cargo xtask test`: host unit tests, build checks, and in-QEMU tests of
//! both kernels, summarised as `N passed, M failed`.

use crate::env::{clean_cargo, root};
use crate::qemu::{self, Accel, Boot, Ending, Outcome, RunSpec};
use crate::{Kernel, MachineArgs, build, env};
use anyhow::Result;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Crates with host unit tests (pure logic, `no_std` but testable on the host).
const HOST_TESTED: &[&str] = &[
    "hal-logic",
    "benchmarks",
    "xtask",
    "exo-abi",
    "exo-logic",
    "spin-trusted",
    "spin-abi",
    "spin-interface",
];

/// Pass/fail bookkeeping with the evidence for each failure.
#[derive(Default)]
pub struct Report {
    passed: u32,
    failures: Vec<(String, String)>,
}

impl Report {
    pub fn pass(&mut self, name: &str) {
        self.passed += 1;
        println!("  ok    {name}");
    }

    pub fn fail(&mut self, name: &str, evidence: impl Into<String>) {
        println!("  FAIL  {name}");
        self.failures.push((name.to_owned(), evidence.into()));
    }
}

fn selected(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

pub fn run(filter: Option<&str>, extra_cmdline: &str, machine: MachineArgs) -> Result<ExitCode> {
    let started = Instant::now();
    env::ensure_build_prerequisites()?;
    let qemu_version = env::ensure_qemu()?;
    let accel = machine.accel.unwrap_or_else(Accel::detect);
    let timeout = Duration::from_secs(machine.timeout);
    let mut report = Report::default();

    println!("== host unit tests ({})", HOST_TESTED.join(", "));
    host_unit_tests(&mut report, filter);

    if selected("host/profile-model", filter) {
        // The cost-profile plugin's model (its own workspace, GPL like QEMU's plugin API).
        match crate::profile::plugin_unit_tests() {
            Ok(o) if o.status.success() => report.pass("host/profile-model"),
            Ok(o) => report.fail(
                "host/profile-model",
                format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            ),
            Err(e) => report.fail("host/profile-model", format!("{e:#}")),
        }
    }

    println!("== build checks (SPIN extensions: safe Rust, interface only)");
    crate::checks::run(&mut report, filter);

    for kernel in Kernel::ALL {
        let image = build::image(kernel)?;
        println!("== kernel-{} in QEMU ({qemu_version}, accel {})", kernel.name(), accel.name());
        let spec =
            |cmdline: &'static str| RunSpec { boot: Boot::Disk(&image), cmdline, accel, timeout, gdb: false };
        self_tests(&mut report, kernel, &image, accel, timeout, filter, extra_cmdline);
        let name = format!("{}/bench_quick_reports_every_operation", kernel.name());
        if selected(&name, filter) {
            // The benchmark suite in quick mode: every operation must come back
            // as a well-formed measurement or a well-formed n/a with a reason,
            // and an operation with a budget for this kernel must be measured
            // (a budget declares that the kernel expresses it).
            let opts = crate::bench::BenchOptions { quick: true, only: None };
            match crate::bench::collect_kernel(kernel, &image, accel, timeout, &opts, |_| {}) {
                Ok(r) if r.ops.len() != benchmarks::OPS.len() => report
                    .fail(&name, format!("{} of {} operations reported", r.ops.len(), benchmarks::OPS.len())),
                Ok(r) => {
                    let unmeasured: Vec<String> = r
                        .ops
                        .iter()
                        .filter(|(op, cell)| {
                            cell.is_err() && benchmarks::budgets::budget(op, kernel.name()).is_some()
                        })
                        .map(|(op, cell)| format!("{op}: {}", cell.as_ref().err().map_or("", |n| n.as_str())))
                        .collect();
                    if unmeasured.is_empty() {
                        report.pass(&name)
                    } else {
                        report.fail(&name, format!("budgeted but not measured: {}", unmeasured.join("; ")))
                    }
                }
                Err(e) => report.fail(&name, format!("{e:#}")),
            }
        }
        if selected(&format!("{}/profile_counts_equal_the_benchmarks_and_repeat", kernel.name()), filter) {
            crate::profile::self_test(&mut report, kernel, &image, Accel::Icount, timeout);
        }
        for scenario in SCENARIOS {
            let name = format!("{}/{}", kernel.name(), scenario.name);
            if selected(&name, filter) {
                let outcome = qemu::run_captured(&spec(scenario.cmdline), |_| {})?;
                match (scenario.check)(kernel, &outcome) {
                    Ok(()) => report.pass(&name),
                    Err(why) => {
                        report.fail(&name, format!("{why}\n{}\n{}", outcome.describe(), outcome.output))
                    }
                }
            }
        }
    }

    let name = "linux/bench_quick_reports_every_operation";
    if selected(name, filter) {
        // The Linux baseline: a stock Debian kernel booted with our
        // initramfs must run every benchmark definition and report it.
        println!("== Linux baseline in QEMU (accel {})", accel.name());
        let opts = crate::bench::BenchOptions { quick: true, only: None };
        match crate::bench::run_linux(accel, timeout, &opts, None, |_| {}) {
            Ok(r) if r.ops.len() == benchmarks::OPS.len() => report.pass(name),
            Ok(r) => {
                report.fail(name, format!("{} of {} operations reported", r.ops.len(), benchmarks::OPS.len()))
            }
            Err(e) => report.fail(name, format!("{e:#}")),
        }
    }

    for (name, evidence) in &report.failures {
        println!("\n---- {name} ----\n{}", tail(evidence, 200));
    }
    println!(
        "\n{} passed, {} failed ({:.0} s)",
        report.passed,
        report.failures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[... {skip} earlier lines ...]\n"));
    }
    out.push_str(&all[skip..].join("\n"));
    out
}

/// `cargo test` on the host for the pure-logic crates; every test counts.
fn host_unit_tests(report: &mut Report, filter: Option<&str>) {
    let mut cmd = clean_cargo(&root());
    cmd.arg("test");
    for p in HOST_TESTED {
        cmd.args(["--package", p]);
    }
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            report.fail("host unit tests", format!("could not run cargo test: {e}"));
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut seen = 0;
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        if let Some(name) = rest.strip_suffix(" ... ok") {
            report.pass(&format!("host/{name}"));
            seen += 1;
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            report.fail(&format!("host/{name}"), stdout.to_string());
            seen += 1;
        }
    }
    if !out.status.success() && report.failures.iter().all(|(n, _)| !n.starts_with("host/")) {
        report.fail("host unit tests (build)", format!("{stdout}\n{stderr}"));
    } else if seen == 0 && filter.is_none() {
        report.fail("host unit tests", "cargo test ran no tests");
    }
}

/// Boot with `mode=test` and turn the kernel's `[test]` lines into results.
fn self_tests(
    report: &mut Report,
    kernel: Kernel,
    image: &std::path::Path,
    accel: Accel,
    timeout: Duration,
    filter: Option<&str>,
    extra_cmdline: &str,
) {
    let k = kernel.name();
    let mut cmdline = match filter {
        // A filter naming a kernel ("exo/...") is matched against our full
        // names below; the kernel itself sees the part after the slash.
        Some(f) => format!("mode=test filter={}", f.split_once('/').map_or(f, |(_, t)| t)),
        None => "mode=test".to_owned(),
    };
    // The networking tests of both kernels run in this boot, over two NICs
    // on one hub (client and server).
    cmdline.push_str(" nics=2");
    if !extra_cmdline.trim().is_empty() {
        cmdline.push(' ');
        cmdline.push_str(extra_cmdline.trim());
    }
    if filter.is_some_and(|f| f.contains('/') && !f.starts_with(&format!("{k}/"))) {
        return;
    }
    let spec = RunSpec { boot: Boot::Disk(image), cmdline: &cmdline, accel, timeout, gdb: false };
    let mut running: Option<String> = None;
    let mut results = 0;
    let mut failed = 0;
    let outcome = qemu::run_captured(&spec, |line| {
        if let Some(name) = line.strip_prefix("[test] start ") {
            running = Some(name.to_owned());
        } else if let Some(name) = line.strip_prefix("[test] ok ") {
            running = None;
            results += 1;
            report.pass(&format!("{k}/{name}"));
        } else if let Some(rest) = line.strip_prefix("[test] FAIL ") {
            running = None;
            results += 1;
            failed += 1;
            let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
            report.fail(&format!("{k}/{name}"), why.to_owned());
        }
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            report.fail(&format!("{k}/boot"), format!("{e:#}"));
            return;
        }
    };
    if let Some(name) = running {
        report.fail(
            &format!("{k}/{name}"),
            format!("the kernel stopped during this test: {}\n{}", outcome.describe(), outcome.output),
        );
    } else if (!outcome.passed() && failed == 0) || (results == 0 && filter.is_none()) {
        // A failure exit the kernel did not explain with a FAIL line.
        report.fail(&format!("{k}/self-tests"), format!("{}\n{}", outcome.describe(), outcome.output));
    }
    // Attach the full serial log to failures reported by the kernel itself.
    for (name, evidence) in report.failures.iter_mut() {
        if name.starts_with(&format!("{k}/")) && !evidence.contains(&outcome.output) {
            evidence.push('\n');
            evidence.push_str(&outcome.output);
        }
    }
}

/// A boot whose expected ending the host checks.
struct Scenario {
    name: &'static str,
    cmdline: &'static str,
    check: fn(Kernel, &Outcome) -> Result<(), String>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario { name: "boot_prints_banner_and_exits", cmdline: "", check: banner },
    Scenario { name: "panic_fails_the_run", cmdline: "scenario=panic", check: panic_reported },
    Scenario { name: "two_nics_exchange_frames", cmdline: "scenario=net nics=2", check: nics_exchanged },
    Scenario {
        name: "double_fault_fails_the_run",
        cmdline: "scenario=double-fault",
        check: double_fault_reported,
    },
];

fn banner(kernel: Kernel, o: &Outcome) -> Result<(), String> {
    let want = format!("kernel-{}: ", kernel.name());
    if o.ending != Ending::Success {
        return Err("expected a clean exit".into());
    }
    if !o.output.contains(&want) {
        return Err(format!("no banner line starting with {want:?}"));
    }
    Ok(())
}

fn panic_reported(_: Kernel, o: &Outcome) -> Result<(), String> {
    if o.ending != Ending::KernelFailure {
        return Err("a panic must end the run with the failure code".into());
    }
    if !(o.output.contains("KERNEL PANIC")
        && o.output.contains("deliberate panic")
        && o.output.contains("selftest.rs"))
    {
        return Err("the panic message and location were not printed".into());
    }
    Ok(())
}

fn double_fault_reported(_: Kernel, o: &Outcome) -> Result<(), String> {
    if o.ending != Ending::KernelFailure {
        return Err("a double fault must end the run with the failure code".into());
    }
    if !o.output.contains("DOUBLE FAULT") {
        return Err("the double-fault handler did not report".into());
    }
    Ok(())
}

fn nics_exchanged(_: Kernel, o: &Outcome) -> Result<(), String> {
    if o.ending != Ending::Success || !o.output.contains("[net] two NICs exchanged") {
        return Err("the two virtio-net NICs did not exchange their frames".into());
    }
    Ok(())
}
