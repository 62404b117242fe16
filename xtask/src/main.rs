//! `cargo xtask`: the one entry point for building, running, testing and
//! benchmarking the two kernels (runs on the host).

mod bench;
mod build;
mod checks;
mod cpio;
mod env;
mod extobj;
mod linux;
mod paper;
mod profile;
mod qemu;
mod readme;
mod report;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, run, test and benchmark the exokernel and the SPIN-style kernel",
    long_about = "Build, run, test and benchmark the exokernel (kernel-exo) and the SPIN-style \
                  kernel (kernel-spin) on the same QEMU machine. Every command installs what it \
                  needs first (Rust targets, the bootloader's nightly, qemu-system-x86_64)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build kernels and their BIOS disk images (target/img/<kernel>.img).
    Build {
        /// Which kernel(s) to build.
        #[arg(value_enum, default_value_t = Which::All)]
        which: Which,
    },
    /// Boot one kernel in QEMU with its serial console on this terminal.
    Run {
        /// The kernel to boot.
        #[arg(value_enum)]
        kernel: Kernel,
        /// Kernel command line (e.g. "mode=test" runs the self-tests).
        #[arg(long, default_value = "")]
        cmdline: String,
        /// Stop at the first instruction and wait for gdb on localhost:1234.
        #[arg(long)]
        gdb: bool,
        #[command(flatten)]
        machine: MachineArgs,
    },
    /// Run every test: host unit tests, build checks, and in-QEMU tests of both kernels.
    Test {
        /// Only run tests whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Extra words for the self-test boots' kernel command line, e.g.
        /// "seed=42" to rerun the fuzzers with the seed a failure printed.
        #[arg(long, default_value = "")]
        cmdline: String,
        #[command(flatten)]
        machine: MachineArgs,
    },
    /// Regenerate the reproduction report in paper/ from target/bench/latest.json
    /// (running the benchmarks first if there are no results yet).
    Paper {
        /// Run the benchmarks again even if results exist.
        #[arg(long)]
        rerun: bool,
    },
    /// Run the SPIN and Exokernel papers' microbenchmarks on both kernels and
    /// print the tables (also written to target/bench/latest.md and latest.json).
    Bench {
        /// Few iterations: a quick check that every benchmark runs.
        #[arg(long)]
        quick: bool,
        /// Only this table (e.g. virtual-memory) or operation (e.g. "system call").
        #[arg(long)]
        only: Option<String>,
        /// Only this system (default: exo, spin and the Linux baseline).
        #[arg(long, value_enum)]
        kernel: Option<bench::System>,
        /// Leave out the Linux baseline column.
        #[arg(long)]
        no_linux: bool,
        /// Boot this Linux kernel image (bzImage) for the baseline instead of
        /// downloading Debian's linux-image-amd64.
        #[arg(long)]
        linux_kernel: Option<std::path::PathBuf>,
        /// Also load the cost-profile TCG plugin (xtask/profile-plugin): events,
        /// simulated cache misses and estimated cycles per row (TCG only).
        #[arg(long)]
        profile: bool,
        #[command(flatten)]
        machine: MachineArgs,
    },
}

/// Options that choose how QEMU runs.
#[derive(clap::Args, Clone, Copy)]
struct MachineArgs {
    /// Accelerator: kvm (hardware virtualization, cycles), tcg, or icount
    /// (TCG with -icount shift=0: the TSC counts guest instructions).
    /// Default: kvm where the CPU has vmx/svm and /dev/kvm opens, else tcg
    /// (icount for bench).
    #[arg(long, value_enum)]
    accel: Option<qemu::Accel>,
    /// Seconds before a QEMU run is killed and counted as failed. A full
    /// Linux benchmark boot under the cost-profile plugin takes several
    /// minutes (the plugin instruments every translated block, and eBPF's
    /// JIT makes new code on every load), hence the margin.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Which {
    Exo,
    Spin,
    All,
}

/// One of the two kernels.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Kernel {
    Exo,
    Spin,
}

impl Kernel {
    pub const ALL: [Kernel; 2] = [Kernel::Exo, Kernel::Spin];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Exo => "exo",
            Kernel::Spin => "spin",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Build { which } => {
            env::ensure_build_prerequisites()?;
            let kernels: &[Kernel] = match which {
                Which::Exo => &[Kernel::Exo],
                Which::Spin => &[Kernel::Spin],
                Which::All => &Kernel::ALL,
            };
            for &k in kernels {
                let img = build::image(k)?;
                println!("built {}", img.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { kernel, cmdline, gdb, machine } => {
            env::ensure_build_prerequisites()?;
            let qemu_version = env::ensure_qemu()?;
            let img = build::image(kernel)?;
            let accel = machine.accel.unwrap_or_else(qemu::Accel::detect);
            eprintln!("booting kernel-{} ({qemu_version}, accel {})", kernel.name(), accel.name());
            if gdb {
                eprintln!(
                    "waiting for gdb: gdb {} -ex 'target remote localhost:1234'",
                    build::kernel_elf(kernel).display()
                );
            }
            let spec = qemu::RunSpec {
                boot: qemu::Boot::Disk(&img),
                cmdline: &cmdline,
                accel,
                timeout: std::time::Duration::from_secs(if gdb { 24 * 3600 } else { machine.timeout }),
                gdb,
            };
            let outcome = qemu::run_interactive(&spec)?;
            eprintln!("{}", outcome.describe());
            Ok(if outcome.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Test { filter, cmdline, machine } => test::run(filter.as_deref(), &cmdline, machine),
        Command::Paper { rerun } => {
            paper::run(rerun)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { quick, only, kernel, no_linux, linux_kernel, profile, machine } => {
            let opts = bench::BenchOptions { quick, only };
            if profile {
                profile::enable()?;
            }
            let timeout = std::time::Duration::from_secs(machine.timeout);
            let systems: Vec<bench::System> = match kernel {
                Some(k) => vec![k],
                None if no_linux => vec![bench::System::Exo, bench::System::Spin],
                None => vec![bench::System::Exo, bench::System::Spin, bench::System::Linux],
            };
            bench::run(machine.accel, timeout, &systems, &opts, linux_kernel)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
