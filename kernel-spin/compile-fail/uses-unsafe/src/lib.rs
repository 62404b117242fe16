//! Fixture: an extension that uses `unsafe` (must not build).
#![no_std]
#![forbid(unsafe_code)]

/// Read any kernel address: exactly what extensions must not be able to do.
pub fn peek(addr: u64) -> u64 {
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}
