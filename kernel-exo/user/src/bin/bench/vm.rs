//! The virtual-memory rows (SPIN Table 4), measured through ExOS's
//! virtual memory — what an application on the exokernel uses, as the
//! Exokernel paper's ExOS rows were: the pages are a region of ExOS's
//! view; protection changes are `vm::protect` (a range in one system
//! call); the dirty query reads the kernel's read-only self-map; faults
//! come through the kernel's exception path to ExOS's entry, which hands
//! them to the region's handler (an ordinary Rust function), which
//! resolves them with `vm::protect` and asks ExOS to retry.

use benchmarks::defs::check_changed;
use benchmarks::measure::{measure_runs, rdtsc};
use benchmarks::suite::Outcome;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::Prot;
use exos::vm::{self, Action, Fault, FaultHandler, Mapping};

/// The pages the rows work on.
const BASE: u64 = 0x1000_0000;
/// Enough for the largest "fault" run (1000 iterations, one page each).
const PAGES: u64 = 1024;

static READY: AtomicU64 = AtomicU64::new(0);

fn protect(first: u64, pages: u64, prot: Prot) {
    vm::protect(BASE + first * 4096, pages, prot).expect("protect");
}

/// `protect`, returning how many pages the kernel says it changed.
#[inline(always)]
fn protect_counted(first: u64, pages: u64, prot: Prot) -> u64 {
    vm::protect_counted(BASE + first * 4096, pages, prot).expect("protect")
}

/// Map the region (read-write) once.
fn setup() {
    if READY.load(Relaxed) != 0 {
        return;
    }
    Mapping::anon(PAGES).at(BASE).map().expect("map the benchmark region");
    READY.store(1, Relaxed);
}

/// "fault", "appel2": make the faulting page writable; retry the store.
fn unprotect(f: &Fault) -> Action {
    match f.protect(Prot::RW) {
        Ok(()) => Action::Retry,
        Err(_) => Action::Unhandled,
    }
}

/// "appel1": make the faulting page (BASE or BASE + 4096) writable and
/// protect the other one.
fn swap_protection(f: &Fault) -> Action {
    let other = (f.addr() & !0xfff) ^ 0x1000;
    match (f.protect(Prot::RW), vm::protect(other, 1, Prot::READ)) {
        (Ok(()), Ok(())) => Action::Retry,
        _ => Action::Unhandled,
    }
}

static T0: AtomicU64 = AtomicU64::new(0);
static SUM: AtomicU64 = AtomicU64::new(0);

/// "trap": stop the clock first thing, then let the store through.
fn stop_clock(f: &Fault) -> Action {
    let t = rdtsc();
    SUM.store(SUM.load(Relaxed) + t - T0.load(Relaxed), Relaxed);
    unprotect(f)
}

fn handle_with(handler: FaultHandler) {
    vm::set_fault_handler(BASE, Some(handler)).expect("set the region's handler");
}

/// A store to page `i`; a fault is resolved by the region's handler and
/// the store retried. The handler may clobber every caller-saved register
/// (it is ordinary code called from the exception entry, which restores
/// them; declared anyway so the loop keeps nothing live in them).
#[inline(always)]
fn store(i: u64) {
    // SAFETY: the benchmark region holds no Rust data.
    unsafe { asm!("mov qword ptr [rcx], rax", in("rcx") BASE + i * 4096, in("rax") i, options(nostack)) };
}

pub fn run(name: &str, iters: u32, runs: u32) -> Outcome {
    setup();
    let op = benchmarks::defs::op_named(name).expect("a benchmark operation");
    let n = iters as u64;
    let sample = match name {
        "dirty" => {
            store(0);
            assert!(vm::is_dirty(BASE) == Ok(true), "dirty: the written page must read as dirty");
            benchmarks::measure(iters, runs, || {
                core::hint::black_box(vm::is_dirty(BASE).expect("dirty"));
            })
        }
        "prot1" => {
            // Iteration i raises page i (read-write until then) to
            // read-only; the run's pages are made read-write again after
            // the clock stops.
            let mut changed = 0;
            let s = measure_runs(iters, runs, || {
                let mut c = 0; // a local, so the loop keeps it in a register
                let t0 = rdtsc();
                for i in 0..n {
                    c += protect_counted(i, 1, Prot::READ);
                }
                let t = rdtsc() - t0;
                changed += c;
                protect(0, n, Prot::RW);
                t
            });
            check_changed(op, n * (s.runs as u64 + 1), changed);
            s
        }
        "prot100" | "unprot100" => {
            // One call each way per iteration, only one of them timed.
            let (timed, undo) =
                if name == "prot100" { (Prot::READ, Prot::RW) } else { (Prot::RW, Prot::READ) };
            protect(0, 100, undo);
            let mut changed = 0;
            let s = measure_runs(iters, runs, || {
                let mut total = 0;
                for _ in 0..n {
                    let t0 = rdtsc();
                    let c = protect_counted(0, 100, timed);
                    total += rdtsc() - t0;
                    changed += c;
                    protect(0, 100, undo);
                }
                total
            });
            check_changed(op, n * (s.runs as u64 + 1), changed);
            s
        }
        "trap" => {
            handle_with(stop_clock);
            measure_runs(iters, runs, || {
                SUM.store(0, Relaxed);
                for _ in 0..iters {
                    protect(0, 1, Prot::READ); // untimed: the clock runs from T0 to the handler
                    T0.store(rdtsc(), Relaxed);
                    store(0);
                }
                SUM.load(Relaxed)
            })
        }
        "fault" => {
            handle_with(unprotect);
            measure_runs(iters, runs, || {
                protect(0, n, Prot::READ); // untimed: protect the pages this run faults on
                let t0 = rdtsc();
                for i in 0..n {
                    store(i);
                }
                rdtsc() - t0
            })
        }
        "appel1" => {
            handle_with(swap_protection);
            protect(0, 1, Prot::READ);
            benchmarks::measure(iters, runs, {
                let mut i = 0;
                move || {
                    store(i & 1); // faults: the handler unprotects it and protects the other
                    i += 1;
                }
            })
        }
        "appel2" => {
            handle_with(unprotect);
            // Per page: protect 100 (one call), then fault on each.
            let rounds = benchmarks::defs::appel2_rounds(iters);
            let mut sample = measure_runs(rounds * 100, runs, || {
                let t0 = rdtsc();
                for _ in 0..rounds {
                    protect(0, 100, Prot::READ);
                    for i in 0..100 {
                        store(i);
                    }
                }
                rdtsc() - t0
            });
            sample.iterations = rounds * 100;
            sample
        }
        other => unreachable!("not a virtual-memory row: {other}"),
    };
    vm::set_fault_handler(BASE, None).expect("clear the handler");
    protect(0, PAGES, Prot::RW);
    Outcome::Measured(sample)
}
