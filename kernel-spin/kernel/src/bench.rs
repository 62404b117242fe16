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
use crate::{dynload, process};
use benchmarks::line::ExtraLine;
use benchmarks::measure::{Sample, measure_runs};
use benchmarks::suite::{self, Outcome};
use benchmarks::{Op, Settings, measure};
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu, tsc};
use spin_interface::phys;
use spin_interface::translation::{Context, Prot};
use spin_interface::{Domain, Event, Identity, Import, LinkError};

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
        "handler download, 10 instructions" | "handler download, 100 instructions" | "predicate wakeup" => {
            Outcome::NotApplicable(
                "downloaded code is the exokernel's third protection model: SPIN extends the kernel with compiled safe code instead (the dynamic-extensions table)",
            )
        }
        "load extension" => load_extension(op, iters, runs),
        "unload extension" => unload_extension(iters, runs),
        "raise 1 handler, loaded" | "protected in-kernel call, loaded" => {
            loaded_at_run_time(op.name, iters, runs)
        }
        "udp round trip" => udp_round_trip(iters, runs, true),
        "udp round trip, kernel echo" => udp_round_trip(iters, runs, false),
        "packet demux, 1 endpoint" => demux(&["demux-1"], 1, iters, runs),
        "packet demux, 10 endpoints" => demux(&["demux-10"], 10, iters, runs),
        "packet demux, 100 endpoints" => demux(&["demux-50", "demux-50-hi"], 100, iters, runs),
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

/// hello's procedure, bound after each load (the check that a load worked).
static GREET: Import<u64, u64> = Import::new("Hello", "greet");
/// dynbench's null procedure.
static DYN_NULL: Import<(), ()> = Import::new("DynBench", "null");

/// Whether `GREET` answers (bound to a freshly loaded hello).
fn hello_answers() -> bool {
    let me = Identity::kernel(crate::key());
    Domain::named("hello").and_then(|d| d.resolve(me, &[&GREET])) == Ok(1) && GREET.call(1).is_ok()
}

/// "load extension": verify, link and init hello's certified object
/// (each load checked by calling it, then unloaded, untimed). Extra lines:
/// the certificate check alone, and verify + link without init.
fn load_extension(op: &Op, iters: u32, runs: u32) -> Outcome {
    let Some((obj, cert)) = dynload::from_archive("hello") else {
        return Outcome::NotApplicable("no hello object in the boot archive");
    };
    let key = crate::key();
    // The boot's copy goes first: the row loads the object afresh.
    let _ = dynload::unload(key, "hello");
    let mut bad = None;
    let sample = measure_runs(iters, runs, || {
        let mut ticks = 0;
        for _ in 0..iters {
            let start = tsc::read();
            let loaded = dynload::load(key, "hello", obj, cert);
            ticks += tsc::read() - start;
            if let Err(e) = loaded {
                bad = Some(alloc::format!("{e:?}"));
            } else if !hello_answers() {
                bad = Some("loaded, but its procedure does not answer".into());
            }
            let _ = dynload::unload(key, "hello");
        }
        ticks
    });
    if let Some(why) = bad {
        panic!("load extension: {why}");
    }
    let verify = measure(iters, runs, || {
        let _ = dynload::verify(obj, cert);
    });
    let label = alloc::format!("certificate check alone (HMAC-SHA256 over the {}-byte object)", obj.len());
    println!("{}", ExtraLine { kernel: "spin", op, label: &label, sample: verify });
    match dynload::link_only(obj, cert) {
        Ok(stats) => {
            let link = measure(iters, runs, || {
                let _ = dynload::link_only(obj, cert);
            });
            let label = alloc::format!(
                "verify + relocate and resolve, no init ({} pages, {} relocations, {} imports)",
                stats.pages,
                stats.relocations,
                stats.imports
            );
            println!("{}", ExtraLine { kernel: "spin", op, label: &label, sample: link });
        }
        Err(e) => panic!("load extension: linking alone failed: {e:?}"),
    }
    let _ = dynload::load(key, "hello", obj, cert);
    Outcome::Measured(sample)
}

/// "unload extension": unload hello (checked: its import answers
/// unbound), loaded again untimed before each iteration.
fn unload_extension(iters: u32, runs: u32) -> Outcome {
    let Some((obj, cert)) = dynload::from_archive("hello") else {
        return Outcome::NotApplicable("no hello object in the boot archive");
    };
    let key = crate::key();
    let mut bad = None;
    let sample = measure_runs(iters, runs, || {
        let mut ticks = 0;
        for _ in 0..iters {
            if !dynload::loaded().contains(&"hello") && dynload::load(key, "hello", obj, cert).is_err() {
                bad = Some("could not load hello");
            }
            if !hello_answers() {
                bad = Some("hello does not answer before its unload");
            }
            let start = tsc::read();
            let unloaded = dynload::unload(key, "hello");
            ticks += tsc::read() - start;
            if unloaded.is_err() || GREET.call(1) != Err(LinkError::Unbound) {
                bad = Some("unloaded, but its import still answers");
            }
        }
        ticks
    });
    if let Some(why) = bad {
        panic!("unload extension: {why}");
    }
    let _ = dynload::load(key, "hello", obj, cert);
    Outcome::Measured(sample)
}

/// The two static rows again, the far side in `dynbench`, loaded now from
/// its certified object (and unloaded after, checked unbound).
fn loaded_at_run_time(name: &str, iters: u32, runs: u32) -> Outcome {
    let Some((obj, cert)) = dynload::from_archive("dynbench") else {
        return Outcome::NotApplicable("no dynbench object in the boot archive");
    };
    let key = crate::key();
    let me = Identity::kernel(key);
    if let Err(e) = dynload::load(key, "dynbench", obj, cert) {
        panic!("{name}: loading dynbench failed: {e:?}");
    }
    let domain = match Domain::named("dynbench") {
        Ok(d) => d,
        Err(e) => panic!("{name}: dynbench has no domain: {e:?}"),
    };
    let sample = if name.starts_with("raise") {
        let event: &'static Event<(), ()> = match domain.lookup(me, "DynBench", "raise1") {
            Ok(e) => e,
            Err(e) => panic!("{name}: {e:?}"),
        };
        assert!(event.is_direct(), "{name}: one unguarded handler is the entry itself");
        measure(iters, runs, || event.raise(()))
    } else {
        assert_eq!(domain.resolve(me, &[&DYN_NULL]), Ok(1), "{name}: resolving DynBench.null");
        assert_eq!(DYN_NULL.call(()), Ok(()), "{name}: the loaded procedure answers");
        measure(iters, runs, || {
            let _ = DYN_NULL.call(());
        })
    };
    let _ = dynload::unload(key, "dynbench");
    if !name.starts_with("raise") {
        assert_eq!(DYN_NULL.call(()), Err(LinkError::Unbound), "{name}: unloaded, the import is unbound");
    }
    Outcome::Measured(sample)
}

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
                let _ = net::ETHER_PACKET_ARRIVED.event(key).raise_contained(packet);
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
