//! The one-page `protect` of the caller's own address space: what a
//! library OS's fault handler does on every protection fault it resolves
//! (SPIN's *fault*, *appel1*, *appel2* rows), so it is straight-line
//! assembly entered from the SYSCALL stub's call table like any table
//! call (status in RAX, result 0 in RDX; the stub clears the rest).
//!
//! It handles exactly the common case — `protect(ENV_SELF, va, 1, prot)`
//! with the last-level table of `va` in the caller's cached leaf (see
//! [`super::envtab::FastEnv::leaf_tag`]) and a page bound there — and
//! accepts exactly what `crate::bind::protect` accepts. Anything else
//! (another environment, several pages, a cache miss, any error) jumps to
//! that Rust implementation with the argument registers untouched, so
//! every error is reported by one piece of code.
//!
//! The address needs no range check of its own: the tag is the address's
//! bits 21..63, and the descriptor only ever caches tables of 2 MiB
//! regions of user space that the Rust path validated, never the first
//! one (which holds the kernel-managed window: `bind::LeafCache::store`).
//! So a matching tag means a user address outside that window.
//!
//! Why no lock: one CPU, interrupts off in the kernel, and the caller's
//! page tables are written only by the kernel (the self-map is read-only).

use super::envtab::{CURRENT, off};
use core::arch::naked_asm;
use exo_abi::Prot;
use exo_abi::layout::{RESERVED_END, pte};

// The first 2 MiB region (never cached) covers the kernel-managed window.
const _: () = assert!(RESERVED_END <= 1 << 21);

// The bit tricks below rely on the ABI's protection bits lining up with
// the page-table bits, as `bind::permission_bits` does.
const _: () = assert!(Prot::WRITE.0 == pte::WRITABLE);
const _: () = assert!(pte::NO_EXECUTE == 1 << 63);
const _: () = assert!(Prot::VALID_BITS == 0xf);

/// For each valid `prot` (4 bits): the bits of the old entry a
/// reprotection keeps — the address, MAY_WRITE, and accessed/dirty unless
/// CLEAR_AD — and, 128 bytes on, the permission bits it sets (P, U, W,
/// NX): `crate::bind`'s permission_bits. One table, so one `lea` reaches both.
#[repr(C)]
struct Tables {
    keep: [u64; 16],
    set: [u64; 16],
}

const _: () = assert!(core::mem::offset_of!(Tables, set) == 128);

static TABLES: Tables = {
    let mut t = Tables { keep: [0; 16], set: [0; 16] };
    let mut p = 0;
    while p < 16 {
        t.keep[p] = pte::ADDR | pte::MAY_WRITE;
        if p as u64 & Prot::CLEAR_AD.0 == 0 {
            t.keep[p] |= pte::ACCESSED | pte::DIRTY;
        }
        t.set[p] = crate::bind::permission_bits(p as u64);
        p += 1;
    }
    t
};

/// Table entry for `Call::Protect` (SysV: RDI = env, RSI = va, RDX =
/// pages, RCX = prot; returns RAX = status, RDX = pages changed: 1, or 0
/// if the entry already was what `prot` asks for).
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
        "test esi, 0xfff",               // page aligned (the range: see the module doc)
        "jnz 9f",
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
        "lea r8, [rip + {tables}]",      // the new entry, from two 16-entry tables indexed by
        "mov r10, [r8 + rcx * 8]",       // prot: the bits it keeps (address, MAY_WRITE, A/D
        "and r10, r9",                   // unless CLEAR_AD) ...
        "or r10, [r8 + rcx * 8 + 128]",  // ... and the bits it sets (P, U, W, NX) — as permission_bits
        "mov [rax], r10",
        "invlpg [rsi]",                  // the caller's address space is the active one
        "xor eax, eax",                  // status 0 ...
        "cmp r10, r9",                   // ... and pages changed: 1, or 0 if the entry already
        "setne dl",                      // was so (RDX is 1 here, so DL alone needs setting)
        "ret",
        "9:",
        "jmp {slow}",                    // everything else, with the arguments intact
        read = const Prot::READ.0,
        write = const Prot::WRITE.0,
        present = const pte::PRESENT,
        may_write = const pte::MAY_WRITE,
        tables = sym TABLES,
        current = sym CURRENT,
        leaf_tag = const off::LEAF_TAG,
        leaf_table = const off::LEAF_TABLE,
        slow = sym crate::syscalls::sys_protect,
    )
}
