//! Page faults, resolved in ring 3.
//!
//! The kernel delivers every page fault to ExOS's exception entry
//! (`crate::exception`), which calls [`on_page_fault`] on the exception
//! stack. In order:
//!
//! 1. a write to a **copy-on-write** page: copy it (or, if no forked
//!    relative still shares it, just make our page writable) and retry;
//! 2. a missing page in a **demand-zero** region: map a zeroed page and
//!    retry (pages the kernel repossessed are found missing this way too);
//! 3. the region's **application handler**, if it has one: it may change
//!    protections or map pages through this module's API and ask to
//!    retry;
//! 4. anything else goes back to the exception layer (the program's own
//!    exception handler, or a report and exit).
//!
//! This code runs while the exception area is busy, so it writes only
//! private memory and its own stack; an application handler must obey the
//! same rule (no heap, no copy-on-write page — as for a Unix signal
//! handler).

use super::region;
use super::view::{self, PageRec, page};
use crate::private;
use crate::sys;
use exo_abi::layout::{ExceptionArea, pte as bits};
use exo_abi::{ANY_PAGE, Binding, Cap, ENV_SELF, Error, Prot};

/// A page fault, as the application's handler sees it: a view of the
/// exception area the kernel filled (no copy is made on the way).
#[derive(Debug)]
#[repr(transparent)]
pub struct Fault(ExceptionArea);

impl Fault {
    /// The faulting address.
    #[inline(always)]
    pub fn addr(&self) -> u64 {
        self.0.addr
    }

    /// A write (else a read or an instruction fetch).
    #[inline(always)]
    pub fn write(&self) -> bool {
        self.0.error & PF_WRITE != 0
    }

    /// The page was bound (a protection fault), else missing.
    #[inline(always)]
    pub fn present(&self) -> bool {
        self.0.error & PF_PRESENT != 0
    }

    /// An instruction fetch.
    #[inline(always)]
    pub fn exec(&self) -> bool {
        self.0.error & PF_FETCH != 0
    }

    /// The faulting instruction.
    #[inline(always)]
    pub fn rip(&self) -> u64 {
        self.0.rip
    }

    /// Change the protection of the faulting page (what a handler that
    /// resolves a protection fault does): `vm::protect` of that page,
    /// without the checks the fault's dispatch already made. (The
    /// dispatch leaves the fault's region in `fault_off` if the region has
    /// no copy-on-write page; any change to the region table clears it.)
    #[inline(always)]
    pub fn protect(&self, prot: Prot) -> Result<(), super::VmError> {
        let page = self.0.addr & !0xfff;
        let r = crate::private::rt();
        let off = r.fault_off;
        const SLOT: usize = core::mem::size_of::<crate::private::RegionRec>();
        if off < (crate::private::MAX_REGIONS * SLOT) as u64 {
            // SAFETY: `fault_off` is a multiple of the slot size (set by the
            // dispatch) below the table's size (checked): a slot of it.
            let g = unsafe { &*r.regions.as_ptr().byte_add(off as usize) };
            if prot.0 & !(g.maxprot as u64 | Prot::CLEAR_AD.0) == 0 {
                // SAFETY: a page of an ExOS region without copy-on-write
                // pages, reprotected as the application asks.
                let (_, res) = unsafe { sys::protect(ENV_SELF, page, 1, prot) };
                return res.map_err(super::VmError::Kernel);
            }
        }
        super::protect(page, 1, prot)
    }
}

/// What the application's handler decided (returned in AL: the
/// exception entry's fast path tests it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    /// The cause is fixed: run the faulting instruction again.
    Retry = 0,
    /// Not mine: let the exception layer decide (handler or report).
    Unhandled = 1,
}

/// An application's fault handler for a region (see the module doc for
/// what it may do).
pub type FaultHandler = fn(&Fault) -> Action;

/// Page-fault error-code bits.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 2;
const PF_FETCH: u64 = 16;

