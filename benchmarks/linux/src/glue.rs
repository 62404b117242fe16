//! Which Linux mechanism measures which operation.

use crate::{bpf, exceptions, ipc, sys, threads, vm};
use benchmarks::suite::{self, Outcome};
use benchmarks::{Op, Settings, measure};

/// Measure `op` with Linux's ordinary interfaces, or say why Linux has no
/// equivalent.
pub fn run_op(op: &'static Op, settings: &Settings) -> Outcome {
    if let Some(outcome) = suite::baseline(op, settings) {
        return outcome;
    }
    let (iters, runs) = (settings.iterations(op), settings.runs());
    match op.name {
        "protected in-kernel call" => Outcome::NotApplicable(
            "Linux has no protected in-kernel extension domains; loadable modules are trusted kernel code with no call boundary to measure",
        ),
        "system call" => Outcome::Measured(measure(iters, runs, || {
            core::hint::black_box(sys::raw_getpid());
        })),
        "cross-address-space call" => ipc::cross_address_space_call(op, iters, runs),
        "fork-join kernel" => threads::fork_join(op, iters, runs),
        "ping-pong kernel" => threads::ping_pong(iters, runs),
        "fork-join user layered" | "ping-pong user layered" => Outcome::NotApplicable(
            "Linux's standard thread library (NPTL) maps each thread to a kernel thread; there is no user-level package layered on them (see the kernel rows)",
        ),
        "fork-join user integrated" | "ping-pong user integrated" => Outcome::NotApplicable(
            "Linux offers no upcall or extension interface through which a user-level thread scheduler could integrate with the kernel's",
        ),
        "dirty" => vm::dirty(op, iters, runs),
        "fault" | "trap" | "prot1" | "prot100" | "unprot100" | "appel1" | "appel2" => {
            vm::run(op, iters, runs)
        }
        "exception #ud" | "exception #bp" | "exception #de" | "exception #pf" => {
            Outcome::Measured(exceptions::round_trip(op.name, iters, runs))
        }
        name if name.starts_with("raise ") || name == "50 guards false" => Outcome::NotApplicable(
            "Linux has no event dispatcher for extensions; kernel notifier chains are not reachable from user code",
        ),
        "handler download, 10 instructions" => bpf::download(10, iters, runs),
        "handler download, 100 instructions" => bpf::download(100, iters, runs),
        "predicate wakeup" => threads::ping_pong(iters, runs),
        "udp round trip"
        | "udp round trip, kernel echo"
        | "packet demux, 1 endpoint"
        | "packet demux, 10 endpoints"
        | "packet demux, 100 endpoints" => {
            Outcome::NotApplicable("not built yet: the Linux guest has no NIC configured (networking issue)")
        }
        "load extension" | "unload extension" => Outcome::NotApplicable(
            "not built yet: no kernel module or eBPF program in the initramfs (dynamic-extensions issue)",
        ),
        "raise 1 handler, loaded" | "protected in-kernel call, loaded" => {
            Outcome::NotApplicable("Linux has no event dispatcher or protection domains inside the kernel")
        }
        _ => Outcome::NotApplicable("no Linux glue for this operation"),
    }
}
