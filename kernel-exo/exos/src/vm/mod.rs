//! Virtual memory, managed in ring 3.
//!
//! The kernel only checks and installs the bindings ExOS asks for; ExOS
//! decides what lives where and keeps its own view of the address space
//! ([`view`]): *regions* (what a range is for, the most protection its
//! pages may get, who handles its faults) and a record of every page it
//! bound (the capability, the page number, copy-on-write state). The
//! current protection and the accessed/dirty bits it reads from the
//! kernel's read-only self-map instead of keeping copies.
//!
//! - [`Mapping`]: make a region and fill it with fresh pages (or let
//!   faults fill it on demand, or hand its faults to the application);
//! - [`protect`]: change the protection of one page or a range, in one
//!   system call;
//! - [`is_dirty`]: the dirty bit, from the exposed page tables;
//! - [`unmap`]: give pages back;
//! - faults arrive through the user-level exception path ([`fault`]): the
//!   region's handler resolves them (or ExOS does, for copy-on-write and
//!   demand-zero pages) and the faulting code resumes.
//!
//! Errors are [`VmError`]s, never panics: bad ranges, overlaps, addresses
//! ExOS does not manage, protections a region does not allow.

pub mod fault;
mod pages;
pub mod view;

pub use fault::{Action, Fault, FaultHandler};
pub(crate) use pages::{ensure_window, new_private_stack_locked, populate_locked, release_locked};
pub use pages::{init, map_grants, new_private_stack, populate, unmap};
pub use view::pte;

use crate::private::{self, RegionRec, on_exos_stack, rt};
use crate::sys;
use exo_abi::layout::{RESERVED_END, RESERVED_START, USER_END, USER_START, pte as bits};
use exo_abi::{Cap, ENV_SELF, Error, Prot};
use view::{PageRec, page};

/// Why a virtual-memory request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmError {
    /// A system call failed.
    Kernel(Error),
    /// Unaligned, empty, too large, or outside the part of the address
    /// space ExOS hands out (the kernel window, ExOS's private area).
    BadRange,
    /// The range overlaps a region that exists.
    Overlap,
    /// No region (or no page) of the view is there.
    NotMapped,
    /// More protection than the region allows.
    Denied,
}

impl From<Error> for VmError {
    fn from(e: Error) -> Self {
        VmError::Kernel(e)
    }
}

/// What a region is for (`view` records it; fork and the pager read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// The program image the loader bound (adopted at start-up).
    Image = 1,
    /// The initial stack.
    Stack = 2,
    Heap = 3,
    /// ExOS's handler and scheduler stacks.
    PrivateStack = 4,
    ThreadStack = 5,
    /// Memory the application asked for.
    Anon = 6,
    /// Shared with other environments (`crate::ipc`).
    Shared = 7,
}

/// Region flag bits.
pub mod region {
    /// A forked child gets fresh, zeroed pages here, not ours.
    pub const FRESH: u32 = 1;
    /// A forked child gets nothing here.
    pub const NOFORK: u32 = 2;
    /// A fault on a missing page maps a fresh zeroed one.
    pub const ZERO_FILL: u32 = 4;
    /// The pager may give these pages back when the kernel asks for pages
    /// (a later access gets a zeroed page).
    pub const RECLAIMABLE: u32 = 8;
    /// Some page may be copy-on-write: protection changes look at each page.
    pub const HAS_COW: u32 = 16;
    /// The region has no fault handler (kept by `view` from the handler
    /// word, so the exception entry tests one word).
    pub const NO_HANDLER: u32 = 32;
}

/// Where ExOS puts what it places itself (see also `crate::mem`).
pub use crate::mem::{ANON_BASE, ANON_END};

/// Most pages one request may cover.
pub const MAX_PAGES: u64 = 1 << 24;

