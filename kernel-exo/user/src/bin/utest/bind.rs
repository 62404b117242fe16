//! Secure bindings: batches, protection changes, accessed/dirty bits seen
//! through the read-only self-map, unbinding, aliasing, partial failure,
//! no-execute, and the pages the environment may never write.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_abi::layout::{ExceptionArea, INFO_VA, UAREA_VA, pte, selfmap};
use exo_abi::{ANY_PAGE, Binding, Cap, ENV_SELF, Error, Prot};
use exo_user::{Checks, expect_eq, traps};
use exos::{mem, sys};

const BASE: u64 = 0x20_0000_0000;
const N: usize = 64;

/// Store `v` at `addr` with `mov [rcx], rax` (3 bytes).
fn store(addr: u64, v: u64) {
    // SAFETY: the tests store only to addresses they bound themselves or
    // that must fault; a fault resumes after the instruction.
    unsafe { asm!("mov qword ptr [rcx], rax", in("rcx") addr, in("rax") v, options(nostack)) };
}

/// Load from `addr` with `mov rax, [rcx]` (3 bytes).
fn load(addr: u64) -> u64 {
    let v;
    // SAFETY: as for `store`.
    unsafe { asm!("mov rax, qword ptr [rcx]", in("rcx") addr, lateout("rax") v, options(nostack)) };
    v
}

fn bind_self(list: &[Binding]) -> (u64, Result<(), Error>) {
    // SAFETY: every binding changed here is of the test region, which
    // holds no Rust data.
    unsafe { sys::bind(ENV_SELF, list) }
}

static FIX_CAP: AtomicU64 = AtomicU64::new(0);
static FIX_VA: AtomicU64 = AtomicU64::new(0);

/// Make the faulting page writable and retry (what a pager does).
fn unprotect(area: &mut ExceptionArea) -> bool {
    let va = FIX_VA.load(SeqCst);
    if area.addr & !0xfff != va {
        return false;
    }
    bind_self(&[Binding { va, cap: FIX_CAP.load(SeqCst), prot: Prot::RW.0 }]).1.is_ok()
}

/// Return from a faulting `call` (the return address is on the stack).
fn pop_return(area: &mut ExceptionArea) -> bool {
    // SAFETY: the faulting context's RSP points at the return address the
    // `call` pushed.
    area.rip = unsafe { core::ptr::read(area.rsp as *const u64) };
    area.rsp += 8;
    true
}

