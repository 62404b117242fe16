//! Four-level page tables, reached through the physical-memory window.
//!
//! An address space is named by the physical address of its PML4 (`root`).
//! User address spaces share the kernel half: [`new_user_root`] copies PML4
//! entries 256..512 from the kernel's table, so the kernel stays mapped (as
//! supervisor-only) whichever address space is active. Intermediate tables
//! for lower-half addresses are created present + writable + user, so the
//! leaf entry alone decides what ring 3 may do.

use crate::memory::{alloc_zeroed_frame, free_frame, phys_to_virt};
use core::sync::atomic::{AtomicU64, Ordering};

/// Page-table entry bits (defined once, in `hal_logic::pte`).
pub mod pte {
    pub use hal_logic::pte::*;
}

/// Why a page-table operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfMemory,
    /// The address is already mapped (for `map`), or not mapped (for `update`/`unmap`).
    AlreadyMapped,
    NotMapped,
    /// The walk met a huge page (only the bootloader's kernel-half mappings use them).
    HugePage,
    /// Not page aligned, or not canonical.
    BadAddress,
}

static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);
static SCRATCH_BASE: AtomicU64 = AtomicU64::new(0);

/// Remember the boot page table as the kernel's and reserve an unused
/// kernel-half PML4 slot for the kernels' own dynamic mappings. The slot's
/// third-level table is created now, so every address space made later by
/// [`new_user_root`] shares whatever the kernel maps there.
pub fn init() {
    let root = crate::cpu::cr3() & pte::ADDR;
    KERNEL_ROOT.store(root, Ordering::Relaxed);
    let pml4 = table(root);
    let slot = (256..511).rev().find(|&i| pml4[i] & pte::PRESENT == 0).expect("no free PML4 slot");
    let l3 = alloc_zeroed_frame().expect("a frame for the scratch region's table");
    pml4[slot] = l3 | pte::PRESENT | pte::WRITABLE;
    SCRATCH_BASE.store(0xffff_0000_0000_0000 | ((slot as u64) << 39), Ordering::Relaxed);
}

/// Physical address of the kernel's PML4.
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(Ordering::Relaxed)
}

/// Start of a 512 GiB kernel-half region nobody else maps, for kernel use.
pub fn kernel_scratch_base() -> u64 {
    SCRATCH_BASE.load(Ordering::Relaxed)
}

/// A page table seen through the physical window.
fn table(pa: u64) -> &'static mut [u64; 512] {
    // SAFETY: `pa` is a page-table frame (the root or one reached from it);
    // the window maps it; page tables are only modified with interrupts off
    // on this single CPU, so no other reference is live across this use.
    unsafe { &mut *(phys_to_virt(pa) as *mut [u64; 512]) }
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// A new address space: empty lower half, kernel half shared with the kernel.
pub fn new_user_root() -> Option<u64> {
    let root = alloc_zeroed_frame()?;
    let k = table(kernel_root());
    let t = table(root);
    t[256..].copy_from_slice(&k[256..]);
    Some(root)
}

/// Walk to the leaf entry for `va`, creating missing tables if `create`.
fn walk(root: u64, va: u64, create: bool) -> Result<&'static mut u64, MapError> {
    if !va.is_multiple_of(4096) || !hal_logic::addr::is_canonical(va) {
        return Err(MapError::BadAddress);
    }
    let user = va < crate::boot::KERNEL_HALF;
    let mut t = table(root);
    for level in (1..4).rev() {
        let e = &mut t[index(va, level)];
        if *e & pte::PRESENT == 0 {
            if !create {
                return Err(MapError::NotMapped);
            }
            let frame = alloc_zeroed_frame().ok_or(MapError::OutOfMemory)?;
            let mut flags = pte::PRESENT | pte::WRITABLE;
            if user {
                flags |= pte::USER;
            }
            *e = frame | flags;
        } else if *e & pte::HUGE != 0 {
            return Err(MapError::HugePage);
        }
        t = table(*e & pte::ADDR);
    }
    Ok(&mut t[index(va, 0)])
}

