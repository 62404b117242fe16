//! Fixture: an extension that reaches past the interface to the HAL
//! (must not build: it cannot depend on shared-hal).
#![no_std]
#![forbid(unsafe_code)]

/// Map any frame anywhere: exactly what extensions must not be able to do.
pub fn map_anything() {
    let _ = shared_hal::paging::map(shared_hal::paging::kernel_root(), 0x1000, 0x1000, 0);
}
