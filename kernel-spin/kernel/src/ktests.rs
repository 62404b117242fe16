//! kernel-spin's in-kernel tests (run with `mode=test` after the HAL's):
//! capabilities, the dispatcher, domains, fault containment, strands and
//! threads, PhysAddr and Translation. Each prints `[test] ...` lines.

use crate::imports::{self, BENCH_NULL};
use crate::kdomain::{BENCH_EVENTS, TEST_EVENT};
use crate::loader::{self, LoadError};
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use shared_hal::testing::Test;
use shared_hal::{ensure, ensure_eq};
use spin_ext_misbehaving as bad;
use spin_interface::contain::Fault;
use spin_interface::phys;
use spin_interface::threads::{ThreadError, ThreadId};
use spin_interface::translation::{Context, Prot, VirtRange};
use spin_interface::{Domain, Identity, Import, KernelKey, LinkError};

/// The tests, in order.
pub const TESTS: &[Test] = &[
    Test { name: "spin::kernel_key_is_claimed_once", run: kernel_key_is_claimed_once },
    Test { name: "spin::protected_call_through_import", run: protected_call_through_import },
    Test { name: "spin::dispatcher_entry_and_handler_lists", run: dispatcher_entry_and_handler_lists },
    Test { name: "spin::hello_extension_worked_example", run: hello_extension_worked_example },
    Test { name: "spin::exercise_guarded_extension", run: exercise_guarded_extension },
    Test { name: "spin::intruder_is_refused", run: intruder_is_refused },
    Test { name: "spin::panicking_handler_is_unloaded", run: panicking_handler_is_unloaded },
    Test { name: "spin::looping_handler_is_stopped", run: looping_handler_is_stopped },
    Test { name: "spin::failing_init_is_unloaded", run: failing_init_is_unloaded },
    Test { name: "spin::threads_fork_join", run: threads_fork_join },
    Test { name: "spin::mutex_condition_ping_pong", run: mutex_condition_ping_pong },
    Test { name: "spin::phys_pages_and_reclaim", run: phys_pages_and_reclaim },
    Test { name: "spin::translation_contexts", run: translation_contexts },
    Test { name: "spin::user_processes_run_their_tests", run: user_processes_run_their_tests },
    Test {
        name: "spin::unhandled_user_faults_kill_only_the_process",
        run: unhandled_user_faults_kill_only_the_process,
    },
    Test {
        name: "spin::faulting_syscall_handlers_are_unloaded",
        run: faulting_syscall_handlers_are_unloaded,
    },
    Test {
        name: "spin::looping_process_is_preempted_and_killed",
        run: looping_process_is_preempted_and_killed,
    },
    Test {
        name: "spin::reaped_processes_leave_no_extension_state",
        run: reaped_processes_leave_no_extension_state,
    },
    Test { name: "spin::faulting_fault_handlers_are_unloaded", run: faulting_fault_handlers_are_unloaded },
    Test {
        name: "spin::reflection_inlined_and_general_paths_agree",
        run: reflection_inlined_and_general_paths_agree,
    },
];

fn kernel_key_is_claimed_once() -> Result<(), String> {
    ensure!(KernelKey::claim().is_none(), "the kernel key was handed out twice");
    Ok(())
}

fn protected_call_through_import() -> Result<(), String> {
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    // The same symbol with another signature does not link.
    static WRONG: Import<u64, u64> = Import::new("Bench", "null");
    let me = Identity::kernel(crate::key());
    let r = Domain::named("bench").and_then(|d| d.resolve(me, &[&WRONG]));
    ensure_eq!(r, Err(LinkError::TypeMismatch { interface: "Bench", symbol: "null" }));
    ensure_eq!(WRONG.call(1), Err(LinkError::Unbound));
    Ok(())
}

fn dispatcher_entry_and_handler_lists() -> Result<(), String> {
    let want = [1, 5, 10, 50, 50];
    for (e, n) in BENCH_EVENTS.iter().zip(want) {
        ensure_eq!(e.handler_count(), n);
        e.raise(());
    }
    ensure!(BENCH_EVENTS[0].is_direct(), "one unguarded handler must be the entry itself");
    ensure!(!BENCH_EVENTS[1].is_direct(), "five handlers take the general path");
    Ok(())
}

