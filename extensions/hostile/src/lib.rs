//! Extensions that attack fault containment on purpose (ring 0, safe
//! Rust), for the containment tests:
//! - stack overflow: one recurses without bound while handling an event,
//!   one raises the event it is handling from inside its handler. Safe Rust
//!   cannot keep a recursion from running off its stack; the guard below
//!   every strand's stack must turn that into a contained fault (the domain
//!   unloaded, the raise answering `Fault::Overflowed`);
//! - locks: one panics or loops while holding its `SpinLock`, or forgets a
//!   guard, trying to keep the kernel from containing it (or anyone else);
//! - heap: one fills the kernel heap from a handler (fallibly, or until an
//!   allocation fails and panics), one from its `init`;
//! - authority: one calls itself "threads" and "syscalls", hoping the name
//!   brings their grants;
//! - attribution: one whose handler calls another domain's procedure,
//!   which panics (the fault is the callee's, not this innocent caller's);
//! - threads: one forks kernel threads (through the public thread
//!   interface) whose bodies panic, loop without ever giving up the CPU, or
//!   overflow their stack, or try to outlive their unloaded domain
//!   (yielding for ever, or parked in no queue);
//! - lifetime: one defines and exports an event and a procedure that must
//!   run none of its code once it is unloaded, one raises that event on
//!   the plain path, one tries to export an object no unload could revoke.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::threads::{ForkArgs, ThreadError, ThreadId};
use spin_interface::{Event, ExportTable, Extension, Import, InitContext, InitError};

/// Recurses without bound when the test event is raised with 7;
/// otherwise answers `x + 7`.
pub static RECURSER: Extension = Extension::new("recurser", recurser_init);
/// Raises the test event again from its handler when raised with 8.
pub static RERAISER: Extension = Extension::new("reraiser", reraiser_init);
/// Raised with 20: panics holding its lock; 21: loops holding it; 22:
/// forgets a guard (the lock stays held, nothing else happens); otherwise
/// answers `x + 20`.
pub static LOCKER: Extension = Extension::new("locker", locker_init);
/// Exports `Forker.spawn(mode)`: forks a kernel thread charged to itself
/// whose body panics (1), loops without giving up the CPU (2), or
/// overflows its stack (3); lives on after its domain is unloaded if it
/// can: yields for ever, counting its rounds and trying to install a
/// handler under its identity in each (4), or blocks for ever, parked in
/// no queue (5); any other mode returns at once.
pub static FORKER: Extension = Extension::new("forker", forker_init);
/// Handles `PhysAddr.Reclaim` by allocating a page (which, with memory
/// exhausted, would ask to reclaim again, and again).
pub static RECLAIMER: Extension = Extension::new("reclaimer", reclaimer_init);
/// Raised with 30: takes heap in 64 KiB blocks (fallibly) until refused,
/// keeps it, and answers the bytes it got; 31: the same with infallible
/// allocations, until one fails and panics; otherwise answers `x + 30`.
pub static HEAP_HOG: Extension = Extension::new("heap-hog", heap_hog_init);
/// Takes all the heap it can get (fallibly) in its `init`, keeps it, and
/// loads successfully.
pub static HEAP_INIT: Extension = Extension::new("heap-init", heap_init);
/// Names itself "threads" (the thread package's name, which the kernel's
/// policy grants the raw strand operations) and tries what that name
/// would allow; records each refusal in [`impostor_refusals`].
/// Innocent: raised with `x`, answers `Callee.check(x)` (an import of
/// the `callee` domain, `extensions/callee`), or `u64::MAX`
/// once that import is unbound.
pub static CALLER: Extension = Extension::new("caller", caller_init);
/// Raised with 50: takes frames through `phys::allocate` until refused,
/// keeping them all (forgotten), and answers how many it got.
pub static FRAME_HOG: Extension = Extension::new("frame-hog", frame_hog_init);
/// Attacks a reviewer found, kept as regressions (raised with n): 102 logs
/// through a `Display` that panics; 112 opens a thread
/// span inside its handler and yields for ever in it, escaping the
/// handler's time budget (not contained yet; not in the tests); 118
/// installs as many Reclaim handlers as it can (to fill the event's table);
/// 108 takes address spaces (`Context::create`) until refused and keeps them.
pub static PROBE: Extension = Extension::new("probe", probe_init);
pub static IMPOSTOR: Extension = Extension::new("threads", impostor_init);

