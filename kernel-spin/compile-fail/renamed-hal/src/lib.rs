//! Fixture: the HAL under the interface's name (`package = "shared-hal"`); the dependency check must reject it.
#![no_std]
#![forbid(unsafe_code)]

pub fn free_frames() -> u64 {
    spin_interface::memory::free_frames()
}
