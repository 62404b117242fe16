//! Virtual-memory operations with `mprotect` and a SIGSEGV handler, the
//! interface a Unix application has (as the SPIN paper measured OSF/1), and
//! the dirty query through /proc/self/pagemap's soft-dirty bit.

use crate::sys;
use benchmarks::defs::{APPEL2_PAGES, appel2_rounds};
use benchmarks::measure::{measure_runs, rdtsc};
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
        UNPROTECT => sys::protect(page as *mut u8, 1, true),
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

pub fn run(op: &'static Op, iters: u32, runs: u32) -> Outcome {
    let region = sys::map_pages(PAGES);
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
            let n = if op.name == "prot1" { 1 } else { PAGES };
            measure_runs(iters, runs, || {
                let mut total = 0;
                for _ in 0..iters {
                    let t0 = rdtsc();
                    sys::protect(region, n, false);
                    total += rdtsc() - t0;
                    sys::protect(region, n, true);
                }
                total
            })
        }
        "unprot100" => measure_runs(iters, runs, || {
            let mut total = 0;
            for _ in 0..iters {
                sys::protect(region, PAGES, false);
                let t0 = rdtsc();
                sys::protect(region, PAGES, true);
                total += rdtsc() - t0;
            }
            total
        }),
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

/// "Is this page dirty?": one pread of the page's /proc/self/pagemap entry
/// (after clearing soft-dirty bits through /proc/self/clear_refs).
pub fn dirty(iters: u32, runs: u32) -> Outcome {
    use std::os::unix::fs::FileExt;
    let Ok(pagemap) = std::fs::File::open("/proc/self/pagemap") else {
        return Outcome::NotApplicable("/proc/self/pagemap is not available");
    };
    let page = sys::map_pages(1);
    touch(page);
    if std::fs::write("/proc/self/clear_refs", "4").is_err() {
        sys::unmap_pages(page, 1);
        return Outcome::NotApplicable("cannot clear soft-dirty bits (/proc/self/clear_refs)");
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
        Outcome::NotApplicable("this kernel does not track soft-dirty bits (CONFIG_MEM_SOFT_DIRTY)")
    } else {
        Outcome::Measured(measure(iters, runs, || {
            core::hint::black_box(query());
        }))
    };
    sys::unmap_pages(page, 1);
    outcome
}
