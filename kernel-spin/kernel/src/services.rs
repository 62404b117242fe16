//! The trusted implementations behind the PhysAddr and machine interfaces
//! (ring 0): frames from the HAL's allocator, idling and the clock.
//! Address spaces (Translation) are in `spaces`.

use shared_hal::memory::{self, phys_to_virt};
use spin_interface::phys;
use spin_interface::{KernelKey, machine};

struct Phys;

impl phys::Backend for Phys {
    fn allocate(&self) -> Option<u64> {
        memory::alloc_zeroed_frame()
    }
    fn free(&self, pa: u64) {
        memory::free_frame(pa).expect("a PhysPage owns an allocated frame");
    }
    fn read(&self, pa: u64, offset: usize, buf: &mut [u8]) {
        // SAFETY: the interface checked `offset + buf.len() <= 4096`; `pa`
        // is a frame owned by a PhysPage, mapped by the physical window.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (phys_to_virt(pa) as *const u8).add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    }
    fn write(&self, pa: u64, offset: usize, data: &[u8]) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (phys_to_virt(pa) as *mut u8).add(offset),
                data.len(),
            )
        }
    }
    fn free_count(&self) -> u64 {
        memory::free_frames()
    }
}

struct Machine;

/// Whether the CPU is idling (the timer does not count that as a handler running).
pub static IDLE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

impl machine::Backend for Machine {
    fn idle(&self) {
        IDLE.store(true, core::sync::atomic::Ordering::Relaxed);
        shared_hal::cpu::wait_for_interrupt();
        IDLE.store(false, core::sync::atomic::Ordering::Relaxed);
    }
    fn ticks(&self) -> u64 {
        shared_hal::apic::ticks()
    }
}

/// Install the PhysAddr and machine implementations.
pub fn install(key: &KernelKey) {
    phys::install(key, &Phys);
    machine::install(key, &Machine);
}
