//! Fixture: an extension whose manifest depends on the HAL. It would build;
//! the manifest check must reject it.
#![no_std]
#![forbid(unsafe_code)]

pub fn free_frames() -> u64 {
    shared_hal::memory::free_frames()
}
