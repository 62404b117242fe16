//! Fault containment (ring 0, trusted): recovery points for contained
//! calls, the panic path that unloads a faulting extension and returns to
//! the recovery point, and the timer check that does the same for an
//! extension past its time budget.
//!
//! A contained call ([`Recovery`] on the current strand's stack, linked per
//! strand) saves the callee-saved registers, RSP and the return address
//! (a `setjmp`), enables interrupts and runs the extension's code. A panic
//! while a recovery point is active and no critical section is open unloads
//! the culprit and restores the saved registers with a non-zero code (a
//! `longjmp`); the timer rewrites the interrupted frame so that its `iretq`
//! lands at the same point. See `spin_interface::contain` for what an
//! aborted handler leaks.

use core::arch::naked_asm;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use shared_hal::trap::TrapFrame;
use shared_hal::{apic, cpu, serial};
use spin_interface::contain::{self, Containment, Fault, Span};
use spin_interface::domain::{self, DomainId};
use spin_interface::{KernelKey, strand};

use crate::strands::MAX_STRANDS;

/// Registers saved at a recovery point (offsets used by the assembly).
#[derive(Default)]
#[repr(C)]
struct Jmp {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rsp: u64,
    rip: u64,
}

/// One active contained call.
#[repr(C)]
struct Recovery {
    jmp: Jmp,
    culprit: DomainId,
    /// Who a panic was charged to (the domain whose code panicked, which
    /// may be another than `culprit`: see [`located`]).
    blamed: AtomicU32,
    span: Span,
    /// `Span::Call`: the timer tick after which the call is aborted.
    deadline: u64,
    prev: *mut Recovery,
}

/// Innermost recovery point of each strand (null: none).
static TOP: [AtomicPtr<Recovery>; MAX_STRANDS] = [const { AtomicPtr::new(null_mut()) }; MAX_STRANDS];

/// Ticks a contained call may run (at 100 Hz: 250 ms).
pub static BUDGET_TICKS: AtomicU64 = AtomicU64::new(25);

const PANICKED: u64 = 1;
const TIMED_OUT: u64 = 2;
const OVERFLOWED: u64 = 3;
/// The culprit was unloaded while this strand was off the CPU (or inside
/// an inner contained call): none of its code runs again.
const UNLOADED: u64 = 4;

/// Save the recovery registers in `*jmp`, enable interrupts, then call
/// `body(arg)`. Returns 0 (interrupts off) when `body` returns, or the code
/// passed to [`recover`].
///
/// # Safety
/// `jmp` must stay valid until this returns; `body` must be safe to call with `arg`.
#[unsafe(naked)]
unsafe extern "C" fn protected_call(jmp: *mut Jmp, body: extern "C" fn(*mut u8), arg: *mut u8) -> u64 {
    naked_asm!(
        "mov [rdi + 0], rbx",
        "mov [rdi + 8], rbp",
        "mov [rdi + 16], r12",
        "mov [rdi + 24], r13",
        "mov [rdi + 32], r14",
        "mov [rdi + 40], r15",
        "lea rax, [rsp + 8]", // RSP after our `ret`
        "mov [rdi + 48], rax",
        "mov rax, [rsp]", // our return address
        "mov [rdi + 56], rax",
        "sub rsp, 8", // realign to 16 for the call
        "mov rdi, rdx",
        // Interrupts on only now that the recovery point is complete: a
        // tick that aborts the call must find every saved register.
        "sti",
        "call rsi",
        "add rsp, 8",
        // Interrupts off before the point is popped: the timer cannot abort
        // a call that has already returned.
        "cli",
        "xor eax, eax",
        "ret",
    )
}

/// Return from the `protected_call` that saved `jmp`, with `code`.
///
/// # Safety
/// `jmp` must belong to a `protected_call` still active on this stack; the
/// frames above it are abandoned.
unsafe fn recover(jmp: *const Jmp, code: u64) -> ! {
    // SAFETY: restores exactly the registers `protected_call` saved and
    // returns to its caller with RSP as it was after that call.
    unsafe {
        core::arch::asm!(
            "mov rbx, [rdi + 0]",
            "mov rbp, [rdi + 8]",
            "mov r12, [rdi + 16]",
            "mov r13, [rdi + 24]",
            "mov r14, [rdi + 32]",
            "mov r15, [rdi + 40]",
            "mov rsp, [rdi + 48]",
            "mov rax, rsi",
            "jmp qword ptr [rdi + 56]",
            in("rdi") jmp,
            in("rsi") code,
            options(noreturn)
        )
    }
}

