//! ExOS's view of its address space, kept in private memory:
//!
//! - **regions** (a small sorted table in the runtime page): what each
//!   range of addresses is for, the most protection its pages may have,
//!   how faults in it are handled;
//! - **page records** (a sorted, growable array): for every page ExOS
//!   bound, the capability it holds for it, the page number and flags
//!   (owned, copy-on-write, ...). The current protection and the
//!   accessed/dirty bits are not copied here: the kernel exposes them in
//!   the read-only self-map, and [`pte`] reads them there;
//! - **shares**: grants of our pages to forked children (copy-on-write),
//!   so that we know whether a child still uses a page;
//! - **retired** pages: ones we copied away from while a child still
//!   holds a grant; freed once no grant is left.
//!
//! Callers change the view inside a critical section on a private stack
//! (`crate::private::on_exos_stack`); the fault path reads and updates
//! single records in place.

use crate::private::{self, Array, RegionRec, rt};
use exo_abi::layout::{pte as bits, selfmap};
use exo_abi::{Cap, Error};

/// One page ExOS bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PageRec {
    pub va: u64,
    /// The capability we hold for it (owner capability or a grant).
    pub cap: u64,
    /// Its physical page number.
    pub ppn: u64,
    /// [`page`] flag bits.
    pub flags: u16,
    /// The pager's age: scans since it was last seen accessed.
    pub age: u16,
    /// Mapping order (wraps).
    pub seq: u32,
}

/// Page record flags.
pub mod page {
    /// We hold the owner capability (else a grant).
    pub const OWNED: u16 = 1;
    /// Copy-on-write: shared with a forked relative; a write copies it.
    pub const COW: u16 = 2;
    /// A copy-on-write page the application protected read-only: a write
    /// fault is the application's, not a copy.
    pub const APP_RO: u16 = 4;
    /// Written at some point (sticky; the pager's scans clear the
    /// hardware bit and remember it here).
    pub const DIRTY: u16 = 8;
}

/// A grant of one of our pages to another environment (a forked child).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Share {
    pub ppn: u64,
    pub grant: u64,
}

/// A page we no longer use but may not free yet (a child holds a grant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Retired {
    pub ppn: u64,
    pub cap: u64,
}

const REC: usize = core::mem::size_of::<PageRec>();
const _: () = assert!(4096 % REC == 0 && 4096 % core::mem::size_of::<Share>() == 0);

fn slice<T>(base: u64, a: &Array) -> &'static mut [T] {
    // SAFETY: the array's first `len` elements are mapped (private pages
    // at `base`) and initialised; only ExOS code reaches them.
    unsafe { core::slice::from_raw_parts_mut(base as *mut T, a.len as usize) }
}

/// The page records, sorted by address.
pub fn pages() -> &'static mut [PageRec] {
    slice(private::PAGES_VA, &rt().pages)
}

pub fn shares() -> &'static mut [Share] {
    slice(private::SHARES_VA, &rt().shares)
}

pub fn retired() -> &'static mut [Retired] {
    slice(private::RETIRED_VA, &rt().retired)
}

/// Where the record for `va` is (`Ok`), or where it would go (`Err`).
pub fn find(va: u64) -> Result<usize, usize> {
    pages().binary_search_by_key(&va, |p| p.va)
}

/// The record of the page at `va`.
pub fn record(va: u64) -> Option<&'static mut PageRec> {
    let i = find(va).ok()?;
    Some(&mut pages()[i])
}

fn push<T: Copy>(base: u64, which: fn() -> &'static mut Array, v: T, at: Option<usize>) -> Result<(), Error> {
    let a = which();
    if a.len == a.cap {
        private::grow(base, a, core::mem::size_of::<T>())?;
    }
    let len = a.len as usize;
    let at = at.unwrap_or(len);
    // SAFETY: capacity covers len + 1 elements of mapped private memory.
    unsafe {
        let p = base as *mut T;
        core::ptr::copy(p.add(at), p.add(at + 1), len - at);
        p.add(at).write(v);
    }
    a.len += 1;
    Ok(())
}

fn remove_at<T: Copy>(base: u64, a: &mut Array, at: usize) {
    let len = a.len as usize;
    // SAFETY: `at < len`, all mapped and initialised.
    unsafe {
        let p = base as *mut T;
        core::ptr::copy(p.add(at + 1), p.add(at), len - at - 1);
    }
    a.len -= 1;
}

/// Add a record (the address must not have one).
pub fn insert(rec: PageRec) -> Result<(), Error> {
    match find(rec.va) {
        Ok(_) => Err(Error::BadState),
        Err(at) => push(private::PAGES_VA, || &mut rt().pages, rec, Some(at)),
    }
}

/// Forget the record at index `i`.
pub fn remove(i: usize) {
    remove_at::<PageRec>(private::PAGES_VA, &mut rt().pages, i);
}

/// The next mapping sequence number.
pub fn next_seq() -> u32 {
    let r = rt();
    r.seq = r.seq.wrapping_add(1);
    r.seq as u32
}

pub fn add_share(s: Share) -> Result<(), Error> {
    push(private::SHARES_VA, || &mut rt().shares, s, None)
}

pub fn add_retired(r: Retired) -> Result<(), Error> {
    push(private::RETIRED_VA, || &mut rt().retired, r, None)
}

