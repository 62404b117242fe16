//! Physical pages exposed by number: allocation (a specific page or any),
//! grants, transfer of ownership, revocation and freeing.
//!
//! The kernel decides nothing about *which* pages an environment should
//! have; it records who owns each page it handed out and who else holds a
//! capability for it, so that freeing or repossessing a page breaks every
//! binding of it, everywhere.

use crate::caps::{self, Cap};
use crate::env;
use crate::kernel::{Kernel, cap_error};
use crate::pt;
use alloc::vec::Vec;
use exo_abi::{ANY_PAGE, Error, MAX_CAPS_PER_ENV, Rights};
use shared_hal::memory;
use shared_hal::paging::pte;

/// What the kernel knows about a page an environment owns.
pub struct PageRec {
    /// The owner's id.
    pub owner: u64,
    /// The owner capability.
    pub owner_cap: u64,
    /// Capabilities granted to other environments.
    pub grants: Vec<u64>,
}

/// Page numbers at or above this name no memory (52-bit physical addresses).
const PPN_LIMIT: u64 = 1 << 40;

fn charge_one(k: &mut Kernel, i: usize) -> Result<(), Error> {
    let e = k.env(i);
    if e.used >= e.quota {
        return Err(Error::QuotaExceeded);
    }
    room_for_cap(k, i)
}

/// Whether environment `i` may hold one more capability; reserves the
/// memory to record it, so the recording cannot fail later.
fn room_for_cap(k: &mut Kernel, i: usize) -> Result<(), Error> {
    let e = k.env_mut(i);
    if e.caps.len() >= MAX_CAPS_PER_ENV {
        return Err(Error::Limit);
    }
    e.caps.try_reserve(1).map_err(|_| Error::OutOfMemory)
}

/// Allocate page `ppn` (or any page) for environment `i`, zeroed. Returns
/// the owner capability and the page number.
pub fn alloc(k: &mut Kernel, i: usize, ppn: u64) -> Result<(u64, u64), Error> {
    charge_one(k, i)?;
    k.pages.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
    let pa = if ppn == ANY_PAGE {
        memory::alloc_frame().ok_or(Error::OutOfMemory)?
    } else {
        if ppn >= PPN_LIMIT || !memory::is_managed(ppn << 12) {
            return Err(Error::NoSuchPage);
        }
        memory::alloc_specific_frame(ppn << 12).map_err(|_| Error::PageInUse)?;
        ppn << 12
    };
    // Nothing of the page's previous user may leak to the new one.
    memory::zero_frame(pa);
    let id = k.env(i).id;
    let cap = Cap { holder: id, pa, rights: Rights::READ_WRITE, owner: true, mappings: Vec::new() };
    let Ok(handle) = k.caps.insert(cap) else {
        memory::free_frame(pa).expect("allocated just now");
        return Err(Error::Limit);
    };
    k.pages.insert(pa, PageRec { owner: id, owner_cap: handle, grants: Vec::new() });
    let e = k.env_mut(i);
    e.caps.push(handle);
    e.used += 1;
    env::publish(k, i);
    Ok((handle, pa >> 12))
}

/// Free the page of owner capability `handle` (held by environment `i`).
pub fn free(k: &mut Kernel, i: usize, handle: u64) -> Result<(), Error> {
    let pa = caps::owned(k, k.env(i).id, handle)?.pa;
    free_page(k, pa, true);
    Ok(())
}

/// Grant the page of owner capability `handle` to `target` with `rights`.
pub fn grant(k: &mut Kernel, i: usize, handle: u64, target: u64, rights: u64) -> Result<u64, Error> {
    let caller = k.env(i).id;
    let pa = caps::owned(k, caller, handle)?.pa;
    let rights = Rights(rights);
    if !rights.is_grantable() {
        return Err(Error::BadArgument);
    }
    let t = live_env(k, target)?;
    if target == caller || holds_page(k, target, pa) {
        // One capability per environment and page keeps bindings unambiguous.
        return Err(Error::BadState);
    }
    room_for_cap(k, t)?;
    k.pages
        .get_mut(&pa)
        .expect("owned pages have a record")
        .grants
        .try_reserve(1)
        .map_err(|_| Error::OutOfMemory)?;
    let cap = Cap { holder: target, pa, rights, owner: false, mappings: Vec::new() };
    let new = k.caps.insert(cap).map_err(|_| Error::Limit)?;
    k.pages.get_mut(&pa).expect("owned pages have a record").grants.push(new);
    k.env_mut(t).caps.push(new);
    Ok(new)
}