extern "C" fn run_body(arg: *mut u8) {
    // SAFETY: `arg` is the `&mut &mut dyn FnMut()` that `Contain::run` passed.
    let f = unsafe { &mut *(arg as *mut &mut dyn FnMut()) };
    f();
}

struct Contain;

static KEY: spin::Once<&'static KernelKey> = spin::Once::new();

impl Containment for Contain {
    fn run(&self, culprit: DomainId, span: Span, f: &mut dyn FnMut()) -> Result<(), Fault> {
        let s = strand::current().index();
        let mut rec = Recovery {
            jmp: Jmp::default(),
            culprit,
            blamed: AtomicU32::new(culprit.number()),
            span,
            deadline: apic::ticks() + BUDGET_TICKS.load(Ordering::Relaxed),
            prev: TOP[s].load(Ordering::Relaxed),
        };
        let interrupts = cpu::interrupts_enabled();
        // Interrupts stay off until `protected_call` has saved the
        // registers (it enables them itself): a tick in between would find
        // this point published but empty.
        cpu::disable_interrupts();
        TOP[s].store(&mut rec, Ordering::SeqCst);
        let mut body: &mut dyn FnMut() = f;
        // SAFETY: `rec` lives until after this call returns (normally or
        // through `recover`, which only ever targets the innermost point).
        let code = unsafe { protected_call(&mut rec.jmp, run_body, &mut body as *mut _ as *mut u8) };
        // Interrupts are off here (on every path back); pop, then restore.
        TOP[s].store(rec.prev, Ordering::SeqCst);
        // Back in the code of the enclosing contained call: if its domain
        // was unloaded meanwhile (by a fault of this inner call, or while
        // this strand was blocked in it), none of its code may run on.
        if !rec.prev.is_null() {
            abort_if_unloaded(rec.prev);
        }
        if interrupts {
            cpu::enable_interrupts();
        }
        let fault = match code {
            0 => return Ok(()),
            PANICKED => Fault::Panicked(crate::kdomain::domain_id(rec.blamed.load(Ordering::SeqCst))),
            OVERFLOWED => Fault::Overflowed(culprit),
            UNLOADED => Fault::Unloaded(culprit),
            _ => Fault::TimedOut(culprit),
        };
        // The strands the culprit's code left parked can end now.
        wake_parked();
        Err(fault)
    }
}

/// If the contained call `p` (the innermost on the current strand) is of
/// a domain that has been unloaded, abandon it: return from its recovery
/// point with `Fault::Unloaded`. Not inside a critical section, nor while
/// the strand sits in a queue (it would run on while queued).
fn abort_if_unloaded(p: *mut Recovery) {
    // SAFETY: `p` is the current strand's innermost recovery point (its
    // `run` is active below us on this stack, so the point is live).
    let rec = unsafe { &*p };
    if rec.culprit == DomainId::KERNEL
        || !domain::is_unloaded(rec.culprit)
        || contain::in_critical()
        || strand::is_queued(strand::current())
    {
        return;
    }
    cpu::disable_interrupts();
    // SAFETY: `rec` is the innermost active recovery point on this stack.
    unsafe { recover(&rec.jmp, UNLOADED) }
}

/// Called by the context switch on the strand it resumed: a strand that
/// was off the CPU while the domain whose code it runs was unloaded (a
/// thread of that domain that blocked or yielded, a handler that waited)
/// does not go back into that code; its contained call ends with
/// `Fault::Unloaded` (a thread's body then ends, its strand is freed).
/// Until some domain is unloaded this is one load and a test.
#[inline(always)]
pub fn after_resume() {
    if domain::any_unloaded() {
        resumed_after_an_unload();
    }
}

#[cold]
#[inline(never)]
fn resumed_after_an_unload() {
    let p = TOP[strand::current().index() & (MAX_STRANDS - 1)].load(Ordering::Relaxed);
    if !p.is_null() {
        abort_if_unloaded(p);
    }
}

