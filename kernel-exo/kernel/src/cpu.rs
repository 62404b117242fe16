//! Control-register settings the exokernel's protection relies on (all
//! need CPL 0).

use core::arch::asm;

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_WP: u64 = 1 << 16;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_SMEP: u64 = 1 << 20;

fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Make supervisor writes honour read-only pages, so the kernel's copies
/// into user memory fault (and are refused) on pages the environment may
/// only read.
pub fn enable_write_protect() {
    // SAFETY: setting CR0.WP only adds checks; the kernel never writes
    // through read-only mappings of its own.
    unsafe { asm!("mov cr0, {}", in(reg) cr0() | CR0_WP, options(nostack, preserves_flags)) };
}

/// Turn the x87/SSE/AVX units off. Both kernels and their user programs
/// are built soft-float, and the kernel does not save vector registers
/// between environments; with the units off, an environment that tries to
/// use them takes #NM or #UD (delivered to its own handler) instead of
/// reading another environment's registers.
pub fn disable_vector_units() {
    // SAFETY: nothing in the kernel uses x87/SSE (soft-float target), so
    // removing them cannot break kernel code.
    unsafe {
        asm!("mov cr0, {}", in(reg) (cr0() | CR0_EM) & !CR0_MP, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4() & !(CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE),
             options(nostack, preserves_flags));
    }
}

/// Forbid ring 0 to execute user pages (SMEP), where the CPU supports it:
/// a kernel bug can then never run code an environment wrote.
pub fn enable_smep() {
    // Leaf 0 says whether leaf 7 (structured extended features) exists.
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    let smep = max_leaf >= 7 && core::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << 7) != 0;
    if smep {
        // SAFETY: the kernel never executes from user pages.
        unsafe { asm!("mov cr4, {}", in(reg) cr4() | CR4_SMEP, options(nostack, preserves_flags)) };
    }
}