/// Check `va .. va + pages` is a range ExOS may hand out; returns its end.
pub fn check_range(va: u64, pages: u64) -> Result<u64, VmError> {
    if va & 0xfff != 0 || pages == 0 || pages > MAX_PAGES {
        return Err(VmError::BadRange);
    }
    let end = va.checked_add(pages * 4096).ok_or(VmError::BadRange)?;
    let clashes = |lo: u64, hi: u64| va < hi && lo < end;
    if va < USER_START
        || end > USER_END
        || clashes(RESERVED_START, RESERVED_END)
        || clashes(private::BASE, private::END)
    {
        return Err(VmError::BadRange);
    }
    Ok(end)
}

/// A region to create, built up with the methods below and made by
/// [`Mapping::map`].
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    pages: u64,
    prot: Prot,
    at: Option<u64>,
    kind: Kind,
    flags: u32,
    handler: Option<FaultHandler>,
    populate: bool,
}

impl Mapping {
    /// `pages` fresh, zeroed, read-write pages at an address ExOS picks.
    pub const fn anon(pages: u64) -> Self {
        Self { pages, prot: Prot::RW, at: None, kind: Kind::Anon, flags: 0, handler: None, populate: true }
    }

    /// At this address (which must be free).
    pub const fn at(mut self, va: u64) -> Self {
        self.at = Some(va);
        self
    }

    /// With this protection (also the most the region's pages may get).
    pub const fn prot(mut self, prot: Prot) -> Self {
        self.prot = prot;
        self
    }

    /// Do not allocate the pages now: the first access to each page maps
    /// a zeroed one (demand-zero).
    pub const fn lazy(mut self) -> Self {
        self.populate = false;
        self.flags |= region::ZERO_FILL;
        self
    }

    /// The pager may take these pages when the kernel wants pages back
    /// (they are demand-zero afterwards: the application must be able to
    /// recompute their contents, e.g. a cache).
    pub const fn reclaimable(mut self) -> Self {
        self.flags |= region::RECLAIMABLE | region::ZERO_FILL;
        self
    }

    /// Faults in the region go to `handler` (after ExOS's own
    /// copy-on-write and demand-zero handling).
    pub const fn handler(mut self, handler: FaultHandler) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Only the region: its pages are bound later (`populate`).
    pub(crate) const fn unpopulated(mut self) -> Self {
        self.populate = false;
        self
    }

    pub(crate) const fn kind(mut self, kind: Kind, flags: u32) -> Self {
        self.kind = kind;
        self.flags |= flags;
        self
    }

    /// Create the region; returns its address.
    pub fn map(self) -> Result<u64, VmError> {
        if self.pages == 0 || self.pages > MAX_PAGES {
            return Err(VmError::BadRange);
        }
        if self.handler.is_some() || self.flags & region::ZERO_FILL != 0 {
            // Its faults come to ExOS's exception entry.
            crate::exception::ensure()?;
        }
        on_exos_stack(|| {
            let va = match self.at {
                Some(va) => va,
                None => {
                    let va = rt().next_anon;
                    if va + self.pages * 4096 > ANON_END {
                        return Err(VmError::BadRange);
                    }
                    va
                }
            };
            let end = check_range(va, self.pages)?;
            if view::overlaps(va, end) {
                return Err(VmError::Overlap);
            }
            let g = RegionRec {
                start: va,
                end,
                handler: self.handler.map_or(0, |h| h as *const () as u64),
                flags: self.flags,
                kind: self.kind as u16,
                maxprot: self.prot.0 as u16,
            };
            view::add_region(g)?;
            if self.populate
                && let Err(e) = populate_locked(va, self.pages, self.prot)
            {
                let _ = release_locked(va, self.pages);
                if let Some(i) = view::region_of(va) {
                    view::remove_region(i);
                }
                return Err(e);
            }
            if self.at.is_none() {
                // Leave an unmapped guard page between anonymous regions.
                rt().next_anon = end + 4096;
            }
            Ok(va)
        })
    }
}

