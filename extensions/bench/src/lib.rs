//! The benchmark extension (ring 0, safe Rust): the far side of the
//! "protected in-kernel call" (a null procedure in its own domain, called
//! through a resolved import) and the handlers of the dispatcher-scaling
//! events the kernel defines for it; and the `bench_report` system call
//! through which a ring-3 benchmark program hands back its measurement;
//! and the *dirty* query as SPIN measured it, from an extension.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use spin_interface::abi::{Return, nr};
use spin_interface::phys::MemError;
use spin_interface::sync::SpinLock;
use spin_interface::translation::Context;
use spin_interface::user::{SYSTEM_CALLS, SyscallArgs};
use spin_interface::{Event, ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("bench", init);

/// The null procedure: no arguments, no results.
fn null(_: ()) {}

fn null_handler(_: ()) {}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let me = ctx.identity();
    for (symbol, handlers) in [("raise1", 1), ("raise5", 5), ("raise10", 10), ("raise50", 50)] {
        let event: &'static Event<(), ()> = ctx.lookup("kernel", "Bench", symbol)?;
        for _ in 0..handlers {
            event.install(me, null_handler, None)?;
        }
    }
    let guarded: &'static Event<(), ()> = ctx.lookup("kernel", "Bench", "guards50")?;
    let never: fn(&()) -> bool = ctx.lookup("kernel", "Bench", "never")?;
    for _ in 0..50 {
        guarded.install(me, null_handler, Some(never))?;
    }
    SYSTEM_CALLS[nr::BENCH_REPORT as usize].install(me, report, None)?;
    Ok(ExportTable::new()
        .procedure("Bench", "null", null)
        .procedure("Bench", "take_report", take_report)
        .procedure("Bench", "dirty", dirty))
}

/// "dirty" as SPIN measured it: an extension asks whether a page of an
/// address space has been written (the kernel's glue calls this through
/// a resolved import and times it).
fn dirty((ctx, va): (Context, u64)) -> Result<bool, MemError> {
    ctx.is_dirty(va)
}

/// What a user benchmark program reported last: runs, iterations, min, median, max.
static REPORT: SpinLock<Option<[u64; 5]>> = SpinLock::new(None);

/// `bench_report(runs, iterations, min, median, max)`.
fn report(a: SyscallArgs) -> Return {
    let [runs, iterations, min, median, max, _] = a.0;
    *REPORT.lock() = Some([runs, iterations, min, median, max]);
    Return::ok(0)
}

/// The last report, once (the kernel's benchmark glue imports this).
fn take_report(_: ()) -> Option<[u64; 5]> {
    REPORT.lock().take()
}