static GREET: Import<u64, u64> = Import::new("Hello", "greet");

fn add_ten(n: u64) -> u64 {
    n + 10
}

fn hello_extension_worked_example() -> Result<(), String> {
    let me = Identity::kernel(crate::key());
    let hello = Domain::named("hello").map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(hello.resolve(me, &[&GREET]), Ok(1));
    ensure_eq!(GREET.call(1), Ok(2));
    // Anyone may handle Hello.greeted: a second handler, results summed.
    let greeted: &'static spin_interface::Event<u64, u64> =
        hello.lookup(me, "Hello", "greeted").map_err(|e| alloc::format!("{e:?}"))?;
    let h = greeted.install(me, add_ten, None).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(GREET.call(1), Ok(2 + 11));
    greeted.uninstall(me, h).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(GREET.call(5), Ok(6));
    Ok(())
}

static HANDLED_EVENS: Import<(), u64> = Import::new("Evens", "handled");

/// The course exercise: `evens` handles only even greetings, answering n/2.
fn exercise_guarded_extension() -> Result<(), String> {
    let me = Identity::kernel(crate::key());
    Domain::named("hello")
        .and_then(|d| d.resolve(me, &[&GREET]))
        .map_err(|e| alloc::format!("hello: {e:?}"))?;
    Domain::named("evens")
        .and_then(|d| d.resolve(me, &[&HANDLED_EVENS]))
        .map_err(|e| alloc::format!("evens: {e:?}"))?;
    let before = HANDLED_EVENS.call(()).map_err(|e| alloc::format!("{e:?}"))?;
    for n in 0..20u64 {
        let want = if n % 2 == 0 { n + 1 + n / 2 } else { n + 1 };
        ensure_eq!(GREET.call(n), Ok(want));
    }
    // The guard kept the handler from seeing the ten odd greetings.
    ensure_eq!(HANDLED_EVENS.call(()), Ok(before + 10));
    Ok(())
}

static INTRUDER_REPORT: Import<(), u64> = Import::new("Intruder", "report");

fn intruder_is_refused() -> Result<(), String> {
    loader::load(crate::key(), "intruder", &bad::INTRUDER).map_err(|e| alloc::format!("{e:?}"))?;
    let me = Identity::kernel(crate::key());
    Domain::named("intruder")
        .and_then(|d| d.resolve(me, &[&INTRUDER_REPORT]))
        .map_err(|e| alloc::format!("{e:?}"))?;
    let seen = INTRUDER_REPORT.call(()).map_err(|e| alloc::format!("{e:?}"))?;
    let all = bad::REFUSED_RESOLVE | bad::REFUSED_INSTALL | bad::REFUSED_KEY | bad::REFUSED_TEST_EVENT;
    ensure_eq!(seen, all);
    ensure_eq!(crate::kdomain::PRIVATE_EVENT.handler_count(), 0);
    Ok(())
}

static PANICKY_DOUBLE: Import<u64, u64> = Import::new("Panicky", "double");

fn panicking_handler_is_unloaded() -> Result<(), String> {
    let id = loader::load(crate::key(), "panicky", &bad::PANICKY).map_err(|e| alloc::format!("{e:?}"))?;
    let me = Identity::kernel(crate::key());
    Domain::named("panicky")
        .and_then(|d| d.resolve(me, &[&PANICKY_DOUBLE]))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(PANICKY_DOUBLE.call(4), Ok(8));
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(2));
    // The handler panics: the raise returns the fault, the extension is gone.
    ensure_eq!(TEST_EVENT.raise_contained(13), Err(Fault::Panicked(id.id())));
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(0)); // the default handler
    ensure_eq!(PANICKY_DOUBLE.call(4), Err(LinkError::Unbound));
    ensure!(Domain::named("panicky").is_err(), "the faulted domain is still registered");
    // The kernel and the other extensions keep running.
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    ensure_eq!(imports::YIELD.call(()), Ok(()));
    Ok(())
}

