//! The scheduler extension (ring 0, safe Rust): a FIFO run queue.
//!
//! It handles the strand events `Block` (the current strand waits: give the
//! CPU to the next runnable strand, raising `Checkpoint` for the old one and
//! `Resume` for the new one, which a thread package handles) and `Unblock`
//! (queue the strand). With nothing runnable it idles until an interrupt.
//! Replace it by loading another extension that handles the same events.
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::strand::{self, RunQueue, Runnable, Strand};
use spin_interface::{ExportTable, Extension, InitContext, InitError, machine};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("scheduler", init);

/// Runnable strands, oldest first.
static QUEUE: RunQueue = RunQueue::new();

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    strand::BLOCK.install(ctx.identity(), on_block, None)?;
    strand::UNBLOCK.install(ctx.identity(), on_unblock, None)?;
    Ok(ExportTable::new().procedure("Scheduler", "runnable", runnable))
}

fn on_unblock(r: Runnable) {
    // A strand already queued stays where it is.
    QUEUE.push(r);
}

fn on_block(s: Strand) {
    match QUEUE.pop() {
        // Woken before it could switch (a yield with nobody else runnable).
        Some(n) if n.strand() == s => {}
        Some(n) => switch(s, n),
        None => idle(s),
    }
}

#[inline(always)]
fn switch(from: Strand, to: Runnable) {
    to.switch_from(from);
}

/// Nothing is runnable: wait for an interrupt to make something so.
#[cold]
#[inline(never)]
fn idle(s: Strand) {
    loop {
        machine::idle();
        match QUEUE.pop() {
            Some(n) if n.strand() == s => return,
            Some(n) => return switch(s, n),
            None => {}
        }
    }
}

/// How many strands are waiting for the CPU.
fn runnable(_: ()) -> usize {
    QUEUE.len()
}
