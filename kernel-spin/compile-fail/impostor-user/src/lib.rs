//! Fixture: an extension depending on a crate *named* `spin-interface`
//! that is not the interface (it re-exports the HAL); identity is the
//! package's source, not its name.
#![no_std]
#![forbid(unsafe_code)]

pub fn free_frames() -> u64 {
    spin_interface::shared_hal::memory::free_frames()
}
