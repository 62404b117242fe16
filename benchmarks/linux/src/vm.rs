//! Virtual-memory operations with `mprotect` and a SIGSEGV handler, the
//! interface a Unix application has (as the SPIN paper measured OSF/1), and
//! the dirty query through /proc/self/pagemap's soft-dirty bit.

use crate::sys;
use benchmarks::defs::{APPEL2_PAGES, appel2_rounds};
use benchmarks::line::ExtraLine;
use benchmarks::measure::{Sample, measure_runs, rdtsc};
use benchmarks::suite::Outcome;
use benchmarks::{Op, measure};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

const PAGES: usize = APPEL2_PAGES as usize;

/// What the SIGSEGV handler does (set before each measurement).
static MODE: AtomicU8 = AtomicU8::new(0);
const TRAP: u8 = 1; // stop the clock, unprotect the page
const UNPROTECT: u8 = 2; // unprotect the faulting page ("fault", "appel2")
const APPEL1: u8 = 3; // unprotect the faulting page, protect the other one
/// Clock at the faulting access ("trap") and accumulated ticks.
static START: AtomicU64 = AtomicU64::new(0);
static TRAP_TICKS: AtomicU64 = AtomicU64::new(0);
/// The two pages "appel1" alternates between.
static PAGE_A: AtomicUsize = AtomicUsize::new(0);
static PAGE_B: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_segv(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let now = rdtsc();
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let page = (unsafe { (*info).si_addr() } as usize) & !4095;
    match MODE.load(Ordering::Relaxed) {
        TRAP => {
            TRAP_TICKS.fetch_add(now - START.load(Ordering::Relaxed), Ordering::Relaxed);
            sys::protect(page as *mut u8, 1, true);
        }
        UNPROTECT => {
            sys::protect(page as *mut u8, 1, true);
        }
        APPEL1 => {
            sys::protect(page as *mut u8, 1, true);
            let a = PAGE_A.load(Ordering::Relaxed);
            let other = if page == a { PAGE_B.load(Ordering::Relaxed) } else { a };
            sys::protect(other as *mut u8, 1, false);
        }
        _ => {
            // Not ours: restore the default action so the fault kills us
            // visibly instead of looping.
            sys::default_signal(libc::SIGSEGV);
        }
    }
}

#[inline(always)]
fn touch(p: *mut u8) {
    // SAFETY: `p` is inside a mapping we own; the write may fault, and the
    // handler makes it writable before the instruction is retried.
    unsafe { core::ptr::write_volatile(p, 1) };
}

/// Time `iters` calls giving `pages` pages from `p` the protection
/// `writable` names, each followed by an untimed call putting them back;
/// after each run's last timed call, /proc/self/maps must show the change.
fn timed_protect(p: *mut u8, pages: usize, writable: bool, iters: u32, runs: u32) -> Sample {
    measure_runs(iters, runs, || {
        let mut total = 0;
        for i in 0..iters {
            let t0 = rdtsc();
            let r = sys::protect(p, pages, writable);
            total += rdtsc() - t0;
            assert!(r, "mprotect failed");
            if i + 1 == iters {
                assert!(sys::has_protection(p, pages, writable), "mprotect changed nothing at {p:?}");
            }
            sys::protect(p, pages, !writable);
        }
        total
    })
}