pub fn run() -> u64 {
    let mut c = Checks::new("bind");
    if let Err(e) = traps::install() {
        c.check(false, "install handler", format_args!("{e:?}"));
        return c.finish();
    }
    traps::arm(3);

    // One call binds 64 pages.
    let mut caps = [Cap(0); N];
    let mut list = [Binding::default(); N];
    for (i, (cap, b)) in caps.iter_mut().zip(list.iter_mut()).enumerate() {
        *cap = sys::page_alloc(ANY_PAGE).map(|r| r.0).unwrap_or(Cap(0));
        *b = Binding { va: BASE + i as u64 * 4096, cap: cap.0, prot: Prot::RW.0 };
    }
    expect_eq!(c, "64 bindings in one call", bind_self(&list), (N as u64, Ok(())));
    for i in 0..N {
        store(BASE + i as u64 * 4096, 0x1000 + i as u64);
    }
    let all_back = (0..N).all(|i| load(BASE + i as u64 * 4096) == 0x1000 + i as u64);
    c.check(all_back, "every page holds what was written", format_args!(""));
    expect_eq!(c, "no fault so far", traps::last().count, 0);

    // The self-map shows the entries, with accessed and dirty bits.
    let e0 = mem::pte(BASE).unwrap_or(0);
    let want = pte::PRESENT | pte::WRITABLE | pte::USER | pte::ACCESSED | pte::DIRTY | pte::NO_EXECUTE;
    expect_eq!(c, "pte bits after a write", e0 & want, want);
    expect_eq!(c, "pte names the page", e0 & pte::ADDR, sys::cap_info(caps[0]).map_or(0, |r| r.0 << 12));
    // A page only read is accessed but clean.
    let clean = Binding { va: BASE + 63 * 4096, cap: caps[63].0, prot: Prot::RW.union(Prot::CLEAR_AD).0 };
    expect_eq!(c, "rebind clean", bind_self(&[clean]), (1, Ok(())));
    let _ = load(BASE + 63 * 4096);
    let e63 = mem::pte(BASE + 63 * 4096).unwrap_or(0);
    c.check(
        e63 & pte::ACCESSED != 0 && e63 & pte::DIRTY == 0,
        "read-only use: accessed, clean",
        format_args!("{e63:#x}"),
    );

    // Protection change of the same page keeps the dirty bit ...
    expect_eq!(
        c,
        "rebind read-only",
        bind_self(&[Binding { va: BASE, cap: caps[0].0, prot: Prot::READ.0 }]),
        (1, Ok(()))
    );
    let e = mem::pte(BASE).unwrap_or(0);
    c.check(e & pte::WRITABLE == 0 && e & pte::DIRTY != 0, "read-only, still dirty", format_args!("{e:#x}"));
    c.check(mem::is_dirty(BASE), "is_dirty", format_args!(""));
    // ... unless asked to clear it.
    let clean = Binding { va: BASE, cap: caps[0].0, prot: Prot::READ.union(Prot::CLEAR_AD).0 };
    expect_eq!(c, "rebind read-only and clean", bind_self(&[clean]), (1, Ok(())));
    c.check(!mem::is_dirty(BASE), "CLEAR_AD cleans it", format_args!(""));
    expect_eq!(c, "the data survived", load(BASE), 0x1000);

    // Writing a read-only page faults to our handler ...
    store(BASE, 7);
    let s = traps::last();
    expect_eq!(c, "write to a read-only page: #PF", (s.count, s.trapno, s.error, s.addr), (1, 14, 7, BASE));
    expect_eq!(c, "the write did not happen", load(BASE), 0x1000);
    // ... and a handler that rebinds it writable makes the retry succeed.
    FIX_VA.store(BASE, SeqCst);
    FIX_CAP.store(caps[0].0, SeqCst);
    traps::set_fixer(Some(unprotect));
    store(BASE, 8);
    traps::set_fixer(None);
    expect_eq!(c, "fault, unprotect in the handler, resume", (traps::last().count, load(BASE)), (2, 8));

    // Unbinding.
    expect_eq!(c, "unbind", bind_self(&[Binding { va: BASE + 4096, cap: 0, prot: 0 }]), (1, Ok(())));
    expect_eq!(c, "no entry after unbind", mem::pte(BASE + 4096), None);
    let _ = load(BASE + 4096);
    let s = traps::last();
    expect_eq!(
        c,
        "read of an unbound page: #PF not-present",
        (s.count, s.error, s.addr),
        (3, 4, BASE + 4096)
    );
    expect_eq!(
        c,
        "unbinding twice is harmless",
        bind_self(&[Binding { va: BASE + 4096, cap: 0, prot: 0 }]),
        (1, Ok(()))
    );

    // Aliasing: page 3 also at page 2's address.
    expect_eq!(
        c,
        "rebind to another page",
        bind_self(&[Binding { va: BASE + 2 * 4096, cap: caps[3].0, prot: Prot::RW.0 }]),
        (1, Ok(()))
    );
    store(BASE + 3 * 4096, 0xa11a5);
    expect_eq!(c, "both addresses show one page", load(BASE + 2 * 4096), 0xa11a5);

    // A bad binding stops the batch; the ones before it stay.
    let batch = [
        Binding { va: BASE + 4096, cap: caps[1].0, prot: Prot::RW.0 },
        Binding { va: BASE + 2 * 4096, cap: caps[2].0, prot: Prot::RW.0 },
        Binding { va: BASE + 3 * 4096 + 8, cap: caps[3].0, prot: Prot::RW.0 },
        Binding { va: BASE + 5 * 4096, cap: caps[5].0, prot: Prot::READ.0 },
    ];
    expect_eq!(c, "partial batch", bind_self(&batch), (2, Err(Error::Unaligned)));
    c.check(mem::pte(BASE + 4096).is_some(), "first binding applied", format_args!(""));
    c.check(
        mem::pte(BASE + 5 * 4096).is_some_and(|e| e & pte::WRITABLE != 0),
        "fourth not applied",
        format_args!(""),
    );

    // No execute unless bound with EXEC.
    let code = BASE + 10 * 4096;
    store(code, 0xc3); // ret
    FIX_VA.store(0, SeqCst);
    traps::set_fixer(Some(pop_return));
    // SAFETY: the page holds a single `ret`; a fault returns via pop_return.
    unsafe { asm!("call rcx", in("rcx") code, clobber_abi("C")) };
    traps::set_fixer(None);
    let s = traps::last();
    expect_eq!(
        c,
        "executing a non-exec page: #PF instruction fetch",
        (s.count, s.trapno, s.error, s.addr),
        (4, 14, 0x15, code)
    );
    expect_eq!(
        c,
        "bind executable",
        bind_self(&[Binding { va: code, cap: caps[10].0, prot: Prot::RX.0 }]),
        (1, Ok(()))
    );
    // SAFETY: as above, now executable.
    unsafe { asm!("call rcx", in("rcx") code, clobber_abi("C")) };
    expect_eq!(c, "it runs", traps::last().count, 4);

    // Reprotection of a range in one call, and as batch entries.
    // SAFETY: the test region holds no Rust data.
    let r = unsafe { sys::protect(ENV_SELF, BASE + 32 * 4096, 16, Prot::READ) };
    expect_eq!(c, "protect 16 pages read-only", r, (16, Ok(())));
    let ro = (32..48)
        .all(|i| mem::pte(BASE + i * 4096).is_some_and(|e| e & pte::WRITABLE == 0 && e & pte::DIRTY != 0));
    c.check(ro, "all read-only, dirty bits kept", format_args!(""));
    // SAFETY: as above.
    let r = unsafe { sys::protect(ENV_SELF, BASE + 32 * 4096, 16, Prot::RW) };
    expect_eq!(c, "and writable again", r, (16, Ok(())));
    let keep = [
        Binding { va: BASE + 40 * 4096, cap: exo_abi::CAP_KEEP, prot: Prot::READ.0 },
        Binding { va: BASE + 41 * 4096, cap: exo_abi::CAP_KEEP, prot: Prot::READ.0 },
    ];
    expect_eq!(c, "reprotect entries in a batch", bind_self(&keep), (2, Ok(())));
    c.check(
        mem::pte(BASE + 41 * 4096).is_some_and(|e| e & pte::WRITABLE == 0),
        "entry applied",
        format_args!(""),
    );
    // SAFETY: as above.
    let r = unsafe { sys::protect(ENV_SELF, BASE + 62 * 4096, 4, Prot::READ) };
    expect_eq!(c, "protect stops at the first page with nothing bound", r, (2, Err(Error::BadAddress)));
    let hole = [Binding { va: BASE + 64 * 4096, cap: exo_abi::CAP_KEEP, prot: Prot::READ.0 }];
    expect_eq!(c, "reprotecting nothing bound", bind_self(&hole), (0, Err(Error::BadAddress)));

    // Batches and ranges that cross from one 2 MiB region (one last-level
    // table) into the next land each page where it was asked.
    let edge = 0x21_0000_0000 + 0x20_0000 - 2 * 4096; // two pages before a 2 MiB boundary
    let mut cross = [Binding::default(); 4];
    for (j, b) in cross.iter_mut().enumerate() {
        *b = Binding { va: edge + j as u64 * 4096, cap: caps[20 + j].0, prot: Prot::RW.0 };
    }
    expect_eq!(c, "a batch across a 2 MiB boundary", bind_self(&cross), (4, Ok(())));
    let placed = (0..4).all(|j| {
        let pa = sys::cap_info(caps[20 + j]).map_or(0, |r| r.0 << 12);
        mem::pte(edge + j as u64 * 4096).is_some_and(|e| e & pte::ADDR == pa)
    });
    c.check(placed, "each page bound at its own address", format_args!(""));
    c.check(load(edge + 3 * 4096) == 0x1000 + 23, "and it holds that page's data", format_args!(""));
    // SAFETY: the test region holds no Rust data.
    let r = unsafe { sys::protect(ENV_SELF, edge, 4, Prot::READ) };
    expect_eq!(c, "protect across the boundary", r, (4, Ok(())));
    let all_ro = (0..4).all(|j| mem::pte(edge + j * 4096).is_some_and(|e| e & pte::WRITABLE == 0));
    c.check(all_ro, "all four read-only", format_args!(""));
    let before = traps::last().count;
    store(edge + 3 * 4096, 1);
    expect_eq!(c, "and enforced on the far side", traps::last().count - before, 1);

    // What the environment may never write.
    store(selfmap::pte(BASE), 0);
    let s = traps::last();
    expect_eq!(c, "write to our page tables: #PF", (s.count, s.error, s.addr), (6, 7, selfmap::pte(BASE)));
    expect_eq!(
        c,
        "the entry is unchanged",
        mem::pte(BASE).map(|e| e & pte::ADDR),
        sys::cap_info(caps[0]).ok().map(|r| r.0 << 12)
    );
    store(INFO_VA, 0);
    expect_eq!(c, "write to the info page: #PF", (traps::last().count, traps::last().addr), (7, INFO_VA));
    expect_eq!(
        c,
        "the kernel-managed window cannot be rebound",
        bind_self(&[Binding { va: UAREA_VA, cap: caps[4].0, prot: Prot::RW.0 }]),
        (0, Err(Error::BadAddress))
    );
    let name = "exo-hello";
    // SAFETY: ProgramRead writes only where it is told; told to write the
    // read-only info page it must refuse (which is what is checked).
    let (status, _, _) = unsafe {
        sys::raw(
            exo_abi::Call::ProgramRead as u64,
            name.as_ptr() as u64,
            name.len() as u64,
            0,
            INFO_VA,
            16,
            0,
        )
    };
    expect_eq!(
        c,
        "the kernel will not write the info page for us",
        Error::check(status),
        Err(Error::BadAddress)
    );
    one_page_protect(&mut c);
    c.finish()
}

