//! The one-page `protect` of the caller's own address space: what a
//! library OS's fault handler does on every protection fault it resolves
//! (SPIN's *fault*, *appel1*, *appel2* rows), so it is straight-line
//! assembly entered from the SYSCALL stub's call table like any table
//! call (status in RAX, result 0 in RDX; the stub clears the rest).
//!
//! It handles exactly the common case — `protect(ENV_SELF, va, 1, prot)`
//! with the last-level table of `va` in the caller's cached leaf (see
//! [`super::envtab::FastEnv::leaf_tag`]) and a page bound there — and
//! performs the same checks, in the same order of precedence for a valid
//! request, as `crate::bind::protect`. Anything else (another
//! environment, several pages, a cache miss, any error) jumps to that
//! Rust implementation with the argument registers untouched, so every
//! error is reported by one piece of code.
//!
//! Why no lock: one CPU, interrupts off in the kernel, and the caller's
//! page tables are written only by the kernel (the self-map is read-only).

use super::envtab::{CURRENT, off};
use core::arch::naked_asm;
use exo_abi::Prot;
use exo_abi::layout::{RESERVED_END, RESERVED_START, USER_END, USER_START, pte};

// The bit tricks below rely on the ABI's protection bits lining up with
// the page-table bits, as `bind::permission_bits` does.
const _: () = assert!(Prot::WRITE.0 == pte::WRITABLE);
const _: () = assert!(pte::NO_EXECUTE == 1 << 63);
const _: () = assert!(Prot::VALID_BITS == 0xf);

/// Table entry for `Call::Protect` (SysV: RDI = env, RSI = va, RDX =
/// pages, RCX = prot; returns RAX = status, RDX = pages changed).
#[unsafe(naked)]
pub extern "sysv64" fn entry(
    _env: u64,
    _va: u64,
    _pages: u64,
    _prot: u64,
    _: u64,
    _: u64,
) -> crate::syscalls::Ret {
    naked_asm!(
        "test rdi, rdi",                 // ENV_SELF only (its tables are the active ones)
        "jnz 9f",
        "cmp rdx, 1",                    // exactly one page
        "jne 9f",
        "test esi, 0xfff",               // page aligned
        "jnz 9f",
        "lea rax, [rsi - {user_start}]", // USER_START <= va < USER_END: one unsigned compare
        "movabs r8, {user_span}",
        "cmp rax, r8",
        "jae 9f",
        "lea rax, [rsi - {res_start}]",  // not in the kernel-managed window
        "cmp rax, {res_span}",
        "jb 9f",
        "test rcx, -16",                 // prot: only known bits ...
        "jnz 9f",
        "test cl, {read}",               // ... and READ
        "jz 9f",
        "mov r8, [rip + {current}]",     // the caller's descriptor
        "mov rax, rsi",
        "shr rax, 21",
        "inc rax",                       // LeafCache::tag(va)
        "cmp rax, [r8 + {leaf_tag}]",
        "jne 9f",                        // not the cached table: the Rust path walks and fills
        "mov rax, rsi",
        "shr eax, 9",
        "and eax, 0xff8",                // index of va's entry, in bytes
        "add rax, [r8 + {leaf_table}]",  // RAX = &entry (kernel address of the table)
        "mov r9, [rax]",                 // the old entry
        "test r9b, {present}",
        "jz 9f",                         // nothing bound: BadAddress, from the Rust path
        "test cl, {write}",
        "jz 2f",
        "test r9d, {may_write}",         // WRITE only if the capability allowed it at bind time
        "jz 9f",
        "2:",
        "and r9, -3",                    // clear WRITABLE ...
        "btr r9, 63",                    // ... and NO_EXECUTE
        "mov r8d, ecx",
        "and r8d, {write}",
        "or r9, r8",                     // WRITABLE = prot & WRITE (the same bit)
        "test cl, {exec}",
        "jnz 3f",
        "bts r9, 63",                    // NO_EXECUTE unless EXEC
        "3:",
        "test cl, {clear_ad}",
        "jz 4f",
        "and r9, {not_ad}",              // CLEAR_AD: forget accessed and dirty
        "4:",
        "mov [rax], r9",
        "invlpg [rsi]",                  // the caller's address space is the active one
        "xor eax, eax",                  // status 0 ...
        "mov edx, 1",                    // ... one page changed
        "ret",
        "9:",
        "jmp {slow}",                    // everything else, with the arguments intact
        user_start = const USER_START,
        user_span = const USER_END - USER_START,
        res_start = const RESERVED_START,
        res_span = const RESERVED_END - RESERVED_START,
        read = const Prot::READ.0,
        write = const Prot::WRITE.0,
        exec = const Prot::EXEC.0,
        clear_ad = const Prot::CLEAR_AD.0,
        present = const pte::PRESENT,
        may_write = const pte::MAY_WRITE,
        not_ad = const !(pte::ACCESSED | pte::DIRTY) as i64,
        current = sym CURRENT,
        leaf_tag = const off::LEAF_TAG,
        leaf_table = const off::LEAF_TABLE,
        slow = sym crate::syscalls::sys_protect,
    )
}
