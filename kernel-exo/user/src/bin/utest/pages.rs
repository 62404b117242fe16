//! Physical pages by number, capabilities, grants, transfer, quota.

use exo_abi::layout::selfmap;
use exo_abi::{ANY_PAGE, Binding, Error, Rights};
use exo_user::{Checks, expect_eq};
use exos::sys;

pub fn run() -> u64 {
    let mut c = Checks::new("pages");
    let owner = Rights(Rights::READ_WRITE.0 | Rights::OWNER.0);

    // Any page, then that page by number.
    let Ok((c1, p1)) = sys::page_alloc(ANY_PAGE) else {
        c.check(false, "page_alloc(ANY)", format_args!("failed"));
        return c.finish();
    };
    expect_eq!(c, "cap_info names the page", sys::cap_info(c1), Ok((p1, owner)));
    expect_eq!(
        c,
        "an allocated page cannot be allocated again",
        sys::page_alloc(p1).map(|_| ()),
        Err(Error::PageInUse)
    );
    // SAFETY: the page is not bound anywhere.
    expect_eq!(c, "free", unsafe { sys::page_free(c1) }, Ok(()));
    expect_eq!(c, "a freed page's capability is revoked", sys::cap_info(c1).map(|_| ()), Err(Error::Revoked));
    // SAFETY: as above.
    expect_eq!(c, "double free", unsafe { sys::page_free(c1) }, Err(Error::Revoked));
    let specific = sys::page_alloc(p1);
    c.check(
        specific.is_ok_and(|(_, p)| p == p1),
        "allocate a specific page by number",
        format_args!("{specific:?}"),
    );
    let c2 = specific.map(|(cap, _)| cap).unwrap_or(c1);
    expect_eq!(c, "page 0 is never handed out", sys::page_alloc(0).map(|_| ()), Err(Error::NoSuchPage));
    expect_eq!(c, "no page beyond memory", sys::page_alloc(1 << 45).map(|_| ()), Err(Error::NoSuchPage));
    expect_eq!(
        c,
        "MMIO (local APIC) is not a page",
        sys::page_alloc(0xfee00).map(|_| ()),
        Err(Error::NoSuchPage)
    );
    // Our own PML4, seen through the self-map, belongs to the kernel.
    // SAFETY: the self-map's PML4 entries are always present and readable.
    let root_ppn = unsafe { core::ptr::read_volatile(selfmap::pml4e(selfmap::BASE) as *const u64) } >> 12
        & 0xff_ffff_ffff;
    expect_eq!(
        c,
        "our page-table root is the kernel's",
        sys::page_alloc(root_ppn).map(|_| ()),
        Err(Error::PageInUse)
    );

    // Grants to a child (created, not started).
    let child = match sys::env_create(0, 4) {
        Ok(ch) => ch,
        Err(e) => {
            c.check(false, "env_create", format_args!("{e:?}"));
            return c.finish();
        }
    };
    let g = sys::page_grant(c2, child, Rights::READ);
    c.check(g.is_ok(), "grant read-only to a child", format_args!("{g:?}"));
    let g = g.unwrap_or(c2);
    // The grant is the child's; we, the page's owner, may still look at it.
    let p2 = sys::cap_info(c2).map_or(0, |r| r.0);
    expect_eq!(c, "the owner sees the grant it gave", sys::cap_info(g), Ok((p2, Rights::READ)));
    expect_eq!(
        c,
        "one capability per environment and page",
        sys::page_grant(c2, child, Rights::READ_WRITE).map(|_| ()),
        Err(Error::BadState)
    );
    expect_eq!(
        c,
        "write-only is no right set",
        sys::page_grant(c2, child, Rights::WRITE).map(|_| ()),
        Err(Error::BadArgument)
    );
    expect_eq!(
        c,
        "grant to nobody",
        sys::page_grant(c2, exo_abi::EnvId(0xdead_0001), Rights::READ).map(|_| ()),
        Err(Error::NoSuchEnv)
    );
    expect_eq!(
        c,
        "grant to oneself",
        sys::page_grant(c2, sys::env_self(), Rights::READ).map(|_| ()),
        Err(Error::BadState)
    );
    let rw = Binding { va: 0x10_0000_0000, cap: g.0, prot: exo_abi::Prot::RW.0 };
    expect_eq!(
        c,
        "a read-only grant cannot be bound writable",
        sys::bind_child(child, &[rw]).1,
        Err(Error::NoRights)
    );
    let ro = Binding { prot: exo_abi::Prot::READ.0, ..rw };
    expect_eq!(c, "a read-only grant can be bound readable", sys::bind_child(child, &[ro]), (1, Ok(())));
    // SAFETY: this changes the child's address space, not ours.
    let r = unsafe { sys::protect(child.0, rw.va, 1, exo_abi::Prot::RW) };
    expect_eq!(c, "nor made writable by reprotecting it", r, (0, Err(Error::NoRights)));
    let keep = Binding { cap: exo_abi::CAP_KEEP, ..rw };
    expect_eq!(c, "nor by a reprotect entry", sys::bind_child(child, &[keep]), (0, Err(Error::NoRights)));
    // SAFETY: revoking a grant the child holds does not touch our memory.
    expect_eq!(c, "the owner revokes its grant", unsafe { sys::cap_revoke(g) }, Ok(()));
    // SAFETY: as above.
    expect_eq!(c, "revoking twice", unsafe { sys::cap_revoke(g) }, Err(Error::Revoked));
    expect_eq!(c, "the owner sees it revoked", sys::cap_info(g).map(|_| ()), Err(Error::Revoked));
    // SAFETY: revoking an owner capability is refused before anything happens.
    let r = unsafe { sys::cap_revoke(c2) };
    expect_eq!(c, "an owner capability is freed, not revoked", r, Err(Error::BadArgument));

    // Transfer: the child becomes the owner.
    // SAFETY: the page is not bound in our address space.
    let t = unsafe { sys::page_transfer(c2, child) };
    c.check(t.is_ok(), "transfer to a child", format_args!("{t:?}"));
    expect_eq!(c, "our capability is gone", sys::cap_info(c2).map(|_| ()), Err(Error::Revoked));
    if let Ok(t) = t {
        expect_eq!(c, "the child's capability", sys::cap_info(t).map(|_| ()), Err(Error::NotHolder));
        let b = Binding { va: 0x10_0000_0000, cap: t.0, prot: exo_abi::Prot::RW.0 };
        expect_eq!(c, "the owner (child) binds it writable", sys::bind_child(child, &[b]), (1, Ok(())));
    }
    // The child's quota (4) counts the pages it owns and the page tables
    // of its bindings: transfers stop being accepted before it is exceeded.
    let mut accepted = 0;
    let refused = loop {
        let Ok((p, _)) = sys::page_alloc(ANY_PAGE) else { break Error::OutOfMemory };
        // SAFETY: not bound in our address space.
        match unsafe { sys::page_transfer(p, child) } {
            Ok(_) => accepted += 1,
            Err(e) => {
                // SAFETY: still ours, not bound.
                let _ = unsafe { sys::page_free(p) };
                break e;
            }
        }
        if accepted > 10 {
            break Error::Limit;
        }
    };
    expect_eq!(c, "transfers stop at the child's quota", refused, Error::QuotaExceeded);
    c.check(
        accepted < 4,
        "the child's page tables count against its quota",
        format_args!("{accepted} more accepted"),
    );
    expect_eq!(c, "kill the child", sys::env_kill(child), Ok(()));
    expect_eq!(c, "it is gone", sys::env_status(child).map(|_| ()), Err(Error::NoSuchEnv));

    // Our own quota: allocate until refused, then give everything back.
    let mut got = alloc::vec::Vec::with_capacity(1024);
    // Read after the heap exists (its pages count too).
    let used_before = exos::info_field!(pages_used);
    let quota = exos::info_field!(page_quota);
    let last = loop {
        match sys::page_alloc(ANY_PAGE) {
            Ok((cap, _)) => got.push(cap),
            Err(e) => break e,
        }
        if got.len() > 100_000 {
            break Error::Limit;
        }
    };
    expect_eq!(c, "allocation stops at the quota", last, Error::QuotaExceeded);
    expect_eq!(c, "pages_used reaches the quota", exos::info_field!(pages_used), quota);
    for cap in &got {
        // SAFETY: none of these pages is bound.
        let _ = unsafe { sys::page_free(*cap) };
    }
    expect_eq!(c, "pages_used returns", exos::info_field!(pages_used), used_before);
    c.finish()
}