pub fn run(op: &'static Op, iters: u32, runs: u32) -> Outcome {
    // The 100-page region is its own mapping, with guard gaps.
    let region = sys::map_region(PAGES);
    let page = region;
    sys::on_signal(libc::SIGSEGV, on_segv);
    let sample = match op.name {
        "trap" => {
            MODE.store(TRAP, Ordering::SeqCst);
            measure_runs(iters, runs, || {
                TRAP_TICKS.store(0, Ordering::Relaxed);
                for _ in 0..iters {
                    sys::protect(page, 1, false);
                    START.store(rdtsc(), Ordering::Relaxed);
                    touch(page);
                }
                TRAP_TICKS.load(Ordering::Relaxed)
            })
        }
        "fault" => {
            MODE.store(UNPROTECT, Ordering::SeqCst);
            measure_runs(iters, runs, || {
                let mut total = 0;
                for _ in 0..iters {
                    sys::protect(page, 1, false);
                    let t0 = rdtsc();
                    touch(page);
                    total += rdtsc() - t0;
                }
                total
            })
        }
        "prot1" | "prot100" => {
            // prot1: page 0 of the 100-page region, so the call splits the
            // mapping in two (Linux keeps protection per mapping: that is
            // what raising one page of a larger region costs it); prot100:
            // the whole mapping, no split. The untimed restore merges.
            let n = if op.name == "prot1" { 1 } else { PAGES };
            let s = timed_protect(region, n, false, iters, runs);
            if op.name == "prot1" {
                let own = sys::map_region(1);
                let alone = timed_protect(own, 1, false, iters, runs);
                sys::unmap_pages(own, 1);
                let label = "page is its own mapping (no split)";
                println!("{}", ExtraLine { kernel: "linux", op, label, sample: alone });
            }
            s
        }
        "unprot100" => {
            sys::protect(region, PAGES, false);
            timed_protect(region, PAGES, true, iters, runs)
        }
        "appel1" => {
            // Steady state: one page protected; each fault unprotects it and
            // protects the other, so the next iteration faults on that one.
            let (a, b) = (region, region.wrapping_add(4096));
            PAGE_A.store(a as usize, Ordering::SeqCst);
            PAGE_B.store(b as usize, Ordering::SeqCst);
            MODE.store(APPEL1, Ordering::SeqCst);
            sys::protect(a, 1, false);
            let mut next = a;
            measure(iters, runs, || {
                touch(next);
                next = if next == a { b } else { a };
            })
        }
        "appel2" => {
            MODE.store(UNPROTECT, Ordering::SeqCst);
            let rounds = appel2_rounds(iters);
            let mut s = measure(rounds, runs, || {
                sys::protect(region, PAGES, false);
                for i in 0..PAGES {
                    touch(region.wrapping_add(i * 4096));
                }
            });
            s.iterations = rounds * APPEL2_PAGES;
            s
        }
        _ => unreachable!("vm::run called for {}", op.name),
    };
    MODE.store(0, Ordering::SeqCst);
    sys::default_signal(libc::SIGSEGV);
    sys::unmap_pages(region, PAGES);
    Outcome::Measured(sample)
}

/// Soft-dirty bit of a pagemap entry.
const SOFT_DIRTY: u64 = 1 << 55;

/// Where the "dirty" row's page sits in its 2 MiB window: the last page.
/// A pagemap read walks from the page it asks about to the end of that
/// page's 2 MiB window, so this is the one place where the query looks at
/// nothing but the page asked about (the interface's floor); the first
/// page of a window walks all 512 entries. Extra lines give the others.
const DIRTY_PAGE: usize = 511;
/// The other positions printed as extra lines (the range over positions).
const DIRTY_OTHER_PAGES: [usize; 2] = [256, 0];

/// "Is this page dirty?": one pread of the page's /proc/self/pagemap entry
/// (after clearing soft-dirty bits through /proc/self/clear_refs), for a
/// page at a fixed place in its 2 MiB window ([`DIRTY_PAGE`]).
pub fn dirty(op: &'static Op, iters: u32, runs: u32) -> Outcome {
    let Ok(pagemap) = std::fs::File::open("/proc/self/pagemap") else {
        return Outcome::NotApplicable("/proc/self/pagemap is not available");
    };
    let outcome = match dirty_at(&pagemap, DIRTY_PAGE, iters, runs) {
        Ok(sample) => Outcome::Measured(sample),
        Err(why) => return Outcome::NotApplicable(why),
    };
    for index in DIRTY_OTHER_PAGES {
        if let Ok(sample) = dirty_at(&pagemap, index, iters, runs) {
            let label = format!("page {index} of its 2 MiB window (the row: page {DIRTY_PAGE})");
            println!("{}", ExtraLine { kernel: "linux", op, label: &label, sample });
        }
    }
    outcome
}

/// The "dirty" query for a page at page `index` of its 2 MiB window.
fn dirty_at(pagemap: &std::fs::File, index: usize, iters: u32, runs: u32) -> Result<Sample, &'static str> {
    use std::os::unix::fs::FileExt;
    let page = sys::map_page_in_window(index);
    touch(page);
    if std::fs::write("/proc/self/clear_refs", "4").is_err() {
        sys::unmap_pages(page, 1);
        return Err("cannot clear soft-dirty bits (/proc/self/clear_refs)");
    }
    let offset = (page as u64 / 4096) * 8;
    let query = || {
        let mut entry = [0u8; 8];
        let _ = pagemap.read_exact_at(&mut entry, offset);
        u64::from_ne_bytes(entry) & SOFT_DIRTY != 0
    };
    let clean = query();
    touch(page);
    let dirty = query();
    let outcome = if clean || !dirty {
        Err("this kernel does not track soft-dirty bits (CONFIG_MEM_SOFT_DIRTY)")
    } else {
        Ok(measure(iters, runs, || {
            core::hint::black_box(query());
        }))
    };
    sys::unmap_pages(page, 1);
    outcome
}