/// Make `target` (a child or the parent of environment `i`) the owner of
/// the page of owner capability `handle`. Every grant of the page and
/// every binding of it by `i` is broken first.
pub fn transfer(k: &mut Kernel, i: usize, handle: u64, target: u64) -> Result<u64, Error> {
    let caller = k.env(i).id;
    let pa = caps::owned(k, caller, handle)?.pa;
    let t = live_env(k, target)?;
    let related = k.env(t).parent == caller || k.env(i).parent == target;
    if !related {
        return Err(Error::Denied);
    }
    charge_one(k, t)?;
    // The page keeps its record, changed in place: nothing on this path
    // allocates (re-inserting into the map could grow it, and fail).
    let rec = k.pages.get_mut(&pa).expect("owned pages have a record");
    let grants = core::mem::take(&mut rec.grants);
    let old_cap = rec.owner_cap;
    for g in grants {
        drop_cap(k, g);
    }
    drop_cap(k, old_cap);
    let cap = Cap { holder: target, pa, rights: Rights::READ_WRITE, owner: true, mappings: Vec::new() };
    let Ok(new) = k.caps.insert(cap) else {
        // The table had room for the capability just dropped; it cannot be full.
        unreachable!("capability table full right after a removal");
    };
    let rec = k.pages.get_mut(&pa).expect("owned pages have a record");
    rec.owner = target;
    rec.owner_cap = new;
    // `charge_one` reserved room in the new owner's list.
    k.env_mut(t).caps.push(new);
    k.env_mut(t).used += 1;
    k.env_mut(i).used -= 1;
    page_returned(k, i);
    env::publish(k, t);
    env::publish(k, i);
    Ok(new)
}

/// Revoke capability `handle`: its holder (`i`) drops a grant, or the
/// page's owner (`i`) takes a grant back.
pub fn revoke(k: &mut Kernel, i: usize, handle: u64) -> Result<(), Error> {
    let caller = k.env(i).id;
    let cap = k.caps.get(handle).map_err(cap_error)?;
    let page_owner = k.pages.get(&cap.pa).map(|r| r.owner);
    if cap.owner {
        return Err(if cap.holder == caller { Error::BadArgument } else { Error::NotHolder });
    }
    if cap.holder != caller && page_owner != Some(caller) {
        return Err(Error::NotHolder);
    }
    let pa = cap.pa;
    if let Some(rec) = k.pages.get_mut(&pa) {
        rec.grants.retain(|g| *g != handle);
    }
    drop_cap(k, handle);
    Ok(())
}

/// Free page `pa`: revoke every capability for it (breaking their
/// bindings) and return the frame. `returned` counts it towards the
/// owner's outstanding revocation request (false when the kernel
/// repossesses it).
pub fn free_page(k: &mut Kernel, pa: u64, returned: bool) {
    let Some(rec) = k.pages.remove(&pa) else { return };
    for g in rec.grants {
        drop_cap(k, g);
    }
    drop_cap(k, rec.owner_cap);
    memory::free_frame(pa).expect("an owned page is an allocated frame");
    if let Ok(o) = k.env_index(rec.owner)
        && k.env(o).is_live()
    {
        k.env_mut(o).used -= 1;
        if returned {
            page_returned(k, o);
        }
        env::publish(k, o);
    }
}

/// Count a page environment `i` gave up towards its revocation request.
fn page_returned(k: &mut Kernel, i: usize) {
    let e = k.env_mut(i);
    if let Some(r) = e.revoke.as_mut()
        && r.returned_one()
    {
        e.revoke = None;
        e.revoke_upcall_pending = false;
    }
}

