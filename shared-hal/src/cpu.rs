//! Small CPU facade: interrupt flag, halting, control registers, MSRs, port I/O.
//!
//! Every function here needs CPL 0.

use core::arch::asm;

/// Enable maskable interrupts.
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded by `crate::init` before any kernel can call this.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Disable maskable interrupts.
pub fn disable_interrupts() {
    // SAFETY: clearing IF cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Whether maskable interrupts are enabled.
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack; no other effect.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Run `f` with interrupts disabled, restoring the previous state after.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    if was {
        disable_interrupts();
    }
    let r = f();
    if was {
        enable_interrupts();
    }
    r
}

/// Wait for the next interrupt (enables interrupts atomically with the halt).
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` only waits; the IDT is loaded.
    unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
}

/// Halt forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops the CPU; nothing to uphold.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Read CR2 (the faulting address of the last page fault).
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Read CR3 (the physical address of the active top-level page table, plus flags).
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Read CR0.
pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Read CR4.
pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_WP: u64 = 1 << 16;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_UMIP: u64 = 1 << 11;
const CR4_SMEP: u64 = 1 << 20;

/// Make supervisor writes honour read-only pages, so a kernel copy into
/// user memory faults (and can be refused) on pages the user may only read.
pub fn enable_write_protect() {
    // SAFETY: setting CR0.WP only adds checks; neither kernel writes
    // through read-only mappings of its own.
    unsafe { asm!("mov cr0, {}", in(reg) cr0() | CR0_WP, options(nostack, preserves_flags)) };
}

/// Turn the x87/MMX and SSE/AVX units off. Both kernels and their user
/// programs are built soft-float and neither kernel saves vector registers
/// on a switch, so with the units on one program could read another's x87
/// registers and two threads would share one x87 stack. With CR0.EM set
/// (and MP clear) every x87/MMX instruction raises #NM, and with
/// CR4.OSFXSR clear every SSE instruction raises #UD; each kernel delivers
/// both to the program like any other exception.
pub fn disable_vector_units() {
    // SAFETY: nothing in either kernel uses x87/SSE (soft-float target),
    // so removing them cannot break kernel code.
    unsafe {
        asm!("mov cr0, {}", in(reg) (cr0() | CR0_EM) & !CR0_MP, options(nostack, preserves_flags));
        asm!("mov cr4, {}", in(reg) cr4() & !(CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE),
             options(nostack, preserves_flags));
    }
}

/// Whether x87 instructions fault (CR0.EM set, MP clear) and SSE is off.
pub fn vector_units_disabled() -> bool {
    cr0() & (CR0_EM | CR0_MP) == CR0_EM && cr4() & (CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE) == 0
}

/// Whether CPUID leaf 7 (structured extended features) reports `bit` of
/// `ebx` or `ecx` (the register chosen by `in_ecx`).
fn leaf7_feature(in_ecx: bool, bit: u32) -> bool {
    // Leaf 0 says whether leaf 7 exists.
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return false;
    }
    let r = core::arch::x86_64::__cpuid_count(7, 0);
    (if in_ecx { r.ecx } else { r.ebx }) & (1 << bit) != 0
}

/// Whether the CPU implements SMEP (CPUID leaf 7, EBX bit 7).
pub fn has_smep() -> bool {
    leaf7_feature(false, 7)
}

/// Whether the CPU implements UMIP (CPUID leaf 7, ECX bit 2).
pub fn has_umip() -> bool {
    leaf7_feature(true, 2)
}

/// The protections both kernels turn on where the CPU has them:
/// - SMEP forbids ring 0 to execute user pages, so a kernel bug can never
///   run code a user program wrote;
/// - UMIP makes `sgdt`, `sidt`, `sldt`, `smsw` and `str` fault (#GP) in
///   ring 3, so a program cannot read the kernel addresses of the GDT, IDT
///   and TSS (which would help an attack aim) or the machine-status word.
pub fn enable_hardening() {
    let mut bits = 0;
    if has_smep() {
        bits |= CR4_SMEP;
    }
    if has_umip() {
        bits |= CR4_UMIP;
    }
    // SAFETY: neither kernel executes from user pages, and neither needs
    // the descriptor-table store instructions in ring 3; both bits only
    // add checks.
    unsafe { asm!("mov cr4, {}", in(reg) cr4() | bits, options(nostack, preserves_flags)) };
}

/// Whether SMEP is on.
pub fn smep_enabled() -> bool {
    cr4() & CR4_SMEP != 0
}

/// Whether UMIP is on.
pub fn umip_enabled() -> bool {
    cr4() & CR4_UMIP != 0
}

/// Switch to another top-level page table.
///
/// # Safety
/// `root` must be the physical address of a valid PML4 that maps the running
/// kernel (code, stack, data) exactly as the current one does.
pub unsafe fn set_cr3(root: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// Invalidate the TLB entry for one virtual address in the current address space.
pub fn invlpg(addr: u64) {
    // SAFETY: dropping a TLB entry is always safe; the next access re-walks the tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// Read a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU (otherwise #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: guaranteed by the caller.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// Write a model-specific register.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it; the caller answers for
/// whatever the register controls.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nomem, nostack, preserves_flags))
    };
}

/// Write a byte to an I/O port.
///
/// # Safety
/// The caller answers for the device behind `port`.
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags)) };
}

/// Write a 16-bit word to an I/O port.
///
/// # Safety
/// The caller answers for the device behind `port`.
pub unsafe fn outw(port: u16, v: u16) {
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags)) };
}

/// Write a 32-bit word to an I/O port.
///
/// # Safety
/// The caller answers for the device behind `port`.
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags)) };
}

/// Read a 32-bit word from an I/O port.
///
/// # Safety
/// The caller answers for the device behind `port` (reads can have effects).
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Read a byte from an I/O port.
///
/// # Safety
/// The caller answers for the device behind `port` (reads can have effects).
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: guaranteed by the caller.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) };
    v
}
