//! Binding and giving back pages for ExOS's view: filling regions with
//! fresh pages, binding pages other environments granted, giving pages
//! back (freeing them, or keeping them while a forked child shares them),
//! ExOS's private stacks, and adopting at start-up the pages the loader
//! bound.

use super::view::{self, PageRec, page};
use super::{ANON_END, Kind, MAX_PAGES, VmError, check_range, region, region_covering};
use crate::private::{self, RegionRec, on_exos_stack, rt};
use crate::sys;
use exo_abi::layout::{RESERVED_END, RESERVED_START, USER_END, USER_START, pte as bits};
use exo_abi::{ANY_PAGE, Binding, Cap, ENV_SELF, Error, Prot};

/// Bind pages other environments granted us (`caps`, in order) as a new
/// shared region with `prot`; returns its address. A page whose owner
/// takes it back (or ends) reads as zeroes afterwards, so code reading a
/// shared structure never faults on it; [`unmap`] drops the grants.
pub fn map_grants(caps: &[Cap], prot: Prot) -> Result<u64, VmError> {
    let pages = caps.len() as u64;
    if pages == 0 || pages > MAX_PAGES {
        return Err(VmError::BadRange);
    }
    crate::exception::ensure()?;
    on_exos_stack(|| {
        let va = rt().next_anon;
        let end = check_range(va, pages)?;
        if end > ANON_END {
            return Err(VmError::BadRange);
        }
        let g = RegionRec {
            start: va,
            end,
            handler: 0,
            flags: region::NOFORK | region::ZERO_FILL,
            kind: Kind::Shared as u16,
            maxprot: prot.0 as u16,
        };
        view::add_region(g)?;
        rt().next_anon = end + 4096;
        for (j, chunk) in caps.chunks(BATCH).enumerate() {
            let mut list = [Binding::default(); BATCH];
            for (k, cap) in chunk.iter().enumerate() {
                list[k] = Binding { va: va + ((j * BATCH + k) as u64) * 4096, cap: cap.0, prot: prot.0 };
            }
            // SAFETY: a new region: nothing of the program's is there.
            let (applied, r) = unsafe { sys::bind(ENV_SELF, &list[..chunk.len()]) };
            for b in &list[..applied as usize] {
                let ppn = sys::cap_info(Cap(b.cap)).map_or(0, |i| i.0);
                let rec = PageRec { va: b.va, cap: b.cap, ppn, flags: 0, age: 0, seq: view::next_seq() };
                if view::insert(rec).is_err() {
                    break;
                }
            }
            if let Err(e) = r {
                // Undo: forget what was bound (the grants stay the caller's).
                let _ = release_bindings(va, end);
                if let Some(i) = view::region_of(va) {
                    view::remove_region(i);
                }
                return Err(e.into());
            }
        }
        Ok(va)
    })
}

/// Unbind (without giving up the capabilities) the recorded pages of
/// `va..end` and forget them.
fn release_bindings(va: u64, end: u64) -> Result<(), VmError> {
    let i = match view::find(va) {
        Ok(i) | Err(i) => i,
    };
    while i < view::pages().len() && view::pages()[i].va < end {
        let r = view::pages()[i];
        view::remove(i);
        // SAFETY: pages of a shared region being torn down.
        let _ = unsafe { sys::bind(ENV_SELF, &[Binding { va: r.va, cap: 0, prot: 0 }]) };
    }
    Ok(())
}

/// Fill `va .. va + pages` (inside one region, nothing bound there yet)
/// with fresh zeroed pages.
pub fn populate(va: u64, pages: u64, prot: Prot) -> Result<(), VmError> {
    on_exos_stack(|| populate_locked(va, pages, prot))
}

const BATCH: usize = 16;

pub(crate) fn populate_locked(va: u64, pages: u64, prot: Prot) -> Result<(), VmError> {
    let end = check_range(va, pages)?;
    let g = view::regions()[region_covering(va, end)?];
    if prot.0 & !(g.maxprot as u64) != 0 {
        return Err(VmError::Denied);
    }
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(BATCH as u64) as usize;
        let mut list = [Binding::default(); BATCH];
        let mut ppns = [0u64; BATCH];
        for j in 0..n {
            let at = va + (done + j as u64) * 4096;
            if view::find(at).is_ok() {
                free_unbound(&list[..j]);
                return Err(VmError::Overlap);
            }
            match sys::page_alloc(ANY_PAGE) {
                Ok((cap, ppn)) => {
                    list[j] = Binding { va: at, cap: cap.0, prot: prot.0 };
                    ppns[j] = ppn;
                }
                Err(e) => {
                    free_unbound(&list[..j]);
                    return Err(e.into());
                }
            }
        }
        // SAFETY: the region is ExOS's, and nothing is bound at these
        // addresses (checked above): no live data changes.
        let (applied, r) = unsafe { sys::bind(ENV_SELF, &list[..n]) };
        for j in 0..n {
            let b = list[j];
            if (j as u64) < applied {
                let rec = PageRec {
                    va: b.va,
                    cap: b.cap,
                    ppn: ppns[j],
                    flags: page::OWNED,
                    age: 0,
                    seq: view::next_seq(),
                };
                if let Err(e) = view::insert(rec) {
                    // SAFETY: as above; the page was just bound by us.
                    let _ = unsafe { sys::page_free(Cap(b.cap)) };
                    free_unbound(&list[j + 1..n]);
                    return Err(e.into());
                }
            } else {
                // SAFETY: never bound.
                let _ = unsafe { sys::page_free(Cap(b.cap)) };
            }
        }
        r?;
        done += n as u64;
    }
    Ok(())
}

fn free_unbound(list: &[Binding]) {
    for b in list {
        // SAFETY: these pages were allocated and never bound.
        let _ = unsafe { sys::page_free(Cap(b.cap)) };
    }
}

