//! ExOS's virtual memory: regions, one-page and range protection, faults
//! resolved by the application's handler (protect/fault/unprotect), the
//! dirty bit, demand-zero pages, and every refusal.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_abi::Prot;
use exo_user::{Checks, expect_eq};
use exos::vm::{self, Action, Fault, Mapping, VmError};

static FAULTS: AtomicU64 = AtomicU64::new(0);
static LAST_ADDR: AtomicU64 = AtomicU64::new(0);
/// For the Appel-style handler: the page to protect when resolving.
static OTHER: AtomicU64 = AtomicU64::new(0);

/// Unprotect the faulting page and retry (what a pager does).
fn unprotect(f: &Fault) -> Action {
    FAULTS.fetch_add(1, SeqCst);
    LAST_ADDR.store(f.addr(), SeqCst);
    match vm::protect(f.addr() & !0xfff, 1, Prot::RW) {
        Ok(()) => Action::Retry,
        Err(_) => Action::Unhandled,
    }
}

/// Unprotect the faulting page and protect the other one (Appel & Li).
fn swap(f: &Fault) -> Action {
    FAULTS.fetch_add(1, SeqCst);
    let other = OTHER.load(SeqCst);
    let ok = vm::protect(f.addr() & !0xfff, 1, Prot::RW).is_ok() && vm::protect(other, 1, Prot::READ).is_ok();
    OTHER.store(f.addr() & !0xfff, SeqCst);
    if ok { Action::Retry } else { Action::Unhandled }
}

fn write(va: u64, v: u64) {
    // SAFETY: the tests write only ExOS-managed test regions; a fault is
    // resolved by the region's handler and the store retried.
    unsafe { (va as *mut u64).write_volatile(v) }
}

fn read(va: u64) -> u64 {
    // SAFETY: as for `write`.
    unsafe { (va as *const u64).read_volatile() }
}

pub fn run() -> u64 {
    let mut c = Checks::new("vm");
    let used0 = exos::info_field!(pages_used);
    let base = match Mapping::anon(8).handler(unprotect).map() {
        Ok(b) => b,
        Err(e) => {
            c.check(false, "map 8 pages", format_args!("{e:?}"));
            return c.finish();
        }
    };
    let info = vm::region_at(base);
    expect_eq!(c, "the view has the region", info.map(|r| (r.start, r.end)), Some((base, base + 8 * 4096)));
    c.check(exos::info_field!(pages_used) >= used0 + 8, "8 pages charged", format_args!(""));
    for i in 0..8 {
        write(base + i * 4096, 100 + i);
    }
    expect_eq!(c, "no fault writing fresh pages", FAULTS.load(SeqCst), 0);
    expect_eq!(c, "dirty after a write", vm::is_dirty(base), Ok(true));

    // Protect, fault, unprotect: one page.
    expect_eq!(c, "protect one page read-only", vm::protect(base, 1, Prot::READ), Ok(()));
    expect_eq!(c, "still readable", read(base), 100);
    expect_eq!(c, "no fault reading", FAULTS.load(SeqCst), 0);
    write(base + 8, 7);
    expect_eq!(
        c,
        "a write faults into our handler",
        (FAULTS.load(SeqCst), LAST_ADDR.load(SeqCst)),
        (1, base + 8)
    );
    expect_eq!(c, "the handler unprotected it and the write happened", read(base + 8), 7);
    write(base + 16, 8);
    expect_eq!(c, "writable now: no second fault", FAULTS.load(SeqCst), 1);

    // A range in one call.
    expect_eq!(c, "protect 8 pages in one call", vm::protect(base, 8, Prot::READ), Ok(()));
    for i in 0..8 {
        write(base + i * 4096 + 24, i);
    }
    expect_eq!(c, "each page faulted once", FAULTS.load(SeqCst), 9);
    let all = (0..8).all(|i| read(base + i * 4096 + 24) == i && read(base + i * 4096) == 100 + i);
    c.check(all, "every write landed, nothing else changed", format_args!(""));
    expect_eq!(c, "unprotect the range", vm::protect(base, 8, Prot::RW), Ok(()));

    // Dirty bits, cleared by a protection change with CLEAR_AD.
    expect_eq!(c, "clear the dirty bits", vm::protect(base, 2, Prot(Prot::RW.0 | Prot::CLEAR_AD.0)), Ok(()));
    expect_eq!(c, "clean after clearing", vm::is_dirty(base), Ok(false));
    let _ = read(base + 4096);
    expect_eq!(c, "a read does not dirty", vm::is_dirty(base + 4096), Ok(false));
    write(base + 4096, 1);
    expect_eq!(c, "a write does", vm::is_dirty(base + 4096), Ok(true));

    // Appel & Li: the handler unprotects one page and protects another.
    expect_eq!(c, "switch handlers", vm::set_fault_handler(base, Some(swap)), Ok(()));
    OTHER.store(base + 4096, SeqCst);
    let _ = vm::protect(base, 1, Prot::READ);
    let before = FAULTS.load(SeqCst);
    for k in 0..10u64 {
        write(base + (k & 1) * 4096 + 32, k); // every write faults: the handler flips the pages
    }
    expect_eq!(c, "appel: ten faults, each resolved", FAULTS.load(SeqCst) - before, 10);
    expect_eq!(c, "appel: the last write landed", read(base + 4096 + 32), 9);

    // Demand-zero pages.
    let lazy = Mapping::anon(4).lazy().map();
    c.check(lazy.is_ok(), "a lazy region", format_args!("{lazy:?}"));
    let lazy = lazy.unwrap_or(0);
    let recorded = vm::pages_recorded();
    expect_eq!(c, "no page until touched", vm::pte(lazy), None);
    expect_eq!(c, "a read maps a zeroed page", read(lazy + 4096), 0);
    write(lazy + 2 * 4096, 0x5a);
    expect_eq!(c, "a write maps one", read(lazy + 2 * 4096), 0x5a);
    expect_eq!(c, "two pages recorded", vm::pages_recorded(), recorded + 2);
    expect_eq!(c, "the view matches the page tables", vm::audit(), Ok(()));

    // Giving memory back.
    let used = exos::info_field!(pages_used);
    expect_eq!(c, "unmap the lazy region", vm::unmap(lazy, 4), Ok(()));
    expect_eq!(c, "its two pages are returned", exos::info_field!(pages_used), used - 2);
    expect_eq!(c, "unmap the middle of a region", vm::unmap(base + 2 * 4096, 2), Ok(()));
    expect_eq!(c, "which splits it", vm::region_at(base + 4 * 4096).map(|r| r.start), Some(base + 4 * 4096));
    expect_eq!(c, "the hole is no region", vm::region_at(base + 2 * 4096), None);
    expect_eq!(c, "unmap the rest", (vm::unmap(base, 2), vm::unmap(base + 4 * 4096, 4)), (Ok(()), Ok(())));
    expect_eq!(c, "every page is back", exos::info_field!(pages_used), used - 10);
    expect_eq!(c, "still consistent", vm::audit(), Ok(()));
    c.finish()
}