/// Change the protection of `pages` pages from `va` (all in one region,
/// all bound): one system call for the whole range. Copy-on-write pages
/// stay read-only until written (then they are copied and get `prot`).
///
/// The fast path (what a fault handler takes) checks the range against
/// the region of the last fault or protection change — the one-entry
/// cache `view::region_of` keeps — and goes straight to the kernel.
#[inline]
pub fn protect(va: u64, pages: u64, prot: Prot) -> Result<(), VmError> {
    protect_counted(va, pages, prot).map(|_| ())
}

/// [`protect`], returning how many pages' protection changed (a page that
/// already had `prot` does not count): how a benchmark checks that every
/// timed call really changed what it says.
#[inline]
pub fn protect_counted(va: u64, pages: u64, prot: Prot) -> Result<u64, VmError> {
    let r = rt();
    let i = r.last_region as usize;
    if i < r.nregions as usize && i < private::MAX_REGIONS {
        let g = &r.regions[i];
        let end = va.wrapping_add(pages << 12);
        // In the region (end > va also rules out 0 pages and overflow),
        // no more protection than it allows, no copy-on-write page in it.
        if va >= g.start
            && end <= g.end
            && end > va
            && prot.0 & !(g.maxprot as u64 | Prot::CLEAR_AD.0) == 0
            && g.flags & region::HAS_COW == 0
        {
            // SAFETY: protection changes of ExOS-managed pages; the
            // application asked for them (a later access it did not
            // allow faults, it does not corrupt memory).
            let (changed, res) = unsafe { sys::protect(ENV_SELF, va, pages, prot) };
            return res.map(|()| changed).map_err(VmError::Kernel);
        }
    }
    protect_general(va, pages, prot)
}

/// `protect` for any region (finds it, handles copy-on-write pages).
#[inline(never)]
fn protect_general(va: u64, pages: u64, prot: Prot) -> Result<u64, VmError> {
    let Some(i) = view::region_of(va) else { return Err(VmError::NotMapped) };
    let g = &view::regions()[i];
    let end = va.wrapping_add(pages << 12);
    if end > g.end || end <= va || prot.0 & !(g.maxprot as u64 | Prot::CLEAR_AD.0) != 0 {
        return Err(protect_error(va, pages, prot));
    }
    if g.flags & region::HAS_COW != 0 {
        return protect_cow(va, pages, prot);
    }
    // SAFETY: as in `protect`.
    let (changed, r) = unsafe { sys::protect(ENV_SELF, va, pages, prot) };
    r.map(|()| changed).map_err(VmError::Kernel)
}

#[cold]
fn protect_error(va: u64, pages: u64, prot: Prot) -> VmError {
    match check_range(va, pages) {
        Err(e) => e,
        Ok(_) if view::region_of(va).is_some_and(|i| va + pages * 4096 > view::regions()[i].end) => {
            VmError::BadRange
        }
        Ok(_) if prot.0 & Prot::READ.0 == 0 || prot.0 & !Prot::VALID_BITS != 0 => {
            VmError::Kernel(Error::BadArgument)
        }
        Ok(_) => VmError::Denied,
    }
}

/// `protect` in a region with copy-on-write pages: page by page, keeping
/// copy-on-write pages read-only and remembering what the application
/// wants for them.
fn protect_cow(va: u64, pages: u64, prot: Prot) -> Result<u64, VmError> {
    on_exos_stack(|| {
        let mut changed = 0;
        let mut at = va;
        let end = va + pages * 4096;
        while at < end {
            let cow = view::record(at).is_some_and(|r| r.flags & page::COW != 0);
            // A run of pages of the same kind, changed with one call.
            let mut run_end = at + 4096;
            while run_end < end && view::record(run_end).is_some_and(|r| r.flags & page::COW != 0) == cow {
                run_end += 4096;
            }
            let mut p = prot;
            if cow {
                p = Prot(prot.0 & !Prot::WRITE.0);
                let mut x = at;
                while x < run_end {
                    if let Some(r) = view::record(x) {
                        if prot.contains(Prot::WRITE) {
                            r.flags &= !page::APP_RO;
                        } else {
                            r.flags |= page::APP_RO;
                        }
                    }
                    x += 4096;
                }
            }
            // SAFETY: as in `protect`.
            let (n, r) = unsafe { sys::protect(ENV_SELF, at, (run_end - at) / 4096, p) };
            r?;
            changed += n;
            at = run_end;
        }
        Ok(changed)
    })
}

