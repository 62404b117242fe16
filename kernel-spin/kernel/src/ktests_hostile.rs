//! kernel-spin's in-kernel tests of hostile processes (run with
//! `mode=test` after `ktests`): every exception ring 3 can raise reaches
//! the process, x87 state cannot leak, SMEP, threads blocked in the kernel
//! end with their process (exit or kill), and the per-process thread quota;
//! UMIP.
//! The ring-3 side is `spin-usertests` modes 8..=16 and its test suite.

use crate::process::{self, KILLED, KILLED_BY_KERNEL};
use alloc::format;
use alloc::string::String;
use shared_hal::cpu;
use shared_hal::testing::Test;
use shared_hal::{ensure, ensure_eq};
use spin_interface::abi::MAX_THREADS_PER_PROCESS;
use spin_interface::phys;

/// The tests, in order.
pub const TESTS: &[Test] = &[
    Test {
        name: "spin::every_user_exception_reaches_the_process",
        run: every_user_exception_reaches_the_process,
    },
    Test { name: "spin::x87_is_off_and_leaks_nothing", run: x87_is_off_and_leaks_nothing },
    Test { name: "spin::smep_is_on_where_supported", run: smep_is_on_where_supported },
    Test {
        name: "spin::umip_is_on_and_its_instructions_fault_in_ring_3",
        run: umip_is_on_and_its_instructions_fault_in_ring_3,
    },
    Test {
        name: "spin::exit_ends_threads_blocked_in_the_kernel",
        run: exit_ends_threads_blocked_in_the_kernel,
    },
    Test {
        name: "spin::kill_ends_threads_blocked_in_the_kernel",
        run: kill_ends_threads_blocked_in_the_kernel,
    },
    Test { name: "spin::thread_quota_per_process", run: thread_quota_per_process },
    Test {
        name: "spin::only_a_system_call_frame_is_taken_for_one",
        run: only_a_system_call_frame_is_taken_for_one,
    },
    Test {
        name: "spin::a_tick_between_strand_and_tag_is_no_system_call",
        run: a_tick_between_strand_and_tag_is_no_system_call,
    },
    Test {
        name: "spin::joins_that_could_never_end_are_refused",
        run: joins_that_could_never_end_are_refused,
    },
    Test {
        name: "spin::xas_server_with_a_visitor_is_not_reaped",
        run: xas_server_with_a_visitor_is_not_reaped,
    },
];

/// #DB (TF single-step and ICEBP) and #SS from ring 3, with no handler,
/// end the process with `KILLED − vector`; the kernel and the extensions
/// answering system calls are untouched. (Reflection of #DB and #NM to a
/// handler is in spin-usertests' suite.)
fn every_user_exception_reaches_the_process() -> Result<(), String> {
    ensure_eq!(process::run("spin-usertests", [8, 0]), Ok(KILLED - 1));
    // ICEBP is #DB on hardware; QEMU's TCG decodes it as invalid (#UD).
    let icebp = process::run("spin-usertests", [9, 0]);
    ensure!(icebp == Ok(KILLED - 1) || icebp == Ok(KILLED - 6), "ICEBP: {icebp:?}");
    // A push through a non-canonical RSP is #SS on hardware; QEMU's TCG
    // raises #PF for it.
    let stack = process::run("spin-usertests", [10, 0]);
    ensure!(stack == Ok(KILLED - 12) || stack == Ok(KILLED - 14), "non-canonical RSP: {stack:?}");
    // Mode 4 exits with a new semaphore's handle: `syscalls` still answers.
    let handle = process::run("spin-usertests", [4, 0]).map_err(|e| format!("{e:?}"))?;
    ensure!(handle >= 1, "sem_create failed after the exceptions: {handle}");
    Ok(())
}

/// x87 is off (#NM): a process cannot leave a secret in the x87 registers
/// for the next one, which cannot read them either; SSE is off (#UD).
fn x87_is_off_and_leaks_nothing() -> Result<(), String> {
    ensure!(cpu::vector_units_disabled(), "x87/SSE are on: CR0 {:#x}, CR4 {:#x}", cpu::cr0(), cpu::cr4());
    ensure_eq!(process::run("spin-usertests", [11, 0]), Ok(KILLED - 7));
    ensure_eq!(process::run("spin-usertests", [12, 0]), Ok(KILLED - 7));
    // SSE stays off too (CR4.OSFXSR clear): #UD.
    ensure_eq!(process::run("spin-usertests", [16, 0]), Ok(KILLED - 6));
    Ok(())
}

