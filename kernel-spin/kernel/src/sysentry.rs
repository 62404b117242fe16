//! The user/kernel boundary of kernel-spin (ring 0, trusted): the SYSCALL
//! entry stub that raises the SystemCall event for the call number (user
//! exceptions have their own stubs, in `uexc`).
//!
//! # The system-call path, instruction by instruction
//!
//! The stub saves only what the return needs (user RSP, RIP, RFLAGS) plus
//! the call number (so fault handling can find the event), enables
//! interrupts (so the timer can stop a runaway handler), bounds-checks the
//! number and calls [`dispatch`] with the six argument registers in the
//! System V order; callee-saved registers are preserved by the Rust code
//! itself, so the stub never touches them. [`dispatch`] raises
//! `SYSTEM_CALLS[nr]` entry first: with one installed handler that is a
//! load, a test and an indirect call. The handler's `Return { status, value }` comes
//! back in RAX:RDX, exactly the user ABI, so nothing is moved on return.
//! The scratch registers that could hold kernel values are cleared before
//! `sysretq`.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use shared_hal::gdt::{USER_CS, USER_DS};
use shared_hal::syscall::{ENTRY_STACK, USER_RSP};
use spin_interface::KernelKey;
use spin_interface::abi::{self, Return};
use spin_interface::user::{SYSTEM_CALLS, SyscallArgs};

const _: () = assert!(USER_CS == USER_DS + 8, "SYSRET needs user CS right after user DS");

/// Raise the SystemCall event for `nr` (checked `< COUNT` by the stub).
extern "sysv64" fn dispatch(a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, nr: u64) -> Return {
    // SAFETY: the entry stub jumps around this call unless nr < COUNT,
    // the length of SYSTEM_CALLS.
    let event = unsafe { SYSTEM_CALLS.get_unchecked(nr as usize) };
    // The kernel's key only names the right (no load is left after inlining).
    event.event(crate::key()).raise_entry_first(SyscallArgs([a0, a1, a2, a3, a4, a5]))
}

/// The SYSCALL entry (LSTAR).
#[unsafe(naked)]
extern "C" fn syscall_entry() {
    naked_asm!(
        "mov [rip + {user_rsp}], rsp",      // park the user stack pointer
        "mov rsp, [rip + {stack}]",         // this strand's kernel stack
        "push qword ptr [rip + {user_rsp}]", // saved: user RSP,
        "push rcx",                         //        user RIP,
        "push r11",                         //        user RFLAGS,
        "push rax",                         //        call number (7th argument)
        "inc qword ptr [rip + {calls}]",    // lets the timer tell a stuck call from many short ones
        "sti",                              // the timer may stop a runaway handler from here
        "cmp rax, {count}",
        "jae 2f",
        "mov rcx, r10",                     // 4th argument: R10 (SYSCALL took RCX)
        "call {dispatch}",                  // RAX:RDX = Return
        ".globl spin_syscall_dispatched",   // the return address `in_progress` looks for
        "spin_syscall_dispatched:",
        "1:",
        "cli",
        "add rsp, 8",
        "pop r11",
        "pop rcx",
        "pop rsp",
        "xor edi, edi",                     // no kernel values leak to user mode
        "xor esi, esi",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "sysretq",
        "2:",
        "mov eax, {unknown}",
        "xor edx, edx",
        "jmp 1b",
        user_rsp = sym USER_RSP,
        stack = sym ENTRY_STACK,
        count = const abi::nr::COUNT,
        dispatch = sym dispatch,
        unknown = const abi::Error::UnknownCall as u64,
        calls = sym SYSCALLS,
    )
}

/// System calls (and user exceptions) entered since boot.
pub static SYSCALLS: AtomicU64 = AtomicU64::new(0);

