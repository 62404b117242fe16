//! kernel-spin's in-kernel tests of containment against extensions that
//! break it on purpose (run with `mode=test` after `ktests_hostile`):
//! stack overflow by unbounded recursion and by a handler re-raising its
//! own event; a panic or a loop while holding a lock, a forgotten lock
//! guard; ticks landing anywhere in a contained call. Each must end in
//! the culprit's unloading and an error from the raise, and the kernel
//! must go on serving.

use crate::imports::BENCH_NULL;
use crate::kdomain::TEST_EVENT;
use crate::loader;
use alloc::format;
use alloc::string::String;
use shared_hal::testing::Test;
use shared_hal::{ensure, ensure_eq};
use spin_ext_hostile as hostile;
use spin_interface::Extension;
use spin_interface::contain::Fault;

/// The tests, in order.
pub const TESTS: &[Test] = &[
    Test {
        name: "spin::stack_overflow_in_a_handler_is_contained",
        run: || overflow("recurser", &hostile::RECURSER, 7, 8),
    },
    Test {
        name: "spin::recursive_raise_is_contained",
        run: || overflow("reraiser", &hostile::RERAISER, 8, 9),
    },
    Test { name: "spin::stack_overflow_on_a_forked_strand_is_contained", run: overflow_on_a_forked_strand },
    Test { name: "spin::stack_guard_is_unmapped", run: stack_guard_is_unmapped },
    Test { name: "spin::panic_holding_a_lock_is_contained", run: panic_holding_a_lock },
    Test { name: "spin::loop_holding_a_lock_is_stopped", run: loop_holding_a_lock },
    Test { name: "spin::forgotten_guard_disables_no_containment", run: forgotten_guard },
    Test { name: "spin::ticks_anywhere_in_a_contained_call", run: ticks_anywhere },
    Test { name: "spin::panicking_forked_thread_is_contained", run: || bad_thread(1, "panicked") },
    Test { name: "spin::cpu_hogging_forked_thread_is_stopped", run: || bad_thread(2, "timed out") },
    Test { name: "spin::overflowing_forked_thread_is_contained", run: || bad_thread(3, "overflowed") },
    Test { name: "spin::forked_threads_that_block_live_on", run: threads_that_block_live_on },
    Test { name: "spin::unloaded_identity_installs_nothing", run: unloaded_identity_installs_nothing },
    Test { name: "spin::threads_of_an_unloaded_domain_end", run: threads_of_an_unloaded_domain_end },
    Test { name: "spin::what_an_unloaded_domain_exported_runs_none_of_its_code", run: revoked_exports },
    Test { name: "spin::reclaim_handler_that_allocates_does_not_recurse", run: reclaim_that_allocates },
    Test { name: "spin::heap_hog_handler_takes_only_its_quota", run: heap_hog_handler },
    Test { name: "spin::heap_hog_init_takes_only_its_quota", run: heap_hog_init },
    Test { name: "spin::frame_hog_takes_only_its_quota", run: frame_hog },
    Test { name: "spin::probes_a_reviewer_found_are_contained", run: probes },
    Test { name: "spin::a_self_chosen_name_brings_no_authority", run: self_chosen_name },
    Test { name: "spin::a_taken_name_is_refused_before_init", run: taken_name },
    Test { name: "spin::a_panic_is_charged_to_the_callee_not_the_caller", run: charged_to_the_callee },
];

/// Load `ext`, check it answers `TEST_EVENT(1)` with `normal`, then raise
/// with `trigger`: the stack overflows into the guard page, and the raise
/// must report `Overflowed` with the extension gone and the kernel intact.
fn overflow(name: &'static str, ext: &'static Extension, trigger: u64, normal: u64) -> Result<(), String> {
    let id = loader::load(crate::key(), name, ext).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(normal));
    ensure_eq!(TEST_EVENT.raise_contained(trigger), Err(Fault::Overflowed(id.id())));
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(0)); // the default handler
    ensure!(spin_interface::Domain::named(name).is_err(), "the faulted domain is still registered");
    // The kernel and the other extensions keep running, on this strand's
    // stack that just overflowed, and the next overflow is caught too.
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    ensure_eq!(crate::imports::YIELD.call(()), Ok(()));
    Ok(())
}

