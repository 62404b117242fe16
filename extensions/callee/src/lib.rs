//! A procedure that trusts its argument (ring 0, safe Rust), for the
//! attribution test: `hostile`'s `caller` calls it from its own handler,
//! and when it panics the fault must be charged to this domain — the code
//! that panicked — not to the innocent caller. A crate of its own, because
//! the kernel tells domains apart by the crate their code is in.
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// Exports `Callee.check(x)`: `x + 40`, but panics on 41. Handles no event.
pub static CALLEE: Extension = Extension::new("callee", init);

fn check(x: u64) -> u64 {
    if x == 41 {
        panic!("callee: {x} is a bad argument");
    }
    x + 40
}

fn init(_: &InitContext) -> Result<ExportTable, InitError> {
    Ok(ExportTable::new().procedure("Callee", "check", check))
}