/// Make every strand parked in the code of an unloaded domain (blocked,
/// in no queue, so nothing would ever wake it) runnable again: when it
/// resumes, [`after_resume`] ends its contained call. Strands waiting in a
/// queue end when whoever owns the queue wakes them. Run on a strand,
/// never from an interrupt (it raises the scheduler's `Unblock`).
pub fn wake_parked() {
    let me = strand::current().index();
    for (s, top) in TOP.iter().enumerate() {
        let p = top.load(Ordering::SeqCst);
        if s == me || p.is_null() {
            continue;
        }
        // SAFETY: a non-null TOP entry points at a `Recovery` on strand
        // `s`'s stack, live while `s` is parked inside that call (only `s`
        // itself pops it, and `s` is not running).
        let culprit = unsafe { (*p).culprit };
        let strand = strand::Strand::from_index(crate::key(), s as u32);
        if culprit != DomainId::KERNEL && domain::is_unloaded(culprit) && !strand::is_queued(strand) {
            strand::unblock(crate::key(), strand);
        }
    }
}

/// Unload domain `id` (the loader's failure path, tests) and wake the
/// strands it left parked.
pub fn unload_domain(id: DomainId) {
    let key = KEY.get().expect("containment installed");
    domain::unload(key, id);
    wake_parked();
}

/// The domain whose contained code runs on this strand now (the innermost
/// recovery point's culprit), or the kernel.
pub fn current_culprit() -> DomainId {
    innermost().map_or(DomainId::KERNEL, |r| r.culprit)
}

fn innermost() -> Option<&'static Recovery> {
    let p = TOP[strand::current().index()].load(Ordering::SeqCst);
    // SAFETY: a non-null TOP entry points at a `Recovery` on the current
    // strand's stack, live until its `run` returns (which clears the entry).
    (!p.is_null()).then(|| unsafe { &*p })
}

fn unload(culprit: DomainId, why: &str) {
    // Whatever was interrupted, the CPU is not idling now (a handler
    // aborted inside `machine::idle` would leave the flag set, and the
    // system-call watchdog would never fire again).
    crate::services::IDLE.store(false, Ordering::Relaxed);
    let key = KEY.get().expect("containment installed");
    let (imports, events) = domain::unload(key, culprit);
    serial::emergency_write(format_args!(
        "[contain] extension domain {} {why}: unloaded ({imports} imports revoked, handlers removed from {events} events)\n",
        culprit.number()
    ));
}

/// Where each loaded extension's crate lives (`extensions/<crate>/`), so
/// that a panic is charged to the domain whose code panicked: the panic's
/// location is the compiler's record of the code that was running (the
/// `panic!` or, for `#[track_caller]` functions, their caller), and no
/// extension can make its code appear in another crate. Per slot: domain
/// number, then the directory as pointer and length (0: free).
static SOURCES: [(AtomicU32, AtomicUsize, AtomicUsize); 64] =
    [const { (AtomicU32::new(0), AtomicUsize::new(0), AtomicUsize::new(0)) }; 64];

/// The crate directory of a source path under `extensions/`.
fn crate_dir(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("extensions/")?;
    let end = rest.find('/')?;
    Some(&file[..("extensions/".len() + end + 1)])
}

fn slot_dir(i: usize) -> &'static str {
    let (_, p, n) = &SOURCES[i];
    let (p, n) = (p.load(Ordering::SeqCst), n.load(Ordering::SeqCst));
    if p == 0 {
        return "";
    }
    // SAFETY: `note_source` stores only the pointer and length of a
    // `&'static str` (a prefix of a source path the compiler embedded).
    unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(p as *const u8, n)) }
}

/// Record that domain `d` runs the crate whose descriptor was made in
/// `source` (the loader, before the extension's `init`). Slots of unloaded
/// domains are freed first.
pub fn note_source(d: DomainId, source: &'static str) {
    for (id, p, _) in &SOURCES {
        let n = id.load(Ordering::SeqCst);
        if p.load(Ordering::SeqCst) != 0 && domain::is_unloaded(crate::kdomain::domain_id(n)) {
            p.store(0, Ordering::SeqCst);
        }
    }
    let Some(dir) = crate_dir(source) else { return };
    if let Some((id, p, n)) = SOURCES.iter().find(|(_, p, _)| p.load(Ordering::SeqCst) == 0) {
        id.store(d.number(), Ordering::SeqCst);
        n.store(dir.len(), Ordering::SeqCst);
        p.store(dir.as_ptr() as usize, Ordering::SeqCst);
    }
}

/// The domain to charge a panic to, given `context` (the domain the
/// running contained call, system call or fault handler belongs to): the
/// domain whose crate holds the code the panic is located in, when that
/// is unambiguous (a crate may hold several extensions: if `context` runs
/// that crate, or several loaded domains do, the context decides).
fn charge_for(info: &core::panic::PanicInfo, context: DomainId) -> DomainId {
    let Some(dir) = info.location().and_then(|l| crate_dir(l.file())) else { return context };
    let mut found = None;
    for i in (0..SOURCES.len()).filter(|&i| slot_dir(i) == dir) {
        let n = SOURCES[i].0.load(Ordering::SeqCst);
        if n == context.number() {
            return context;
        }
        if found.replace(n).is_some() {
            return context;
        }
    }
    found.map_or(context, crate::kdomain::domain_id)
}