/// What the forked strand saw: 1 + the fault's culprit domain number.
static FORKED_SAW: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The same overflow on a strand of its own (a stack the kernel mapped,
/// with its guard region), not the boot stack.
fn overflow_on_a_forked_strand() -> Result<(), String> {
    use core::sync::atomic::Ordering;
    let id = loader::load(crate::key(), "recurser", &hostile::RECURSER).map_err(|e| format!("{e:?}"))?;
    FORKED_SAW.store(0, Ordering::SeqCst);
    let t = crate::imports::fork(
        |_| {
            if let Err(Fault::Overflowed(d)) = TEST_EVENT.raise_contained(7) {
                FORKED_SAW.store(1 + d.number() as u64, Ordering::SeqCst);
            }
        },
        0,
    )
    .map_err(|e| format!("{e:?}"))?;
    crate::imports::join(t).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(FORKED_SAW.load(Ordering::SeqCst), 1 + id.id().number() as u64);
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    Ok(())
}

/// Every strand stack has unmapped guard space right below it.
fn stack_guard_is_unmapped() -> Result<(), String> {
    let a = crate::imports::fork(|_| {}, 0).map_err(|e| format!("{e:?}"))?;
    crate::imports::join(a).map_err(|e| format!("{e:?}"))?;
    let mut checked = 0;
    for s in 0..crate::strands::MAX_STRANDS {
        let top = crate::strands::stack_bottom(s);
        if top == 0 {
            continue;
        }
        let root = shared_hal::paging::kernel_root();
        ensure!(
            shared_hal::paging::entry(root, top).is_some(),
            "slot {s}: its stack's lowest page is not mapped"
        );
        ensure!(crate::strands::in_stack_guard(top - 8), "slot {s}: no guard below its stack");
        ensure!(shared_hal::paging::entry(root, top - 4096).is_none(), "slot {s}: the guard page is mapped");
        checked += 1;
    }
    ensure!(checked > 0, "no strand stack to check");
    Ok(())
}

fn load_locker() -> Result<&'static spin_interface::Identity, String> {
    let id = loader::load(crate::key(), "locker", &hostile::LOCKER).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(21));
    Ok(id)
}

/// A panic while the handler holds its own lock: contained, not fatal.
fn panic_holding_a_lock() -> Result<(), String> {
    let id = load_locker()?;
    ensure_eq!(TEST_EVENT.raise_contained(20), Err(Fault::Panicked(id.id())));
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    Ok(())
}

/// A loop while holding the lock: stopped at the time budget.
fn loop_holding_a_lock() -> Result<(), String> {
    let id = load_locker()?;
    ensure_eq!(TEST_EVENT.raise_contained(21), Err(Fault::TimedOut(id.id())));
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    Ok(())
}

/// A guard forgotten inside a handler: afterwards the kernel still
/// contains a panic, a loop and an overflow, in other extensions.
fn forgotten_guard() -> Result<(), String> {
    let locker = load_locker()?;
    ensure_eq!(TEST_EVENT.raise_contained(22), Ok(22));
    spin_interface::domain::unload(crate::key(), locker.id());
    // (Not the locker again: its statics, and the lock an earlier test's
    // panic left held, are still there — static extensions keep theirs.)
    let id = loader::load(crate::key(), "panicky", &spin_ext_misbehaving::PANICKY)
        .map_err(|e| format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(13), Err(Fault::Panicked(id.id())));
    let id =
        loader::load(crate::key(), "looper", &spin_ext_misbehaving::LOOPER).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(99), Err(Fault::TimedOut(id.id())));
    overflow("recurser", &hostile::RECURSER, 7, 8)
}

