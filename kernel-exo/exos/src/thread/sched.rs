//! The scheduler of ExOS's threads: the queues, switching, blocking, the
//! idle loop (which runs when no thread can: it checks the predicates of
//! threads waiting on other environments, hands those environments the
//! processor, and waits for PCT wake-ups), re-entry after a wake-up or an
//! upcall, and preemption at the end of a slice.

use super::switch::*;
use super::{State, Tcb, ThreadError, Waiter, Woken, in_use};
use crate::private::{self, rt};
use crate::sys;
use core::ptr::null_mut;
use core::sync::atomic::Ordering::SeqCst;
use exo_abi::layout::Regs;
use exo_abi::{Error, YIELD_ANY};

/// A FIFO of control blocks linked through `next`.
pub(crate) struct Queue {
    head: *mut Tcb,
    tail: *mut Tcb,
}

impl Queue {
    pub(crate) const fn new() -> Self {
        Queue { head: null_mut(), tail: null_mut() }
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, t: *mut Tcb) {
        // SAFETY: `t` is a live control block (they are never freed), in
        // no other queue; inside a critical section.
        unsafe { (*t).next = null_mut() };
        if self.tail.is_null() {
            self.head = t;
        } else {
            // SAFETY: as above, for the tail.
            unsafe { (*self.tail).next = t };
        }
        self.tail = t;
    }

    #[inline(always)]
    pub(crate) fn pop(&mut self) -> *mut Tcb {
        let t = self.head;
        if !t.is_null() {
            // SAFETY: as in `push`.
            self.head = unsafe { (*t).next };
            if self.head.is_null() {
                self.tail = null_mut();
            }
        }
        t
    }
}

pub(super) struct Sched {
    pub(super) current: *mut Tcb,
    pub(super) ready: Queue,
    /// Threads blocked on a [`Waiter`].
    pub(super) waiting: Queue,
    /// Ended, joined threads whose block and stack can be reused.
    pub(super) free: *mut Tcb,
    pub(super) live: u64,
    pub(super) next_id: u64,
    pub(super) sched_stack: u64,
    pub(super) warned: bool,
}

/// The main thread's control block.
pub(super) static mut MAIN: Tcb = Tcb::main();
pub(super) static mut S: Sched = Sched {
    current: &raw mut MAIN,
    ready: Queue::new(),
    waiting: Queue::new(),
    free: null_mut(),
    live: 1,
    next_id: 2,
    sched_stack: 0,
    warned: false,
};

/// The scheduler. Only touched inside critical sections (or by the upcall
/// handler when no critical section is open, which is the same thing: no
/// thread runs meanwhile).
#[inline(always)]
pub(super) fn s() -> &'static mut Sched {
    // SAFETY: see above; one CPU.
    unsafe { &mut *core::ptr::addr_of_mut!(S) }
}

pub(super) fn remove_waiting(sc: &mut Sched, t: *mut Tcb) {
    let mut q = Queue::new();
    while !sc.waiting.is_empty() {
        let x = sc.waiting.pop();
        if x != t {
            q.push(x);
        }
    }
    sc.waiting = q;
}

/// Move blocked thread `t` to the ready queue.
#[inline]
pub(crate) fn make_ready(t: *mut Tcb) {
    // SAFETY: a live block, in no queue (its waker took it out).
    unsafe { (*t).state = State::Ready };
    s().ready.push(t);
}

/// The running thread's block.
#[inline]
pub(crate) fn current_tcb() -> *mut Tcb {
    s().current
}

/// Block the running thread (already put on some wait queue by the
/// caller, who also set its state) and run others until it is made ready.
#[inline(always)]
pub(crate) fn block_current() -> Result<(), ThreadError> {
    // SAFETY: the running thread's block.
    unsafe { (*s().current).state = State::Blocked };
    schedule()
}

/// Whether the running thread may block now: inside exactly the
/// operation's own critical section, and not in a handler.
#[inline]
pub(crate) fn can_block() -> bool {
    rt().nopreempt.load(SeqCst) == 1 && !private::in_handler()
}