/// Called by the panic handler: if a contained call of an extension is
/// active, unload the culprit and resume at its recovery point; if a
/// process's system call is in progress, unload the extension handling it
/// and return `ExtensionFault` to the process.
pub fn on_panic(info: &core::panic::PanicInfo) {
    if contain::in_critical() {
        return;
    }
    let Some(rec) = innermost() else {
        if let Some(culprit) = crate::uexc::culprit() {
            let culprit = charge_for(info, culprit);
            if culprit != DomainId::KERNEL {
                serial::emergency_write(format_args!("[contain] panic in a fault handler: {info}\n"));
                unload(culprit, "panicked");
                cpu::disable_interrupts();
                crate::uexc::handler_failed();
            }
            return;
        }
        if let Some(top) = crate::process::in_syscall() {
            let culprit = charge_for(info, crate::sysentry::culprit(top));
            if culprit != DomainId::KERNEL {
                serial::emergency_write(format_args!("[contain] panic in a system-call handler: {info}\n"));
                unload(culprit, "panicked");
                cpu::disable_interrupts();
                // SAFETY: a system call is in progress on this strand's stack.
                unsafe { crate::sysentry::abort_from_here(top) }
            }
        }
        return;
    };
    if rec.culprit == DomainId::KERNEL {
        return;
    }
    // Charged to the domain whose code panicked, which may have been
    // called (`Import::call`, a guard, an object method) by the innocent
    // domain whose contained call this is.
    let culprit = charge_for(info, rec.culprit);
    serial::emergency_write(format_args!("[contain] panic in extension code: {info}\n"));
    rec.blamed.store(culprit.number(), Ordering::SeqCst);
    unload(culprit, "panicked");
    cpu::disable_interrupts();
    // SAFETY: `rec` is the innermost active recovery point on this stack.
    unsafe { recover(&rec.jmp, PANICKED) }
}

/// System-call count at the last tick, and ticks seen since it changed.
static LAST_CALLS: AtomicU64 = AtomicU64::new(0);
static STUCK_TICKS: AtomicU64 = AtomicU64::new(0);

/// Timer check for system calls and fault events: the same one has been
/// running (not blocked, not idle) for more than the budget.
fn syscall_overrun(frame: &mut TrapFrame) {
    let calls = crate::sysentry::calls();
    let running = !crate::services::IDLE.load(Ordering::Relaxed);
    let fault = crate::uexc::culprit();
    let top = crate::process::in_syscall();
    if !running || (top.is_none() && fault.is_none()) || LAST_CALLS.swap(calls, Ordering::Relaxed) != calls {
        STUCK_TICKS.store(0, Ordering::Relaxed);
        return;
    }
    let stuck = STUCK_TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    let culprit = match (fault, top) {
        (Some(d), _) => d,
        (None, Some(top)) => crate::sysentry::culprit(top),
        (None, None) => return,
    };
    if stuck <= BUDGET_TICKS.load(Ordering::Relaxed) || contain::in_critical() || culprit == DomainId::KERNEL
    {
        return;
    }
    STUCK_TICKS.store(0, Ordering::Relaxed);
    match top {
        Some(top) if fault.is_none() => {
            unload(culprit, "ran past its time budget in a system call");
            crate::sysentry::abort_frame(frame, top);
        }
        _ => {
            unload(culprit, "ran past its time budget in a fault handler");
            crate::uexc::abort_frame(frame);
        }
    }
}

/// Strand switches at the last kernel-mode tick, and such ticks seen
/// since the count last changed.
static LAST_SWITCHES: AtomicU64 = AtomicU64::new(0);
static HOG_TICKS: AtomicU64 = AtomicU64::new(0);

/// Whether the running strand has kept the CPU for the whole budget: no
/// strand switch at all over that many ticks (a thread that blocks or
/// yields now and then is never a hog, however long it lives).
fn hogging() -> bool {
    let switches = crate::strands::switches();
    if LAST_SWITCHES.swap(switches, Ordering::Relaxed) != switches {
        HOG_TICKS.store(0, Ordering::Relaxed);
        return false;
    }
    HOG_TICKS.fetch_add(1, Ordering::Relaxed) + 1 > BUDGET_TICKS.load(Ordering::Relaxed)
}