/// With a budget of one tick, ticks land everywhere inside contained
/// calls, including just as the recovery point is set up: each call must
/// complete or end with the culprit unloaded, never crash the kernel.
fn ticks_anywhere() -> Result<(), String> {
    use core::sync::atomic::Ordering;
    let budget = crate::contain::BUDGET_TICKS.swap(1, Ordering::SeqCst);
    let mut loaded = None;
    let r = (|| {
        let (mut ok, mut aborted) = (0, 0);
        let end = shared_hal::apic::ticks() + 30;
        while shared_hal::apic::ticks() < end {
            if TEST_EVENT.handler_count() == 0 {
                let id =
                    loader::load(crate::key(), "locker", &hostile::LOCKER).map_err(|e| format!("{e:?}"))?;
                loaded = Some(id.id());
            }
            match TEST_EVENT.raise_contained(1) {
                Ok(21) => ok += 1,
                Ok(0) | Err(Fault::TimedOut(_)) => aborted += 1,
                other => return Err(format!("unexpected answer {other:?}")),
            }
        }
        ensure!(ok > 0, "no call completed ({aborted} aborted)");
        Ok(())
    })();
    crate::contain::BUDGET_TICKS.store(budget, Ordering::SeqCst);
    if let Some(id) = loaded {
        spin_interface::domain::unload(crate::key(), id);
    }
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    r
}

static FORKER_SPAWN: spin_interface::Import<
    u64,
    Result<spin_interface::threads::ThreadId, spin_interface::threads::ThreadError>,
> = spin_interface::Import::new("Forker", "spawn");

/// An extension forks a kernel thread whose body misbehaves (`mode`): the
/// thread ends, the forker is unloaded, the kernel and a join go on.
fn bad_thread(mode: u64, _what: &str) -> Result<(), String> {
    let live = crate::strands::live();
    loader::load(crate::key(), "forker", &hostile::FORKER).map_err(|e| format!("{e:?}"))?;
    let me = spin_interface::Identity::kernel(crate::key());
    spin_interface::Domain::named("forker")
        .and_then(|d| d.resolve(me, &[&FORKER_SPAWN]))
        .map_err(|e| format!("{e:?}"))?;
    let t = FORKER_SPAWN.call(mode).map_err(|e| format!("{e:?}"))?.map_err(|e| format!("{e:?}"))?;
    crate::imports::join(t).map_err(|e| format!("join: {e:?}"))?;
    ensure!(spin_interface::Domain::named("forker").is_err(), "the forker is still loaded");
    ensure_eq!(FORKER_SPAWN.call(0).err(), Some(spin_interface::LinkError::Unbound));
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    // Its strand is gone (reaped once someone else ran).
    crate::imports::YIELD.call(()).map_err(|e| format!("{e:?}"))?;
    ensure!(crate::strands::live() <= live + 1, "strands left: {} (were {live})", crate::strands::live());
    Ok(())
}

static BLOCKED_ROUNDS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A kernel thread that keeps yielding for longer than the budget is no
/// hog: it is not stopped.
fn threads_that_block_live_on() -> Result<(), String> {
    use core::sync::atomic::Ordering;
    BLOCKED_ROUNDS.store(0, Ordering::SeqCst);
    let budget = crate::contain::BUDGET_TICKS.load(Ordering::SeqCst);
    let t = crate::imports::fork(
        |ticks| {
            let end = shared_hal::apic::ticks() + ticks as u64;
            while shared_hal::apic::ticks() < end {
                let _ = crate::imports::YIELD.call(());
                BLOCKED_ROUNDS.fetch_add(1, Ordering::SeqCst);
            }
        },
        (2 * budget) as usize,
    )
    .map_err(|e| format!("{e:?}"))?;
    crate::imports::join(t).map_err(|e| format!("{e:?}"))?;
    ensure!(BLOCKED_ROUNDS.load(Ordering::SeqCst) > 0, "the thread never ran");
    Ok(())
}

fn nothing(x: u64) -> u64 {
    x
}