/// Try to resolve a page fault: true to resume (retry), false if it is
/// not ExOS's or the region's to resolve.
#[inline(always)]
pub fn on_page_fault(area: &ExceptionArea) -> bool {
    let addr = area.addr;
    let Some(i) = view::region_of(addr) else { return false };
    let g = &view::regions()[i];
    let (flags, handler) = (g.flags, g.handler);
    if flags & (region::HAS_COW | region::ZERO_FILL) != 0
        && exos_resolves(flags, addr & !0xfff, area.error & PF_PRESENT != 0, area.error & PF_WRITE != 0)
    {
        return true;
    }
    if handler == 0 {
        return false;
    }
    crate::private::rt().fault_off = if flags & region::HAS_COW == 0 {
        (i * core::mem::size_of::<crate::private::RegionRec>()) as u64
    } else {
        u64::MAX
    };
    // SAFETY: only `Mapping::handler` and `set_fault_handler` store
    // non-zero values, and they are FaultHandlers.
    let handler = unsafe { core::mem::transmute::<u64, FaultHandler>(handler) };
    // SAFETY: Fault is a transparent view of the area.
    handler(unsafe { &*(area as *const ExceptionArea as *const Fault) }) == Action::Retry
}

/// Copy-on-write and demand-zero.
#[cold]
fn exos_resolves(flags: u32, va: u64, present: bool, write: bool) -> bool {
    let _c = private::critical();
    if present {
        if write
            && flags & region::HAS_COW != 0
            && let Ok(i) = view::find(va)
        {
            let r = view::pages()[i];
            if r.flags & page::COW != 0 && r.flags & page::APP_RO == 0 {
                return resolve_cow(i).is_ok();
            }
        }
        return false;
    }
    // Missing. A record for a page that is not bound any more means the
    // kernel repossessed it (or its owner ended): bring the view up to date.
    crate::pager::reconcile();
    if let Ok(i) = view::find(va) {
        let r = view::pages()[i];
        view::remove(i);
        if r.flags & page::OWNED == 0 {
            // SAFETY: the binding is gone already; drop the dead grant.
            let _ = unsafe { sys::cap_revoke(Cap(r.cap)) };
        }
    }
    if flags & region::ZERO_FILL == 0 {
        return false;
    }
    let Some(g) = view::region_of(va).map(|i| view::regions()[i]) else { return false };
    let prot = Prot(g.maxprot as u64 & (Prot::RW.0 | Prot::EXEC.0));
    super::populate_locked(va, 1, prot).is_ok()
}

/// Make the copy-on-write page of record `i` ours alone.
pub fn resolve_cow(i: usize) -> Result<(), Error> {
    let r = view::pages()[i];
    let e = view::pte(r.va).ok_or(Error::BadAddress)?;
    let mut prot = Prot::RW.0;
    if e & bits::NO_EXECUTE == 0 {
        prot |= Prot::EXEC.0;
    }
    if r.flags & page::OWNED != 0 && !view::shared(r.ppn) {
        // Nobody else holds it any more: write-enable our own page.
        // SAFETY: our page, shared with nobody.
        let (_, res) = unsafe { sys::protect(ENV_SELF, r.va, 1, Prot(prot)) };
        res?;
        view::pages()[i].flags &= !page::COW;
        return Ok(());
    }
    let (cap, ppn) = sys::page_alloc(ANY_PAGE)?;
    let copy = private::COPY_VA;
    // SAFETY: the copy window is private and used only here, with the
    // exception area busy (no second fault handler can run).
    let (_, res) = unsafe { sys::bind(ENV_SELF, &[Binding { va: copy, cap: cap.0, prot: Prot::RW.0 }]) };
    if let Err(e) = res {
        // SAFETY: never bound.
        let _ = unsafe { sys::page_free(cap) };
        return Err(e);
    }
    // SAFETY: `r.va` is bound readable (present) and `copy` writable, both
    // whole pages; they are different pages.
    unsafe { core::ptr::copy_nonoverlapping(r.va as *const u64, copy as *mut u64, 512) };
    let swap = [Binding { va: r.va, cap: cap.0, prot }, Binding { va: copy, cap: 0, prot: 0 }];
    // SAFETY: the new page holds exactly what the old one did.
    let (_, res) = unsafe { sys::bind(ENV_SELF, &swap) };
    if let Err(e) = res {
        // SAFETY: the copy window is ours; the page goes with it.
        let _ = unsafe { sys::page_free(cap) };
        return Err(e);
    }
    if r.flags & page::OWNED != 0 {
        // A child still reads the old page through its grant: keep it.
        let _ = view::add_retired(view::Retired { ppn: r.ppn, cap: r.cap });
    } else {
        // SAFETY: the old page is no longer bound here.
        let _ = unsafe { sys::cap_revoke(Cap(r.cap)) };
    }
    view::pages()[i] = PageRec { cap: cap.0, ppn, flags: page::OWNED | (r.flags & page::DIRTY), ..r };
    Ok(())
}