fn smep_is_on_where_supported() -> Result<(), String> {
    ensure_eq!(cpu::smep_enabled(), cpu::has_smep());
    if !cpu::has_smep() {
        log::info!("kernel-spin: this CPU has no SMEP");
    }
    Ok(())
}

/// UMIP is on where the CPU has it (QEMU's `-cpu max` does), and then
/// `sgdt`, `sidt`, `sldt`, `smsw` and `str` in ring 3 raise #GP, which
/// ends a process without a handler (spin-usertests modes 23..=27):
/// a process cannot learn where the kernel's descriptor tables are.
/// Without UMIP they run (exit 0).
fn umip_is_on_and_its_instructions_fault_in_ring_3() -> Result<(), String> {
    ensure_eq!(cpu::umip_enabled(), cpu::has_umip());
    let want = if cpu::has_umip() { KILLED - 13 } else { 0 };
    if !cpu::has_umip() {
        log::info!("kernel-spin: this CPU has no UMIP");
    }
    for (mode, insn) in [(23, "sgdt"), (24, "sidt"), (25, "sldt"), (26, "smsw"), (27, "str")] {
        let got = process::run("spin-usertests", [mode, 0]);
        ensure!(got == Ok(want), "{insn} in ring 3: {got:?}, expected Ok({want})");
    }
    Ok(())
}

/// Run `scenario` twice (the first warms the kernel's caches: strand
/// stacks, tables) and check the second returns every frame and all heap.
fn leaves_nothing(mut scenario: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    scenario()?;
    let (frames, heap) = (phys::free_pages(), shared_hal::heap::used());
    scenario()?;
    ensure_eq!(phys::free_pages(), frames);
    ensure_eq!(shared_hal::heap::used(), heap);
    Ok(())
}

/// `exit` ends the whole process: a thread blocked in `sem_wait` is woken
/// and ends, so the process is reaped with the main thread's code.
fn exit_ends_threads_blocked_in_the_kernel() -> Result<(), String> {
    leaves_nothing(|| {
        ensure_eq!(process::run("spin-usertests", [13, 0]), Ok(5));
        Ok(())
    })
}

/// A killed process whose threads are all blocked in `sem_wait` ends.
fn kill_ends_threads_blocked_in_the_kernel() -> Result<(), String> {
    leaves_nothing(|| {
        let pid = process::spawn("spin-usertests", [14, 0]).map_err(|e| format!("{e:?}"))?;
        // Let both threads reach their wait.
        let t0 = shared_hal::apic::ticks();
        while shared_hal::apic::ticks() < t0 + 3 {
            let _ = crate::imports::YIELD.call(());
        }
        ensure!(process::kill(pid), "the process was gone before the kill");
        ensure_eq!(process::wait(pid), Some(KILLED_BY_KERNEL));
        ensure!(process::reap(pid), "could not reap");
        Ok(())
    })
}

/// A process gets `Limit` past its thread quota (its main thread counts),
/// and its exit still ends the threads it did start.
fn thread_quota_per_process() -> Result<(), String> {
    leaves_nothing(|| {
        ensure_eq!(process::run("spin-usertests", [15, 0]), Ok(i64::from(MAX_THREADS_PER_PROCESS) - 1));
        Ok(())
    })
}

/// A join cycle (`BadState`) or a second joiner of one thread (`Busy`)
/// would leave threads no kill could wake: both are refused.
fn joins_that_could_never_end_are_refused() -> Result<(), String> {
    ensure_eq!(process::run("spin-usertests", [17, 0]), Ok(1));
    ensure_eq!(process::run("spin-usertests", [18, 0]), Ok(0));
    Ok(())
}

/// The panic path and the timer ask `sysentry::in_progress` whether a
/// process's strand is in a system call (to unload the extension handling
/// it and `sysret`): only the stub's frame may answer yes, never an
/// exception or interrupt frame from ring 3, nor a fresh strand's stack.
fn only_a_system_call_frame_is_taken_for_one() -> Result<(), String> {
    use crate::sysentry::{dispatched_return, in_progress};
    use shared_hal::gdt::{USER_CS, USER_DS};
    let mut stack = [0u64; 8];
    let top = stack.as_ptr() as u64 + 64;
    // The stub's frame (from the top down): user RSP, RIP, RFLAGS, the call
    // number, the return address of `call dispatch`.
    stack[3..].copy_from_slice(&[dispatched_return(), 1, 0x202, 0x20_1000, 0x6fff_ffff_f000]);
    ensure!(in_progress(top), "a system call's frame was not recognised");
    // An exception from ring 3 (error code, RIP, CS, RFLAGS, RSP, SS).
    stack[2..].copy_from_slice(&[
        0,
        0x20_1000,
        u64::from(USER_CS),
        0x202,
        0x6fff_ffff_f000,
        u64::from(USER_DS),
    ]);
    ensure!(!in_progress(top), "an exception frame was taken for a system call");
    // A fresh strand: kernel words, whatever they are, not the label.
    stack[3..].copy_from_slice(&[top, 0, 0, 0, 0]);
    ensure!(!in_progress(top), "a fresh stack was taken for a system call");
    Ok(())
}