fn looping_handler_is_stopped() -> Result<(), String> {
    let id = loader::load(crate::key(), "looper", &bad::LOOPER).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(TEST_EVENT.raise_contained(1), Ok(101));
    let before = shared_hal::apic::ticks();
    ensure_eq!(TEST_EVENT.raise_contained(99), Err(Fault::TimedOut(id.id())));
    let took = shared_hal::apic::ticks() - before;
    let budget = crate::contain::BUDGET_TICKS.load(Ordering::Relaxed);
    ensure!(took >= budget && took <= budget + 5, "stopped after {took} ticks, budget {budget}");
    ensure_eq!(TEST_EVENT.handler_count(), 0);
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    Ok(())
}

fn failing_init_is_unloaded() -> Result<(), String> {
    match loader::load(crate::key(), "bad-init", &bad::BAD_INIT) {
        Err(LoadError::Fault(Fault::Panicked(_))) => {}
        other => return Err(alloc::format!("expected a contained panic, got {other:?}")),
    }
    ensure!(Domain::named("bad-init").is_err(), "a failed extension got a domain");
    Ok(())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn bump(by: usize) {
    COUNTER.fetch_add(by as u64, Ordering::SeqCst);
}

fn threads_fork_join() -> Result<(), String> {
    let live = crate::strands::live();
    let start = COUNTER.load(Ordering::SeqCst);
    let a = imports::fork(bump, 5).map_err(|e| alloc::format!("{e:?}"))?;
    let b = imports::fork(bump, 7).map_err(|e| alloc::format!("{e:?}"))?;
    imports::join(a).map_err(|e| alloc::format!("{e:?}"))?;
    imports::join(b).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(COUNTER.load(Ordering::SeqCst), start + 12);
    ensure_eq!(imports::join(a), Err(ThreadError::NoSuchThread));
    ensure_eq!(imports::join(ThreadId(0xdead_0000_0003)), Err(ThreadError::NoSuchThread));
    // Finished threads' stacks are reclaimed by the next fork.
    for _ in 0..50 {
        let t = imports::fork(bump, 1).map_err(|e| alloc::format!("{e:?}"))?;
        imports::join(t).map_err(|e| alloc::format!("{e:?}"))?;
    }
    ensure!(
        crate::strands::live() <= live + 1,
        "strands leak: {} live, {live} before",
        crate::strands::live()
    );
    Ok(())
}

fn mutex_condition_ping_pong() -> Result<(), String> {
    let t = crate::pingpong::start().map_err(|e| alloc::format!("{e:?}"))?;
    for _ in 0..100 {
        crate::pingpong::round();
    }
    crate::pingpong::stop(t).map_err(|e| alloc::format!("{e:?}"))?;
    Ok(())
}

static RECLAIMED: AtomicU64 = AtomicU64::new(0);

fn give_back(wanted: u64) -> u64 {
    RECLAIMED.fetch_add(wanted, Ordering::SeqCst);
    wanted
}

fn phys_pages_and_reclaim() -> Result<(), String> {
    let before = phys::free_pages();
    {
        let a = phys::allocate().map_err(|e| alloc::format!("{e:?}"))?;
        let b = phys::allocate().map_err(|e| alloc::format!("{e:?}"))?;
        ensure!(a.addr() != b.addr() && a.addr() % 4096 == 0, "bad pages");
        ensure_eq!(phys::free_pages(), before - 2);
        a.write(4000, b"capability").map_err(|e| alloc::format!("{e:?}"))?;
        let mut buf = [0u8; 10];
        a.read(4000, &mut buf).map_err(|e| alloc::format!("{e:?}"))?;
        ensure_eq!(&buf, b"capability");
        ensure!(a.write(4090, b"too long").is_err(), "write past the page accepted");
        ensure!(a.read(usize::MAX, &mut buf).is_err(), "overflowing offset accepted");
    }
    ensure_eq!(phys::free_pages(), before);
    let me = Identity::kernel(crate::key());
    let h = phys::RECLAIM.install(me, give_back, None).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(phys::RECLAIM.event(crate::key()).raise_contained(3), Ok(3));
    phys::RECLAIM.uninstall(me, h).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(phys::RECLAIM.event(crate::key()).raise(3), 0);
    Ok(())
}

fn translation_contexts() -> Result<(), String> {
    let before = phys::free_pages();
    let ctx = Context::create().map_err(|e| alloc::format!("{e:?}"))?;
    let page = phys::allocate().map_err(|e| alloc::format!("{e:?}"))?;
    let frame = page.addr();
    ctx.map(0x40_0000, page, Prot::ReadWrite).map_err(|(e, _)| alloc::format!("{e:?}"))?;
    let m = ctx.examine(0x40_0123).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!((m.frame, m.prot, m.dirty), (frame, Prot::ReadWrite, false));
    let again = phys::allocate().map_err(|e| alloc::format!("{e:?}"))?;
    match ctx.map(0x40_0000, again, Prot::Read) {
        Err((phys::MemError::AlreadyMapped, _page_comes_back)) => {}
        other => return Err(alloc::format!("double map: {:?}", other.err().map(|e| e.0))),
    }
    let range = VirtRange::new(0x40_0000, 1).map_err(|e| alloc::format!("{e:?}"))?;
    ctx.protect(range, Prot::None).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(ctx.examine(0x40_0000).map(|m| m.prot), Ok(Prot::None));
    let two = VirtRange::new(0x40_0000, 2).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(ctx.protect(two, Prot::Read), Err(phys::MemError::NotMapped));
    // All or nothing: the first page keeps its protection.
    ensure_eq!(ctx.examine(0x40_0000).map(|m| m.prot), Ok(Prot::None));
    ensure_eq!(
        ctx.map(0xffff_8000_0000_0000, phys::allocate().map_err(|e| alloc::format!("{e:?}"))?, Prot::Read)
            .err()
            .map(|e| e.0),
        Some(phys::MemError::NotUser)
    );
    let back = ctx.unmap(0x40_0000).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(back.addr(), frame);
    drop(back);
    // Destroying frees what is still mapped; the handle then goes stale.
    let p = phys::allocate().map_err(|e| alloc::format!("{e:?}"))?;
    ctx.map(0x50_0000, p, Prot::Read).map_err(|(e, _)| alloc::format!("{e:?}"))?;
    let stale = ctx;
    ctx.destroy().map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(stale.examine(0x50_0000), Err(phys::MemError::NoContext));
    ensure_eq!(stale.destroy(), Err(phys::MemError::NoContext));
    ensure_eq!(phys::free_pages(), before);
    Ok(())
}

fn user_processes_run_their_tests() -> Result<(), String> {
    use crate::process;
    let frames = phys::free_pages();
    let procs = process::live();
    // The server registers and ends its main thread with its handle as exit code.
    let server = process::spawn("spin-server", [0, 0]).map_err(|e| alloc::format!("{e:?}"))?;
    let handle = process::wait(server).ok_or("server vanished")?;
    ensure!(handle > 0, "server registration failed: {handle}");
    // The test program prints its own `[test]` lines; its exit code counts failures.
    let failed = process::run("spin-usertests", [0, handle as u64]).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(failed, 0);
    ensure!(process::reap(server), "could not reap the server");
    ensure_eq!(process::live(), procs);
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}

fn unhandled_user_faults_kill_only_the_process() -> Result<(), String> {
    use crate::process::{self, KILLED};
    let frames = phys::free_pages();
    ensure_eq!(process::run("spin-usertests", [1, 0]), Ok(KILLED - 14));
    ensure_eq!(process::run("spin-usertests", [2, 0]), Ok(KILLED - 6));
    ensure!(process::spawn("no-such-program", [0, 0]).is_err(), "a missing program was started");
    // A handle of a finished process is foreign to the next one, even if
    // it gets the same table slot.
    let handle = process::run("spin-usertests", [4, 0]).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(handle > 0, "semaphore creation failed");
    ensure_eq!(process::run("spin-usertests", [5, handle as u64]), Ok(0));
    ensure_eq!(BENCH_NULL.call(()), Ok(()));
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}

fn faulting_syscall_handlers_are_unloaded() -> Result<(), String> {
    use crate::process;
    for (name, ext) in [("syscall-panic", &bad::SYSCALL_PANIC), ("syscall-loop", &bad::SYSCALL_LOOP)] {
        loader::load(crate::key(), name, ext).map_err(|e| alloc::format!("{e:?}"))?;
    }
    // Each faulting call answers ExtensionFault; its extension is gone after,
    // and the process goes on (it also checks a null call still works).
    ensure_eq!(process::run("spin-usertests", [3, 0]), Ok(0));
    ensure!(
        Domain::named("syscall-panic").is_err() && Domain::named("syscall-loop").is_err(),
        "still loaded"
    );
    Ok(())
}

fn looping_process_is_preempted_and_killed() -> Result<(), String> {
    use crate::process::{self, KILLED_BY_KERNEL};
    let frames = phys::free_pages();
    let looper = process::spawn("spin-usertests", [6, 0]).map_err(|e| alloc::format!("{e:?}"))?;
    // The looper never yields; the timer preempts it, so we run again.
    let start = shared_hal::apic::ticks();
    while shared_hal::apic::ticks() < start + 3 {
        ensure_eq!(imports::YIELD.call(()), Ok(()));
    }
    // Other processes still get the CPU meanwhile.
    ensure_eq!(process::run("spin-usertests", [5, 0]), Ok(0));
    ensure!(process::kill(looper), "the looper vanished");
    ensure_eq!(process::wait(looper), Some(KILLED_BY_KERNEL));
    ensure!(process::reap(looper), "could not reap the looper");
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}

/// A fault handler that panics or loops kills only the faulting thread and
/// is unloaded, alone (a direct call, attributed by the kernel) or next to
/// another handler (a contained raise). The VM extension is unloaded for
/// the first two cases and loaded again at the end.
fn faulting_fault_handlers_are_unloaded() -> Result<(), String> {
    use crate::process;
    use crate::uexc::KILLED_HANDLER_FAULT;
    use spin_interface::user::EXCEPTION;
    let frames = phys::free_pages();
    let key = crate::key();
    let vm = EXCEPTION.lone_owner();
    ensure!(Domain::named("vm").is_ok() && vm != spin_interface::DomainId::KERNEL, "vm handles exceptions");
    spin_interface::domain::unload(key, vm);
    ensure_eq!(EXCEPTION.handler_count(), 0);
    // spin-usertests mode 2 executes ud2 (vector 6).
    for (name, ext) in [("fault-panic", &bad::FAULT_PANIC), ("fault-loop", &bad::FAULT_LOOP)] {
        loader::load(key, name, ext).map_err(|e| alloc::format!("{e:?}"))?;
        ensure!(EXCEPTION.is_direct(), "a lone handler is called directly");
        ensure_eq!(process::run("spin-usertests", [2, 0]), Ok(KILLED_HANDLER_FAULT - 6));
        ensure!(Domain::named(name).is_err(), "{name} is still loaded");
        ensure_eq!(EXCEPTION.handler_count(), 0);
    }
    loader::load(key, "vm", &spin_ext_vm::EXTENSION).map_err(|e| alloc::format!("{e:?}"))?;
    loader::load(key, "fault-panic", &bad::FAULT_PANIC).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(EXCEPTION.handler_count(), 2);
    ensure_eq!(process::run("spin-usertests", [2, 0]), Ok(KILLED_HANDLER_FAULT - 6));
    ensure!(Domain::named("fault-panic").is_err(), "fault-panic is still loaded");
    // The VM extension is back, alone, and processes still run.
    ensure!(EXCEPTION.is_direct() && Domain::named("vm").is_ok(), "vm is not back");
    ensure_eq!(process::run("spin-usertests", [2, 0]), Ok(process::KILLED - 6));
    ensure_eq!(process::run("spin-usertests", [5, 0]), Ok(0));
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}

static FAULTS_SEEN: Import<(), u64> = Import::new("FaultReflect", "seen");

/// The exception stubs inline the standard reflecting handler when it is
/// a fault event's lone handler (the VM extension's); with a second
/// handler answering `Reflect` the same faults take the general path (a
/// contained raise, then reflection in Rust). A process's reflection
/// checks pass both ways (spin-usertests mode 8: page faults resolved and
/// retried, #UD/#BP/#DE/#PF delivered once each, registers intact), and
/// the second handler saw each fault.
fn reflection_inlined_and_general_paths_agree() -> Result<(), String> {
    use crate::process;
    use spin_interface::translation::{PAGE_NOT_PRESENT, PROTECTION_FAULT, reflect};
    use spin_interface::user::EXCEPTION;
    let frames = phys::free_pages();
    let key = crate::key();
    let events = [&PAGE_NOT_PRESENT, &PROTECTION_FAULT, &EXCEPTION];
    ensure!(events.iter().all(|e| e.is_direct()), "vm's reflect is not the lone handler");
    ensure!(events.iter().all(|e| e.entry_is(reflect)), "the entry word is not the standard reflect");
    ensure_eq!(process::run("spin-usertests", [19, 0]), Ok(0)); // inlined
    let id = loader::load(key, "fault-reflect", &bad::FAULT_REFLECT).map_err(|e| alloc::format!("{e:?}"))?;
    let slots: &[&'static dyn spin_interface::domain::ImportSlot] = &[&FAULTS_SEEN];
    Domain::named("fault-reflect")
        .and_then(|d| d.resolve(Identity::kernel(key), slots))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(events.iter().all(|e| !e.is_direct() && e.handler_count() == 2), "two handlers each");
    ensure_eq!(process::run("spin-usertests", [19, 0]), Ok(0)); // general path
    // Two page faults resolved (the protect-none read, then the read
    // after vm_protect in the handler retries fine), four exceptions, the
    // raw entry's #UD: at least six faults went through the extension.
    ensure!(FAULTS_SEEN.call(()).is_ok_and(|n| n >= 6), "the general path was not taken");
    spin_interface::domain::unload(key, id.id());
    ensure!(events.iter().all(|e| e.is_direct() && e.entry_is(reflect)), "vm is not alone again");
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}

static UT_PACKAGES: Import<(), usize> = Import::new("Uthreads", "packages");
static XAS_SERVERS: Import<(), usize> = Import::new("Xas", "servers");
static SEMAPHORES: Import<(), usize> = Import::new("Syscalls", "semaphores");

/// Extensions drop what they keep per process when it is reaped
/// (`User.ProcessReaped`): a process that leaves a semaphore, a user-thread
/// package, an xas registration and a fault handler behind is gone from
/// every table once reaped, and running such processes again and again
/// does not grow the kernel heap.
fn reaped_processes_leave_no_extension_state() -> Result<(), String> {
    use crate::process;
    let me = Identity::kernel(crate::key());
    for (domain, import) in [("uthreads", &UT_PACKAGES), ("xas", &XAS_SERVERS), ("syscalls", &SEMAPHORES)] {
        let slots: &[&'static dyn spin_interface::domain::ImportSlot] = &[import];
        Domain::named(domain).and_then(|d| d.resolve(me, slots)).map_err(|e| alloc::format!("{e:?}"))?;
    }
    let counts = || (UT_PACKAGES.call(()), XAS_SERVERS.call(()), SEMAPHORES.call(()));
    let before = counts();
    // spin-usertests mode 7 uses each facility once and exits 0.
    let pid = process::spawn("spin-usertests", [7, 0]).map_err(|e| alloc::format!("{e:?}"))?;
    ensure_eq!(process::wait(pid), Some(0));
    let (p, x, s) = before;
    let grown = (p.map(|n| n + 1), x.map(|n| n + 1), s.map(|n| n + 1));
    ensure_eq!(counts(), grown); // kept while the process exists ...
    ensure!(process::reap(pid), "could not reap");
    ensure_eq!(counts(), before); // ... and dropped when it is reaped
    // Warm, then steady: no growth over repeated runs.
    ensure_eq!(process::run("spin-usertests", [7, 0]), Ok(0));
    let heap = shared_hal::heap::used();
    let frames = phys::free_pages();
    for _ in 0..2 {
        ensure_eq!(process::run("spin-usertests", [7, 0]), Ok(0));
        ensure_eq!(shared_hal::heap::used(), heap);
    }
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}
