//! fork with copy-on-write, at user level: the child sees the parent's
//! memory as it was at the fork, each side's writes stay its own (static
//! data, heap, stack, an anonymous region), nested forks, forking from a
//! thread, and nothing leaks once the child is gone.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_abi::{EnvStatus, Error};
use exo_user::{Checks, expect_eq};
use exos::fork::{Fork, fork};
use exos::spawn::wait_child;
use exos::vm::{self, Mapping};

/// Initialised data (.data) and zeroed data (.bss).
static mut DATA: [u64; 600] = [1; 600];
static BSS: AtomicU64 = AtomicU64::new(0);

fn data(i: usize) -> u64 {
    // SAFETY: single-threaded use of the test's own static.
    unsafe { core::ptr::read_volatile(&raw const DATA[i]) }
}

fn set_data(i: usize, v: u64) {
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(&raw mut DATA[i], v) }
}

fn peek(va: u64) -> u64 {
    // SAFETY: `va` is in a region this test mapped.
    unsafe { (va as *const u64).read_volatile() }
}

fn poke(va: u64, v: u64) {
    // SAFETY: as above; a copy-on-write fault is resolved by ExOS.
    unsafe { (va as *mut u64).write_volatile(v) }
}

pub fn run() -> u64 {
    let mut c = Checks::new("fork");
    set_data(0, 10);
    set_data(599, 10);
    BSS.store(20, SeqCst);
    let mut heap = Box::new([30u64; 1000]); // spans pages
    let mut local = [40u64; 16];
    let anon = Mapping::anon(2).map().unwrap_or(0);
    poke(anon, 50);
    let anon_ppn = vm::page_at(anon).map(|p| p.1);
    expect_eq!(c, "too much quota for the child", fork(1, 1 << 30).map(|_| ()), Err(Error::QuotaExceeded));
    expect_eq!(c, "the parent is untouched by a failed fork", (data(0), peek(anon)), (10, 50));

    match fork(1, 400) {
        Ok(Fork::Child) => {
            let mut k = Checks::new("fork-child");
            let seen = (data(0), data(599), BSS.load(SeqCst), heap[0], heap[999], local[15], peek(anon));
            expect_eq!(
                k,
                "the child sees the parent's memory at the fork",
                seen,
                (10, 10, 20, 30, 30, 40, 50)
            );
            set_data(0, 11);
            BSS.store(21, SeqCst);
            heap[999] = 31;
            local[15] = 41;
            poke(anon, 51);
            let mine = (data(0), BSS.load(SeqCst), heap[999], local[15], peek(anon));
            expect_eq!(k, "the child's writes are its own", mine, (11, 21, 31, 41, 51));
            let v = Box::new(77u64);
            expect_eq!(k, "the child's heap works", *v, 77);
            // A grandchild: our pages are partly grants, which ExOS copies.
            match fork(0, 150) {
                Ok(Fork::Child) => {
                    let ok = data(0) == 11 && heap[999] == 31 && peek(anon) == 51;
                    set_data(0, 12);
                    poke(anon, 52);
                    exos::sys::exit(if ok && data(0) == 12 && peek(anon) == 52 { 0 } else { 1 });
                }
                Ok(Fork::Parent(g)) => {
                    let r = wait_child(g);
                    expect_eq!(k, "the grandchild saw our memory", r, Ok((EnvStatus::Exited, 0)));
                }
                Err(e) => k.check(false, "fork a grandchild", format_args!("{e:?}")),
            }
            expect_eq!(k, "the grandchild's writes stayed its own", (data(0), peek(anon)), (11, 51));
            expect_eq!(k, "the child's view is consistent", vm::audit(), Ok(()));
            exos::sys::exit(k.finish());
        }
        Ok(Fork::Parent(child)) => {
            // Write right away: the child must still see the old values.
            set_data(599, 19);
            heap[0] = 39;
            local[0] = 49;
            let r = wait_child(child);
            expect_eq!(c, "the child ran its checks", r, Ok((EnvStatus::Exited, 0)));
            let mine =
                (data(0), data(599), BSS.load(SeqCst), heap[0], heap[999], local[0], local[15], peek(anon));
            expect_eq!(c, "the parent's memory is its own", mine, (10, 19, 20, 39, 30, 49, 40, 50));
            // The pages we copied away from while the child shared them
            // were freed when we reaped it.
            expect_eq!(c, "nothing kept for the child", exos::private::rt().retired.len, 0);
            // Nobody shares the anonymous page now: writing it makes our
            // own page writable again, no copy.
            poke(anon, 59);
            expect_eq!(c, "no copy once the child is gone", vm::page_at(anon).map(|p| p.1), anon_ppn);
        }
        Err(e) => c.check(false, "fork", format_args!("{e:?}")),
    }
    expect_eq!(c, "the parent's view is consistent", vm::audit(), Ok(()));
    from_thread(&mut c);
    c.finish()
}

static THREAD_FORK: AtomicU64 = AtomicU64::new(0);

/// A thread forks: the child continues in that thread, alone.
fn forker(x: u64) -> u64 {
    match fork(1, 300) {
        Ok(Fork::Child) => {
            let ok = exos::thread::current() != exos::thread::ThreadId(1);
            THREAD_FORK.store(x + 1, SeqCst);
            exos::sys::exit(if ok && THREAD_FORK.load(SeqCst) == x + 1 { 0 } else { 1 });
        }
        Ok(Fork::Parent(child)) => match wait_child(child) {
            Ok((EnvStatus::Exited, 0)) => THREAD_FORK.load(SeqCst),
            _ => u64::MAX,
        },
        Err(_) => u64::MAX - 1,
    }
}

fn from_thread(c: &mut Checks) {
    let r = exos::thread::spawn(forker, 5).map(exos::thread::join);
    expect_eq!(c, "fork from a thread: the child ran alone, our memory unchanged", r, Ok(Ok(0)));
}