/// Map the 4 KiB page at `va` to frame `pa` with `flags` (PRESENT is added).
pub fn map(root: u64, va: u64, pa: u64, flags: u64) -> Result<(), MapError> {
    if !pa.is_multiple_of(4096) {
        return Err(MapError::BadAddress);
    }
    let e = walk(root, va, true)?;
    if *e & pte::PRESENT != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *e = pa | flags | pte::PRESENT;
    Ok(())
}

/// The leaf entry for `va`, if `va` is mapped by a 4 KiB page.
pub fn entry(root: u64, va: u64) -> Option<u64> {
    walk(root, va, false).ok().map(|e| *e).filter(|e| e & pte::PRESENT != 0)
}

/// Replace the leaf entry for `va` with `f(old)`; `va` must be mapped.
/// Returns the old entry. The caller flushes the TLB if `root` is active.
pub fn update(root: u64, va: u64, f: impl FnOnce(u64) -> u64) -> Result<u64, MapError> {
    let e = walk(root, va, false)?;
    let old = *e;
    if old & pte::PRESENT == 0 {
        return Err(MapError::NotMapped);
    }
    *e = f(old);
    Ok(old)
}

/// Remove the mapping of `va`; returns the old entry (the frame is not freed).
/// The caller flushes the TLB if `root` is active.
pub fn unmap(root: u64, va: u64) -> Result<u64, MapError> {
    update(root, va, |_| 0)
}

/// Visit every present 4 KiB leaf of the lower half: `f(va, entry)`.
pub fn for_each_user_leaf(root: u64, mut f: impl FnMut(u64, u64)) {
    let pml4 = table(root);
    for (i4, e4) in pml4[..256].iter().enumerate() {
        // Skip absent slots and a self-map slot (an entry pointing back at the root).
        if e4 & pte::PRESENT == 0 || e4 & pte::ADDR == root {
            continue;
        }
        for (i3, e3) in table(e4 & pte::ADDR).iter().enumerate() {
            if e3 & pte::PRESENT == 0 || e3 & pte::HUGE != 0 {
                continue;
            }
            for (i2, e2) in table(e3 & pte::ADDR).iter().enumerate() {
                if e2 & pte::PRESENT == 0 || e2 & pte::HUGE != 0 {
                    continue;
                }
                for (i1, e1) in table(e2 & pte::ADDR).iter().enumerate() {
                    if e1 & pte::PRESENT != 0 {
                        let va = ((i4 as u64) << 39)
                            | ((i3 as u64) << 30)
                            | ((i2 as u64) << 21)
                            | ((i1 as u64) << 12);
                        f(va, *e1);
                    }
                }
            }
        }
    }
}

/// Free the lower half's page-table frames and the root itself. Leaf frames
/// are the caller's business (unmap or account for them first). The address
/// space must not be active. Returns how many table frames were freed.
pub fn free_user_root(root: u64) -> u64 {
    let mut freed = 0;
    let mut release = |pa: u64| {
        free_frame(pa).expect("page-table frame was allocated");
        freed += 1;
    };
    let pml4 = table(root);
    // A self-map slot points back at the root: not a table of its own.
    for e4 in pml4[..256].iter().filter(|e| *e & pte::PRESENT != 0 && *e & pte::ADDR != root) {
        let l3 = e4 & pte::ADDR;
        for e3 in table(l3).iter().filter(|e| *e & pte::PRESENT != 0 && *e & pte::HUGE == 0) {
            let l2 = e3 & pte::ADDR;
            for e2 in table(l2).iter().filter(|e| *e & pte::PRESENT != 0 && *e & pte::HUGE == 0) {
                release(e2 & pte::ADDR);
            }
            release(l2);
        }
        release(l3);
    }
    release(root);
    freed
}
