//! shared-hal: the one hardware layer both kernels stand on (ring 0, trusted).
//!
//! Everything that touches the machine directly lives here, so that a
//! difference between the two kernels' numbers is a difference in design, not
//! in drivers: boot information, serial console and logging, GDT/TSS, IDT and
//! trap entry, SYSCALL/SYSRET, physical frames, page tables, the kernel heap,
//! the local APIC timer, the TSC, fw_cfg and the QEMU exit device.
//!
//! The machine is a uniprocessor: per-CPU state is plain global state.
//! Call [`init`] first thing in the kernel's entry point.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod apic;
pub mod boot;
pub mod context;
pub mod cpu;
pub mod fwcfg;
pub mod gdt;
pub mod heap;
pub mod idt;
pub mod memory;
pub mod net;
pub mod paging;
pub mod panic;
pub mod pci;
pub mod qemu;
pub mod selftest;
pub mod serial;
pub mod syscall;
pub mod testing;
pub mod trap;
pub mod tsc;

pub use hal_logic as logic;

use bootloader_api::BootInfo;

/// What the HAL learned while initialising, for the kernel to use.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    /// Virtual address at which all physical memory is mapped.
    pub phys_offset: u64,
    /// TSC ticks per second, measured against the PIT.
    pub tsc_hz: u64,
    /// Timer interrupts per second.
    pub timer_hz: u32,
    /// The ramdisk (user programs packed by xtask), if the image has one.
    pub ramdisk: Option<&'static [u8]>,
}

/// Bring up the machine: serial and logging, GDT/TSS, IDT, frame allocator,
/// heap, TSC calibration, local APIC timer (not yet started: interrupts stay
/// off until the kernel calls [`cpu::enable_interrupts`]) and SYSCALL MSRs.
pub fn init(boot_info: &'static mut BootInfo, timer_hz: u32) -> Platform {
    serial::init();
    gdt::init();
    idt::init();
    // SAFETY: called once, with the boot info the bootloader handed us, before
    // anything else uses physical memory.
    let phys_offset = unsafe { memory::init(boot_info) };
    paging::init();
    heap::init();
    let tsc_hz = tsc::calibrate();
    apic::init(timer_hz, tsc_hz);
    syscall::init();
    let ramdisk = boot::ramdisk(boot_info);
    Platform { phys_offset, tsc_hz, timer_hz, ramdisk }
}
