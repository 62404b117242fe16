//! Fixture: the forbid attribute only in a comment (it used to satisfy a
//! check that read the crate root as text); the crate uses `unsafe`.
#![no_std]
// #![forbid(unsafe_code)]

/// Read any kernel address: exactly what extensions must not be able to do.
pub fn peek(addr: u64) -> u64 {
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}
