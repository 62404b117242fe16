//! Fixture: a correct extension (the control: it must build).
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::{ExportTable, Extension, InitContext, InitError};

pub static EXTENSION: Extension = Extension::new("well-behaved", init);

fn answer(_: ()) -> u64 {
    42
}

fn init(_: &InitContext) -> Result<ExportTable, InitError> {
    Ok(ExportTable::new().procedure("Fixture", "answer", answer))
}
