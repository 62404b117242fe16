//! The benchmark extension (ring 0, safe Rust): the far side of the
//! "protected in-kernel call" (a null procedure in its own domain, called
//! through a resolved import) and the handlers of the dispatcher-scaling
//! events the kernel defines for it.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use spin_interface::{Event, ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension { name: "bench", init };

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
    Ok(ExportTable::new().procedure("Bench", "null", null))
}
