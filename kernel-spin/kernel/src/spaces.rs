//! Address spaces (ring 0, trusted): the implementation behind the
//! Translation interface. Contexts are named by generation-checked
//! numbers; page tables are the HAL's.
//!
//! # Fast paths
//!
//! Every space remembers the last-level table it used last (a one-entry
//! cache of the 2 MiB region's table, by kernel address), so a query or a
//! protection change near the previous one reads one page-table entry
//! instead of walking four levels. Page tables are freed only with their
//! space, and the cache is cleared when the space is destroyed, so a
//! cached table is always a live table of that space. The kernel is a
//! uniprocessor that does not preempt kernel code and no interrupt
//! handler touches address spaces: nothing changes a space during an
//! operation on it.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use shared_hal::memory::{self, phys_offset};
use shared_hal::paging::{self, MapError, pte};
use spin::Mutex;
use spin_interface::phys::MemError;
use spin_interface::translation::{self, Changed, Mapping, Prot, VirtRange};

/// Most address spaces at once.
const MAX_SPACES: usize = 512;
/// Address spaces one extension domain may hold at once (the rest stay for
/// processes and the other extensions).
pub const DOMAIN_SPACE_QUOTA: usize = 16;

/// One address space's slot: `id = generation << 32 | slot`, so a
/// destroyed context's number never names a later one.
struct Space {
    /// Bumped when the slot is reused.
    generation: AtomicU32,
    /// Physical address of the PML4; 0 while the slot is free.
    root: AtomicU64,
    /// A process's space: only the kernel may destroy it (when it reaps
    /// the process), not an extension holding its `Context`.
    pinned: AtomicBool,
    /// The extension domain whose contained code created it (0: the kernel).
    owner: AtomicU32,
    /// The cached last-level table: `(va >> 21) + 1` of the region it
    /// maps (0: none) ...
    leaf_tag: AtomicU64,
    /// ... and its kernel address.
    leaf: AtomicU64,
}

static SPACES: [Space; MAX_SPACES] = [const {
    Space {
        generation: AtomicU32::new(0),
        root: AtomicU64::new(0),
        pinned: AtomicBool::new(false),
        owner: AtomicU32::new(0),
        leaf_tag: AtomicU64::new(0),
        leaf: AtomicU64::new(0),
    }
}; MAX_SPACES];

/// Creating and destroying take this lock; lookups read atomics.
static LOCK: Mutex<()> = Mutex::new(());

/// The slot of live context `id`.
#[inline(always)]
fn space(id: u64) -> Result<&'static Space, MemError> {
    match SPACES.get((id & 0xffff_ffff) as usize) {
        Some(s)
            if s.generation.load(Ordering::Relaxed) == (id >> 32) as u32
                && s.root.load(Ordering::Relaxed) != 0 =>
        {
            Ok(s)
        }
        _ => Err(MemError::NoContext),
    }
}

/// The page-table root of context `id`.
pub fn root_of(id: u64) -> Result<u64, MemError> {
    Ok(space(id)?.root.load(Ordering::Relaxed))
}

/// A new address space; returns its context number.
pub fn create() -> Result<u64, MemError> {
    let _g = LOCK.lock();
    let owner = crate::contain::current_culprit().number();
    let held = SPACES
        .iter()
        .filter(|s| s.root.load(Ordering::Relaxed) != 0 && s.owner.load(Ordering::Relaxed) == owner)
        .count();
    if owner != 0 && held >= DOMAIN_SPACE_QUOTA {
        return Err(MemError::OutOfMemory);
    }
    let slot =
        SPACES.iter().position(|s| s.root.load(Ordering::Relaxed) == 0).ok_or(MemError::OutOfMemory)?;
    let root = paging::new_user_root().ok_or(MemError::OutOfMemory)?;
    let s = &SPACES[slot];
    let generation = s.generation.load(Ordering::Relaxed).wrapping_add(1);
    s.generation.store(generation, Ordering::Relaxed);
    s.pinned.store(false, Ordering::Relaxed);
    s.owner.store(owner, Ordering::Relaxed);
    s.leaf_tag.store(0, Ordering::Relaxed);
    s.root.store(root, Ordering::Release);
    Ok(((generation as u64) << 32) | slot as u64)
}

/// Reserve context `id` for the kernel: `Context::destroy` refuses it.
pub fn pin(id: u64) {
    if let Ok(s) = space(id) {
        s.pinned.store(true, Ordering::Relaxed);
    }
}

/// Destroy a pinned context (a reaped process's).
pub fn destroy_pinned(id: u64) {
    if let Ok(s) = space(id) {
        s.pinned.store(false, Ordering::Relaxed);
        let _ = destroy(id);
    }
}

