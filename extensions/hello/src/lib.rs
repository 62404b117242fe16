//! The worked example of the README's "write your own SPIN extension"
//! (ring 0, safe Rust): an extension that defines an event, handles it,
//! and exports a procedure other domains can import.
//!
//! - `Hello.greeted` is an event `u64 -> u64` that anyone may handle;
//!   results are summed.
//! - `Hello.greet(n)` raises it and returns the sum of the handlers'
//!   answers; this extension's own handler answers `n + 1`.
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::event::{self, Combine, Event};
use spin_interface::log;
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The descriptor the kernel's loader reads.
pub static EXTENSION: Extension = Extension::new("hello", init);

fn nobody(_: u64) -> u64 {
    0
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Our event: the default answers 0 when no handler is installed.
static GREETED: Event<u64, u64> = Event::new("Hello.greeted", nobody, Combine::Fold(add));

/// How many greetings this extension has seen.
static SEEN: AtomicU64 = AtomicU64::new(0);

fn on_greeted(n: u64) -> u64 {
    SEEN.fetch_add(1, Ordering::Relaxed);
    n + 1
}

/// Exported: raise the event (a procedure call when one handler is installed).
fn greet(n: u64) -> u64 {
    GREETED.raise(n)
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    // We define the event, so we decide who may handle it: anyone.
    GREETED.define(ctx.identity(), event::anyone)?;
    GREETED.install(ctx.identity(), on_greeted, None)?;
    log::info!("hello: ready");
    Ok(ExportTable::new().procedure("Hello", "greet", greet).event("Hello", "greeted", &GREETED))
}
