//! Scheduling: the time-slice vector, entering environments, upcalls, and
//! every path that switches environments (the timer, the switching system
//! calls, kills).
//!
//! All of them work the same way: the trap that brought the CPU into the
//! kernel left a [`TrapFrame`] at the top of the kernel stack; the path
//! saves it as the running environment's context (or discards it), then
//! overwrites it with the context of the environment that runs next, and
//! the entry stub restores that frame with `iretq`. When nothing can run,
//! the kernel returns to the monitor instead (`crate::monitor::back`).
//!
//! A slice is one timer tick. At the end of a slice the running
//! environment gets an end-of-slice upcall if it registered an upcall
//! entry; it must give up the processor (yield, wait, exit or asynchronous
//! PCT) within `GRACE_TICKS`, or it is preempted and skips its next slice.

use crate::env::{self, Ending};
use crate::fast::envtab;
use crate::kernel::{self, Kernel};
use crate::revoke;
use crate::wakeup::{self, Wake};
use exo_abi::layout::Regs;
use exo_abi::{Call, EnvStatus, Error, GRACE_TICKS, MAX_ENVS, UpcallKind, YIELD_ANY};
use exo_logic::slices::resolve;
use shared_hal::trap::TrapFrame;

/// RFLAGS for contexts the kernel creates: interrupts enabled.
const USER_RFLAGS: u64 = 0x202;

/// Whether the scheduler can enter environment `i` now: it is started, not
/// running, and either has a saved context or a deliverable upcall.
pub fn runnable(k: &Kernel, i: usize) -> bool {
    runnable_in(&k.envs, k.ticks, i)
}

fn upcall_deliverable(e: &env::Env) -> bool {
    // SAFETY: the user area is a kernel-owned frame reached through the
    // physical window; `busy` is a word the environment may write, read
    // here only as a hint (it decides nothing but whether to deliver).
    e.upcall_entry != 0 && unsafe { core::ptr::read_volatile(&(*e.upcall_area()).busy) } == 0
}

/// The next environment by the slice vector. Penalised environments lose
/// the slot they are found in; if that leaves nothing, a second pass runs
/// them anyway rather than idling.
fn pick(k: &mut Kernel) -> Option<usize> {
    for _ in 0..2 {
        let Kernel { slices, envs, ticks, .. } = k;
        let (envs, now) = (&*envs, *ticks);
        let mut penalised: Option<usize> = None;
        let found = slices.next(|owner| {
            let who = runs_in_slot_of(envs, now, owner)?;
            let id = envs.handle_at(who)?;
            if envs.get(id).is_ok_and(|e| e.skip > 0) && penalised.is_none() {
                penalised = Some(who);
                return None;
            }
            Some(who)
        });
        if let Some(p) = penalised {
            k.env_mut(p).skip -= 1;
        }
        if found.is_some() {
            return found;
        }
        // Nobody was skipped: a second pass would find nothing either.
        penalised?;
    }
    None
}

/// Who runs in a slot of the slice vector owned by `owner`: the first
/// runnable environment along its chain of donations. This is the one
/// definition of "reachable": [`pick`] chooses by it and
/// [`anything_runnable`] (the monitor's question) asks it, so the two can
/// never disagree about an environment the vector cannot reach (no
/// slices of its own, all of them given away, or only a pending upcall).
fn runs_in_slot_of(envs: &kernel::EnvTable, now: u64, owner: usize) -> Option<usize> {
    resolve(owner, MAX_ENVS, |e| runnable_in(envs, now, e), envtab::donated)
}

/// [`runnable`] on the environment table and the clock alone (the closure
/// in [`pick`] cannot borrow all of `Kernel`). A sleeper's saved context
/// counts only when its predicate holds (evaluated here: a bounded run).
fn runnable_in(envs: &kernel::EnvTable, now: u64, i: usize) -> bool {
    let Some(id) = envs.handle_at(i) else { return false };
    let Ok(e) = envs.get(id) else { return false };
    envtab::current() != Some(i)
        && e.life == env::Life::Started
        && ((e.ctx.is_some() && (!e.sleeping || wakeup::eval(e, now) != Wake::No))
            || (e.revoke_upcall_pending && upcall_deliverable(e)))
}

