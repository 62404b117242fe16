//! Secure bindings for memory: the library OS decides every
//! virtual-to-physical mapping; the kernel checks each one against a
//! capability when it is bound and then lets the MMU enforce it on every
//! access.
//!
//! One call applies a batch. Each binding is checked and applied in turn;
//! the first bad one stops the batch (the ones before it stay applied and
//! the caller learns how many). Three kinds (see `exo_abi::Binding`):
//!
//! - *bind* checks the capability (held by the target, WRITE right for a
//!   writable mapping) and installs the entry, recording in the entry's
//!   OS-available bit `MAY_WRITE` whether the capability allows writing;
//! - *reprotect* (`cap == CAP_KEEP`) is the measured fast path of every
//!   protection change: authorisation happened at bind time, so it only
//!   checks the address and that WRITE is asked for only where
//!   `MAY_WRITE` says the capability allowed it, and rewrites the
//!   permission bits (keeping accessed/dirty unless `CLEAR_AD`);
//! - *unbind* removes the entry.
//!
//! [`protect`] reprotects a whole range in one call (no list to copy): the
//! range is checked once, then a tight loop rewrites each page's entry.

use crate::fast::envtab;
use crate::kernel::Kernel;
use crate::pages;
use crate::pt;
use core::sync::atomic::Ordering::Relaxed;
use exo_abi::layout::{RESERVED_END, RESERVED_START, USER_END, USER_START, pte};
use exo_abi::{Binding, CAP_KEEP, Error, MAX_MAPPINGS_PER_CAP, PROTECT_MAX, Prot, Rights};
use shared_hal::memory;