/// Destroy an unpinned context and free every page still mapped in it.
fn destroy(id: u64) -> Result<(), MemError> {
    let root = {
        let _g = LOCK.lock();
        let s = space(id)?;
        if s.pinned.load(Ordering::Relaxed) {
            return Err(MemError::InUse);
        }
        // The cached table goes with the space.
        s.leaf_tag.store(0, Ordering::Relaxed);
        s.root.swap(0, Ordering::Release)
    };
    crate::strands::unload_root(root);
    // Freed during the walk, which reads only the page tables (freed
    // after it): nothing to allocate, so reaping works with the heap full.
    paging::for_each_user_leaf(root, |_, e| {
        memory::free_frame(e & pte::ADDR).expect("mapped frames are owned by the context")
    });
    paging::free_user_root(root);
    Ok(())
}

/// Index of `va`'s entry in its table at `level` (0: the last level).
#[inline(always)]
fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// The entry for user page `va` in space `s` through the cached table,
/// if the cache covers `va`: a compare and two loads, no call.
#[inline(always)]
fn cached_entry(s: &Space, va: u64) -> Option<*mut u64> {
    if s.leaf_tag.load(Ordering::Relaxed) != (va >> 21) + 1 {
        return None;
    }
    // An index below 512 stays inside the table.
    Some((s.leaf.load(Ordering::Relaxed) as *mut u64).wrapping_add(index(va, 0)))
}

/// The last-level table mapping user address `va` in space `s`, by kernel
/// address: the cached one if it covers `va`, else found by a walk (and
/// cached). `NotMapped` if a table on the way is missing.
#[inline(always)]
fn leaf_table(s: &Space, va: u64) -> Result<*mut u64, MemError> {
    if s.leaf_tag.load(Ordering::Relaxed) == (va >> 21) + 1 {
        return Ok(s.leaf.load(Ordering::Relaxed) as *mut u64);
    }
    walk(s, va)
}

#[cold]
#[inline(never)]
fn walk(s: &Space, va: u64) -> Result<*mut u64, MemError> {
    let window = phys_offset();
    let mut table = s.root.load(Ordering::Relaxed);
    for level in (1..4).rev() {
        // SAFETY: `table` is a page-table frame of this live space (its
        // root or reached from it), mapped by the physical window.
        let e = unsafe { *((window + table) as *const u64).add(index(va, level)) };
        if e & pte::PRESENT == 0 || e & pte::HUGE != 0 {
            return Err(MemError::NotMapped);
        }
        table = e & pte::ADDR;
    }
    let leaf = window + table;
    s.leaf.store(leaf, Ordering::Relaxed);
    s.leaf_tag.store((va >> 21) + 1, Ordering::Relaxed);
    Ok(leaf as *mut u64)
}

/// The entry mapping user page `va` in space `s` (possibly empty).
#[inline(always)]
fn entry(s: &Space, va: u64) -> Result<*mut u64, MemError> {
    // An index below 512 stays inside the table.
    Ok(leaf_table(s, va)?.wrapping_add(index(va, 0)))
}

/// The address of the last-level entry for user page `va` in context
/// `id`, if its table exists (the entry itself may be empty). It stays
/// valid until the context is destroyed.
pub fn pte_slot(id: u64, va: u64) -> Option<*mut u64> {
    entry(space(id).ok()?, va).ok()
}

/// The page-table bits of each protection, by `Prot` discriminant (one
/// load instead of a chain of selects).
const FLAGS: [u64; 3] = {
    let mut t = [0; 3];
    // Present but supervisor-only: ring 3 faults with a protection violation.
    t[Prot::None as usize] = pte::WRITABLE | pte::NO_EXECUTE;
    t[Prot::Read as usize] = pte::USER;
    t[Prot::ReadWrite as usize] = pte::USER | pte::WRITABLE | pte::NO_EXECUTE;
    t
};

#[inline(always)]
fn flags(prot: Prot) -> u64 {
    FLAGS[prot as usize]
}

fn prot_of(entry: u64) -> Prot {
    match (entry & pte::USER != 0, entry & pte::WRITABLE != 0) {
        (false, _) => Prot::None,
        (true, false) => Prot::Read,
        (true, true) => Prot::ReadWrite,
    }
}

fn map_error(e: MapError) -> MemError {
    match e {
        MapError::OutOfMemory => MemError::OutOfMemory,
        MapError::AlreadyMapped => MemError::AlreadyMapped,
        MapError::NotMapped | MapError::HugePage => MemError::NotMapped,
        MapError::BadAddress => MemError::NotUser,
    }
}

