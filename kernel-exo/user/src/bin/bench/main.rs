//! exo-bench: the benchmark environment of kernel-exo. On an exokernel the
//! measured operations start in ring 3, so they are measured here, with
//! the shared suite (`benchmarks`) and this environment's own mechanisms:
//! the null system call, PCT through exos, exceptions delivered to its
//! own handler, and virtual memory built from raw secure-binding calls,
//! the read-only self-map and the user-level exception path — exactly
//! what a library OS does; and the network through ExOS's UDP and the
//! kernel's packet filters. The kernel passes the settings in the argument
//! string (`quick`, `only=...`); results go to the console.
#![no_std]
#![no_main]

extern crate alloc;

mod exceptions;
mod net;
mod pct;
mod threads;
mod vm;
mod wakeup;

use benchmarks::Settings;
use benchmarks::suite::{self, Outcome};
use hal_logic::cmdline::Cmdline;

fn main(args: &str) -> u64 {
    let cmd = Cmdline::new(args);
    if cmd.get("role") == Some("pct-echo") {
        return pct::echo_server();
    }
    if cmd.get("role") == Some("pred-sleeper") {
        return wakeup::sleeper(&cmd);
    }
    if cmd.get("role") == Some("udp-echo") {
        return net::echo_server();
    }
    let settings = Settings { quick: cmd.has("quick"), only: cmd.get("only") };
    let tsc_hz = exos::info::get().tsc_hz;
    suite::run("exo", tsc_hz, &settings, &mut |line| exos::println!("{line}"), glue);
    0
}

exos::entry!(main);

fn glue(op: &'static benchmarks::Op, settings: &Settings) -> Outcome {
    if let Some(outcome) = suite::baseline(op, settings) {
        return outcome;
    }
    let (iters, runs) = (settings.iterations(op), settings.runs());
    match op.name {
        "protected in-kernel call" => Outcome::NotApplicable(
            "an exokernel links nothing into the kernel: there are no in-kernel protection domains to call between",
        ),
        "system call" => Outcome::Measured(benchmarks::measure(iters, runs, exos::sys::null)),
        "cross-address-space call" => pct::null_call(iters, runs),
        "fork-join kernel" | "ping-pong kernel" => Outcome::NotApplicable(
            "an exokernel has no kernel threads: the kernel schedules environments (time slices, PCT), and every thread belongs to the library OS",
        ),
        "fork-join user layered" | "ping-pong user layered" => Outcome::NotApplicable(
            "no kernel threads to layer a user-level package on: ExOS's threads are integrated with the kernel through its end-of-slice upcall (the integrated rows)",
        ),
        "fork-join user integrated" => threads::fork_join(iters, runs),
        "ping-pong user integrated" => threads::ping_pong(iters, runs),
        "exception #ud" | "exception #bp" | "exception #de" | "exception #pf" => {
            exceptions::run(op.name, iters, runs)
        }
        "dirty" | "fault" | "trap" | "prot1" | "prot100" | "unprot100" | "appel1" | "appel2" => {
            vm::run(op.name, iters, runs)
        }
        "handler download, 10 instructions" => wakeup::download(10, iters, runs),
        "handler download, 100 instructions" => wakeup::download(100, iters, runs),
        "predicate wakeup" => wakeup::round(iters, runs),
        "udp round trip" => net::udp_round_trip(iters, runs),
        "udp round trip, kernel echo" => {
            Outcome::NotApplicable("kernel echo needs ASH, the downloaded message handlers of the next issue")
        }
        "packet demux, 1 endpoint" => net::demux(1, iters, runs),
        "packet demux, 10 endpoints" => net::demux(10, iters, runs),
        "packet demux, 100 endpoints" => net::demux(100, iters, runs),
        "load extension"
        | "unload extension"
        | "raise 1 handler, loaded"
        | "protected in-kernel call, loaded" => Outcome::NotApplicable(
            "an exokernel links nothing into the kernel: application code runs in its own environment, loaded by its library OS",
        ),
        _ => Outcome::NotApplicable(
            "an exokernel has no in-kernel event dispatcher: events reach the library OS as exceptions, upcalls and PCTs",
        ),
    }
}