/// One page of our own address space, again and again in one 2 MiB
/// region: after the first call the kernel answers from its cached
/// last-level table (its assembly fast path); every outcome must be the
/// same as the general path's.
fn one_page_protect(c: &mut Checks) {
    let p = |va: u64, prot: u64| {
        // SAFETY: the test region holds no Rust data.
        let (s, n, _) = unsafe { sys::raw(exo_abi::Call::Protect as u64, ENV_SELF, va, 1, prot, 0, 0) };
        (n, Error::check(s))
    };
    let va = BASE + 50 * 4096;
    store(va, 5);
    let frame = mem::pte(va).map(|e| e & pte::ADDR);
    expect_eq!(c, "one page read-only (fills the cache)", p(va, Prot::READ.0), (1, Ok(())));
    expect_eq!(c, "one page read-only again (cached): nothing changed", p(va, Prot::READ.0), (0, Ok(())));
    let e = mem::pte(va).unwrap_or(0);
    let bits = (e & pte::WRITABLE, e & pte::DIRTY != 0, e & pte::NO_EXECUTE != 0, e & pte::MAY_WRITE != 0);
    expect_eq!(c, "read-only, dirty kept, not executable, may write", bits, (0, true, true, true));
    let before = traps::last().count;
    store(va, 6);
    expect_eq!(c, "a store faults", traps::last().count - before, 1);
    expect_eq!(c, "read-write", p(va, Prot::RW.0), (1, Ok(())));
    store(va, 7);
    expect_eq!(c, "a store works again", (traps::last().count - before, load(va)), (1, 7));
    expect_eq!(c, "read-execute", p(va, Prot::RX.0), (1, Ok(())));
    let e = mem::pte(va).unwrap_or(0);
    expect_eq!(c, "executable, not writable", (e & pte::NO_EXECUTE, e & pte::WRITABLE), (0, 0));
    expect_eq!(c, "clear accessed/dirty", p(va, Prot::RW.0 | Prot::CLEAR_AD.0), (1, Ok(())));
    let e = mem::pte(va).unwrap_or(0);
    expect_eq!(c, "accessed and dirty clear", e & (pte::ACCESSED | pte::DIRTY), 0);
    expect_eq!(c, "still the same frame", Some(e & pte::ADDR), frame);
    // Refusals with the table cached.
    expect_eq!(c, "unaligned", p(va + 8, Prot::READ.0), (0, Err(Error::Unaligned)));
    expect_eq!(c, "unknown bits", p(va, 0x11), (0, Err(Error::BadArgument)));
    expect_eq!(c, "no READ", p(va, Prot::WRITE.0), (0, Err(Error::BadArgument)));
    expect_eq!(
        c,
        "nothing bound in the cached table",
        p(BASE + 70 * 4096, Prot::READ.0),
        (0, Err(Error::BadAddress))
    );
    expect_eq!(c, "the user area", p(UAREA_VA, Prot::READ.0), (0, Err(Error::BadAddress)));
    expect_eq!(
        c,
        "another table (cache miss)",
        p(BASE + 0x40_0000, Prot::READ.0),
        (0, Err(Error::BadAddress))
    );
    expect_eq!(c, "back to the first (already read-write: nothing changed)", p(va, Prot::RW.0), (0, Ok(())));
    // The first 2 MiB holds the kernel's user area and info page next to
    // pages we may bind: protecting one of ours there must never let a
    // later request reach the kernel's pages (the fast path trusts its
    // cached table only outside that region).
    let low = 0x8000;
    let cap = sys::page_alloc(exo_abi::ANY_PAGE).map_or(0, |r| r.0.0);
    expect_eq!(
        c,
        "bind a page in the first 2 MiB",
        bind_self(&[Binding { va: low, cap, prot: Prot::RW.0 }]),
        (1, Ok(()))
    );
    expect_eq!(c, "protect it", p(low, Prot::READ.0), (1, Ok(())));
    expect_eq!(c, "protect it again", p(low, Prot::RW.0), (1, Ok(())));
    expect_eq!(c, "then the user area", p(UAREA_VA, Prot::READ.0), (0, Err(Error::BadAddress)));
    expect_eq!(c, "then the info page", p(INFO_VA, Prot::RW.0), (0, Err(Error::BadAddress)));
    store(low, 9);
    expect_eq!(c, "our low page still writable", load(low), 9);
}
