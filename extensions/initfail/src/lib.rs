//! A test extension (ring 0, safe Rust) that is never linked and never
//! loaded at boot: kernel-spin's in-kernel tests load its certified object
//! to check that a run-time-loaded extension whose `init` fails is
//! contained. What it does depends on the name the kernel gave it:
//! `"init-panic"` panics, `"init-loop"` loops forever (past its time
//! budget), anything else returns an error.
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::{ExportTable, Extension, InitContext, InitError, LinkError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("initfail", init);

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    match ctx.identity().name() {
        "init-panic" => panic!("initfail: init panics, as its name asks"),
        "init-loop" => loop {
            core::hint::spin_loop();
        },
        _ => Err(InitError::Link(LinkError::NoSuchDomain)),
    }
}