/// After its domain is unloaded (here by the kernel, as a fault on
/// another strand would), the identity its code still holds installs
/// nothing, and what it exported is unbound.
fn unloaded_identity_installs_nothing() -> Result<(), String> {
    let id = loader::load(crate::key(), "forker", &hostile::FORKER).map_err(|e| format!("{e:?}"))?;
    let me = spin_interface::Identity::kernel(crate::key());
    spin_interface::Domain::named("forker")
        .and_then(|d| d.resolve(me, &[&FORKER_SPAWN]))
        .map_err(|e| format!("{e:?}"))?;
    spin_interface::domain::unload(crate::key(), id.id());
    ensure_eq!(TEST_EVENT.install(id, nothing, None).err(), Some(spin_interface::event::EventError::Denied));
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(FORKER_SPAWN.call(0).err(), Some(spin_interface::LinkError::Unbound));
    Ok(())
}

static TWICE: spin_interface::Import<u64, u64> = spin_interface::Import::new("Definer", "twice");
static RAISE: spin_interface::Import<u64, u64> = spin_interface::Import::new("Raiser", "raise");

/// Unload is final for what a domain handed out: its procedure is only
/// ever reached through an `Import` (no bare function pointer), which
/// answers `Unbound`; its event runs the live domains' handlers but never
/// its default again (`raise_contained` answers `Fault::Unloaded`, a plain
/// raise that only the default would answer is a contained fault of the
/// raiser), and installs on it are refused; an extension cannot export
/// an object unload could not revoke.
fn revoked_exports() -> Result<(), String> {
    use spin_interface::{Domain, Event, LinkError};
    let err = |e: &dyn core::fmt::Debug| format!("{e:?}");
    let definer = loader::load(crate::key(), "definer", &hostile::DEFINER).map_err(|e| err(&e))?;
    let raiser = loader::load(crate::key(), "raiser", &hostile::RAISER).map_err(|e| err(&e))?;
    let me = spin_interface::Identity::kernel(crate::key());
    let d = Domain::named("definer").map_err(|e| err(&e))?;
    let own: &'static Event<u64, u64> = d.lookup(me, "Definer", "own").map_err(|e| err(&e))?;
    ensure_eq!(
        d.lookup::<fn(u64) -> u64>(me, "Definer", "twice").err(),
        Some(LinkError::ImportOnly { interface: "Definer", symbol: "twice" })
    );
    d.resolve(me, &[&TWICE]).map_err(|e| err(&e))?;
    Domain::named("raiser").and_then(|r| r.resolve(me, &[&RAISE])).map_err(|e| err(&e))?;
    ensure_eq!(TWICE.call(4), Ok(8));
    ensure_eq!(RAISE.call(5), Ok(65));
    let h = own.install(me, nothing, Some(|x| *x == 9)).map_err(|e| err(&e))?;
    let defaults = hostile::definer_defaults();
    crate::contain::unload_domain(definer.id());
    ensure_eq!(TWICE.call(4), Err(LinkError::Unbound));
    ensure_eq!(own.raise_contained(5), Err(Fault::Unloaded(definer.id())));
    ensure_eq!(own.raise(9), 9);
    ensure_eq!(own.raise_contained(9), Ok(9));
    ensure_eq!(own.install(me, nothing, None).err(), Some(spin_interface::event::EventError::Denied));
    ensure_eq!(
        spin_interface::contain::run_for(crate::key(), raiser.id(), || RAISE.call(5)),
        Err(Fault::Panicked(raiser.id()))
    );
    ensure!(Domain::named("raiser").is_err(), "the raiser is still loaded");
    ensure_eq!(hostile::definer_defaults(), defaults);
    own.uninstall(me, h).map_err(|e| err(&e))?;
    ensure_eq!(
        loader::load(crate::key(), "object-exporter", &hostile::OBJECT_EXPORTER).err(),
        Some(loader::LoadError::Link(LinkError::NotRevocable { interface: "Obj", symbol: "counter" }))
    );
    ensure!(Domain::named("object-exporter").is_err(), "a refused domain was registered");
    Ok(())
}