#[inline(always)]
pub(super) fn schedule() -> Result<(), ThreadError> {
    if !can_block() {
        // Blocking inside a nested critical section (or a handler) would
        // hold it across other threads.
        // SAFETY: the running thread's block.
        unsafe { (*s().current).state = State::Running };
        return Err(ThreadError::Deadlock);
    }
    let sc = s();
    poll_waiters(sc);
    let next = sc.ready.pop();
    if !next.is_null() {
        switch_to(next);
    } else {
        let Some(stack) = sched_stack() else {
            // Nowhere to run the idle loop: the caller undoes its wait.
            // SAFETY: the running thread's block.
            unsafe { (*sc.current).state = State::Running };
            return Err(ThreadError::NoMemory);
        };
        // SAFETY: the scheduler stack is private; the idle loop never
        // returns, it continues some thread (eventually this one).
        unsafe { exos_switch_to_stack(&mut (*sc.current).rsp, stack, idle_entry) };
    }
    Ok(())
}

/// The scheduler's own stack (where the idle loop runs), made on first
/// need.
fn sched_stack() -> Option<u64> {
    let sc = s();
    if sc.sched_stack == 0 {
        sc.sched_stack = crate::vm::new_private_stack(4).ok()?;
    }
    Some(sc.sched_stack)
}

/// Continue `next` (ready, taken off the queue), saving the running thread.
#[inline(always)]
pub(super) fn switch_to(next: *mut Tcb) {
    let sc = s();
    let me = sc.current;
    if next == me {
        // SAFETY: our own block.
        unsafe { (*me).state = State::Running };
        return;
    }
    sc.current = next;
    // SAFETY: both are live blocks; `me` is saved by the switch before
    // anyone can continue it.
    unsafe {
        let n = &mut *next;
        n.state = State::Running;
        if n.preempted {
            n.preempted = false;
            rt().resume = n.regs;
            exos_switch_resume(&mut (*me).rsp);
        } else {
            exos_switch(&mut (*me).rsp, n.rsp);
        }
    }
}

/// Continue the next ready thread (or idle), saving nothing: the running
/// thread has ended, or there is no running thread (a handler).
pub(super) fn next_without_saving() -> ! {
    let sc = s();
    poll_waiters(sc);
    let next = sc.ready.pop();
    if next.is_null() {
        match sched_stack() {
            // SAFETY: the idle loop runs on its own stack.
            Some(stack) => unsafe { exos_run_on_stack(stack, idle_entry) },
            // No memory for one: our own stack is abandoned anyway (the
            // thread has ended), so the idle loop runs on it.
            None => idle_entry(),
        }
    }
    enter(next)
}

/// Make `next` current and continue it (inside one critical section).
fn enter(next: *mut Tcb) -> ! {
    let sc = s();
    sc.current = next;
    // SAFETY: a live block taken off the ready queue.
    unsafe {
        let n = &mut *next;
        n.state = State::Running;
        if n.preempted {
            n.preempted = false;
            rt().resume = n.regs;
            exos_resume()
        } else {
            exos_enter(n.rsp)
        }
    }
}

/// Wake the threads whose condition holds (or whose peer has ended).
#[inline(always)]
pub(super) fn poll_waiters(sc: &mut Sched) {
    if !sc.waiting.is_empty() {
        poll_waiting_threads(sc);
    }
}

#[inline(never)]
fn poll_waiting_threads(sc: &mut Sched) {
    let mut still = Queue::new();
    while !sc.waiting.is_empty() {
        let t = sc.waiting.pop();
        // SAFETY: blocked threads' blocks are live.
        let w = unsafe { (*t).waiter };
        match w {
            Some(w) if !(w.check)(w.arg) => still.push(t),
            _ => {
                // SAFETY: as above.
                unsafe { (*t).waiter = None };
                make_ready(t);
            }
        }
    }
    sc.waiting = still;
}

