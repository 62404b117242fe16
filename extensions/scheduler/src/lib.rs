//! The scheduler extension (ring 0, safe Rust): a FIFO run queue.
//!
//! It handles the strand events `Block` (the current strand waits: give the
//! CPU to the next runnable strand, raising `Checkpoint` for the old one and
//! `Resume` for the new one, which a thread package handles) and `Unblock`
//! (queue the strand). With nothing runnable it idles until an interrupt.
//! Replace it by loading another extension that handles the same events.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use spin_interface::strand::{self, Strand};
use spin_interface::sync::SpinLock;
use spin_interface::{ExportTable, Extension, InitContext, InitError, machine};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension { name: "scheduler", init };

/// Runnable strands, oldest first.
static QUEUE: SpinLock<VecDeque<Strand>> = SpinLock::new(VecDeque::new());

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    QUEUE.lock().reserve(64);
    strand::BLOCK.install(ctx.identity(), on_block, None)?;
    strand::UNBLOCK.install(ctx.identity(), on_unblock, None)?;
    Ok(ExportTable::new().procedure("Scheduler", "runnable", runnable))
}

fn on_unblock(s: Strand) {
    QUEUE.lock().push_back(s);
}

fn on_block(s: Strand) {
    loop {
        let next = QUEUE.lock().pop_front();
        match next {
            // Woken before it could switch (a yield with nobody else runnable).
            Some(n) if n == s => return,
            Some(n) => {
                strand::CHECKPOINT.raise(s);
                strand::RESUME.raise(n);
                return;
            }
            None => machine::idle(),
        }
    }
}

/// How many strands are waiting for the CPU.
fn runnable(_: ()) -> usize {
    QUEUE.lock().len()
}
