//! The trusted implementations behind the PhysAddr and machine interfaces
//! (ring 0): frames from the HAL's allocator, idling and the clock.
//! Address spaces (Translation) are in `spaces`.

use core::sync::atomic::{AtomicBool, Ordering};
use shared_hal::memory::{self, phys_to_virt};
use spin_interface::phys;
use spin_interface::{KernelKey, machine};

/// A frame for a PhysPage, charged to the extension whose code asks (its
/// frame quota, see `quota`).
fn allocate() -> Option<u64> {
    let pa = memory::alloc_zeroed_frame()?;
    if !crate::quota::charge_frame(pa) {
        memory::free_frame(pa).expect("allocated just now");
        return None;
    }
    Some(pa)
}

fn free(pa: u64) {
    crate::quota::credit_frame(pa);
    memory::free_frame(pa).expect("a PhysPage owns an allocated frame");
}

fn read(pa: u64, offset: usize, buf: &mut [u8]) {
    // SAFETY: the interface checked `offset + buf.len() <= 4096`; `pa` is a
    // frame owned by a PhysPage, mapped by the physical window.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (phys_to_virt(pa) as *const u8).add(offset),
            buf.as_mut_ptr(),
            buf.len(),
        )
    }
}

fn write(pa: u64, offset: usize, data: &[u8]) {
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), (phys_to_virt(pa) as *mut u8).add(offset), data.len())
    }
}

/// The kernel's PhysAddr procedures, bound into the interface at boot.
static PHYS: phys::Core = phys::Core { allocate, free, read, write, free_count: memory::free_frames };

/// Whether the CPU is idling (the timer does not count that as a handler running).
pub static IDLE: AtomicBool = AtomicBool::new(false);

fn idle() {
    // Frames that arrived make strands runnable: deliver them instead of halting.
    if crate::net::idle_poll() || crate::net::NEVER_HALT.load(Ordering::Relaxed) {
        return;
    }
    IDLE.store(true, Ordering::Relaxed);
    shared_hal::cpu::wait_for_interrupt();
    IDLE.store(false, Ordering::Relaxed);
}

/// The kernel's machine procedures, bound into the interface at boot.
static MACHINE: machine::Core = machine::Core { idle, ticks: shared_hal::apic::ticks };

/// Install the PhysAddr and machine implementations.
pub fn install(key: &KernelKey) {
    phys::install(key, &PHYS);
    machine::install(key, &MACHINE);
}