/// The idle loop: nothing is ready. Runs on the scheduler stack inside one
/// critical section; continues a thread as soon as one can run.
extern "C" fn idle_entry() -> ! {
    // SAFETY: clearing our own busy word: whatever upcall brought us here
    // has been handled, and no context of it is kept.
    unsafe { core::ptr::write_volatile((exo_abi::layout::UPCALL_VA) as *mut u64, 0) };
    loop {
        let sc = s();
        poll_waiters(sc);
        let next = sc.ready.pop();
        if !next.is_null() {
            enter(next);
        }
        if !give_to_peers(sc) {
            if in_use() && sc.waiting.is_empty() && sc.live > 0 && !sc.warned {
                sc.warned = true;
                crate::println!("[exos] environment {:#x}: every thread is blocked", crate::info::get().id);
            }
            sys::wait();
        }
    }
}

/// Give the processor to an environment a waiter depends on; true if
/// something may have changed (then poll again).
fn give_to_peers(sc: &mut Sched) -> bool {
    let mut t = sc.waiting.head;
    while !t.is_null() {
        // SAFETY: blocked threads' blocks are live.
        let (w, next) = unsafe { ((*t).waiter, (*t).next) };
        if let Some(w) = w
            && w.peer != 0
        {
            match sys::yield_to(w.peer) {
                Ok(()) => return true,
                Err(Error::NoSuchEnv) => {
                    // SAFETY: as above.
                    unsafe {
                        (*t).woken = Woken::PeerGone;
                        (*t).waiter = Some(Waiter { check: |_| true, arg: 0, peer: 0 });
                    }
                    return true;
                }
                Err(_) => {}
            }
        }
        t = next;
    }
    false
}

/// Entered with no thread running (a PCT wake-up, an upcall that found
/// the environment waiting): run whatever can run, or wait again.
pub(crate) fn reenter() -> ! {
    rt().nopreempt.store(1, SeqCst);
    match sched_stack() {
        // SAFETY: the idle loop runs on its own stack; nothing on this one is kept.
        Some(stack) => unsafe { exos_run_on_stack(stack, idle_entry) },
        // This stack is a private one (PCT or upcall) whose context is
        // not kept: the idle loop may as well run here.
        None => idle_entry(),
    }
}

/// The end-of-slice upcall's default: preempt the interrupted thread if
/// another can run. `ctx` is the interrupted context (RIP already
/// repaired). Returns if the interrupted context is to be resumed as it is.
pub(crate) fn on_slice_end(ctx: &Regs) {
    if !in_use() {
        let _ = sys::yield_to(YIELD_ANY);
        return;
    }
    let r = rt();
    let sc = s();
    let in_section = r.nopreempt.load(SeqCst) != 0 || exception_busy() || crate::pct::in_call_window(ctx.rip);
    if in_section {
        if !sc.ready.is_empty() || !sc.waiting.is_empty() {
            r.pending.fetch_or(private::PENDING_SWITCH, SeqCst);
        }
        let _ = sys::yield_to(YIELD_ANY);
        return;
    }
    poll_waiters(sc);
    if sc.ready.is_empty() {
        let _ = sys::yield_to(YIELD_ANY);
        return;
    }
    // Preempt: the interrupted context becomes the thread's state.
    r.nopreempt.store(1, SeqCst);
    let me = sc.current;
    // SAFETY: the running thread's block.
    unsafe {
        (*me).regs = *ctx;
        (*me).preempted = true;
        (*me).state = State::Ready;
    }
    sc.ready.push(me);
    // Answer the upcall: give the processor up; we continue here later.
    let _ = sys::yield_to(YIELD_ANY);
    let next = sc.ready.pop();
    enter(next)
}

fn exception_busy() -> bool {
    // SAFETY: the user area is mapped for the environment's life.
    unsafe { core::ptr::read_volatile(exo_abi::layout::UAREA_VA as *const u64) != 0 }
}

/// In a forked child: only the thread that forked exists.
pub(crate) fn after_fork() {
    let sc = s();
    let me = sc.current;
    sc.ready = Queue::new();
    sc.waiting = Queue::new();
    sc.free = null_mut();
    sc.live = 1;
    // `sched_stack` stays: a child gets fresh pages at the parent's
    // private stacks.
    // SAFETY: the forking thread's block.
    unsafe {
        (*me).state = State::Running;
        (*me).joiner = null_mut();
    }
}