/// Whether `root` is in CR3 (the strands module tracks what it loaded).
#[inline(always)]
fn active(root: u64) -> bool {
    crate::strands::loaded_root() == root
}

/// Run `f` on each last-level table covering `pages` pages from `va`, as
/// `(table, first index, count, first page address)`.
#[inline(always)]
fn each_table(
    s: &Space,
    va: u64,
    pages: u64,
    mut f: impl FnMut(*mut u64, usize, usize, u64) -> Result<(), MemError>,
) -> Result<(), MemError> {
    let mut page = va;
    let mut left = pages;
    while left > 0 {
        let first = index(page, 0);
        let n = left.min(512 - first as u64);
        f(leaf_table(s, page)?, first, n as usize, page)?;
        page += n * 4096;
        left -= n;
    }
    Ok(())
}

/// Change the protection of `pages` mapped pages from `va`: all or
/// nothing (every page must be mapped). Returns how many pages'
/// protection changed. Every procedure on this path answers a
/// [`Changed`] (one register), never a `Result<u64, _>` (which travels
/// through memory when a call is not inlined).
#[inline(always)]
fn protect(id: u64, va: u64, pages: u64, prot: Prot) -> Changed {
    let s = match space(id) {
        Ok(s) => s,
        Err(e) => return Changed::error(e),
    };
    if pages == 1 {
        protect_one(s, va, flags(prot), active(s.root.load(Ordering::Relaxed)))
    } else {
        protect_many(s, va, pages, flags(prot))
    }
}

/// Protection bits `protect` replaces.
const PROT_BITS: u64 = pte::USER | pte::WRITABLE | pte::NO_EXECUTE;

/// The common case (prot1, a fault handler's fix): one entry, through the
/// cached table: a load, a test, two bit operations, a store, `invlpg`.
/// A cache miss goes out of line (so the hit path needs no stack frame).
/// `flush`: the space is loaded, so the TLB entry must go.
#[inline(always)]
fn protect_one(s: &Space, va: u64, set: u64, flush: bool) -> Changed {
    match cached_entry(s, va) {
        Some(e) => protect_entry(e, va, set, flush),
        None => protect_one_walking(s, va, set, flush),
    }
}

#[cold]
#[inline(never)]
fn protect_one_walking(s: &Space, va: u64, set: u64, flush: bool) -> Changed {
    match entry(s, va) {
        Ok(e) => protect_entry(e, va, set, flush),
        Err(e) => Changed::error(e),
    }
}

/// One entry: 1 page changed, or 0 if it already had `set`.
#[inline(always)]
fn protect_entry(e: *mut u64, va: u64, set: u64, flush: bool) -> Changed {
    // SAFETY: `e` points into a live last-level table of this space.
    let old = unsafe { *e };
    if old & pte::PRESENT == 0 {
        return Changed::error(MemError::NotMapped);
    }
    let new = (old & !PROT_BITS) | set;
    // SAFETY: as above; nothing else refers to the entry now.
    unsafe { *e = new };
    if flush {
        shared_hal::cpu::invlpg(va);
    }
    Changed::pages((new != old) as u64)
}

/// Several pages, table by table: a first pass checks every entry is
/// present (a load and a test each), the second rewrites them (a load,
/// two bit operations, a compare, a store each, and an `invlpg` each up
/// to `FLUSH_ALL_ABOVE` pages, one CR3 reload above).
#[inline(never)]
fn protect_many(s: &Space, va: u64, pages: u64, set: u64) -> Changed {
    protect_many_result(s, va, pages, set).into()
}

#[inline(always)]
fn protect_many_result(s: &Space, va: u64, pages: u64, set: u64) -> Result<u64, MemError> {
    each_table(s, va, pages, |t, first, n, _| {
        // SAFETY: `t` is a live last-level table; `first + n <= 512`.
        let entries = unsafe { core::slice::from_raw_parts(t.add(first), n) };
        if entries.iter().any(|e| e & pte::PRESENT == 0) { Err(MemError::NotMapped) } else { Ok(()) }
    })?;
    let loaded = active(s.root.load(Ordering::Relaxed));
    let flush_each = loaded && pages <= FLUSH_ALL_ABOVE;
    let mut changed = 0;
    each_table(s, va, pages, |t, first, n, page| {
        // SAFETY: as above; nothing else refers to these entries now.
        let entries = unsafe { core::slice::from_raw_parts_mut(t.add(first), n) };
        let mut at = page;
        for e in entries {
            let new = (*e & !PROT_BITS) | set;
            changed += (new != *e) as u64;
            *e = new;
            if flush_each {
                shared_hal::cpu::invlpg(at);
            }
            at += 4096;
        }
        Ok(())
    })?;
    if loaded && !flush_each && changed > 0 {
        // SAFETY: writing back the loaded CR3 flushes the TLB's non-global
        // entries and changes nothing else.
        unsafe { shared_hal::cpu::set_cr3(shared_hal::cpu::cr3()) };
    }
    Ok(changed)
}