/// Timer hook: abort a contained call (or a system call) that has run past
/// its deadline; preempt user code.
pub fn on_tick(frame: &mut TrapFrame) {
    if frame.from_user() {
        STUCK_TICKS.store(0, Ordering::Relaxed);
        // Time slicing, and ending killed processes.
        crate::process::on_user_tick();
        return;
    }
    let Some(innermost) = innermost() else {
        syscall_overrun(frame);
        return;
    };
    // Not in a critical section, nor between queueing this strand and
    // blocking it (aborting there would leave it queued while it runs on,
    // corrupting the queue): the next tick acts instead.
    if contain::in_critical() || strand::is_queued(strand::current()) {
        return;
    }
    // Only the innermost point is checked. (Checking the outer ones too
    // would stop a handler that opens a thread span of its own and yields
    // in it for ever, but the abort then lands inside the scheduler's
    // switch code and corrupts its state: not done until strand switches
    // are abort-safe.)
    let rec = innermost;
    if rec.culprit == DomainId::KERNEL {
        return;
    }
    let overrun = match rec.span {
        Span::Call => apic::ticks() >= rec.deadline,
        Span::Thread => hogging(),
    };
    if !overrun {
        return;
    }
    unload(rec.culprit, "ran past its time budget");
    resume_at(frame, rec, TIMED_OUT);
}

/// Make `frame` return to recovery point `rec` with `code`: the registers
/// `protected_call` saved, its return address, and the code in RAX, with
/// interrupts off as on the normal path back.
fn resume_at(frame: &mut TrapFrame, rec: &Recovery, code: u64) {
    frame.rbx = rec.jmp.rbx;
    frame.rbp = rec.jmp.rbp;
    frame.r12 = rec.jmp.r12;
    frame.r13 = rec.jmp.r13;
    frame.r14 = rec.jmp.r14;
    frame.r15 = rec.jmp.r15;
    frame.rsp = rec.jmp.rsp;
    frame.rip = rec.jmp.rip;
    frame.rax = code;
    frame.rflags &= !shared_hal::trap::RFLAGS_IF;
}

/// Whether a double fault is a kernel stack overflow: the page fault that
/// could not be delivered hit the guard below a strand's stack (or, for
/// the boot strand, the bootloader's guard page just below RSP).
fn is_stack_overflow(frame: &TrapFrame) -> bool {
    let cr2 = cpu::cr2();
    let near_rsp = cr2 <= frame.rsp.wrapping_add(64) && frame.rsp.wrapping_sub(cr2) <= 2 * 4096;
    let unmapped = shared_hal::paging::entry(shared_hal::paging::kernel_root(), cr2 & !0xfff).is_none();
    !frame.from_user() && unmapped && (crate::strands::in_stack_guard(cr2) || near_rsp)
}

/// The double-fault hook (on its own IST stack): a kernel stack overflow
/// in extension code is contained like a panic — the culprit unloaded, the
/// contained call, system call or fault handler it ran in aborted; any
/// other double fault ends the machine as the HAL's report does.
fn on_double_fault(frame: &mut TrapFrame) {
    // Recovery unloads the culprit, which allocates: not if the overflow
    // hit inside the allocator itself.
    if is_stack_overflow(frame) && !contain::in_critical() && !shared_hal::heap::busy() {
        if let Some(rec) = innermost().filter(|r| r.culprit != DomainId::KERNEL) {
            unload(rec.culprit, "overflowed its stack");
            resume_at(frame, rec, OVERFLOWED);
            return;
        }
        if let Some(culprit) = crate::uexc::culprit().filter(|d| *d != DomainId::KERNEL) {
            unload(culprit, "overflowed its stack in a fault handler");
            crate::uexc::abort_frame(frame);
            return;
        }
        if let Some(top) = crate::process::in_syscall() {
            let culprit = crate::sysentry::culprit(top);
            if culprit != DomainId::KERNEL {
                unload(culprit, "overflowed its stack in a system call");
                crate::sysentry::abort_frame(frame, top);
                return;
            }
        }
    }
    shared_hal::trap::report_double_fault(frame)
}

/// Install the containment and the timer check.
pub fn install(key: &'static KernelKey) {
    KEY.call_once(|| key);
    contain::install(key, &Contain);
    apic::set_timer_hook(on_tick);
    shared_hal::trap::set_handler(shared_hal::trap::vector::DOUBLE_FAULT, on_double_fault);
}
