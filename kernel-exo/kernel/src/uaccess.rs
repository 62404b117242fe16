//! Reading and writing the running environment's memory on its behalf.
//!
//! A user pointer is an allegation. It is first checked to lie entirely in
//! user space ([`UserRange`]), so the copy can never touch kernel memory;
//! the copy itself runs through the environment's own page tables with
//! one `rep movsb` whose page faults are *fixed up*: the kernel's fault
//! handler sees the faulting RIP is [`exo_uaccess_copy`]'s copy
//! instruction and resumes at its error exit. Unmapped pages, and writes
//! to pages the environment may only read (CR0.WP makes ring 0 honour
//! read-only mappings), therefore return [`Error::BadAddress`] instead of
//! crashing the kernel.

use core::arch::naked_asm;
use exo_abi::{Binding, Error};
use hal_logic::addr::UserRange;

unsafe extern "C" {
    /// The copy instruction (a label inside [`exo_uaccess_copy`]).
    fn exo_uaccess_fault();
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
        "xor eax, eax",
        ".globl exo_uaccess_fault",
        "exo_uaccess_fault:",
        "rep movsb",
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
    (rip == exo_uaccess_fault as *const () as u64).then_some(exo_uaccess_fixup as *const () as u64)
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

/// Copy `out.len()` bindings from user address `src`.
pub fn copy_bindings_from_user(out: &mut [Binding], src: u64) -> Result<(), Error> {
    let bytes = core::mem::size_of_val(out);
    check(src, bytes)?;
    // SAFETY: `out` is kernel memory of exactly `bytes` bytes; a Binding is
    // three u64s, so every bit pattern copied in is a valid Binding; the
    // source range is checked user space.
    match unsafe { exo_uaccess_copy(out.as_mut_ptr() as *mut u8, src as *const u8, bytes) } {
        0 => Ok(()),
        _ => Err(Error::BadAddress),
    }
}