/// Make environment `i` the running one and put the context it resumes
/// (or the upcall it receives) into `frame`.
fn enter(k: &mut Kernel, i: usize, frame: &mut TrapFrame) {
    let now = k.ticks;
    envtab::set_current(Some(i));
    envtab::set_waiting(i, false);
    env::touch_clock(k, i);
    let e = k.env_mut(i);
    if e.sleeping {
        // It leaves PredWait now: with the tag, an error, or (entered for
        // an upcall while the predicate is false) 0.
        e.sleeping = false;
        let how = wakeup::eval(e, now);
        if let Some(ctx) = e.ctx.as_mut() {
            (ctx.rax, ctx.rdx) = how.registers();
        }
        wakeup::woke(e, how);
    }
    if shared_hal::cpu::cr3() & shared_hal::paging::pte::ADDR != e.root {
        // SAFETY: every environment's root maps the kernel half exactly as
        // the kernel's own root does.
        unsafe { shared_hal::cpu::set_cr3(e.root) };
    }
    if e.revoke_upcall_pending && upcall_deliverable(e) {
        e.revoke_upcall_pending = false;
        let (owed, left) = e.revoke.map_or((0, 0), |r| (r.shortfall(), r.ticks_left(now)));
        let ctx = e.ctx.take();
        deliver_upcall(e, UpcallKind::Revoke, owed, left, ctx.as_ref(), frame);
    } else {
        *frame = e.ctx.take().expect("the scheduler enters only runnable environments");
    }
}

/// Hand an upcall to environment `e`: the interrupted context (if any)
/// goes into its upcall area, and `frame` becomes the upcall entry.
fn deliver_upcall(
    e: &env::Env,
    kind: UpcallKind,
    arg0: u64,
    arg1: u64,
    interrupted: Option<&TrapFrame>,
    frame: &mut TrapFrame,
) {
    let area = e.upcall_area();
    let ctx = interrupted.map(regs_of).unwrap_or_default();
    // SAFETY: the user area is a kernel-owned frame reached through the
    // physical window; the environment is not running while we write it.
    unsafe {
        (*area).kind = kind as u64;
        (*area).arg0 = arg0;
        (*area).arg1 = arg1;
        (*area).has_ctx = interrupted.is_some() as u64;
        (*area).ctx = ctx;
        (*area).busy = 1;
    }
    let mut f = TrapFrame::new_user(e.upcall_entry, e.upcall_stack);
    f.rax = kind as u64;
    f.rdi = arg0;
    f.rsi = arg1;
    *frame = f;
}

fn regs_of(f: &TrapFrame) -> Regs {
    Regs {
        rax: f.rax,
        rbx: f.rbx,
        rcx: f.rcx,
        rdx: f.rdx,
        rsi: f.rsi,
        rdi: f.rdi,
        rbp: f.rbp,
        r8: f.r8,
        r9: f.r9,
        r10: f.r10,
        r11: f.r11,
        r12: f.r12,
        r13: f.r13,
        r14: f.r14,
        r15: f.r15,
        rip: f.rip,
        rsp: f.rsp,
        rflags: f.rflags,
    }
}

/// Save the running environment `i`'s context from `frame`: it is ready.
fn save(k: &mut Kernel, i: usize, frame: &TrapFrame) {
    k.env_mut(i).ctx = Some(*frame);
    envtab::set_current(None);
    if k.grace.is_some_and(|(g, _)| g == i) {
        k.grace = None;
    }
}

/// Load the next environment into `frame`: by the slice vector, or else
/// `fallback` if it can run. False if nothing can run.
fn switch(k: &mut Kernel, frame: &mut TrapFrame, fallback: Option<usize>) -> bool {
    let next = pick(k).or(fallback.filter(|&f| runnable(k, f)));
    match next {
        Some(n) => {
            enter(k, n, frame);
            true
        }
        None => false,
    }
}