/// Leave a system call whose handler was abandoned: RSP points at the
/// saved call number (the stack top − 32), RAX:RDX hold the result.
#[unsafe(naked)]
extern "C" fn syscall_abort() {
    naked_asm!(
        "cli",
        "add rsp, 8",
        "pop r11",
        "pop rcx",
        "pop rsp",
        "xor edi, edi",
        "xor esi, esi",
        "xor r8d, r8d",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "sysretq",
    )
}

unsafe extern "C" {
    /// The instruction after the stub's `call dispatch` (a label, not data).
    static spin_syscall_dispatched: u8;
}

/// Whether a system call is in progress on the kernel stack whose top is
/// `top` (the current strand's, of a strand with a process). Exact, and
/// free on the system-call path: the stub's frame is the user RSP, RIP and
/// RFLAGS, the call number (below `COUNT`) at `top − 32` and the return
/// address of `call dispatch` at `top − 40`. An interrupt or exception from
/// ring 3 leaves its user CS (not below `COUNT`) at `top − 32` and a user
/// RIP at `top − 40`; a fresh strand's own frames never hold the label's
/// address (only that `call` pushes it).
pub fn in_progress(top: u64) -> bool {
    // (`ktests_hostile::only_a_system_call_frame_is_taken_for_one` checks
    // it against the three layouts.)
    const _: () = assert!(shared_hal::gdt::USER_CS as u64 >= abi::nr::COUNT);
    // SAFETY: `top` is the top of a live kernel stack; both words are in it.
    let (nr, ret) = unsafe { (((top - 32) as *const u64).read(), ((top - 40) as *const u64).read()) };
    nr < abi::nr::COUNT && ret == dispatched_return()
}

/// The return address the stub's `call dispatch` pushes.
pub fn dispatched_return() -> u64 {
    (&raw const spin_syscall_dispatched) as u64
}

/// The extension whose handler the system call saved at `top` runs
/// (system-call events are one-to-one, so it is the lone handler's owner).
pub fn culprit(top: u64) -> spin_interface::domain::DomainId {
    // SAFETY: `top` is the current strand's stack top and a system call is
    // in progress on it: the stub saved the (checked) call number at top − 32.
    let nr = unsafe { ((top - 32) as *const u64).read() };
    SYSTEM_CALLS[(nr % abi::nr::COUNT) as usize].lone_owner()
}

/// Abandon the system call in progress on the stack whose top is `top`
/// and return `ExtensionFault` to the process.
///
/// # Safety
/// A system call must be in progress on the current strand, whose kernel
/// stack top is `top`; every frame above the stub's is abandoned.
pub unsafe fn abort_from_here(top: u64) -> ! {
    // SAFETY: the stub's saved words sit at top − 32 .. top; the abort tail
    // pops them exactly as the normal return does.
    unsafe {
        core::arch::asm!(
            "mov rsp, {sp}",
            "jmp {tail}",
            sp = in(reg) top - 32,
            tail = sym syscall_abort,
            in("rax") abi::Error::ExtensionFault as u64,
            in("rdx") 0u64,
            options(noreturn)
        )
    }
}

/// Make an interrupted system call's frame return `ExtensionFault` to the
/// process when the interrupt returns.
pub fn abort_frame(frame: &mut shared_hal::trap::TrapFrame, top: u64) {
    frame.rsp = top - 32;
    frame.rip = syscall_abort as *const () as u64;
    frame.rax = abi::Error::ExtensionFault as u64;
    frame.rdx = 0;
    frame.rflags &= !shared_hal::trap::RFLAGS_IF;
}

/// The number of system calls entered so far.
pub fn calls() -> u64 {
    SYSCALLS.load(Ordering::Relaxed)
}

static INSTALLED: spin::Once<()> = spin::Once::new();

/// Point SYSCALL and the user exception vectors at kernel-spin's paths
/// (once, when the first process starts: the HAL's own self-tests use the
/// generic paths before that).
pub fn install(key: &KernelKey) {
    INSTALLED.call_once(|| {
        shared_hal::syscall::set_entry(syscall_entry as *const () as u64);
        crate::uexc::install(key);
        crate::uexc_more::install();
    });
}
