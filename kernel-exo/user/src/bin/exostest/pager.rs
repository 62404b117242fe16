//! Revocation: ExOS's pager answers the kernel's requests with pages its
//! policy chooses — run against every registered policy — and survives
//! the kernel's abort protocol when it does not answer.
//!
//! The parent (role=pager / role=pager-abort) starts a child per
//! scenario, waits until it is ready (a flag in a page it grants the
//! child), asks it for pages with `env_reclaim`, and expects it to exit 0:
//! the child checks the invariants itself.

use alloc::format;
use alloc::vec::Vec;
use exo_abi::{ANY_PAGE, Binding, ENV_SELF, EnvId, EnvStatus, Prot, Rights};
use exo_user::{Checks, arg, arg_u64, expect_eq, now};
use exos::pager::{self, POLICIES};
use exos::spawn::{spawn_with, wait_child};
use exos::sys;
use exos::vm::{self, Mapping};

const FLAG: u64 = 0x60_0000_0000;
/// Pages the parent asks for.
const WANTED: u64 = 4;

fn flag() -> *mut u64 {
    FLAG as *mut u64
}

/// Start `exo-exostest` with `args` and a flag page; wait until it raises
/// the flag; returns the child.
fn start_flagged(args: &str) -> Option<EnvId> {
    let (page, _) = sys::page_alloc(ANY_PAGE).ok()?;
    // SAFETY: FLAG is a test address holding no Rust data.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: FLAG, cap: page.0, prot: Prot::RW.0 }]) };
    r.ok()?;
    // SAFETY: just bound.
    unsafe { flag().write_volatile(0) };
    let child = spawn_with("exo-exostest", 2, 512, |child| {
        let g = sys::page_grant(page, child, Rights::READ_WRITE)?;
        Ok(format!("{args} flag={}", g.0))
    })
    .ok()?;
    let start = now();
    // SAFETY: FLAG is bound to the shared page.
    while unsafe { flag().read_volatile() } == 0 && now() < start + 2000 {
        if sys::yield_to(child.0).is_err() {
            let _ = sys::yield_to(exo_abi::YIELD_ANY);
        }
    }
    // SAFETY: as above; unbinding the test page, which we own.
    unsafe {
        let _ = sys::bind(ENV_SELF, &[Binding { va: FLAG, cap: 0, prot: 0 }]);
        let _ = sys::page_free(page);
    }
    Some(child)
}

/// Bind the parent's flag page (early: its page tables are charged now).
fn bind_flag(args: &str) -> bool {
    let cap = arg_u64(args, "flag").unwrap_or(0);
    // SAFETY: FLAG holds no Rust data; the page is the parent's grant.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: FLAG, cap, prot: Prot::RW.0 }]) };
    r.is_ok()
}

/// Tell the parent we are ready (the flag page is bound).
fn raise_flag() {
    // SAFETY: bound by `bind_flag`.
    unsafe { flag().write_volatile(1) };
}

/// role=pager: every registered policy answers a request for 4 pages.
pub fn every_policy() -> u64 {
    let mut c = Checks::new("pager");
    c.check(POLICIES.len() >= 2, "at least two policies registered", format_args!("{}", POLICIES.len()));
    for p in POLICIES {
        let Some(child) = start_flagged(&format!("role=pager-child policy={}", p.name())) else {
            c.check(false, "start a child", format_args!("policy {}", p.name()));
            continue;
        };
        expect_eq!(c, "ask for pages", sys::env_reclaim(child, WANTED, 1000), Ok(()));
        let r = wait_child(child);
        c.check(
            r == Ok((EnvStatus::Exited, 0)),
            "the child answered and checked the invariants",
            format_args!("policy {}: {r:?}", p.name()),
        );
    }
    c.finish()
}

fn read(va: u64) -> u64 {
    // SAFETY: test regions mapped by this program (reclaimed pages read as zeroes).
    unsafe { (va as *const u64).read_volatile() }
}

fn write(va: u64, v: u64) {
    // SAFETY: as above.
    unsafe { (va as *mut u64).write_volatile(v) }
}

/// Pages of the reclaimable region.
const CACHE: u64 = 16;

