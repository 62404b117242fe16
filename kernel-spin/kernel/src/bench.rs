//! Benchmark glue: runs the shared suite (`benchmarks`) with this kernel's
//! mechanisms and prints the result lines xtask collects.
//!
//! In-kernel rows are measured here on the boot strand: the protected
//! in-kernel call (a call through an import resolved against the bench
//! extension's domain), event raises with 1–50 handlers installed by that
//! extension, and kernel-thread fork-join and ping-pong through the thread
//! package's exported interface; and *dirty* as SPIN measured it, from an
//! extension (its user-level variant, one system call more, is printed as
//! an extra line).

use crate::imports::{self, BENCH_DIRTY, BENCH_NULL};
use crate::kdomain::BENCH_EVENTS;
use crate::process;
use benchmarks::line::ExtraLine;
use benchmarks::measure::Sample;
use benchmarks::suite::{self, Outcome};
use benchmarks::{Op, Settings, measure};
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu};
use spin_interface::phys;
use spin_interface::translation::{Context, Prot};

/// Run the selected benchmarks (`quick`, `only=<table or operation>`) and exit.
pub fn run(cmdline: &Cmdline, tsc_hz: u64) -> ! {
    // No timer interrupts inside the timed loops.
    shared_hal::apic::stop_timer();
    crate::net::NEVER_HALT.store(true, core::sync::atomic::Ordering::Relaxed);
    let settings = Settings { quick: cmdline.has("quick"), only: cmdline.get("only") };
    suite::run("spin", tsc_hz, &settings, &mut |line| println!("{line}"), |op, settings| {
        if let Some(outcome) = suite::baseline(op, settings) {
            return outcome;
        }
        in_kernel(op, settings)
    });
    qemu::exit(qemu::ExitCode::Success)
}

fn in_kernel(op: &Op, settings: &Settings) -> Outcome {
    let (iters, runs) = (settings.iterations(op), settings.runs());
    let raise = |i: usize| {
        let event = &BENCH_EVENTS[i];
        Outcome::Measured(measure(iters, runs, || event.raise(())))
    };
    match op.name {
        // A call into another domain through its resolved import.
        "protected in-kernel call" => Outcome::Measured(measure(iters, runs, || {
            let _ = BENCH_NULL.call(());
        })),
        "raise 1 handler" => raise(0),
        "raise 5 handlers" => raise(1),
        "raise 10 handlers" => raise(2),
        "raise 50 handlers" => raise(3),
        "50 guards false" => raise(4),
        "fork-join kernel" => Outcome::Measured(measure(iters, runs, || {
            if let Ok(t) = imports::fork(null_thread, 0) {
                let _ = imports::join(t);
            }
        })),
        "ping-pong kernel" => match crate::pingpong::start() {
            Ok(t) => {
                let sample = measure(iters, runs, crate::pingpong::round);
                let _ = crate::pingpong::stop(t);
                Outcome::Measured(sample)
            }
            Err(_) => Outcome::NotApplicable("could not fork the pong thread"),
        },
        "dirty" => dirty(op, iters, runs),
        "udp round trip" => udp_round_trip(iters, runs, true),
        "udp round trip, kernel echo" => udp_round_trip(iters, runs, false),
        "packet demux, 1 endpoint" => demux(&["demux-1"], 1, iters, runs),
        "packet demux, 10 endpoints" => demux(&["demux-10"], 10, iters, runs),
        "packet demux, 100 endpoints" => demux(&["demux-50", "demux-50-hi"], 100, iters, runs),
        "load extension"
        | "unload extension"
        | "raise 1 handler, loaded at run time"
        | "protected in-kernel call, loaded at run time" => Outcome::NotApplicable(
            "not built yet: every extension is linked into the kernel image (dynamic-extensions issue)",
        ),
        _ => in_user(op, iters, runs),
    }
}

/// "dirty" as SPIN measured it (BENCHMARKS.md: "from an extension; +1
/// system call from user level"): the bench extension asks Translation
/// whether a page of an address space is dirty, called through a resolved
/// import (so the row includes a protected in-kernel call). The
/// user-level variant (`vm_dirty` from ring 3) follows as an extra line.
fn dirty(op: &Op, iters: u32, runs: u32) -> Outcome {
    const VA: u64 = 0x1000_0000;
    let Ok(ctx) = Context::create() else {
        return Outcome::NotApplicable("could not create an address space");
    };
    let mapped = phys::allocate().and_then(|page| ctx.map(VA, page, Prot::ReadWrite).map_err(|(e, _)| e));
    let outcome = match mapped {
        Ok(()) => Outcome::Measured(measure(iters, runs, || {
            let _ = BENCH_DIRTY.call((ctx, VA));
        })),
        Err(_) => Outcome::NotApplicable("could not map the page to query"),
    };
    let _ = ctx.destroy();
    if let Outcome::Measured(sample) = in_user(op, iters, runs) {
        let label = "from user level (the vm_dirty system call)";
        println!("{}", ExtraLine { kernel: "spin", op, label, sample });
    }
    outcome
}