/// Remove capability `handle`: break its bindings and take it from its
/// holder's list. (The page record is the caller's business.)
pub fn drop_cap(k: &mut Kernel, handle: u64) {
    let Ok(cap) = k.caps.remove(handle) else { return };
    let Ok(h) = k.env_index(cap.holder) else { return };
    let e = k.env_mut(h);
    if let Some(pos) = e.caps.iter().position(|c| *c == handle) {
        e.caps.remove(pos);
    }
    crate::wakeup::cap_dropped(e, handle);
    if e.is_live() {
        for va in cap.mappings {
            pt::clear(e.root, va);
            pt::flush_if_active(e.root, va);
        }
    }
}

/// At teardown: give up every capability environment `i` holds, freeing
/// the pages it owns (which revokes what it granted to others).
pub fn release_all(k: &mut Kernel, i: usize) {
    let held = core::mem::take(&mut k.env_mut(i).caps);
    for handle in held {
        let Ok(cap) = k.caps.get(handle) else { continue };
        if cap.owner {
            free_page(k, cap.pa, false);
        } else {
            let pa = cap.pa;
            if let Some(rec) = k.pages.get_mut(&pa) {
                rec.grants.retain(|g| *g != handle);
            }
            drop_cap(k, handle);
        }
    }
}

/// Remove `va` from the mappings of the capability environment `holder`
/// holds for page `pa` (after the entry was cleared or replaced).
pub fn forget_mapping(k: &mut Kernel, holder: u64, pa: u64, va: u64) {
    let Some(rec) = k.pages.get(&pa) else {
        log::error!("kernel-exo: mapping {va:#x} of unowned page {pa:#x}");
        return;
    };
    let handle = core::iter::once(rec.owner_cap)
        .chain(rec.grants.iter().copied())
        .find(|h| k.caps.get(*h).is_ok_and(|c| c.holder == holder));
    match handle.and_then(|h| k.caps.get_mut(h).ok()) {
        Some(cap) => cap.mappings.retain(|m| *m != va),
        None => log::error!("kernel-exo: mapping {va:#x} of page {pa:#x} without a capability"),
    }
}

/// The capability environment `i` bound the page at `va` (in its own
/// address space) with, and the page number.
pub fn lookup(k: &Kernel, i: usize, va: u64) -> Result<(u64, u64), Error> {
    if va & 0xfff != 0 {
        return Err(Error::Unaligned);
    }
    if !(exo_abi::layout::USER_START..exo_abi::layout::USER_END).contains(&va) {
        return Err(Error::BadAddress);
    }
    let e = k.env(i);
    let pa = pt::lookup(e.root, va).map(entry_pa).ok_or(Error::BadAddress)?;
    let rec = k.pages.get(&pa).ok_or(Error::BadAddress)?; // a kernel-owned page (user area, info page)
    core::iter::once(rec.owner_cap)
        .chain(rec.grants.iter().copied())
        .find(|h| k.caps.get(*h).is_ok_and(|c| c.holder == e.id))
        .map(|h| (h, pa >> 12))
        .ok_or(Error::BadAddress)
}

/// Whether environment `id` holds a capability for page `pa`.
fn holds_page(k: &Kernel, id: u64, pa: u64) -> bool {
    k.pages.get(&pa).is_some_and(|rec| {
        core::iter::once(rec.owner_cap)
            .chain(rec.grants.iter().copied())
            .any(|h| k.caps.get(h).is_ok_and(|c| c.holder == id))
    })
}

/// The slot of live environment `id`.
fn live_env(k: &Kernel, id: u64) -> Result<usize, Error> {
    let t = k.env_index(id)?;
    if !k.env(t).is_live() {
        return Err(Error::NoSuchEnv);
    }
    Ok(t)
}

/// Physical page number of the leaf entry `e`.
pub const fn entry_pa(e: u64) -> u64 {
    e & pte::ADDR
}
