//! The SYSCALL entry: the kernel's most frequently taken path.
//!
//! Three ways through it, chosen by the call number in RAX:
//!
//! 1. **Table calls** (`RAX < FAST_CALLS`): switch to the kernel stack, one
//!    indirect call into [`crate::syscalls::TABLE`] (ordinary SysV Rust
//!    functions returning the status in RAX and result 0 in RDX), zero the
//!    argument registers so no kernel value leaks, `sysretq`.
//! 2. **Synchronous PCT** (`RAX == PctSync`): entirely in assembly, no
//!    register saved: check the target's descriptor, move the time-slice
//!    donation, mark the caller waiting, switch CR3 and `sysretq` into the
//!    target's PCT entry with RAX = the caller's id.
//! 3. **Switching calls** (yield, wait, exit, asynchronous PCT): build a
//!    complete [`TrapFrame`] at the top of the kernel stack and let
//!    [`crate::sched::syscall_slow`] rewrite it into whatever context runs
//!    next; leave with `iretq`.
//!
//! Interrupts are off throughout (SFMASK clears IF), and the kernel has
//! one stack, so the scratch statics below cannot be clobbered by nesting.

use super::envtab::{CURRENT, FAST_ENVS, off};
use core::arch::naked_asm;
use core::mem::offset_of;
use exo_abi::call::{FAST_CALLS, LAST_CALL};
use exo_abi::{Call, Error, MAX_ENVS};
use shared_hal::gdt::{USER_CS, USER_DS};
use shared_hal::syscall::{ENTRY_STACK, SYSCALL_VECTOR, USER_RSP};
use shared_hal::trap::TrapFrame;

/// RFLAGS for code entered through a PCT: only IF (and the reserved bit 1).
const PCT_RFLAGS: u64 = 0x202;

/// Install [`entry`] as the SYSCALL target.
pub fn init() {
    shared_hal::syscall::set_entry(entry as *const () as u64);
}

/// The SYSCALL entry point. See the module documentation; each
/// instruction's purpose is noted beside it.
#[unsafe(naked)]
pub extern "C" fn entry() {
    naked_asm!(
        // --- common prologue -------------------------------------------
        "mov [rip + {user_rsp}], rsp",   // park the user stack pointer
        "mov rsp, [rip + {stack}]",      // kernel stack (16-byte aligned top)
        "push rcx",                      // user RIP (for sysretq)
        "push r11",                      // user RFLAGS (for sysretq); RSP is 16-aligned again
        "cmp rax, {fast_calls}",
        "jae 5f",                        // not a table call
        // --- 1. table calls ----------------------------------------------
        "mov rcx, r10",                  // argument 3: SysV wants it in RCX
        "lea r11, [rip + {table}]",
        "call qword ptr [r11 + rax * 8]", // status -> RAX, result 0 -> RDX
        "pop r11",
        "pop rcx",
        "mov rsp, [rip + {user_rsp}]",
        "mov r8, [rip + {out2}]",        // result 1 (0 unless the call set it) ...
        "mov qword ptr [rip + {out2}], 0", // ... consumed, so it cannot leak to a later call
        "xor edi, edi",                  // argument registers may hold kernel values: clear them
        "xor esi, esi",
        "xor r9d, r9d",
        "xor r10d, r10d",
        "sysretq",
        // --- dispatch of the rest ----------------------------------------
        "5:",
        "cmp rax, {pct_sync}",
        "je 20f",
        "cmp rax, {last_call}",
        "jbe 30f",                       // a switching call
        "mov eax, {e_unknown}",          // no such call: the user's registers are untouched
        "jmp 29f",
        // --- 2. synchronous PCT (target id in RDI) -----------------------
        "20:",
        "mov ecx, edi",
        "and ecx, {slot_mask}",          // slot bits of the target id
        "shl ecx, {shift}",
        "lea r11, [rip + {envs}]",
        "add rcx, r11",                  // RCX = target descriptor
        "cmp [rcx + {d_id}], rdi",       // live, and the same generation (stale ids fail)
        "jne 26f",
        "cmp qword ptr [rcx + {d_waiting}], 0",
        "je 27f",                        // target is running or has its own context: busy
        "mov r11, [rcx + {d_pct}]",
        "test r11, r11",
        "jz 28f",                        // no PCT entry registered
        "mov rax, [rip + {current}]",    // RAX = caller descriptor
        "cmp [rcx + {d_donated}], rax",  // did the callee donate its slices to the caller?
        "jne 21f",
        "mov qword ptr [rcx + {d_donated}], 0", // yes: this transfer returns them
        "jmp 22f",
        "21:",
        "mov [rax + {d_donated}], rcx",  // no: the caller donates its slices to the callee
        "22:",
        "mov qword ptr [rax + {d_waiting}], 1", // the caller keeps no context: it waits
        "mov qword ptr [rcx + {d_waiting}], 0", // the callee runs
        "mov [rip + {current}], rcx",
        "mov rax, [rax + {d_id}]",       // the callee learns who called
        "mov rcx, [rcx + {d_cr3}]",
        "mov cr3, rcx",                  // the callee's address space
        "mov rcx, r11",                  // sysretq target: the PCT entry
        "mov r11d, {pct_rflags}",
        "mov rsp, [rip + {user_rsp}]",   // the caller's RSP (part of the message; no kernel value)
        "sysretq",
        "26:",
        "mov eax, {e_nosuch}",
        "jmp 29f",
        "27:",
        "mov eax, {e_state}",
        "jmp 29f",
        "28:",
        "mov eax, {e_noentry}",
        // Return an error to the caller with its registers untouched.
        "29:",
        "pop r11",
        "pop rcx",
        "mov rsp, [rip + {user_rsp}]",
        "sysretq",
        // --- 3. switching calls: a complete frame, Rust, iretq -----------
        "30:",
        "pop r11",
        "pop rcx",                       // RSP back at the top of the kernel stack
        "push {uds}",
        "push qword ptr [rip + {user_rsp}]",
        "push r11",
        "push {ucs}",
        "push rcx",
        "push 0",
        "push {vector}",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        "call {slow}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",                   // vector and error code
        "iretq",
        user_rsp = sym USER_RSP,
        stack = sym ENTRY_STACK,
        fast_calls = const FAST_CALLS,
        table = sym crate::syscalls::TABLE,
        out2 = sym crate::syscalls::OUT2,
        pct_sync = const Call::PctSync as u64,
        last_call = const LAST_CALL,
        e_unknown = const Error::UnknownCall as u64,
        e_nosuch = const Error::NoSuchEnv as u64,
        e_state = const Error::BadState as u64,
        e_noentry = const Error::NoEntry as u64,
        slot_mask = const MAX_ENVS - 1,
        shift = const off::SHIFT,
        envs = sym FAST_ENVS,
        current = sym CURRENT,
        d_id = const off::ID,
        d_waiting = const off::WAITING,
        d_pct = const off::PCT_ENTRY,
        d_donated = const off::DONATED,
        d_cr3 = const off::CR3,
        pct_rflags = const PCT_RFLAGS,
        uds = const USER_DS as u64,
        ucs = const USER_CS as u64,
        vector = const SYSCALL_VECTOR,
        slow = sym crate::sched::syscall_slow,
    )
}

// The frame the switching path builds must be exactly a TrapFrame.
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
const _: () = assert!(offset_of!(TrapFrame, rax) == 14 * 8);