fn test_event(ctx: &InitContext) -> Result<&'static Event<u64, u64>, InitError> {
    Ok(ctx.lookup("kernel", "Test", "event")?)
}

static DEPTH: AtomicU64 = AtomicU64::new(0);

/// Each level keeps a buffer live across the next call, so neither the
/// frame nor the recursion can be optimised away.
fn deeper(n: u64) -> u64 {
    let mut buf = [n; 32];
    DEPTH.fetch_max(n, Ordering::Relaxed);
    if n < u64::MAX {
        buf[(n % 32) as usize] = deeper(core::hint::black_box(n + 1));
    }
    core::hint::black_box(&buf);
    buf[0]
}

fn recurser_handler(x: u64) -> u64 {
    if x == 7 { deeper(0) } else { x + 7 }
}

fn recurser_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    test_event(ctx)?.install(ctx.identity(), recurser_handler, None)?;
    Ok(ExportTable::new())
}

static EVENT: Once<&'static Event<u64, u64>> = Once::new();

fn reraiser_handler(x: u64) -> u64 {
    match EVENT.get() {
        Some(e) if x == 8 => core::hint::black_box(e.raise(8)) + 1,
        _ => x + 8,
    }
}

fn reraiser_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let e = test_event(ctx)?;
    EVENT.call_once(|| e);
    e.install(ctx.identity(), reraiser_handler, None)?;
    Ok(ExportTable::new())
}

static LOCK: SpinLock<u64> = SpinLock::new(0);
static FORGOTTEN: SpinLock<u64> = SpinLock::new(0);

fn locker_handler(x: u64) -> u64 {
    match x {
        20 => {
            let mut held = LOCK.lock();
            *held += 1;
            panic!("locker: panicking while holding a lock ({})", *held);
        }
        21 => {
            let mut held = LOCK.lock();
            loop {
                *held = core::hint::black_box(*held + 1);
            }
        }
        22 => {
            core::mem::forget(FORGOTTEN.lock());
            22
        }
        _ => x + 20,
    }
}

fn locker_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    test_event(ctx)?.install(ctx.identity(), locker_handler, None)?;
    Ok(ExportTable::new())
}

static FORK: Import<ForkArgs, Result<ThreadId, ThreadError>> = Import::new("Threads", "fork");
/// Set by every `init` (statics outlive an unloaded static extension, and a
/// charge for an unloaded domain runs nothing).
static CHARGE: SpinLock<Option<spin_interface::contain::Charge>> = SpinLock::new(None);
static HOG: AtomicU64 = AtomicU64::new(0);

static FORKER_ID: SpinLock<Option<&'static spin_interface::Identity>> = SpinLock::new(None);
static FORKER_YIELD: Import<(), ()> = Import::new("Threads", "yield");
static ROUNDS: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicU64 = AtomicU64::new(0);
static WAKES: AtomicU64 = AtomicU64::new(0);

/// Rounds the mode-4 threads ran, handlers they got installed, and
/// wake-ups the mode-5 threads saw.
pub fn forker_counts() -> (u64, u64, u64) {
    (ROUNDS.load(Ordering::SeqCst), INSTALLED.load(Ordering::SeqCst), WAKES.load(Ordering::SeqCst))
}

fn answer(x: u64) -> u64 {
    x
}

fn bad_body(mode: usize) {
    match mode {
        4 => loop {
            let _ = FORKER_YIELD.call(());
            ROUNDS.fetch_add(1, Ordering::SeqCst);
            let me = *FORKER_ID.lock();
            if let (Some(me), Some(e)) = (me, EVENT.get())
                && e.install(me, answer, Some(|x| *x == 4444)).is_ok()
            {
                INSTALLED.fetch_add(1, Ordering::SeqCst);
            }
        },
        5 => loop {
            spin_interface::strand::block_current();
            WAKES.fetch_add(1, Ordering::SeqCst);
        },
        1 => panic!("forker: a forked thread panics"),
        2 => loop {
            HOG.fetch_add(1, Ordering::Relaxed);
        },
        3 => {
            core::hint::black_box(deeper(0));
        }
        _ => {}
    }
}

fn spawn(mode: u64) -> Result<ThreadId, ThreadError> {
    let charge = CHARGE.lock().ok_or(ThreadError::NoResources)?;
    FORK.call((charge, bad_body, mode as usize)).unwrap_or(Err(ThreadError::NoResources))
}

