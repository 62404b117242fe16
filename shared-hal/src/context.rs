//! Kernel-mode context switching for kernel threads (the SPIN kernel's strands).
//!
//! A suspended context is just its stack pointer: [`switch`] pushes the
//! callee-saved registers on the old stack, stores RSP, loads the new RSP and
//! pops. A fresh stack is made to look like a suspended context whose
//! "return address" is a trampoline that calls the thread's entry function.

use core::arch::naked_asm;

/// Save the current context, storing its RSP in `*save`, and continue the
/// context whose saved RSP is `next`.
///
/// # Safety
/// `save` must be writable; `next` must be an RSP saved by `switch` or made
/// by [`prepare_stack`], on a stack that is still allocated and not in use.
#[unsafe(naked)]
pub unsafe extern "C" fn switch(save: *mut u64, next: u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// Entered by the first `switch` to a prepared stack: R12 holds the
/// argument, R13 the entry function.
#[unsafe(naked)]
extern "C" fn trampoline() -> ! {
    naked_asm!("mov rdi, r12", "call r13", "ud2")
}

/// Lay out a fresh stack so that switching to the returned RSP calls
/// `entry(arg)`. `entry` must never return.
///
/// # Safety
/// `stack_top` must be the 16-byte-aligned top of a writable stack of at
/// least a few KiB that stays allocated while the context exists.
pub unsafe fn prepare_stack(stack_top: u64, entry: extern "C" fn(usize) -> !, arg: usize) -> u64 {
    // Layout, from the new RSP upward: r15 r14 r13 r12 rbx rbp, return
    // address, two words of padding. After the pops and `ret`, RSP is
    // `stack_top - 16`: 16-aligned before the trampoline's `call`, as the ABI wants.
    let frame: [u64; 9] =
        [0, 0, entry as *const () as u64, arg as u64, 0, 0, trampoline as *const () as u64, 0, 0];
    let rsp = stack_top - 8 * frame.len() as u64;
    // SAFETY: the caller guarantees the stack is writable; we write 72 bytes below its top.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len()) };
    rsp
}