/// Whether some environment still holds one of the grants we gave of
/// page `ppn`; forgets the ones no longer held.
pub fn shared(ppn: u64) -> bool {
    let mut live = false;
    let mut i = 0;
    while i < shares().len() {
        let s = shares()[i];
        if s.ppn != ppn {
            i += 1;
        } else if crate::sys::cap_info(Cap(s.grant)).is_ok() {
            live = true;
            i += 1;
        } else {
            remove_at::<Share>(private::SHARES_VA, &mut rt().shares, i);
        }
    }
    live
}

/// Free the retired pages no child uses any more; returns how many.
pub fn collect_retired() -> u64 {
    let mut freed = 0;
    let mut i = 0;
    while i < retired().len() {
        let r = retired()[i];
        if shared(r.ppn) {
            i += 1;
            continue;
        }
        // SAFETY: a retired page is bound nowhere in our address space.
        let _ = unsafe { crate::sys::page_free(Cap(r.cap)) };
        remove_at::<Retired>(private::RETIRED_VA, &mut rt().retired, i);
        freed += 1;
    }
    freed
}

// ---- regions ------------------------------------------------------------

#[inline(always)]
pub fn regions() -> &'static mut [RegionRec] {
    let r = rt();
    &mut r.regions[..r.nregions as usize]
}

/// The index of the region containing `va`.
#[inline]
pub fn region_of(va: u64) -> Option<usize> {
    let r = rt();
    let cached = r.last_region as usize;
    if cached < r.nregions as usize {
        let c = &r.regions[cached];
        if va.wrapping_sub(c.start) < c.end - c.start {
            return Some(cached);
        }
    }
    let i = regions().iter().position(|g| (g.start..g.end).contains(&va))?;
    set_last(i);
    Some(i)
}

/// Whether `start..end` overlaps a region.
pub fn overlaps(start: u64, end: u64) -> bool {
    regions().iter().any(|g| g.start < end && start < g.end)
}

/// Add a region (sorted by address; it must not overlap another).
pub fn add_region(g: RegionRec) -> Result<(), Error> {
    let r = rt();
    if overlaps(g.start, g.end) {
        return Err(Error::BadState);
    }
    let n = r.nregions as usize;
    if n == private::MAX_REGIONS {
        return Err(Error::Limit);
    }
    let at = r.regions[..n].iter().position(|x| x.start > g.start).unwrap_or(n);
    r.regions.copy_within(at..n, at + 1);
    regions_changed();
    r.regions[at] = g;
    r.regions[at].flags = with_handler_flag(g.flags, g.handler);
    r.nregions += 1;
    set_last(at);
    Ok(())
}

pub fn remove_region(i: usize) {
    let r = rt();
    let n = r.nregions as usize;
    regions_changed();
    r.regions.copy_within(i + 1..n, i);
    // Slots past the last region stay zeroed: `exception`'s fast path
    // reads the cached slot without checking the count (an empty slot
    // contains no address).
    r.regions[n - 1] = RegionRec::default();
    r.nregions -= 1;
    set_last(0);
}

/// The region table changed: the fault being handled (if any) no longer
/// has a region `Fault::protect` may trust.
#[inline(always)]
pub fn regions_changed() {
    rt().fault_off = u64::MAX;
}

/// Make slot `i` the one-entry region cache.
#[inline(always)]
pub fn set_last(i: usize) {
    let r = rt();
    r.last_region = i as u64;
    r.last_off = (i * core::mem::size_of::<RegionRec>()) as u64;
}

/// `flags` with `region::NO_HANDLER` set exactly when `handler` is 0.
pub fn with_handler_flag(flags: u32, handler: u64) -> u32 {
    let f = flags & !super::region::NO_HANDLER;
    if handler == 0 { f | super::region::NO_HANDLER } else { f }
}

// ---- the exposed page tables --------------------------------------------

#[inline(always)]
fn read(addr: u64) -> u64 {
    // SAFETY: callers read self-map addresses whose upper levels they have
    // checked are present, so the access cannot fault; the kernel updates
    // the tables behind our back, hence the volatile read.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Our page-table entry for `va` (through the read-only self-map), if the
/// page is bound: its physical address and the PRESENT, WRITABLE,
/// ACCESSED, DIRTY and NO_EXECUTE bits (`exo_abi::layout::pte`).
#[inline]
pub fn pte(va: u64) -> Option<u64> {
    for addr in [selfmap::pml4e(va), selfmap::pdpte(va), selfmap::pde(va)] {
        let e = read(addr);
        if e & bits::PRESENT == 0 || e & bits::HUGE != 0 {
            return None;
        }
    }
    let e = read(selfmap::pte(va));
    (e & bits::PRESENT != 0).then_some(e)
}

/// Every page bound in `lo..hi`, in address order, from the self-map
/// (skipping absent tables a whole table at a time).
pub fn walk(lo: u64, hi: u64, mut f: impl FnMut(u64, u64)) {
    let mut va = lo & !0xfff;
    while va < hi {
        let levels = [(selfmap::pml4e(va), 39), (selfmap::pdpte(va), 30), (selfmap::pde(va), 21)];
        let mut skip = 0;
        for (addr, shift) in levels {
            let e = read(addr);
            if e & bits::PRESENT == 0 || e & bits::HUGE != 0 {
                skip = shift;
                break;
            }
        }
        if skip != 0 {
            va = (va | ((1u64 << skip) - 1)) + 1;
            continue;
        }
        let e = read(selfmap::pte(va));
        if e & bits::PRESENT != 0 {
            f(va, e);
        }
        va += 4096;
    }
}