/// Whether the page at `va` has been written since it was bound (or since
/// its accessed/dirty bits were last cleared), read from the page tables
/// the kernel exposes.
#[inline]
pub fn is_dirty(va: u64) -> Result<bool, VmError> {
    match view::pte(va & !0xfff) {
        Some(e) => Ok(e & bits::DIRTY != 0),
        None => Err(VmError::NotMapped),
    }
}

/// Hand the faults of the region containing `va` to `handler` (or to
/// nobody: None).
pub fn set_fault_handler(va: u64, handler: Option<FaultHandler>) -> Result<(), VmError> {
    if handler.is_some() {
        crate::exception::ensure()?;
    }
    let _c = private::critical();
    let i = view::region_of(va).ok_or(VmError::NotMapped)?;
    view::regions_changed();
    let g = &mut view::regions()[i];
    g.handler = handler.map_or(0, |h| h as *const () as u64);
    g.flags = view::with_handler_flag(g.flags, g.handler);
    Ok(())
}

/// What the view says about the region containing `va`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    pub start: u64,
    pub end: u64,
    pub kind: u16,
    pub flags: u32,
    pub maxprot: Prot,
}

pub fn region_at(va: u64) -> Option<RegionInfo> {
    let i = view::region_of(va)?;
    let g = view::regions()[i];
    Some(RegionInfo {
        start: g.start,
        end: g.end,
        kind: g.kind,
        flags: g.flags,
        maxprot: Prot(g.maxprot as u64),
    })
}

/// What the view says about the page at `va`: the capability, the page
/// number and the record's flags (`view::page`).
pub fn page_at(va: u64) -> Option<(Cap, u64, u16)> {
    let _c = private::critical();
    view::record(va & !0xfff).map(|r| (Cap(r.cap), r.ppn, r.flags))
}

/// Make room in the view for `n` more page records now, so that mapping
/// that many pages later (e.g. by demand-zero faults) allocates no
/// metadata page. (The kernel's abort protocol takes the newest pages an
/// environment owns; ExOS's own bookkeeping had better not be among them.)
pub fn reserve(n: u64) -> Result<(), VmError> {
    on_exos_stack(|| {
        let a = &mut rt().pages;
        while a.cap < a.len + n {
            private::grow(private::PAGES_VA, a, core::mem::size_of::<PageRec>())?;
        }
        Ok(())
    })
}

/// Free the pages kept only because a forked child still shared them,
/// if no child does any more; returns how many were freed. (ExOS also
/// does this when it reaps a child, forks, or answers a revocation.)
pub fn collect() -> u64 {
    if rt().retired.len == 0 {
        return 0;
    }
    on_exos_stack(view::collect_retired)
}

/// Pages the view records.
pub fn pages_recorded() -> usize {
    view::pages().len()
}

/// Check the view against the page tables: every recorded page is bound
/// at its address to its page. Returns the first address that is not.
pub fn audit() -> Result<(), u64> {
    let _c = private::critical();
    for r in view::pages().iter() {
        match view::pte(r.va) {
            Some(e) if e & bits::ADDR == r.ppn << 12 => {}
            _ => return Err(r.va),
        }
    }
    Ok(())
}

/// The region containing all of `va .. end`.
pub(crate) fn region_covering(va: u64, end: u64) -> Result<usize, VmError> {
    let i = view::region_of(va).ok_or(VmError::NotMapped)?;
    if end > view::regions()[i].end {
        return Err(VmError::BadRange);
    }
    Ok(i)
}