/// A strand switch makes the new strand current, then publishes its tag:
/// a timer tick in between saw the boot strand (no kernel stack of its
/// own: top 0) with the previous strand's process tag, and the overrun
/// check read "the system call's frame" below address 0 — a kernel page
/// fault, then a double fault in the panic path doing the same (the
/// fuzzer hit it). Such a strand is in no system call.
fn a_tick_between_strand_and_tag_is_no_system_call() -> Result<(), String> {
    ensure_eq!(crate::strands::stack_top(spin_interface::strand::current().index()), 0);
    let seen = cpu::without_interrupts(|| {
        let tag = crate::strands::TAG.swap(1, core::sync::atomic::Ordering::Relaxed);
        let seen = process::in_syscall();
        crate::strands::TAG.store(tag, core::sync::atomic::Ordering::Relaxed);
        seen
    });
    ensure_eq!(seen, None);
    Ok(())
}

/// Yield until a strand is inside `pid`'s address space (at most ~20 ticks).
fn until_occupied(pid: process::Pid) -> Result<(), String> {
    let start = shared_hal::apic::ticks();
    while !process::occupied(pid) {
        ensure!(shared_hal::apic::ticks() < start + 20, "no strand entered process {pid}");
        ensure_eq!(crate::imports::YIELD.call(()), Ok(()));
    }
    Ok(())
}

/// A cross-address-space server whose main thread has ended still has a
/// visitor while a client's strand is inside it: it is not reaped then
/// (its page tables would be freed under the running strand). Killing the
/// server ends the visitor (the client's thread ends, its process records
/// `KILLED_BY_KERNEL`), and the server can be reaped. Killing a client
/// ends its strand inside the server too, and the call it was in is
/// dropped: the server takes the next call. spin-usertests modes 20
/// (server), 21 (a call that never returns) and 22 (a call of 5 → 6).
fn xas_server_with_a_visitor_is_not_reaped() -> Result<(), String> {
    let frames = phys::free_pages();
    let procs = process::live();
    let spawn =
        |mode: u64, arg: u64| process::spawn("spin-usertests", [mode, arg]).map_err(|e| format!("{e:?}"));
    // The server's own thread ends: only the visitor keeps it occupied.
    let server = spawn(20, 0)?;
    let handle = process::wait(server).ok_or("server vanished")?;
    ensure!(handle > 0, "registration failed: {handle}");
    let client = spawn(21, handle as u64)?;
    until_occupied(server)?;
    ensure!(!process::reap(server), "reaped a server with a client inside");
    ensure_eq!(process::live(), procs + 2);
    // A killed server takes no new calls, and its visitor ends.
    ensure!(process::kill(server), "the server vanished");
    ensure_eq!(process::run("spin-usertests", [22, handle as u64]), Ok(-1));
    ensure_eq!(process::wait(client), Some(KILLED_BY_KERNEL));
    ensure!(!process::occupied(server), "the visitor is still inside");
    ensure!(process::reap(server), "could not reap the server once empty");
    ensure!(process::reap(client), "could not reap the client");
    // Killing a client inside a server ends it there and drops its call.
    let server = spawn(20, 0)?;
    let handle = process::wait(server).ok_or("server vanished")?;
    let client = spawn(21, handle as u64)?;
    until_occupied(server)?;
    ensure!(process::kill(client), "the client vanished");
    ensure_eq!(process::wait(client), Some(KILLED_BY_KERNEL));
    ensure!(process::reap(client), "could not reap the client");
    ensure_eq!(process::run("spin-usertests", [22, handle as u64]), Ok(6));
    ensure!(process::reap(server), "could not reap the second server");
    ensure_eq!(process::live(), procs);
    ensure_eq!(phys::free_pages(), frames);
    Ok(())
}
