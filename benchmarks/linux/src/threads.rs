//! Kernel threads (NPTL pthreads are kernel-scheduled, one kernel thread
//! each): fork-join with pthread_create/join, ping-pong over a futex, and
//! process fork+wait as an extra.

use crate::sys;
use benchmarks::line::ExtraLine;
use benchmarks::suite::Outcome;
use benchmarks::{Op, measure};
use std::sync::atomic::{AtomicU32, Ordering};

extern "C" fn null_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    std::ptr::null_mut()
}

/// Start a thread running `f` (pthread_t is an integer on glibc, a pointer on musl).
fn spawn(f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void) -> libc::pthread_t {
    let mut t = std::mem::MaybeUninit::<libc::pthread_t>::uninit();
    // SAFETY: `t` receives the thread id; the start routine ignores its argument.
    let r = unsafe { libc::pthread_create(t.as_mut_ptr(), std::ptr::null(), f, std::ptr::null_mut()) };
    assert_eq!(r, 0, "pthread_create failed");
    // SAFETY: pthread_create succeeded, so it wrote the id.
    unsafe { t.assume_init() }
}

fn join(t: libc::pthread_t) {
    // SAFETY: `t` is a joinable thread we started and have not joined.
    unsafe { libc::pthread_join(t, std::ptr::null_mut()) };
}

/// The stack every fork-join thread runs on, reused from one to the next
/// as glibc's stack cache does (musl, which `/init` links, maps, faults in
/// and unmaps a fresh stack per thread otherwise: about 40,000
/// instructions more per fork-join than what glibc programs get).
/// musl places the thread's descriptor and TLS at its top.
const CACHED_STACK: usize = 64 * 1024;

/// Attributes that hand pthread_create the cached stack.
fn cached_stack_attr() -> libc::pthread_attr_t {
    let stack = sys::map_pages(CACHED_STACK / 4096);
    // SAFETY: a zeroed attr is initialised by pthread_attr_init; the stack
    // is a mapping of ours that lives (never unmapped) as long as the
    // program, used by one thread at a time (each is joined before the next
    // starts).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_attr_init(&mut attr), 0);
        assert_eq!(libc::pthread_attr_setstack(&mut attr, stack as *mut libc::c_void, CACHED_STACK), 0);
        attr
    }
}

fn spawn_with(
    attr: &libc::pthread_attr_t,
    f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
) -> libc::pthread_t {
    let mut t = std::mem::MaybeUninit::<libc::pthread_t>::uninit();
    // SAFETY: as in `spawn`; `attr` is initialised.
    let r = unsafe { libc::pthread_create(t.as_mut_ptr(), attr, f, std::ptr::null_mut()) };
    assert_eq!(r, 0, "pthread_create failed");
    // SAFETY: pthread_create succeeded, so it wrote the id.
    unsafe { t.assume_init() }
}

pub fn fork_join(op: &'static Op, iters: u32, runs: u32) -> Outcome {
    let procs = measure(iters, runs, || match sys::fork() {
        0 => sys::exit_now(0),
        child => {
            sys::wait_ok(child);
        }
    });
    println!("{}", ExtraLine { kernel: "linux", op, label: "process fork + wait", sample: procs });
    let fresh = measure(iters, runs, || join(spawn(null_thread)));
    let label = "musl pthread_create with a fresh stack each time";
    println!("{}", ExtraLine { kernel: "linux", op, label, sample: fresh });
    let attr = cached_stack_attr();
    Outcome::Measured(measure(iters, runs, || join(spawn_with(&attr, null_thread))))
}

/// 0: the main thread's turn; 1: the partner's turn; 2: the partner must stop.
static TURN: AtomicU32 = AtomicU32::new(0);

fn futex_wait(word: &AtomicU32, while_value: u32) {
    // SAFETY: FUTEX_WAIT on a valid, aligned 32-bit word; returns on wake,
    // on value mismatch, or spuriously (callers loop).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            while_value,
            0usize,
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned 32-bit word.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1, 0usize);
    }
}

extern "C" fn partner(_: *mut libc::c_void) -> *mut libc::c_void {
    loop {
        let t = TURN.load(Ordering::Acquire);
        match t {
            0 => futex_wait(&TURN, 0),
            1 => {
                TURN.store(0, Ordering::Release);
                futex_wake(&TURN);
            }
            _ => return std::ptr::null_mut(),
        }
    }
}

pub fn ping_pong(iters: u32, runs: u32) -> Outcome {
    TURN.store(0, Ordering::SeqCst);
    let t = spawn(partner);
    let sample = measure(iters, runs, || {
        TURN.store(1, Ordering::Release);
        futex_wake(&TURN);
        while TURN.load(Ordering::Acquire) == 1 {
            futex_wait(&TURN, 1);
        }
    });
    TURN.store(2, Ordering::SeqCst);
    futex_wake(&TURN);
    join(t); // the partner returns once it sees 2
    Outcome::Measured(sample)
}