/// What a switching path does once the kernel lock is released.
#[must_use]
enum After {
    /// Return through the (rewritten) frame.
    Resume,
    /// Nothing can run: back to the monitor.
    Monitor,
}

fn finish(after: After) {
    if let After::Monitor = after {
        crate::monitor::back();
    }
}

fn current() -> usize {
    envtab::current().expect("a trap from ring 3 comes from the running environment")
}

/// The switching system calls ([`Call::PctAsync`], [`Call::Yield`],
/// [`Call::Wait`], [`Call::Exit`]), entered from the SYSCALL stub with the
/// caller's complete context in `frame`.
pub extern "C" fn syscall_slow(frame: &mut TrapFrame) {
    let cur = current();
    let after = kernel::with(|k| match Call::from_number(frame.rax) {
        Some(Call::Yield) => yield_to(k, cur, frame),
        Some(Call::Wait) => {
            k.env_mut(cur).ctx = None;
            envtab::set_waiting(cur, true);
            save_nothing(k, cur);
            if switch(k, frame, None) { After::Resume } else { After::Monitor }
        }
        Some(Call::Exit) => {
            let code = frame.rdi;
            env::destroy(k, cur, Ending { status: EnvStatus::Exited, detail: code });
            k.grace = None;
            if switch(k, frame, None) { After::Resume } else { After::Monitor }
        }
        Some(Call::PctAsync) => pct_async(k, cur, frame),
        Some(Call::PredWait) => pred_wait(k, cur, frame),
        _ => {
            frame.rax = Error::UnknownCall.code();
            After::Resume
        }
    });
    finish(after);
}

/// The running environment gives up the CPU without keeping a context.
fn save_nothing(k: &mut Kernel, i: usize) {
    envtab::set_current(None);
    if k.grace.is_some_and(|(g, _)| g == i) {
        k.grace = None;
    }
}

fn yield_to(k: &mut Kernel, cur: usize, frame: &mut TrapFrame) -> After {
    let target = frame.rdi;
    let t = if target == YIELD_ANY {
        None
    } else {
        match k.env_index(target) {
            Ok(t) if t != cur && runnable(k, t) => Some(t),
            Ok(_) => {
                frame.rax = Error::BadState.code();
                return After::Resume;
            }
            Err(e) => {
                frame.rax = e.code();
                return After::Resume;
            }
        }
    };
    frame.rax = 0;
    frame.rdx = 0;
    save(k, cur, frame);
    match t {
        Some(t) => {
            enter(k, t, frame);
            After::Resume
        }
        None if switch(k, frame, Some(cur)) => After::Resume,
        None => After::Monitor,
    }
}

/// [`Call::PredWait`]: return at once if the predicate holds (or cannot
/// be run), else sleep on it; the scheduler decides by running it
/// ([`runnable_in`]) and [`enter`] hands over the result.
fn pred_wait(k: &mut Kernel, cur: usize, frame: &mut TrapFrame) -> After {
    let now = k.ticks;
    let e = k.env_mut(cur);
    let how = wakeup::eval(e, now);
    (frame.rax, frame.rdx) = how.registers();
    wakeup::woke(e, how);
    if how != Wake::No {
        return After::Resume;
    }
    e.sleeping = true;
    save(k, cur, frame);
    if switch(k, frame, None) { After::Resume } else { After::Monitor }
}