fn forker_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    ctx.resolve("threads", &[&FORK, &FORKER_YIELD])?;
    *CHARGE.lock() = Some(ctx.charge());
    *FORKER_ID.lock() = Some(ctx.identity());
    let e = test_event(ctx)?;
    EVENT.call_once(|| e);
    Ok(ExportTable::new().procedure("Forker", "spawn", spawn))
}

static RECLAIM_CALLS: AtomicU64 = AtomicU64::new(0);

fn greedy_reclaim(_wanted: u64) -> u64 {
    RECLAIM_CALLS.fetch_add(1, Ordering::Relaxed);
    // A page, if one is had, goes back when it drops.
    let _ = spin_interface::phys::allocate();
    0
}

/// How many times the reclaim handler ran.
pub fn reclaim_calls() -> u64 {
    RECLAIM_CALLS.load(Ordering::Relaxed)
}

fn reclaimer_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    spin_interface::phys::RECLAIM.install(ctx.identity(), greedy_reclaim, None)?;
    Ok(ExportTable::new())
}

/// The heap the hogs took, kept for good.
static HOARD: SpinLock<alloc::vec::Vec<alloc::vec::Vec<u8>>> = SpinLock::new(alloc::vec::Vec::new());

/// Take 64 KiB blocks until refused; the bytes taken.
fn take_heap() -> u64 {
    let mut got = 0;
    let mut hoard = HOARD.lock();
    loop {
        let mut block = alloc::vec::Vec::new();
        if block.try_reserve_exact(64 * 1024).is_err() || hoard.try_reserve(1).is_err() {
            return got;
        }
        got += 64 * 1024;
        hoard.push(block);
    }
}

fn heap_hog_handler(x: u64) -> u64 {
    match x {
        30 => take_heap(),
        31 => loop {
            let block = alloc::vec![0u8; 64 * 1024];
            HOARD.lock().push(block);
        },
        _ => x + 30,
    }
}

fn heap_hog_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    test_event(ctx)?.install(ctx.identity(), heap_hog_handler, None)?;
    Ok(ExportTable::new())
}

fn heap_init(_: &InitContext) -> Result<ExportTable, InitError> {
    take_heap();
    Ok(ExportTable::new())
}

/// Refusals the impostor saw: the raw strand operations, the user-process
/// services, the thread packages' Checkpoint event, system call 0.
pub const REFUSED_STRAND_CORE: u64 = 1;
pub const REFUSED_USER_SERVICES: u64 = 2;
pub const REFUSED_CHECKPOINT: u64 = 4;
pub const REFUSED_SYSCALL: u64 = 8;

static REFUSALS: AtomicU64 = AtomicU64::new(0);
static IMPOSTOR_INITS: AtomicU64 = AtomicU64::new(0);

/// What the impostor's last `init` was refused.
pub fn impostor_refusals() -> u64 {
    REFUSALS.load(Ordering::SeqCst)
}

/// How many times the impostor's `init` ran.
pub fn impostor_inits() -> u64 {
    IMPOSTOR_INITS.load(Ordering::SeqCst)
}

fn on_checkpoint(_: spin_interface::strand::Strand) {}
fn on_syscall(_: spin_interface::user::SyscallArgs) -> spin_interface::abi::Return {
    spin_interface::abi::Return::ok(0)
}

fn impostor_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    IMPOSTOR_INITS.fetch_add(1, Ordering::SeqCst);
    let me = ctx.identity();
    let mut refused = 0;
    if ctx.lookup::<&'static spin_interface::strand::StrandCore>("kernel", "Trusted.Strand", "core").is_err()
    {
        refused |= REFUSED_STRAND_CORE;
    }
    if ctx
        .lookup::<&'static spin_interface::user::UserServices>("kernel", "Trusted.User", "services")
        .is_err()
    {
        refused |= REFUSED_USER_SERVICES;
    }
    if spin_interface::strand::CHECKPOINT.install(me, on_checkpoint, None).is_err() {
        refused |= REFUSED_CHECKPOINT;
    }
    if spin_interface::user::SYSTEM_CALLS[0].install(me, on_syscall, None).is_err() {
        refused |= REFUSED_SYSCALL;
    }
    REFUSALS.store(refused, Ordering::SeqCst);
    Ok(ExportTable::new())
}

static CHECK: Import<u64, u64> = Import::new("Callee", "check");

fn caller_handler(x: u64) -> u64 {
    CHECK.call(x).unwrap_or(u64::MAX)
}

fn caller_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    ctx.resolve("callee", &[&CHECK])?;
    test_event(ctx)?.install(ctx.identity(), caller_handler, None)?;
    Ok(ExportTable::new())
}

