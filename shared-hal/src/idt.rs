//! The interrupt descriptor table: 256 interrupt gates.
//!
//! [`init`] points every vector at its generic entry stub in [`crate::trap`];
//! kernels may later point a vector at their own naked stub (the
//! exokernel's user-exception fast path does) with [`set_gate`].

use core::ptr::addr_of_mut;

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_hi: u32,
    reserved: u32,
}

const MISSING: Gate =
    Gate { offset_lo: 0, selector: 0, ist: 0, attributes: 0, offset_mid: 0, offset_hi: 0, reserved: 0 };

static mut IDT: [Gate; 256] = [MISSING; 256];

/// Which rings may raise a vector with `int n` (exceptions and hardware
/// interrupts are delivered regardless).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dpl {
    /// Only ring 0 may use `int n`.
    Kernel,
    /// Ring 3 may use `int n` (needed for `int3` from user code).
    User,
}

/// Point `vector` at `handler` (an interrupt gate: IF is cleared on entry).
/// `ist` is 0 for the current/TSS.RSP0 stack or 1..=7 for an IST slot.
///
/// # Safety
/// `handler` must be the address of an entry stub that follows the interrupt
/// calling convention for this vector (error code or not) and ends in `iretq`.
pub unsafe fn set_gate(vector: u8, handler: u64, dpl: Dpl, ist: u8) {
    let dpl_bits = match dpl {
        Dpl::Kernel => 0,
        Dpl::User => 3 << 5,
    };
    let gate = Gate {
        offset_lo: handler as u16,
        selector: crate::gdt::KERNEL_CS,
        ist: ist & 7,
        attributes: 0x8e | dpl_bits, // present, 64-bit interrupt gate
        offset_mid: (handler >> 16) as u16,
        offset_hi: (handler >> 32) as u32,
        reserved: 0,
    };
    // SAFETY: a single aligned write of one 16-byte entry. Callers run with
    // interrupts disabled or on a vector that cannot fire mid-update; the
    // handler itself is vouched for by the caller.
    unsafe { (*addr_of_mut!(IDT))[vector as usize] = gate };
}

/// Fill the table with the generic stubs and load it.
pub fn init() {
    for v in 0..=255u8 {
        let (dpl, ist) = match v {
            3 => (Dpl::User, 0),
            8 => (Dpl::Kernel, crate::gdt::DOUBLE_FAULT_IST),
            _ => (Dpl::Kernel, 0),
        };
        // SAFETY: `stub_address(v)` is the generic entry stub for `v`, which
        // pushes a dummy error code exactly for the vectors without one.
        unsafe { set_gate(v, crate::trap::stub_address(v), dpl, ist) };
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer { limit: (256 * 16 - 1) as u16, base: addr_of_mut!(IDT) as u64 };
    // SAFETY: the table is a static with valid gates for every vector.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}
