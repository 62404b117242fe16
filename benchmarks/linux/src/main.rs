//! bench-linux: runs the benchmark suite on Linux with Linux's ordinary
//! monolithic interfaces, as the papers measured DEC OSF/1 and Ultrix.
//!
//! Booted as `/init` of a tiny initramfs (by `cargo xtask bench`), it mounts
//! /proc, runs the suite in a child process (PID 1 has special signal
//! semantics), prints the result lines on the console and ends the virtual
//! machine through QEMU's isa-debug-exit device, like our kernels do. Run on
//! a Linux host as an ordinary program (`bench-linux [--quick] [--only X]`)
//! it just prints the lines, which is how `cargo xtask test` checks the glue.

mod bpf;
mod exceptions;
mod glue;
mod ipc;
mod sys;
mod threads;
mod vm;

use benchmarks::Settings;
use std::io::Write;

fn main() {
    let pid1 = std::process::id() == 1;
    if pid1 {
        sys::mount_proc(); // /proc/cmdline carries our settings
    }
    let args: Vec<String> = if pid1 { kernel_cmdline_args() } else { std::env::args().skip(1).collect() };
    let mut quick = false;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => only = it.next().cloned(),
            other => {
                eprintln!(
                    "bench-linux: unknown argument {other:?} (expected --quick, --only <table|operation>)"
                );
                std::process::exit(2);
            }
        }
    }
    if pid1 {
        run_as_init(quick, only.as_deref());
    } else {
        run_suite(quick, only.as_deref());
    }
}

/// `testbed.quick` and `testbed.only=<sel>` on the kernel command line,
/// turned into our own arguments (`_` stands for a space in the selector).
fn kernel_cmdline_args() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut args = Vec::new();
    for word in text.split_whitespace() {
        if word == "testbed.quick" {
            args.push("--quick".into());
        } else if let Some(sel) = word.strip_prefix("testbed.only=") {
            args.push("--only".into());
            args.push(sel.replace('_', " "));
        }
    }
    args
}

fn run_suite(quick: bool, only: Option<&str>) {
    let settings = Settings { quick, only };
    let stdout = std::io::stdout();
    let mut print = |args: std::fmt::Arguments| {
        let mut out = stdout.lock();
        let _ = writeln!(out, "{args}");
        let _ = out.flush();
    };
    benchmarks::suite::run("linux", sys::tsc_hz(), &settings, &mut print, glue::run_op);
}

/// PID 1: run the suite in a child, report through isa-debug-exit.
fn run_as_init(quick: bool, only: Option<&str>) -> ! {
    let ok = match sys::fork() {
        0 => {
            run_suite(quick, only);
            sys::exit_now(0)
        }
        child => sys::wait_ok(child),
    };
    sys::end_machine(ok)
}
