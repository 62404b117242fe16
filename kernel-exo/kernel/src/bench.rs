//! Benchmark glue: runs the shared suite (`benchmarks`) with this kernel's
//! mechanisms and prints the result lines xtask collects.

use benchmarks::Settings;
use benchmarks::suite::{self, Outcome};
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu};

/// Run the selected benchmarks (`quick`, `only=<table or operation>`) and exit.
pub fn run(cmdline: &Cmdline, tsc_hz: u64) -> ! {
    let settings = Settings { quick: cmdline.has("quick"), only: cmdline.get("only") };
    suite::run("exo", tsc_hz, &settings, &mut |line| println!("{line}"), |op, settings| {
        if let Some(outcome) = suite::baseline(op, settings) {
            return outcome;
        }
        Outcome::NotApplicable("not implemented yet in kernel-exo")
    });
    qemu::exit(qemu::ExitCode::Success)
}
