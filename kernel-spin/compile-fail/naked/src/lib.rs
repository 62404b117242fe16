//! Fixture: a naked function: arbitrary assembly that safe code may call.
//! `-F unsafe_code` lets `#[unsafe(naked)]` through (rustc 1.95).
#![no_std]
#![forbid(unsafe_code)]

/// Disable interrupts and halt: the kernel stops.
#[unsafe(naked)]
pub extern "C" fn halt() {
    core::arch::naked_asm!("cli", "hlt")
}

pub fn stop() {
    halt()
}