/// role=pager-child policy=P flag=F: give pages back with policy P.
pub fn child(args: &str) -> u64 {
    let name = arg(args, "policy").unwrap_or("");
    let mut c = Checks::new("pager-child");
    c.check(bind_flag(args), "bind the flag page", format_args!(""));
    expect_eq!(c, "select the policy", pager::use_policy(name), Ok(()));
    expect_eq!(
        c,
        "an unknown policy",
        pager::use_policy("no-such-policy"),
        Err(pager::PagerError::NoSuchPolicy)
    );
    expect_eq!(c, "select it again", pager::use_policy(name), Ok(()));
    // Data that is needed: heap and an ordinary region.
    let heap: Vec<u64> = (0..2000).collect();
    let needed = Mapping::anon(4).map().unwrap_or(0);
    for i in 0..4 {
        write(needed + i * 4096, 0xdead_0000 + i);
    }
    // A cache: pages 0..8 written (dirty), 8..16 only read (clean).
    let cache = Mapping::anon(CACHE).reclaimable().map().unwrap_or(0);
    for i in 0..CACHE {
        if i < 8 {
            write(cache + i * 4096, 0xcafe_0000 + i);
        } else {
            let _ = read(cache + i * 4096);
        }
    }
    // Recency: after one scan, touch the upper half of each kind again.
    pager::scan();
    for i in (4..8).chain(12..16) {
        let _ = read(cache + i * 4096);
    }
    pager::scan();
    let used = exos::info_field!(pages_used);
    let recorded = vm::pages_recorded();
    raise_flag();
    // Keep running until the request has come and been answered.
    let start = now();
    while pager::last_report().chosen == 0 && now() < start + 1000 {
        let _ = sys::yield_to(exos::info::get().parent);
    }
    let report = pager::last_report();
    expect_eq!(c, "the policy chose exactly what was asked", (report.owed, report.chosen), (WANTED, WANTED));
    expect_eq!(c, "every cache page was a candidate", report.candidates, CACHE);
    expect_eq!(c, "the request is met", exos::info_field!(revoke_wanted), 0);
    expect_eq!(c, "nothing was repossessed", exos::info_field!(repossessed_count), 0);
    expect_eq!(c, "the pages were returned", exos::info_field!(pages_used), used - WANTED);
    expect_eq!(c, "the view forgot them", vm::pages_recorded(), recorded - WANTED as usize);
    expect_eq!(c, "the view matches the page tables", vm::audit(), Ok(()));
    let gone: Vec<u64> = (0..CACHE).filter(|i| vm::pte(cache + i * 4096).is_none()).collect();
    expect_eq!(c, "only cache pages went", gone.len() as u64, WANTED);
    // Never a page still needed.
    c.check(heap.iter().enumerate().all(|(i, &v)| v == i as u64), "the heap is intact", format_args!(""));
    c.check(
        (0..4).all(|i| read(needed + i * 4096) == 0xdead_0000 + i),
        "needed data is intact",
        format_args!(""),
    );
    let kept =
        (0..CACHE).filter(|i| !gone.contains(i) && *i < 8).all(|i| read(cache + i * 4096) == 0xcafe_0000 + i);
    c.check(kept, "the cache pages kept hold their data", format_args!(""));
    // Each policy's own order.
    let want: Option<Vec<u64>> = match name {
        "clean-lru" => Some((8..12).collect()), // clean, and not used since the first scan
        "fifo" => Some((0..4).collect()),       // mapped first
        _ => None,
    };
    if let Some(want) = want {
        expect_eq!(c, "the policy's choice", gone.clone(), want);
    }
    // It keeps running: a reclaimed page comes back zeroed, threads and
    // the heap work.
    if let Some(&g) = gone.first() {
        expect_eq!(c, "a reclaimed page reads as zeroes", read(cache + g * 4096), 0);
        write(cache + g * 4096, 1);
        expect_eq!(c, "and is usable", read(cache + g * 4096), 1);
    }
    let t = exos::thread::spawn(|x| x + 1, 41).map(exos::thread::join);
    expect_eq!(c, "threads run", t, Ok(Ok(42)));
    let more: Vec<u64> = (0..3000).collect();
    expect_eq!(c, "the heap grows", more[2999], 2999);
    c.finish()
}

/// role=pager-abort: a child that does not answer; the kernel takes pages.
pub fn abort() -> u64 {
    let mut c = Checks::new("pager-abort");
    let Some(child) = start_flagged("role=pager-ignore") else {
        c.check(false, "start the child", format_args!(""));
        return c.finish();
    };
    expect_eq!(c, "ask for pages with a short deadline", sys::env_reclaim(child, 3, 5), Ok(()));
    expect_eq!(c, "the child survived the abort", wait_child(child), Ok((EnvStatus::Exited, 0)));
    c.finish()
}

/// role=pager-ignore: ExOS's pager switched off; the kernel repossesses
/// the newest pages (those of a demand-zero region touched last), ExOS
/// finds out from the repossession vector and carries on.
pub fn ignore(args: &str) -> u64 {
    let mut c = Checks::new("pager-ignore");
    c.check(bind_flag(args), "bind the flag page", format_args!(""));
    let _ = pager::use_policy("clean-lru"); // takes revocation upcalls ...
    pager::disable(); // ... and ignores them
    let heap: Vec<u64> = (0..2000).collect();
    expect_eq!(c, "room for the records first", vm::reserve(6), Ok(()));
    let lazy = Mapping::anon(6).lazy().map().unwrap_or(0);
    for i in 0..6 {
        write(lazy + i * 4096, 0xbeef_0000 + i); // the newest pages we own
    }
    raise_flag();
    let start = now();
    while exos::info_field!(repossessed_count) < 3 && now() < start + 1000 {
        let _ = sys::yield_to(exos::info::get().parent);
    }
    expect_eq!(c, "three pages repossessed", exos::info_field!(repossessed_count), 3);
    // The first access to one finds it missing: the fault path reads the
    // repossession vector, updates the view, maps a zeroed page.
    expect_eq!(c, "the newest page reads as zeroes", read(lazy + 5 * 4096), 0);
    expect_eq!(c, "the vector was read already", pager::reconcile(), 0);
    expect_eq!(c, "the view matches the page tables", vm::audit(), Ok(()));
    let lost: Vec<u64> = (0..6).filter(|&i| read(lazy + i * 4096) != 0xbeef_0000 + i).collect();
    expect_eq!(c, "the three newest were taken", lost, alloc::vec![3, 4, 5]);
    c.check(heap.iter().enumerate().all(|(i, &v)| v == i as u64), "the heap is intact", format_args!(""));
    let t = exos::thread::spawn(|x| x * 3, 14).map(exos::thread::join);
    expect_eq!(c, "it keeps running", t, Ok(Ok(42)));
    c.finish()
}
