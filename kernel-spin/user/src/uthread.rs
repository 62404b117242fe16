//! Integrated user threads (ring 3 side of the `uthreads` extension).
//!
//! The blocking calls may return into a *different* user thread, so their
//! wrapper saves the callee-saved registers on the calling thread's stack
//! before `syscall` and restores them after: whichever thread the call
//! returns into finds its own values there. A new thread starts in
//! [`trampoline`], which calls its function with its argument.

use crate::{Error, Return, nr};
use core::arch::naked_asm;

/// A blocking `uthreads` call: `nr(a0)`, registers saved around it.
#[unsafe(naked)]
pub extern "C" fn blocking(n: u64, a0: u64) -> Return {
    naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rax, rdi",
        "mov rdi, rsi",
        "syscall",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
    )
}

/// First code of a new thread: RSP + 8 holds its function, RSP + 16 its argument.
#[unsafe(naked)]
extern "C" fn trampoline() -> ! {
    naked_asm!("mov rdi, [rsp + 16]", "mov rax, [rsp + 8]", "sub rsp, 8", "call rax", "ud2")
}

/// A user-thread function: must end with [`exit`].
pub type Entry = extern "C" fn(u64) -> !;

/// Start a thread running `f(arg)` on the stack whose (16-aligned) top is
/// `stack_top`; it runs when the current thread waits or joins.
pub fn fork(f: Entry, stack_top: u64, arg: u64) -> Result<u64, Error> {
    // SAFETY: the caller gives the thread this stack; its top two words
    // carry the function and the argument to the trampoline.
    unsafe {
        ((stack_top - 8) as *mut u64).write(arg);
        ((stack_top - 16) as *mut u64).write(f as *const () as u64);
    }
    crate::syscall3(nr::UT_FORK, trampoline as *const () as u64, stack_top - 16, 0)
}

/// Make thread `target` runnable (if it waits) and wait for a signal.
#[inline(always)]
pub fn signal_wait(target: u64) -> Result<u64, Error> {
    blocking(nr::UT_SIGNAL_WAIT, target).into_result()
}

/// Wait until thread `id` has exited.
#[inline(always)]
pub fn join(id: u64) -> Result<u64, Error> {
    blocking(nr::UT_JOIN, id).into_result()
}

/// End the current thread, signalling `target` (`None`: no one).
pub fn exit(target: Option<u64>) -> ! {
    let _ = blocking(nr::UT_EXIT, target.unwrap_or(u64::MAX));
    crate::exit(-6)
}
