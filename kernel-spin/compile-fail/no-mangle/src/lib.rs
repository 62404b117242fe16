//! Fixture: `#[unsafe(no_mangle)]` defining `memcpy` in safe-looking code.
#![no_std]
#![forbid(unsafe_code)]

#[unsafe(no_mangle)]
pub extern "C" fn memcpy(dst: *mut u8, _src: *const u8, _n: usize) -> *mut u8 {
    dst
}