/// Every refusal is an error, never a panic, and changes nothing.
pub fn errors() -> u64 {
    let mut c = Checks::new("vm-errors");
    let base = Mapping::anon(4).prot(Prot::READ).map().unwrap_or(0);
    c.check(base != 0, "a read-only region", format_args!(""));
    let m = |va: u64, pages: u64| Mapping::anon(pages).at(va).map();
    expect_eq!(c, "map: unaligned", m(0x3000_0000_0010, 1), Err(VmError::BadRange));
    expect_eq!(c, "map: no pages", Mapping::anon(0).map(), Err(VmError::BadRange));
    expect_eq!(c, "map: huge", Mapping::anon(u64::MAX / 4096).map(), Err(VmError::BadRange));
    expect_eq!(c, "map: page zero", m(0, 1), Err(VmError::BadRange));
    expect_eq!(c, "map: the kernel's window", m(0x10_0000, 1), Err(VmError::BadRange));
    expect_eq!(c, "map: ExOS's private area", m(exos::private::BASE, 1), Err(VmError::BadRange));
    expect_eq!(c, "map: past user space", m(0x7f7f_ffff_f000, 2), Err(VmError::BadRange));
    expect_eq!(c, "map: kernel addresses", m(0xffff_8000_0000_0000, 1), Err(VmError::BadRange));
    expect_eq!(c, "map: over another region", m(base + 4096, 1), Err(VmError::Overlap));
    expect_eq!(c, "map: over the program", m(0x20_0000, 1), Err(VmError::Overlap));
    expect_eq!(
        c,
        "protect: no region",
        vm::protect(0x3000_0000_0000, 1, Prot::READ),
        Err(VmError::NotMapped)
    );
    expect_eq!(
        c,
        "protect: more than the region allows",
        vm::protect(base, 1, Prot::RW),
        Err(VmError::Denied)
    );
    expect_eq!(c, "protect: past the region", vm::protect(base, 5, Prot::READ), Err(VmError::BadRange));
    expect_eq!(c, "protect: no pages", vm::protect(base, 0, Prot::READ), Err(VmError::BadRange));
    expect_eq!(c, "protect: huge", vm::protect(base, u64::MAX, Prot::READ), Err(VmError::BadRange));
    expect_eq!(
        c,
        "protect: unknown bits",
        vm::protect(base, 1, Prot(0x101)),
        Err(VmError::Kernel(exo_abi::Error::BadArgument))
    );
    expect_eq!(
        c,
        "protect: write without read",
        vm::protect(base, 1, Prot::WRITE),
        Err(VmError::Kernel(exo_abi::Error::BadArgument))
    );
    expect_eq!(c, "dirty: nothing there", vm::is_dirty(0x3000_0000_0000), Err(VmError::NotMapped));
    expect_eq!(c, "unmap: no region", vm::unmap(0x3000_0000_0000, 1), Err(VmError::NotMapped));
    expect_eq!(c, "unmap: past the region", vm::unmap(base, 5), Err(VmError::BadRange));
    expect_eq!(c, "unmap: unaligned", vm::unmap(base + 8, 1), Err(VmError::BadRange));
    expect_eq!(
        c,
        "handler: no region",
        vm::set_fault_handler(0x3000_0000_0000, None),
        Err(VmError::NotMapped)
    );
    expect_eq!(c, "the region is intact", vm::region_at(base).map(|r| r.end), Some(base + 4 * 4096));
    expect_eq!(c, "the view is consistent", vm::audit(), Ok(()));
    // A fault nobody resolves goes to the program's exception handler.
    exos::exception::install(|a| {
        a.rip += 3; // skip the faulting `mov [rcx], rax`
        exos::exception::Resolution::Resume
    })
    .ok();
    // SAFETY: the store faults (the region is read-only and has no
    // handler); the exception handler skips it.
    unsafe { core::arch::asm!("mov qword ptr [rcx], rax", in("rcx") base, in("rax") 1u64) };
    expect_eq!(c, "an unresolved fault reaches the exception handler", read(base), 0);
    c.finish()
}
