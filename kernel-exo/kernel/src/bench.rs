//! Benchmark glue: on an exokernel the operations start in ring 3, so the
//! kernel only starts the benchmark environment (`exo-bench`, which
//! measures every operation with the shared suite and prints the result
//! lines itself), passes it the settings, lets it run, and exits QEMU when
//! it is done.
//!
//! The timer stays off while it runs: the benchmark environment needs no
//! preemption, and without timer interrupts every run under TCG
//! `-icount shift=0` executes exactly the same instructions.

use crate::env::{self, Ending, Life};
use crate::{kernel, loader, monitor};
use alloc::string::String;
use exo_abi::EnvStatus;
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu};

/// Time slices and page quota of the benchmark environment (it needs
/// about 1,100 pages for the virtual-memory rows).
const SLICES: u64 = 8;
const QUOTA: u64 = 4096;

/// Run the selected benchmarks (`quick`, `only=<table or operation>`) and exit.
pub fn run(cmdline: &Cmdline) -> ! {
    let mut args = String::new();
    if cmdline.has("quick") {
        args.push_str("quick ");
    }
    if let Some(only) = cmdline.get("only") {
        args.push_str("only=");
        args.push_str(only);
    }
    let id = match kernel::with(|k| loader::spawn(k, "exo-bench", &args, SLICES, QUOTA)) {
        Ok(id) => id,
        Err(e) => {
            println!("kernel-exo: cannot start the benchmark environment: {e:?}");
            qemu::exit(qemu::ExitCode::Failure)
        }
    };
    monitor::run(false);
    let life = kernel::with(|k| {
        let i = k.env_index(id).expect("kept until reaped");
        let life = k.env(i).life;
        env::destroy(k, i, Ending { status: EnvStatus::Killed, detail: 0 });
        env::reap(k, i);
        life
    });
    if life == Life::Ended(EnvStatus::Exited, 0) {
        qemu::exit(qemu::ExitCode::Success)
    }
    println!("kernel-exo: the benchmark environment ended with {life:?}");
    qemu::exit(qemu::ExitCode::Failure)
}
