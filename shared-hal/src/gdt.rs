//! GDT and TSS: flat segments for ring 0 and ring 3, the ring-0 stack used on
//! entry from ring 3, and an IST stack for double faults.
//!
//! The descriptor order is fixed by SYSCALL/SYSRET (see [`crate::syscall`]):
//! kernel code, kernel data, user data, user code.

use core::ptr::addr_of_mut;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// Kernel code selector (GDT index 1).
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector (GDT index 2).
pub const KERNEL_DS: u16 = 0x10;
/// User data selector with RPL 3 (GDT index 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector with RPL 3 (GDT index 4).
pub const USER_CS: u16 = 0x20 | 3;

/// IST slot (1-based, as the IDT encodes it) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u8 = 1;

const IST_STACK_SIZE: usize = 16 * 1024;

#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct Stack([u8; IST_STACK_SIZE]);

static mut DOUBLE_FAULT_STACK: Stack = Stack([0; IST_STACK_SIZE]);
static mut TSS: TaskStateSegment = TaskStateSegment::new();
static mut GDT: GlobalDescriptorTable<8> = GlobalDescriptorTable::new();

/// Build and load the GDT and TSS and reload every segment register.
pub fn init() {
    // SAFETY: runs once on the only CPU, before interrupts are enabled, so
    // nothing else reads or writes these statics concurrently; the TSS and GDT
    // are statics and therefore live for as long as the CPU uses them.
    unsafe {
        let tss = &mut *addr_of_mut!(TSS);
        let top = addr_of_mut!(DOUBLE_FAULT_STACK) as u64 + IST_STACK_SIZE as u64;
        tss.interrupt_stack_table[(DOUBLE_FAULT_IST - 1) as usize] = VirtAddr::new(top);

        let gdt = &mut *addr_of_mut!(GDT);
        let kcs = gdt.append(Descriptor::kernel_code_segment());
        let kds = gdt.append(Descriptor::kernel_data_segment());
        let uds = gdt.append(Descriptor::user_data_segment());
        let ucs = gdt.append(Descriptor::user_code_segment());
        let tss_sel = gdt.append(Descriptor::tss_segment_unchecked(addr_of_mut!(TSS)));
        debug_assert_eq!(kcs.0, KERNEL_CS);
        debug_assert_eq!(kds.0, KERNEL_DS);
        debug_assert_eq!(uds.0, USER_DS);
        debug_assert_eq!(ucs.0, USER_CS);
        gdt.load_unsafe();
        CS::set_reg(kcs);
        SS::set_reg(kds);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_sel);
    }
}

/// Set the stack the CPU switches to when an interrupt or exception arrives
/// from ring 3 (TSS.RSP0), and the stack the SYSCALL entry switches to.
#[inline]
pub fn set_kernel_stack(top: u64) {
    // SAFETY: a single aligned 64-bit store into the TSS; the CPU only reads
    // RSP0 on a ring-3 → ring-0 transition, which cannot happen in the middle
    // of this store because we are running in ring 0.
    unsafe { (*addr_of_mut!(TSS)).privilege_stack_table[0] = VirtAddr::new(top) };
    crate::syscall::set_entry_stack(top);
}
