//! Fixture: the forbid attribute as the inner attribute of a module that
//! `cfg(any())` strips; the crate itself uses `unsafe`.
#![no_std]

#[cfg(any())]
mod never {
    #![forbid(unsafe_code)]
}

/// Read any kernel address: exactly what extensions must not be able to do.
pub fn peek(addr: u64) -> u64 {
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}
