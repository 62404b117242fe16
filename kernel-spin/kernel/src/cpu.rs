//! Control-register settings kernel-spin's protection relies on (ring 0,
//! trusted; all need CPL 0), set once at boot.

use core::arch::asm;

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_SMEP: u64 = 1 << 20;

pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Turn the x87/MMX and SSE/AVX units off. The kernel and its user
/// programs are built soft-float and the context switch saves no vector
/// state, so with the units on one process could read another's x87
/// registers and two threads would share one x87 stack. With CR0.EM set
/// (and MP clear) every x87/MMX instruction raises #NM, and with
/// CR4.OSFXSR clear every SSE instruction raises #UD: both are delivered
/// to the process as user exceptions.
pub fn disable_vector_units() {
    // SAFETY: nothing in the kernel uses x87/SSE (soft-float target), so
    // removing them cannot break kernel code.
    unsafe {
        asm!("mov cr0, {}", in(reg) (cr0() | CR0_EM) & !CR0_MP, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4() & !(CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE),
             options(nostack, preserves_flags));
    }
}

/// Whether the CPU implements SMEP (CPUID leaf 7, EBX bit 7).
pub fn has_smep() -> bool {
    // Leaf 0 says whether leaf 7 (structured extended features) exists.
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    max_leaf >= 7 && core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 7) != 0
}

/// Forbid ring 0 to execute user pages (SMEP) where the CPU supports it:
/// a kernel bug can then never run code a process wrote.
pub fn enable_smep() {
    if has_smep() {
        // SAFETY: the kernel never executes from user pages.
        unsafe { asm!("mov cr4, {}", in(reg) cr4() | CR4_SMEP, options(nostack, preserves_flags)) };
    }
}

/// Whether SMEP is on.
pub fn smep_enabled() -> bool {
    cr4() & CR4_SMEP != 0
}

/// Whether x87 instructions fault (CR0.EM set, MP clear) and SSE is off.
pub fn vector_units_disabled() -> bool {
    cr0() & (CR0_EM | CR0_MP) == CR0_EM && cr4() & (CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE) == 0
}
