//! What a kernel panic looks like: the message and location on the serial
//! console, then QEMU exits with the failure code.
//!
//! Each kernel's `#[panic_handler]` calls [`report`] (the SPIN kernel first
//! checks whether the panic belongs to an extension it can unload).

use crate::qemu::{ExitCode, exit};
use core::panic::PanicInfo;

/// Print the panic and end the run as a failure.
pub fn report(info: &PanicInfo) -> ! {
    crate::cpu::disable_interrupts();
    crate::serial::emergency_write(format_args!("\nKERNEL PANIC: {info}\n"));
    exit(ExitCode::Failure)
}