/// Give back a page we hold: free it, or (if a forked child still holds a
/// grant of it) unbind it and keep it until the child lets go.
pub(crate) fn release_page(rec: &PageRec) {
    let cap = Cap(rec.cap);
    if rec.flags & page::OWNED == 0 {
        // SAFETY: ExOS only releases pages the program gave up.
        let _ = unsafe { sys::cap_revoke(cap) };
    } else if view::shared(rec.ppn) {
        // SAFETY: as above.
        let _ = unsafe { sys::bind(ENV_SELF, &[Binding { va: rec.va, cap: 0, prot: 0 }]) };
        if view::add_retired(view::Retired { ppn: rec.ppn, cap: rec.cap }).is_err() {
            // No room to remember it: freeing it breaks the child's copy,
            // keeping it unrecorded would leak it until we end. Keep it.
        }
    } else {
        // SAFETY: as above.
        let _ = unsafe { sys::page_free(cap) };
    }
}

pub(crate) fn release_locked(va: u64, pages: u64) -> Result<u64, VmError> {
    let end = check_range(va, pages)?;
    let i = match view::find(va) {
        Ok(i) | Err(i) => i,
    };
    let mut n = 0;
    while i < view::pages().len() && view::pages()[i].va < end {
        let rec = view::pages()[i];
        view::remove(i);
        release_page(&rec);
        n += 1;
    }
    Ok(n)
}

/// Give back the pages of `va .. va + pages` (and the region, if that is
/// all of it). The range must lie in one region.
pub fn unmap(va: u64, pages: u64) -> Result<(), VmError> {
    on_exos_stack(|| {
        let end = check_range(va, pages)?;
        let i = region_covering(va, end)?;
        release_locked(va, pages)?;
        let g = view::regions()[i];
        view::regions_changed();
        match (g.start == va, g.end == end) {
            (true, true) => view::remove_region(i),
            (true, false) => view::regions()[i].start = end,
            (false, true) => view::regions()[i].end = va,
            (false, false) => {
                view::regions()[i].end = va;
                view::add_region(RegionRec { start: end, ..g })?;
            }
        }
        Ok(())
    })
}

/// A fresh private stack (exception, upcall, PCT, scheduler stacks) of
/// `pages` pages with an unmapped guard page below; returns its top.
/// A forked child gets fresh pages there, not copies.
pub fn new_private_stack(pages: u64) -> Result<u64, VmError> {
    on_exos_stack(|| new_private_stack_locked(pages))
}

/// [`new_private_stack`] on the current stack, inside a critical section
/// (how the ExOS stack itself is made).
pub(crate) fn new_private_stack_locked(pages: u64) -> Result<u64, VmError> {
    ensure_window(crate::mem::STACKS_BASE, crate::mem::STACKS_END, Kind::PrivateStack, region::FRESH)?;
    let base = rt().next_private_stack + 4096;
    if base + pages * 4096 > crate::mem::STACKS_END {
        return Err(VmError::BadRange);
    }
    populate_locked(base, pages, Prot::RW)?;
    rt().next_private_stack = base + pages * 4096;
    Ok(base + pages * 4096)
}

/// Make sure the window `start..end` is a region of `kind`.
pub(crate) fn ensure_window(start: u64, end: u64, kind: Kind, flags: u32) -> Result<(), VmError> {
    if view::region_of(start).is_some() {
        return Ok(());
    }
    let g = RegionRec { start, end, handler: 0, flags, kind: kind as u16, maxprot: Prot::RW.0 as u16 };
    view::add_region(g).map_err(|_| VmError::Overlap)
}

/// Set up the view at start-up: adopt every page the loader bound (the
/// program image and the initial stack), learning the capability each
/// was bound with.
pub fn init() -> Result<(), Error> {
    let mut run: Option<(u64, u64, u16)> = None; // start, end, maxprot
    let mut result = Ok(());
    let mut adopt = |va: u64, e: u64| {
        if result.is_err()
            || (RESERVED_START..RESERVED_END).contains(&va)
            || (private::BASE..private::END).contains(&va)
        {
            return;
        }
        let prot = (Prot::READ.0
            | if e & bits::WRITABLE != 0 { Prot::WRITE.0 } else { 0 }
            | if e & bits::NO_EXECUTE == 0 { Prot::EXEC.0 } else { 0 }) as u16;
        let (cap, ppn) = match sys::lookup(va) {
            Ok(x) => x,
            Err(_) => return, // not ours to adopt (nothing should be)
        };
        let owned = sys::cap_info(cap).is_ok_and(|(_, r)| r.contains(exo_abi::Rights::OWNER));
        let rec = PageRec {
            va,
            cap: cap.0,
            ppn,
            flags: if owned { page::OWNED } else { 0 },
            age: 0,
            seq: view::next_seq(),
        };
        if let Err(e) = view::insert(rec) {
            result = Err(e);
            return;
        }
        run = match run {
            Some((s, end, p)) if end == va && p == prot => Some((s, va + 4096, p)),
            other => {
                if let Some((s, end, p)) = other {
                    result = adopt_region(s, end, p);
                }
                Some((va, va + 4096, prot))
            }
        };
    };
    view::walk(USER_START, USER_END, &mut adopt);
    result?;
    if let Some((s, end, p)) = run {
        adopt_region(s, end, p)?;
    }
    Ok(())
}

fn adopt_region(start: u64, end: u64, maxprot: u16) -> Result<(), Error> {
    let kind = if end == exo_abi::layout::STACK_TOP { Kind::Stack } else { Kind::Image };
    view::add_region(RegionRec { start, end, handler: 0, flags: 0, kind: kind as u16, maxprot })
}
