//! The virtual-memory rows (SPIN Table 4), built the way a library OS
//! builds them on an exokernel: protection changes are `protect` calls
//! (a range reprotected in one call; the pages stay bound, only their
//! rights change, authorised when they were bound); the dirty query reads
//! the read-only self-map; and faults come to this environment's own
//! handler, which resolves them with a `protect` and resumes in ring 3.

use benchmarks::measure::{measure_runs, rdtsc};
use benchmarks::suite::Outcome;
use core::arch::{asm, naked_asm};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::layout::{UAREA_VA, xoff};
use exo_abi::{ANY_PAGE, Binding, Call, ENV_SELF, HandlerKind, Prot};
use exos::sys;

/// The pages the rows work on, bound from here.
const BASE: u64 = 0x1000_0000;
/// Enough for the largest "fault" run (1000 iterations, one page each).
const PAGES: u64 = 1024;

static READY: AtomicU64 = AtomicU64::new(0);

/// Reprotect `pages` pages from BASE + `first` pages.
fn protect(first: u64, pages: u64, prot: Prot) {
    // SAFETY: the BASE region holds no Rust data.
    let (_, r) = unsafe { sys::protect(ENV_SELF, BASE + first * 4096, pages, prot) };
    r.expect("protect");
}

/// Allocate and bind the pages, writable.
fn setup() {
    if READY.load(Relaxed) != 0 {
        return;
    }
    let mut batch = [Binding::default(); 64];
    for first in (0..PAGES).step_by(batch.len()) {
        for (j, b) in batch.iter_mut().enumerate() {
            let (cap, _) = sys::page_alloc(ANY_PAGE).expect("page for the VM benchmarks");
            *b = Binding { va: BASE + (first + j as u64) * 4096, cap: cap.0, prot: Prot::RW.0 };
        }
        // SAFETY: the BASE region holds no Rust data.
        let (_, r) = unsafe { sys::bind(ENV_SELF, &batch) };
        r.expect("bind");
    }
    READY.store(1, Relaxed);
}

/// "fault": make the faulting page writable, retry the store.
#[unsafe(naked)]
extern "C" fn unprotect() {
    naked_asm!(
        "mov rsi, qword ptr [{addr}]",   // faulting address
        "and rsi, -4096",                // its page
        "xor edi, edi",                  // protect(ENV_SELF, page, 1, RW)
        "mov edx, 1",
        "mov r10d, {rw}",
        "mov eax, {protect}",
        "syscall",
        "mov rcx, qword ptr [{rcx}]",    // retry the faulting store
        "mov rax, qword ptr [{rax}]",
        "mov rsp, qword ptr [{rsp}]",
        "mov qword ptr [{busy}], 0",
        "jmp qword ptr [{rip}]",
        addr = const UAREA_VA + xoff::ADDR as u64,
        rw = const Prot::RW.0,
        protect = const Call::Protect as u64,
        rip = const UAREA_VA + xoff::RIP as u64,
        rcx = const UAREA_VA + xoff::RCX as u64,
        rax = const UAREA_VA + xoff::RAX as u64,
        rsp = const UAREA_VA + xoff::RSP as u64,
        busy = const UAREA_VA + xoff::BUSY as u64,
    )
}

/// "appel1": make the faulting page (BASE or BASE + 4096) writable and
/// protect the other one, then retry.
#[unsafe(naked)]
extern "C" fn swap_protection() {
    naked_asm!(
        "mov rsi, qword ptr [{addr}]",
        "and rsi, -4096",
        "xor edi, edi",                  // protect(ENV_SELF, page, 1, RW)
        "mov edx, 1",
        "mov r10d, {rw}",
        "mov eax, {protect}",
        "syscall",
        "mov rsi, qword ptr [{addr}]",
        "and rsi, -4096",
        "xor rsi, 0x1000",               // the other page
        "xor edi, edi",                  // protect(ENV_SELF, other, 1, READ)
        "mov edx, 1",
        "mov r10d, {ro}",
        "mov eax, {protect}",
        "syscall",
        "mov rcx, qword ptr [{rcx}]",    // retry the faulting store
        "mov rax, qword ptr [{rax}]",
        "mov rsp, qword ptr [{rsp}]",
        "mov qword ptr [{busy}], 0",
        "jmp qword ptr [{rip}]",
        addr = const UAREA_VA + xoff::ADDR as u64,
        rw = const Prot::RW.0,
        ro = const Prot::READ.0,
        protect = const Call::Protect as u64,
        rip = const UAREA_VA + xoff::RIP as u64,
        rcx = const UAREA_VA + xoff::RCX as u64,
        rax = const UAREA_VA + xoff::RAX as u64,
        rsp = const UAREA_VA + xoff::RSP as u64,
        busy = const UAREA_VA + xoff::BUSY as u64,
    )
}