/// Fork and join a kernel thread that does nothing: the thread package
/// frees the stacks of threads that ended before (its own stays a zombie).
fn settle_strands() -> Result<usize, String> {
    let t = crate::imports::fork(|_| {}, 0).map_err(|e| format!("{e:?}"))?;
    crate::imports::join(t).map_err(|e| format!("join: {e:?}"))?;
    Ok(crate::strands::live())
}

/// Unload is final for threads: a domain's kernel thread that yields for
/// ever (trying to install a handler under its identity each round) and
/// one parked in `block_current` with no queue (nothing would wake it)
/// both end once the domain is unloaded — the yielder at its next resume,
/// the parked one woken by the kernel and ended the same way — without
/// running another instruction of the domain's code; their strands are
/// freed, and the heap is back.
fn threads_of_an_unloaded_domain_end() -> Result<(), String> {
    // The first run grows the kernel's tables; the second must leave nothing.
    unloaded_threads_end()?;
    let (heap, frames) = (shared_hal::heap::used(), spin_interface::phys::free_pages());
    unloaded_threads_end()?;
    ensure_eq!(spin_interface::phys::free_pages(), frames);
    // All but the domain's `Identity`, which is `&'static` (the unloaded
    // code's statics may still name it) and stays, a few dozen bytes.
    let used = shared_hal::heap::used();
    ensure!(used <= heap + 64, "heap used {used}, was {heap}");
    Ok(())
}

fn unloaded_threads_end() -> Result<(), String> {
    let strands = settle_strands()?;
    let id = loader::load(crate::key(), "forker", &hostile::FORKER).map_err(|e| format!("{e:?}"))?;
    let me = spin_interface::Identity::kernel(crate::key());
    spin_interface::Domain::named("forker")
        .and_then(|d| d.resolve(me, &[&FORKER_SPAWN]))
        .map_err(|e| format!("{e:?}"))?;
    let live = threads_live_on(strands);
    crate::contain::unload_domain(id.id());
    live?;
    let after = hostile::forker_counts();
    for _ in 0..20 {
        crate::imports::YIELD.call(()).map_err(|e| format!("{e:?}"))?;
    }
    ensure_eq!(hostile::forker_counts(), after);
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(settle_strands()?, strands);
    Ok(())
}

/// The forker's two threads start and the yielder runs (and installs).
fn threads_live_on(strands: usize) -> Result<(), String> {
    let (rounds, installed, wakes) = hostile::forker_counts();
    for mode in [4, 5] {
        FORKER_SPAWN.call(mode).map_err(|e| format!("{e:?}"))?.map_err(|e| format!("{e:?}"))?;
    }
    let start = shared_hal::apic::ticks();
    while hostile::forker_counts().0 < rounds + 5 {
        ensure!(shared_hal::apic::ticks() < start + 20, "the yielding thread does not run");
        crate::imports::YIELD.call(()).map_err(|e| format!("{e:?}"))?;
    }
    ensure!(hostile::forker_counts().1 > installed, "the live domain's thread could not install");
    ensure_eq!(hostile::forker_counts().2, wakes);
    // The first fork freed the strand `settle_strands` left.
    ensure_eq!(crate::strands::live(), strands + 1);
    Ok(())
}

/// With every frame taken, an allocation raises Reclaim once; its handler
/// allocates, which must fail rather than raise Reclaim again (that
/// recursed until the stack overflowed).
fn reclaim_that_allocates() -> Result<(), String> {
    use spin_interface::phys;
    let id = loader::load(crate::key(), "reclaimer", &hostile::RECLAIMER).map_err(|e| format!("{e:?}"))?;
    let calls = hostile::reclaim_calls();
    let mut hoard = alloc::vec::Vec::new();
    hoard.try_reserve(shared_hal::memory::free_frames() as usize).map_err(|_| "no heap for the hoard")?;
    while let Some(pa) = shared_hal::memory::alloc_frame() {
        hoard.push(pa);
    }
    let r = phys::allocate().map(|_| ());
    for pa in hoard {
        let _ = shared_hal::memory::free_frame(pa);
    }
    ensure_eq!(r, Err(phys::MemError::OutOfMemory));
    ensure_eq!(hostile::reclaim_calls(), calls + 1);
    ensure!(spin_interface::Domain::named("reclaimer").is_ok(), "the well-meaning reclaimer was unloaded");
    spin_interface::domain::unload(crate::key(), id.id());
    ensure_eq!(phys::RECLAIM.handler_count(), 0);
    Ok(())
}