/// A row that starts in ring 3: run `spin-ubench` for it (with a
/// cross-address-space server when needed) and take its report.
fn in_user(op: &Op, iters: u32, runs: u32) -> Outcome {
    let Some(index) = benchmarks::OPS.iter().position(|o| o.name == op.name) else {
        return Outcome::NotApplicable("unknown operation");
    };
    let server = if op.name == "cross-address-space call" {
        match process::spawn("spin-server", [0, 0]).ok().and_then(|p| Some((p, process::wait(p)?))) {
            Some((pid, handle)) if handle > 0 => Some((pid, handle as u64)),
            _ => return Outcome::NotApplicable("the cross-address-space server did not start"),
        }
    } else {
        None
    };
    let spec = index as u64 | (iters as u64) << 8 | (runs as u64) << 40;
    let code = process::run("spin-ubench", [spec, server.map_or(0, |s| s.1)]);
    if let Some((pid, _)) = server {
        process::reap(pid);
    }
    match (code, imports::BENCH_TAKE.call(())) {
        (Ok(0), Ok(Some([runs, iterations, min, median, max]))) => {
            Outcome::Measured(Sample { runs: runs as u32, iterations: iterations as u32, min, median, max })
        }
        (Ok(1), _) => Outcome::NotApplicable("not measured by the user benchmark program"),
        // Loudly: a row whose glue found the operation did not do its work
        // (e.g. a protection change that changed nothing) must not print
        // a number, nor hide behind an n/a.
        (code, _) => panic!("spin-ubench failed on {:?} (exit {code:?}); its console line says why", op.name),
    }
}

fn null_thread(_: usize) {}

/// A 64-byte UDP round trip between two user processes across the hub
/// (`spin-udp`: the client on NIC 0 measures send_to + recv_from, each
/// reply checked), against the user-level server (`user_server`) or the
/// in-kernel echo extension.
fn udp_round_trip(iters: u32, runs: u32, user_server: bool) -> Outcome {
    if crate::ktests_net::net_services().nics() < 2 {
        return Outcome::NotApplicable("needs two NICs (nics=2)");
    }
    let server = if user_server {
        match process::spawn("spin-udp", [1, 0]) {
            Ok(p) => Some(p),
            Err(_) => return Outcome::NotApplicable("the UDP server did not start"),
        }
    } else {
        None
    };
    let port = if user_server { 5000 } else { spin_ext_udp_echo::PORT as u64 };
    let spec = 3 | (iters as u64) << 8 | (runs as u64) << 40;
    let code = process::run("spin-udp", [spec, port]);
    if let Some(p) = server {
        let _ = process::wait(p);
        process::reap(p);
    }
    match (code, imports::BENCH_TAKE.call(())) {
        (Ok(0), Ok(Some([runs, iterations, min, median, max]))) => {
            Outcome::Measured(Sample { runs: runs as u32, iterations: iterations as u32, min, median, max })
        }
        (code, _) => panic!("spin-udp failed its round trips (exit {code:?}); its console line says why"),
    }
}

/// "packet demux, N endpoints": from the raise of `Ether.PacketArrived`
/// for one UDP frame (as the receive path raises it, contained) through
/// the ip and udp layers to the choice of the endpoint handler, with `n`
/// guarded endpoints installed (by the `demux` extension, loaded as the
/// domains `loads`) and the last one installed the one matching (every
/// guard before it is tried). The glue checks that every raise reached it.
fn demux(loads: &[&'static str], n: u16, iters: u32, runs: u32) -> Outcome {
    use spin_interface::net;
    static HITS: spin_interface::Import<(), u64> = spin_interface::Import::new("Demux", "hits");
    let key = crate::key();
    let mut ids = alloc::vec::Vec::new();
    for name in loads {
        match crate::loader::load(key, name, &spin_ext_demux::EXTENSION) {
            Ok(id) => ids.push((*name, id)),
            Err(_) => return Outcome::NotApplicable("the demux endpoints did not load"),
        }
    }
    let me = spin_interface::Identity::kernel(key);
    let _ = spin_interface::Domain::named(loads[0]).and_then(|d| d.resolve(me, &[&HITS]));
    let port = spin_ext_demux::BASE_PORT + if n == 100 { 99 } else { n - 1 };
    let (frame, len) = crate::ktests_net::udp_frame(port, &[0x5a; 64]);
    let outcome = match net::deliver(key, 1, &frame[..len]) {
        Ok(packet) => {
            let before = HITS.call(()).unwrap_or(0);
            let mut calls = 0u64;
            let sample = measure(iters, runs, || {
                calls += 1;
                let _ = net::ETHER_PACKET_ARRIVED.raise_contained(packet);
            });
            let hits = HITS.call(()).unwrap_or(0) - before;
            assert!(hits == calls, "packet demux: {calls} raises reached the matching endpoint {hits} times");
            Outcome::Measured(sample)
        }
        Err(_) => Outcome::NotApplicable("could not deliver the frame"),
    };
    for (name, id) in ids {
        spin_interface::domain::unload(key, id.id());
        spin_interface::Domain::release(key, name);
    }
    outcome
}
