//! Reading and writing the running environment's memory on its behalf.
//!
//! A user pointer is an allegation. It is first checked to lie entirely in
//! user space ([`UserRange`]), so the copy can never touch kernel memory;
//! the copy itself runs through the environment's own page tables with
//! `rep movsq`/`rep movsb` whose page faults are *fixed up*: the kernel's fault
//! handler sees the faulting RIP is one of [`exo_uaccess_copy`]'s copy
//! instructions and resumes at its error exit. Unmapped pages, and writes
//! to pages the environment may only read (CR0.WP makes ring 0 honour
//! read-only mappings), therefore return [`Error::BadAddress`] instead of
//! crashing the kernel.

use core::arch::naked_asm;
use core::mem::MaybeUninit;
use exo_abi::{Binding, Error};
use hal_logic::addr::UserRange;

unsafe extern "C" {
    /// The copy instructions (labels inside [`exo_uaccess_copy`]).
    fn exo_uaccess_fault();
    fn exo_uaccess_fault2();
    /// Where a fault at that instruction resumes.
    fn exo_uaccess_fixup();
}

/// Copy `len` bytes from `src` to `dst`; returns 0, or 1 if a page fault
/// stopped the copy.
///
/// # Safety
/// One side must be kernel memory valid for `len` bytes; the other must be
/// a range inside user space of the active address space (faults there are
/// recovered, never faults on the kernel side).
#[unsafe(naked)]
unsafe extern "C" fn exo_uaccess_copy(dst: *mut u8, src: *const u8, len: usize) -> u64 {
    naked_asm!(
        "mov rcx, rdx",
        "shr rcx, 3",   // whole quadwords first (one
        "xor eax, eax", // iteration each, not eight)
        ".globl exo_uaccess_fault",
        "exo_uaccess_fault:",
        "rep movsq",
        "mov rcx, rdx",
        "and ecx, 7",
        ".globl exo_uaccess_fault2",
        "exo_uaccess_fault2:",
        "rep movsb", // then the tail bytes
        "ret",
        ".globl exo_uaccess_fixup",
        "exo_uaccess_fixup:",
        "mov eax, 1",
        "ret",
    )
}

/// If a kernel page fault happened at the user-copy instruction, the
/// address to resume at.
pub fn fixup_for(rip: u64) -> Option<u64> {
    let copies = [exo_uaccess_fault as *const () as u64, exo_uaccess_fault2 as *const () as u64];
    copies.contains(&rip).then_some(exo_uaccess_fixup as *const () as u64)
}

/// Check a user range. An empty range touches no memory, so any address
/// will do (Rust's empty slices carry dangling pointers).
fn check(va: u64, len: usize) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    UserRange::new(va, len as u64).map(|_| ()).map_err(|_| Error::BadAddress)
}

/// Copy `dst.len()` bytes from user address `src`.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), Error> {
    check(src, dst.len())?;
    // SAFETY: `dst` is kernel memory of the right length; `src..+len` lies
    // in user space (checked above), where faults are recovered.
    match unsafe { exo_uaccess_copy(dst.as_mut_ptr(), src as *const u8, dst.len()) } {
        0 => Ok(()),
        _ => Err(Error::BadAddress),
    }
}

/// Copy `src` to user address `dst`.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), Error> {
    check(dst, src.len())?;
    // SAFETY: as in `copy_from_user`, with the roles swapped.
    match unsafe { exo_uaccess_copy(dst as *mut u8, src.as_ptr(), src.len()) } {
        0 => Ok(()),
        _ => Err(Error::BadAddress),
    }
}

/// Copy `n` bindings from user address `src` into the start of `buf`
/// (which need not be initialised) and return them.
pub fn copy_bindings_from_user<const N: usize>(
    buf: &mut MaybeUninit<[Binding; N]>,
    n: usize,
    src: u64,
) -> Result<&[Binding], Error> {
    assert!(n <= N);
    let bytes = n * core::mem::size_of::<Binding>();
    check(src, bytes)?;
    // SAFETY: `buf` is kernel memory of at least `bytes` bytes; the source
    // range is checked user space.
    match unsafe { exo_uaccess_copy(buf.as_mut_ptr() as *mut u8, src as *const u8, bytes) } {
        // SAFETY: the first `n` bindings were just written in full, and a
        // Binding is three u64s, so any bytes form a valid Binding.
        0 => Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const Binding, n) }),
        _ => Err(Error::BadAddress),
    }
}