/// Above this many pages, one CR3 reload (flushing every user entry) is
/// cheaper than an `invlpg` per page (as kernel-exo's `bind::protect`
/// and Linux's `tlb_single_page_flush_ceiling` of 33 decide).
const FLUSH_ALL_ABOVE: u64 = 32;

/// The present entry mapping `va` in context `id`.
#[inline(always)]
fn present(id: u64, va: u64) -> Result<u64, MemError> {
    present_in(space(id)?, va)
}

/// The present entry mapping `va` in space `s`.
#[inline(always)]
fn present_in(s: &Space, va: u64) -> Result<u64, MemError> {
    let e = match cached_entry(s, va) {
        // SAFETY: `e` points into a live last-level table.
        Some(e) => unsafe { *e },
        None => return present_walking(s, va),
    };
    if e & pte::PRESENT == 0 { Err(MemError::NotMapped) } else { Ok(e) }
}

#[cold]
#[inline(never)]
fn present_walking(s: &Space, va: u64) -> Result<u64, MemError> {
    // SAFETY: `entry` points into a live last-level table.
    let e = unsafe { *entry(s, va)? };
    if e & pte::PRESENT == 0 { Err(MemError::NotMapped) } else { Ok(e) }
}

fn map(ctx: u64, va: u64, frame: u64, prot: Prot) -> Result<(), MemError> {
    paging::map(root_of(ctx)?, va, frame, flags(prot)).map_err(map_error)
}

fn unmap(ctx: u64, va: u64) -> Result<u64, MemError> {
    let root = root_of(ctx)?;
    let old = paging::unmap(root, va).map_err(map_error)?;
    if active(root) {
        shared_hal::cpu::invlpg(va);
    }
    Ok(old & pte::ADDR)
}

fn examine(ctx: u64, va: u64) -> Result<Mapping, MemError> {
    let e = present(ctx, va)?;
    Ok(Mapping {
        frame: e & pte::ADDR,
        prot: prot_of(e),
        dirty: e & pte::DIRTY != 0,
        accessed: e & pte::ACCESSED != 0,
    })
}

fn dirty(ctx: u64, va: u64) -> Result<bool, MemError> {
    Ok(present(ctx, va)? & pte::DIRTY != 0)
}

/// The space of the process the current strand runs in, without the
/// generation and liveness checks a context number needs: the running
/// strand's tag names a live process (`process::reap` refuses while any
/// strand, its own or a cross-address-space visitor, is tagged with it,
/// and a strand's tag is cleared when its thread ends), so its space is
/// live, and it is the one loaded in CR3 (`strands` loads a strand's root
/// whenever it runs or its space changes).
#[inline(always)]
fn current_space() -> Result<&'static Space, MemError> {
    let pid = crate::process::current_pid().ok_or(MemError::NoContext)?;
    let id = crate::process::context_of(pid);
    // A live context's slot is below MAX_SPACES (a power of two): the
    // mask changes nothing but spares a bounds check.
    const _: () = assert!(MAX_SPACES.is_power_of_two());
    let s = &SPACES[(id as usize) & (MAX_SPACES - 1)];
    debug_assert!(space(id).is_ok() && active(s.root.load(Ordering::Relaxed)));
    Ok(s)
}

fn protect_current(range: VirtRange, prot: Prot) -> Changed {
    let s = match current_space() {
        Ok(s) => s,
        Err(e) => return Changed::error(e),
    };
    match range.pages() {
        // Loaded: always flush.
        1 => protect_one(s, range.start(), flags(prot), true),
        pages => protect_many(s, range.start(), pages, flags(prot)),
    }
}

fn dirty_current(va: u64) -> Result<bool, MemError> {
    Ok(present_in(current_space()?, va)? & pte::DIRTY != 0)
}

/// The kernel's Translation procedures, bound into the interface at boot.
static CORE: translation::Core = translation::Core {
    create,
    destroy,
    map,
    unmap,
    protect,
    examine,
    dirty,
    protect_current,
    dirty_current,
};

/// Install the Translation implementation.
pub fn install(key: &spin_interface::KernelKey) {
    translation::install(key, &CORE);
}