/// Asynchronous PCT: the caller keeps its context (and continues later
/// with RAX = 0), the callee runs now for the rest of the slice, entered
/// as by the synchronous PCT but without any donation.
fn pct_async(k: &mut Kernel, cur: usize, frame: &mut TrapFrame) -> After {
    let target = frame.rdi;
    let fe = envtab::slot(target as usize & (MAX_ENVS - 1));
    use core::sync::atomic::Ordering::Relaxed;
    let error = if fe.id.load(Relaxed) != target || target == 0 {
        Some(Error::NoSuchEnv)
    } else if fe.waiting.load(Relaxed) == 0 {
        Some(Error::BadState)
    } else if fe.pct_entry.load(Relaxed) == 0 {
        Some(Error::NoEntry)
    } else {
        None
    };
    if let Some(e) = error {
        frame.rax = e.code();
        return After::Resume;
    }
    let t = target as usize & (MAX_ENVS - 1);
    let caller_id = k.env(cur).id;
    let mut resume = *frame;
    resume.rax = 0;
    save(k, cur, &resume);
    envtab::set_current(Some(t));
    envtab::set_waiting(t, false);
    let root = k.env(t).root;
    // SAFETY: every environment's root maps the kernel half like the kernel's.
    unsafe { shared_hal::cpu::set_cr3(root) };
    let entry = fe.pct_entry.load(Relaxed);
    frame.rax = caller_id;
    frame.rcx = entry;
    frame.r11 = USER_RFLAGS;
    frame.rip = entry;
    frame.rflags = USER_RFLAGS;
    After::Resume
}

/// The timer hook: count the tick, run the abort protocol where deadlines
/// passed, and end the running environment's slice.
pub fn on_tick(frame: &mut TrapFrame) {
    let after = kernel::with(|k| {
        k.ticks += 1;
        revoke::check_deadlines(k);
        if !frame.from_user() {
            // The monitor was idle: nothing to preempt.
            return After::Resume;
        }
        let cur = current();
        let now = k.ticks;
        env::touch_clock(k, cur);
        match k.grace {
            Some((g, _)) if g != cur => k.grace = None, // it gave up the CPU in time
            Some((_, until)) if now < until => return After::Resume,
            Some(_) => {
                // It did not answer its end-of-slice upcall: preempt it and
                // take its next slice away.
                k.grace = None;
                let e = k.env_mut(cur);
                e.penalties += 1;
                e.skip += 1;
                env::publish(k, cur);
                return preempt(k, cur, frame);
            }
            None => {}
        }
        let e = k.env(cur);
        if upcall_deliverable(e) {
            let interrupted = *frame;
            deliver_upcall(e, UpcallKind::SliceEnd, 0, 0, Some(&interrupted), frame);
            k.grace = Some((cur, now + GRACE_TICKS));
            k.env_mut(cur).slice_upcalls += 1;
            env::publish(k, cur);
            return After::Resume;
        }
        preempt(k, cur, frame)
    });
    finish(after);
}

fn preempt(k: &mut Kernel, cur: usize, frame: &mut TrapFrame) -> After {
    save(k, cur, frame);
    if switch(k, frame, Some(cur)) { After::Resume } else { After::Monitor }
}

/// Kill the running environment (it could not take an exception) and run
/// the next one.
pub fn kill_current(frame: &mut TrapFrame, status: EnvStatus, detail: u64) {
    let cur = current();
    let after = kernel::with(|k| {
        log::info!(
            "kernel-exo: environment {:#x} killed: {} at rip {:#x} (no handler, or a fault inside it)",
            k.env(cur).id,
            shared_hal::trap::exception_name(detail),
            frame.rip
        );
        env::destroy(k, cur, Ending { status, detail });
        k.grace = None;
        if switch(k, frame, None) { After::Resume } else { After::Monitor }
    });
    finish(after);
}

/// First entry from the monitor: load whoever runs first into `frame`.
pub fn start(frame: &mut TrapFrame) -> bool {
    kernel::with(|k| switch(k, frame, None))
}

/// Whether the scheduler would find something to run (the monitor's
/// question after a tick): some slot of the slice vector reaches a
/// runnable environment. A runnable environment no slot reaches does not
/// count — the scheduler could not enter it, and counting it would bounce
/// monitor and scheduler forever.
pub fn anything_runnable() -> bool {
    kernel::with(|k| {
        (0..exo_abi::SLICE_SLOTS)
            .filter_map(|s| k.slices.owner(s))
            .any(|o| runs_in_slot_of(&k.envs, k.ticks, o).is_some())
    })
}