/// The kernel can still get `bytes` of heap (and gives it back).
fn kernel_can_allocate(bytes: usize) -> Result<(), String> {
    let mut v: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    v.try_reserve_exact(bytes).map_err(|_| format!("the kernel cannot allocate {bytes} bytes any more"))
}

/// A handler takes all the heap it can, fallibly and then infallibly: it
/// gets its quota and no more, the infallible overrun is a contained
/// panic, and the kernel keeps its heap.
fn heap_hog_handler() -> Result<(), String> {
    use crate::quota::{DOMAIN_HEAP_QUOTA, heap_used_by as used_by};
    let id = loader::load(crate::key(), "heap-hog", &hostile::HEAP_HOG).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(31));
    let got = TEST_EVENT.raise_contained(30).map_err(|e| format!("{e:?}"))? as usize;
    ensure!(got + 128 * 1024 >= DOMAIN_HEAP_QUOTA && got <= DOMAIN_HEAP_QUOTA, "the hog got {got} bytes");
    ensure!(used_by(id.id()) <= DOMAIN_HEAP_QUOTA, "charged {} bytes", used_by(id.id()));
    kernel_can_allocate(2 << 20)?;
    ensure_eq!(TEST_EVENT.raise_contained(31), Err(Fault::Panicked(id.id())));
    kernel_can_allocate(2 << 20)?;
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    Ok(())
}

/// An `init` that takes all the heap it can and returns: it loads, holding
/// only its quota.
fn heap_hog_init() -> Result<(), String> {
    let id = loader::load(crate::key(), "heap-init", &hostile::HEAP_INIT).map_err(|e| format!("{e:?}"))?;
    let used = crate::quota::heap_used_by(id.id());
    ensure!(used <= crate::quota::DOMAIN_HEAP_QUOTA && used > 0, "charged {used} bytes");
    kernel_can_allocate(2 << 20)?;
    spin_interface::domain::unload(crate::key(), id.id());
    Ok(())
}

/// An extension calling itself "threads" is loaded under the name the
/// kernel gives it, and gets none of the thread package's grants.
fn self_chosen_name() -> Result<(), String> {
    let id = loader::load(crate::key(), "impostor", &hostile::IMPOSTOR).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(id.name(), "impostor");
    let all = hostile::REFUSED_STRAND_CORE
        | hostile::REFUSED_USER_SERVICES
        | hostile::REFUSED_CHECKPOINT
        | hostile::REFUSED_SYSCALL;
    ensure_eq!(hostile::impostor_refusals(), all);
    spin_interface::domain::unload(crate::key(), id.id());
    Ok(())
}

/// Loading under a taken name (a boot extension's, or one being loaded)
/// fails before any of the extension's code runs, and leaves the name
/// with its owner.
fn taken_name() -> Result<(), String> {
    let inits = hostile::impostor_inits();
    for taken in ["hello", "syscalls", "kernel"] {
        match loader::load(crate::key(), taken, &hostile::IMPOSTOR) {
            Err(loader::LoadError::Link(spin_interface::LinkError::Duplicate)) => {}
            other => return Err(format!("loading as {taken:?}: {other:?}")),
        }
    }
    ensure_eq!(hostile::impostor_inits(), inits);
    ensure!(spin_interface::Domain::named("hello").is_ok(), "hello lost its name");
    // A name whose load failed is free again.
    let id = loader::load(crate::key(), "impostor", &hostile::IMPOSTOR).map_err(|e| format!("{e:?}"))?;
    spin_interface::domain::unload(crate::key(), id.id());
    Ok(())
}