fn frame_hog_handler(x: u64) -> u64 {
    if x != 50 {
        return x + 50;
    }
    let mut got = 0;
    while let Ok(page) = spin_interface::phys::allocate() {
        core::mem::forget(page);
        got += 1;
    }
    got
}

fn frame_hog_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    test_event(ctx)?.install(ctx.identity(), frame_hog_handler, None)?;
    Ok(ExportTable::new())
}

static PROBE_FORK: Import<ForkArgs, Result<ThreadId, ThreadError>> = Import::new("Threads", "fork");
static PROBE_YIELD: Import<(), ()> = Import::new("Threads", "yield");
static PROBE_CHARGE: SpinLock<Option<spin_interface::contain::Charge>> = SpinLock::new(None);
static PROBE_ID: SpinLock<Option<&'static spin_interface::Identity>> = SpinLock::new(None);

fn no_pages(_: u64) -> u64 {
    0
}

fn probe_handler(x: u64) -> u64 {
    match x {
        102 => {
            let explodes =
                core::fmt::from_fn(|_| -> core::fmt::Result { panic!("probe: a Display that panics") });
            spin_interface::log::error!("probe: {}", explodes);
            102
        }
        112 => {
            if let Some(c) = *PROBE_CHARGE.lock() {
                let _ = spin_interface::contain::run_thread(c, || {
                    loop {
                        let _ = PROBE_YIELD.call(());
                    }
                });
            }
            112
        }
        108 => {
            let mut n = 0;
            // Kept: never destroyed.
            while spin_interface::translation::Context::create().is_ok() {
                n += 1;
            }
            n
        }
        118 => {
            let Some(me) = *PROBE_ID.lock() else { return 0 };
            let mut n = 0;
            while spin_interface::phys::RECLAIM.install(me, no_pages, None).is_ok() {
                n += 1;
            }
            n
        }
        _ => x + 100,
    }
}

fn probe_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    ctx.resolve("threads", &[&PROBE_FORK, &PROBE_YIELD])?;
    *PROBE_CHARGE.lock() = Some(ctx.charge());
    *PROBE_ID.lock() = Some(ctx.identity());
    test_event(ctx)?.install(ctx.identity(), probe_handler, None)?;
    Ok(ExportTable::new())
}

/// Defines the event `Definer.own` (`u64 -> u64`, anyone may handle it;
/// its default answers `x + 60` and counts itself) and exports it, and the
/// procedure `Definer.twice`: what the domain handed out must run none of
/// its code once it is unloaded.
pub static DEFINER: Extension = Extension::new("definer", definer_init);
/// Tries to export a plain object (a reference to one of its statics),
/// which no unload could revoke: refused.
pub static OBJECT_EXPORTER: Extension = Extension::new("object-exporter", object_exporter_init);
/// Exports `Raiser.raise(x)`: raises `Definer.own` on the plain path.
pub static RAISER: Extension = Extension::new("raiser", raiser_init);

static OWN: Event<u64, u64> = Event::new("Definer.own", own_default, spin_interface::Combine::Last);
static OWN_DEFAULTS: AtomicU64 = AtomicU64::new(0);

/// How many times `Definer.own`'s default ran.
pub fn definer_defaults() -> u64 {
    OWN_DEFAULTS.load(Ordering::SeqCst)
}

fn own_default(x: u64) -> u64 {
    OWN_DEFAULTS.fetch_add(1, Ordering::SeqCst);
    x + 60
}

fn twice(x: u64) -> u64 {
    x * 2
}

fn definer_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    OWN.define(ctx.identity(), spin_interface::event::anyone)?;
    Ok(ExportTable::new().event("Definer", "own", &OWN).procedure("Definer", "twice", twice))
}

static EXPORTED_COUNT: AtomicU64 = AtomicU64::new(0);

fn object_exporter_init(_: &InitContext) -> Result<ExportTable, InitError> {
    Ok(ExportTable::new().object("Obj", "counter", &EXPORTED_COUNT))
}

static OWN_IMPORTED: SpinLock<Option<&'static Event<u64, u64>>> = SpinLock::new(None);

fn raise_own(x: u64) -> u64 {
    let own = *OWN_IMPORTED.lock();
    own.map_or(0, |e| e.raise(x))
}

fn raiser_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    *OWN_IMPORTED.lock() = Some(ctx.lookup("definer", "Definer", "own")?);
    Ok(ExportTable::new().procedure("Raiser", "raise", raise_own))
}
