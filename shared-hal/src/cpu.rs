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