/// An innocent domain's handler calls another domain's procedure, which
/// panics: the callee is unloaded and named in the fault, the caller stays
/// and goes on (its import now answers Unbound).
fn charged_to_the_callee() -> Result<(), String> {
    let callee =
        loader::load(crate::key(), "callee", &spin_ext_callee::CALLEE).map_err(|e| format!("{e:?}"))?;
    let caller = loader::load(crate::key(), "caller", &hostile::CALLER).map_err(|e| format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(41));
    ensure_eq!(TEST_EVENT.raise_contained(41), Err(Fault::Panicked(callee.id())));
    ensure!(spin_interface::Domain::named("callee").is_err(), "the callee is still loaded");
    ensure!(spin_interface::Domain::named("caller").is_ok(), "the innocent caller was unloaded");
    ensure_eq!(TEST_EVENT.handler_count(), 1);
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(u64::MAX));
    spin_interface::domain::unload(crate::key(), caller.id());
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    Ok(())
}

/// A handler takes every frame it can through `phys::allocate` and keeps
/// them: it gets its frame quota, and the kernel still has frames.
fn frame_hog() -> Result<(), String> {
    use crate::quota::{DOMAIN_FRAME_QUOTA, frames_used_by};
    let id = loader::load(crate::key(), "frame-hog", &hostile::FRAME_HOG).map_err(|e| format!("{e:?}"))?;
    let free = spin_interface::phys::free_pages();
    let got = TEST_EVENT.raise_contained(50).map_err(|e| format!("{e:?}"))? as usize;
    ensure_eq!(got, DOMAIN_FRAME_QUOTA);
    ensure_eq!(frames_used_by(id.id()), DOMAIN_FRAME_QUOTA);
    ensure_eq!(spin_interface::phys::free_pages(), free - DOMAIN_FRAME_QUOTA as u64);
    ensure!(spin_interface::phys::allocate().is_ok(), "the kernel has no frame left");
    spin_interface::domain::unload(crate::key(), id.id());
    Ok(())
}

/// The attacks a review found (hostile's `probe`), each contained now.
fn probes() -> Result<(), String> {
    use spin_interface::event::MAX_HANDLERS_PER_DOMAIN;
    let id = loader::load(crate::key(), "probe", &hostile::PROBE).map_err(|e| format!("{e:?}"))?;
    // A Display that panics: the record is formatted in the extension's
    // context, so the panic is contained and the console is not left locked.
    ensure_eq!(TEST_EVENT.raise_contained(102), Err(Fault::Panicked(id.id())));
    log::info!("kernel-spin: the console still works after a panicking Display");
    let id = loader::load(crate::key(), "probe", &hostile::PROBE).map_err(|e| format!("{e:?}"))?;
    // One domain cannot take every address space.
    ensure_eq!(TEST_EVENT.raise_contained(108), Ok(crate::spaces::DOMAIN_SPACE_QUOTA as u64));
    let c = spin_interface::translation::Context::create().map_err(|e| format!("kernel's context: {e:?}"))?;
    c.destroy().map_err(|e| format!("{e:?}"))?;
    // One domain cannot fill an event's handler table.
    let reclaim = spin_interface::phys::RECLAIM.handler_count();
    ensure_eq!(TEST_EVENT.raise_contained(118), Ok(MAX_HANDLERS_PER_DOMAIN as u64));
    let me = spin_interface::Identity::kernel(crate::key());
    let h = spin_interface::phys::RECLAIM
        .install(me, |_| 0, None)
        .map_err(|e| format!("kernel install: {e:?}"))?;
    spin_interface::phys::RECLAIM.uninstall(me, h).map_err(|e| format!("{e:?}"))?;
    spin_interface::domain::unload(crate::key(), id.id());
    ensure_eq!(spin_interface::phys::RECLAIM.handler_count(), reclaim);
    Ok(())
}