static T0: AtomicU64 = AtomicU64::new(0);
static SUM: AtomicU64 = AtomicU64::new(0);

/// "trap": stop the clock first thing, then skip the faulting store.
#[unsafe(naked)]
extern "C" fn stop_clock() {
    naked_asm!(
        "lfence",
        "rdtsc",                         // the handler has started: stop the clock
        "lfence",
        "shl rdx, 32",
        "or rax, rdx",
        "sub rax, qword ptr [rip + {t0}]",
        "add qword ptr [rip + {sum}], rax",
        "mov rcx, qword ptr [{rip}]",
        "lea rcx, [rcx + 3]",            // past the store
        "mov qword ptr [{rip}], rcx",
        "mov rcx, qword ptr [{rcx}]",
        "mov rax, qword ptr [{rax}]",
        "mov rsp, qword ptr [{rsp}]",
        "mov qword ptr [{busy}], 0",
        "jmp qword ptr [{rip}]",
        t0 = sym T0,
        sum = sym SUM,
        rip = const UAREA_VA + xoff::RIP as u64,
        rcx = const UAREA_VA + xoff::RCX as u64,
        rax = const UAREA_VA + xoff::RAX as u64,
        rsp = const UAREA_VA + xoff::RSP as u64,
        busy = const UAREA_VA + xoff::BUSY as u64,
    )
}

fn handle_with(handler: extern "C" fn()) {
    let stack = crate::exceptions::handler_stack();
    // SAFETY: the handlers follow the exception entry convention.
    unsafe { sys::set_handler(HandlerKind::Exception, handler as *const () as u64, stack) }.expect("handler");
}

/// A store to page `i` that may fault; the handlers may clobber every
/// caller-saved register (they make system calls).
#[inline(always)]
fn store(i: u64) {
    // SAFETY: BASE pages hold no Rust data; a fault is resolved by the
    // handler, which retries or skips the store.
    unsafe { asm!("mov qword ptr [rcx], rax", in("rcx") BASE + i * 4096, in("rax") i, clobber_abi("C")) };
}

pub fn run(name: &str, iters: u32, runs: u32) -> Outcome {
    setup();
    let n = iters as u64;
    let sample = match name {
        "dirty" => {
            store(0);
            benchmarks::measure(iters, runs, || {
                core::hint::black_box(exos::mem::is_dirty(BASE));
            })
        }
        "prot1" => benchmarks::measure(iters, runs, || protect(0, 1, Prot::READ)),
        "prot100" => benchmarks::measure(iters, runs, || protect(0, 100, Prot::READ)),
        "unprot100" => benchmarks::measure(iters, runs, || protect(0, 100, Prot::RW)),
        "trap" => {
            handle_with(stop_clock);
            protect(0, 1, Prot::READ);
            measure_runs(iters, runs, || {
                SUM.store(0, Relaxed);
                for _ in 0..iters {
                    T0.store(rdtsc(), Relaxed);
                    // SAFETY: page 0 is read-only: the store faults, the
                    // handler stops the clock and skips it.
                    unsafe { asm!("mov qword ptr [rcx], rax", in("rcx") BASE, in("rax") 1u64, out("rdx") _) };
                }
                SUM.load(Relaxed)
            })
        }
        "fault" => {
            handle_with(unprotect);
            measure_runs(iters, runs, || {
                protect(0, n, Prot::READ); // untimed: protect the pages this run faults on
                let t0 = rdtsc();
                for i in 0..n {
                    store(i);
                }
                rdtsc() - t0
            })
        }
        "appel1" => {
            handle_with(swap_protection);
            protect(0, 1, Prot::READ);
            benchmarks::measure(iters, runs, {
                let mut i = 0;
                move || {
                    store(i & 1); // faults: the handler unprotects it and protects the other
                    i += 1;
                }
            })
        }
        "appel2" => {
            handle_with(unprotect);
            // Per page: protect 100 (one call), then fault on each.
            let rounds = iters;
            let mut sample = measure_runs(rounds * 100, runs, || {
                let t0 = rdtsc();
                for _ in 0..rounds {
                    protect(0, 100, Prot::READ);
                    for i in 0..100 {
                        store(i);
                    }
                }
                rdtsc() - t0
            });
            sample.iterations = rounds * 100;
            sample
        }
        other => unreachable!("not a virtual-memory row: {other}"),
    };
    // SAFETY: unregistering transfers control nowhere.
    unsafe { sys::set_handler(HandlerKind::Exception, 0, 0) }.expect("unregister");
    protect(0, PAGES, Prot::RW);
    Outcome::Measured(sample)
}
