//! The dynamic-extensions benchmark extension (ring 0, safe Rust), never
//! linked into the kernel: the kernel's bench glue loads it at run time
//! from its certified object and measures the same two operations as the
//! static rows, against code that arrived that way — a null procedure
//! called through a resolved import ("protected in-kernel call, loaded")
//! and an event with one null handler ("raise 1 handler, loaded").
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::event::{self, Combine, Event};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("dynbench", init);

fn nothing(_: ()) {}

/// The event the glue raises: one handler, installed by `init`.
static RAISE1: Event<(), ()> = Event::new("DynBench.raise1", nothing, Combine::Last);

/// The null procedure: no arguments, no results.
fn null(_: ()) {}

fn null_handler(_: ()) {}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    RAISE1.define(ctx.identity(), event::anyone)?;
    RAISE1.install(ctx.identity(), null_handler, None)?;
    Ok(ExportTable::new().procedure("DynBench", "null", null).event("DynBench", "raise1", &RAISE1))
}
