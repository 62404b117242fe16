//! Fixture: the HAL as a target-specific dependency of the kernel target; the dependency check must reject it.
#![no_std]
#![forbid(unsafe_code)]

pub fn free_frames() -> u64 {
    shared_hal::memory::free_frames()
}