/// Check a binding's virtual address: page aligned, in user space, not
/// in the kernel-managed window.
#[inline(always)]
fn check_va(va: u64) -> Result<(), Error> {
    if va & 0xfff != 0 {
        return Err(Error::Unaligned);
    }
    // Two unsigned range checks, each one subtraction and one comparison.
    if va.wrapping_sub(USER_START) >= USER_END - USER_START
        || va.wrapping_sub(RESERVED_START) < RESERVED_END - RESERVED_START
    {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// Check the protection bits of a bind or reprotect (not an unbind).
#[inline(always)]
fn check_prot(prot: u64) -> Result<(), Error> {
    if prot & !Prot::VALID_BITS != 0 || prot & Prot::READ.0 == 0 {
        return Err(Error::BadArgument);
    }
    Ok(())
}

/// The permission bits of an entry bound with `prot`.
#[inline(always)]
pub(crate) const fn permission_bits(prot: u64) -> u64 {
    // Prot::WRITE and the entry's WRITABLE bit are both bit 1.
    const _: () = assert!(Prot::WRITE.0 == pte::WRITABLE);
    let nx = if prot & Prot::EXEC.0 == 0 { pte::NO_EXECUTE } else { 0 };
    pte::PRESENT | pte::USER | (prot & Prot::WRITE.0) | nx
}

/// A cache of the last-level table the previous binding used (batches
/// usually touch neighbouring pages): the 2 MiB region it covers and the
/// table's kernel address.
#[derive(Default, Clone, Copy)]
pub struct LeafCache {
    tag: u64,
    table: u64,
}

impl LeafCache {
    /// The kernel address of the entry for `va`, if `va` is in the cached table.
    #[inline(always)]
    fn entry(&self, va: u64) -> Option<*mut u64> {
        (Self::tag(va) == self.tag).then(|| (self.table + ((va >> 9) & 0xff8)) as *mut u64)
    }

    fn fill(&mut self, va: u64, table_pa: u64) -> *mut u64 {
        *self = LeafCache { tag: Self::tag(va), table: memory::phys_to_virt(table_pa) };
        (self.table + ((va >> 9) & 0xff8)) as *mut u64
    }

    /// The 2 MiB region of `va`, plus one so that no tag is 0 (the empty
    /// cache). User addresses are below 2^47: no overflow. (`fast::protect`
    /// computes the same tag in assembly.)
    pub const fn tag(va: u64) -> u64 {
        (va >> 21) + 1
    }

    /// Environment slot `t`'s cache, kept in its fast descriptor.
    fn load(t: usize) -> LeafCache {
        let fe = envtab::slot(t);
        LeafCache { tag: fe.leaf_tag.load(Relaxed), table: fe.leaf_table.load(Relaxed) }
    }

    fn store(self, t: usize) {
        let fe = envtab::slot(t);
        // Never the first 2 MiB, which holds the kernel-managed window:
        // `fast::protect` relies on a tag match meaning "a validated user
        // region outside that window" and skips the range checks.
        let tag = if self.tag == Self::tag(0) { 0 } else { self.tag };
        fe.leaf_table.store(self.table, Relaxed);
        fe.leaf_tag.store(tag, Relaxed);
    }
}

/// Apply `list` to environment `t`'s address space. Returns how many
/// bindings were applied, and the error that stopped the batch.
pub fn bind(k: &mut Kernel, t: usize, list: &[Binding], cache: &mut LeafCache) -> (u64, Result<(), Error>) {
    let root = k.env(t).root;
    let active = shared_hal::cpu::cr3() & pte::ADDR == root;
    for (n, b) in list.iter().enumerate() {
        let r = if b.cap == CAP_KEEP && b.prot != Prot::UNMAP.0 {
            reprotect(root, active, b, cache).map(|_| ())
        } else {
            bind_or_unbind(k, t, root, active, b, cache)
        };
        if let Err(e) = r {
            return (n as u64, Err(e));
        }
    }
    (list.len() as u64, Ok(()))
}

/// The fast path: change the protection of the page bound at `b.va`.
#[inline(always)]
/// `Ok(true)` if the entry changed (false: it already had this protection).
fn reprotect(root: u64, active: bool, b: &Binding, cache: &mut LeafCache) -> Result<bool, Error> {
    check_va(b.va)?;
    check_prot(b.prot)?;
    let entry = match cache.entry(b.va) {
        Some(e) => e,
        None => cache.fill(b.va, pt::existing_leaf_table(root, b.va).ok_or(Error::BadAddress)?),
    };
    // SAFETY: `entry` points into a last-level table of `root`, reached
    // through the physical window; the kernel alone writes page tables, on
    // one CPU with interrupts off.
    let old = unsafe { entry.read() };
    if old & pte::PRESENT == 0 {
        return Err(Error::BadAddress);
    }
    if b.prot & Prot::WRITE.0 != 0 && old & pte::MAY_WRITE == 0 {
        return Err(Error::NoRights);
    }
    let keep = if b.prot & Prot::CLEAR_AD.0 != 0 {
        pte::ADDR | pte::MAY_WRITE
    } else {
        pte::ADDR | pte::MAY_WRITE | pte::ACCESSED | pte::DIRTY
    };
    let new = (old & keep) | permission_bits(b.prot);
    // SAFETY: as above.
    unsafe { entry.write(new) };
    if active {
        shared_hal::cpu::invlpg(b.va);
    }
    Ok(new != old)
}

/// Bind a capability's page at `b.va`, or unbind `b.va`.
fn bind_or_unbind(
    k: &mut Kernel,
    t: usize,
    root: u64,
    active: bool,
    b: &Binding,
    cache: &mut LeafCache,
) -> Result<(), Error> {
    check_va(b.va)?;
    let id = k.env(t).id;
    let flush = |va| {
        if active {
            shared_hal::cpu::invlpg(va);
        }
    };
    if b.prot == Prot::UNMAP.0 {
        if let Some(old) = pt::clear(root, b.va) {
            flush(b.va);
            pages::forget_mapping(k, id, pages::entry_pa(old), b.va);
        }
        return Ok(());
    }
    check_prot(b.prot)?;
    let cap = crate::caps::held(k, id, b.cap)?;
    let may_write = cap.rights.contains(Rights::WRITE);
    if b.prot & Prot::WRITE.0 != 0 && !may_write {
        return Err(Error::NoRights);
    }
    let pa = cap.pa;
    let entry = match cache.entry(b.va) {
        Some(e) => e,
        None => {
            let env = k.env_mut(t);
            let table = pt::leaf_table(root, b.va, &mut || {
                if env.used >= env.quota {
                    return Err(Error::QuotaExceeded);
                }
                let frame = memory::alloc_zeroed_frame().ok_or(Error::OutOfMemory)?;
                env.used += 1;
                Ok(frame)
            })?;
            cache.fill(b.va, table)
        }
    };
    let mut new = pa | permission_bits(b.prot);
    if may_write {
        new |= pte::MAY_WRITE;
    }
    // SAFETY: `entry` points into a last-level table of `root` (see reprotect).
    let old = unsafe { entry.read() };
    let rebind = old & pte::PRESENT != 0 && pages::entry_pa(old) == pa;
    if !rebind {
        // A new address for this page: make room to record it first, so
        // nothing below can fail.
        let mappings = &mut k.caps.get_mut(b.cap).expect("checked above").mappings;
        if mappings.len() >= MAX_MAPPINGS_PER_CAP {
            return Err(Error::Limit);
        }
        mappings.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
    }
    if rebind {
        // Same page, hence bound with this very capability (one per
        // environment and page): only the permissions change.
        if b.prot & Prot::CLEAR_AD.0 == 0 {
            new |= old & (pte::ACCESSED | pte::DIRTY);
        }
        // SAFETY: as above.
        unsafe { entry.write(new) };
        flush(b.va);
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { entry.write(new) };
    if old & pte::PRESENT != 0 {
        flush(b.va);
        pages::forget_mapping(k, id, pages::entry_pa(old), b.va);
    }
    k.caps.get_mut(b.cap).expect("checked above").mappings.push(b.va);
    Ok(())
}

/// Above this many pages, one CR3 reload (flushing every user entry) is
/// cheaper than an `invlpg` per page.
const FLUSH_ALL_ABOVE: u64 = 32;

/// Change the protection of the `pages` pages bound from `va` on in
/// environment `t`'s address space. On success, returns how many entries
/// changed (a page that already had `prot`, and kept its accessed/dirty
/// bits, does not count: the benchmarks check every timed call changed
/// what it should); on an error, how many pages were reprotected before
/// the one that stopped the loop (a page with nothing bound, or WRITE
/// where the capability did not allow it).
pub fn protect(k: &mut Kernel, t: usize, va: u64, pages: u64, prot: u64) -> (u64, Result<(), Error>) {
    if pages == 1 {
        // One page (what a fault handler asks for): straight-line code.
        // (The caller's own page with a cached table never gets here: see
        // `fast::protect`.)
        let root = k.env(t).root;
        let active = shared_hal::cpu::cr3() & pte::ADDR == root;
        let mut cache = LeafCache::load(t);
        let r = reprotect(root, active, &Binding { va, cap: CAP_KEEP, prot }, &mut cache);
        cache.store(t);
        return match r {
            Ok(changed) => (changed as u64, Ok(())),
            Err(e) => (0, Err(e)),
        };
    }
    // One pass of comparisons for a valid request; working out which rule
    // a bad one broke is left to the cold path.
    let end = va.wrapping_add(pages << 12);
    let valid = pages.wrapping_sub(1) < PROTECT_MAX
        && va & 0xfff == 0
        && prot & !Prot::VALID_BITS == 0
        && prot & Prot::READ.0 != 0
        && va >= USER_START
        // `end` wraps past 2^64 for a start high in the kernel half; a
        // range that wrapped ends below its start.
        && va < end
        && end <= USER_END
        && (va >= RESERVED_END || end <= RESERVED_START);
    if !valid {
        return (0, Err(protect_error(va, pages, prot)));
    }
    let root = k.env(t).root;
    let mut cache = LeafCache::load(t);
    let cache = &mut cache;
    let active = shared_hal::cpu::cr3() & pte::ADDR == root;
    let flush_each = active && pages <= FLUSH_ALL_ABOVE;
    let needs_write = prot & Prot::WRITE.0 != 0;
    let keep = pte::ADDR
        | pte::MAY_WRITE
        | if prot & Prot::CLEAR_AD.0 != 0 { 0 } else { pte::ACCESSED | pte::DIRTY };
    let bits = permission_bits(prot);
    let (mut done, mut changed, mut va) = (0, 0, va);
    let mut result = Ok(());
    'tables: while done < pages {
        let mut entry = match cache.entry(va) {
            Some(e) => e,
            None => match pt::existing_leaf_table(root, va) {
                Some(table) => cache.fill(va, table),
                None => {
                    result = Err(Error::BadAddress);
                    break;
                }
            },
        };
        let n = (512 - ((va >> 12) & 511)).min(pages - done);
        for _ in 0..n {
            // SAFETY: `entry` walks the entries of one last-level table of
            // `root` (at most to its end), reached through the physical
            // window; the kernel alone writes page tables, on one CPU with
            // interrupts off.
            let old = unsafe { entry.read() };
            if old & pte::PRESENT == 0 {
                result = Err(Error::BadAddress);
                break 'tables;
            }
            if needs_write && old & pte::MAY_WRITE == 0 {
                result = Err(Error::NoRights);
                break 'tables;
            }
            let new = (old & keep) | bits;
            changed += (new != old) as u64;
            // SAFETY: as above.
            unsafe {
                entry.write(new);
                entry = entry.add(1);
            }
            if flush_each {
                shared_hal::cpu::invlpg(va);
            }
            va += 4096;
            done += 1;
        }
    }
    cache.store(t);
    if active && !flush_each && done > 0 {
        // SAFETY: reloading the active root flushes the TLB and changes nothing else.
        unsafe { shared_hal::cpu::set_cr3(root) };
    }
    match result {
        Ok(()) => (changed, Ok(())),
        Err(e) => (done, Err(e)),
    }
}

/// Why a `protect` request is invalid (the cold half of its checks).
#[cold]
fn protect_error(va: u64, pages: u64, prot: u64) -> Error {
    if pages == 0 || pages > PROTECT_MAX {
        return Error::BadLength;
    }
    if let Err(e) = check_va(va).and(check_prot(prot)) {
        return e;
    }
    // The first page is fine, so the range runs past user space or into
    // the kernel-managed window.
    Error::BadAddress
}
