//! Page-table walking for environments' address spaces, with the table
//! frames charged to the environment (the HAL's `paging` module allocates
//! tables without asking anyone, which would let an environment spend
//! kernel memory without limit).
//!
//! Intermediate tables are present + writable + user, so the leaf alone
//! decides what ring 3 may do; the self-map slot's entry is the exception
//! (read-only, see [`install_selfmap`]).

use exo_abi::Error;
use exo_abi::layout::selfmap;
use shared_hal::memory::phys_to_virt;
use shared_hal::paging::pte;

/// A pointer to entry `index` of the table at physical address `table`.
fn entry_ptr(table: u64, index: usize) -> *mut u64 {
    debug_assert!(index < 512);
    (phys_to_virt(table) + 8 * index as u64) as *mut u64
}

/// Read an entry.
fn read(table: u64, index: usize) -> u64 {
    // SAFETY: `table` is a page-table frame of an environment (its root or
    // reached from it) and the physical window maps it; the kernel runs on
    // one CPU with interrupts off, so nothing writes it concurrently.
    unsafe { entry_ptr(table, index).read() }
}

fn write(table: u64, index: usize, value: u64) {
    // SAFETY: as in `read`; page-table frames are owned by the kernel.
    unsafe { entry_ptr(table, index).write(value) }
}

const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Point PML4 slot 255 of `root` back at `root`: present, user-readable,
/// not writable, not executable. The environment can read all four levels
/// of its own tables there and can never write them.
pub fn install_selfmap(root: u64) {
    write(root, selfmap::SLOT as usize, root | pte::PRESENT | pte::USER | pte::NO_EXECUTE);
}

/// The physical address of the last-level table covering `va`, creating
/// missing tables with `alloc` (which charges them to the environment).
pub fn leaf_table(root: u64, va: u64, alloc: &mut dyn FnMut() -> Result<u64, Error>) -> Result<u64, Error> {
    let mut table = root;
    for level in (1..4).rev() {
        let i = index(va, level);
        let e = read(table, i);
        table = if e & pte::PRESENT != 0 {
            e & pte::ADDR
        } else {
            let frame = alloc()?;
            write(table, i, frame | pte::PRESENT | pte::WRITABLE | pte::USER);
            frame
        };
    }
    Ok(table)
}

/// The last-level table covering `va`, if the walk down to it exists.
pub fn existing_leaf_table(root: u64, va: u64) -> Option<u64> {
    let mut table = root;
    for level in (1..4).rev() {
        let e = read(table, index(va, level));
        if e & pte::PRESENT == 0 || e & pte::HUGE != 0 {
            return None;
        }
        table = e & pte::ADDR;
    }
    Some(table)
}

/// The entry for `va` in last-level table `leaf`.
pub fn get(leaf: u64, va: u64) -> u64 {
    read(leaf, index(va, 0))
}

/// Set the entry for `va` in last-level table `leaf`.
pub fn set(leaf: u64, va: u64, value: u64) {
    write(leaf, index(va, 0), value)
}

/// The leaf entry mapping `va` in `root`, if any.
pub fn lookup(root: u64, va: u64) -> Option<u64> {
    let leaf = existing_leaf_table(root, va)?;
    let e = get(leaf, va);
    (e & pte::PRESENT != 0).then_some(e)
}

/// Remove the mapping of `va` in `root`; returns the old entry. The caller
/// flushes the TLB entry if `root` is active.
pub fn clear(root: u64, va: u64) -> Option<u64> {
    let leaf = existing_leaf_table(root, va)?;
    let old = get(leaf, va);
    if old & pte::PRESENT == 0 {
        return None;
    }
    set(leaf, va, 0);
    Some(old)
}

/// Forget the TLB entry for `va` if `root` is the active address space.
pub fn flush_if_active(root: u64, va: u64) {
    if shared_hal::cpu::cr3() & pte::ADDR == root {
        shared_hal::cpu::invlpg(va);
    }
}
