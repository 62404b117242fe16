//! Fixture: the forbid attribute only inside a string literal, on a line
//! of its own (a text check saw a line starting with it).
#![no_std]

pub const NOTE: &str = "
#![forbid(unsafe_code)]
";

/// Read any kernel address: exactly what extensions must not be able to do.
pub fn peek(addr: u64) -> u64 {
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}
