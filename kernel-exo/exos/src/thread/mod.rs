//! User-level threads with their own scheduler, integrated with the
//! exokernel through its upcalls: the kernel knows nothing of them.
//!
//! - [`spawn`], [`join`], [`yield_now`], [`current`]; [`sync::Mutex`] and
//!   [`sync::Condvar`] block threads, not the environment.
//! - **Preemption** comes from the end-of-slice upcall: if the interrupted
//!   thread is outside a critical section and another thread is ready, the
//!   upcall handler keeps the interrupted context as that thread's state,
//!   answers the upcall (gives the processor up), and when the environment
//!   runs again continues the next thread. Inside a critical section it
//!   only notes that a switch is due (`crate::private`).
//! - **Blocking on other environments** (pipes): a thread waits for a
//!   predicate on shared memory ([`wait_for`]); when no thread can run, the
//!   scheduler's idle loop checks the predicates, gives the processor to
//!   the environments the waiters depend on (directed yield), and when
//!   none can run, `wait`s until a PCT wake-up or an upcall enters it.
//!
//! Every scheduler operation runs inside exactly one critical section;
//! a switch hands that section over to the thread it continues (a
//! voluntarily saved thread closes it when its switch returns, a
//! preempted one is resumed with none open).

pub mod switch;
pub mod sync;

use crate::private::{self, rt};
use crate::sys;
use core::ptr::null_mut;
use core::sync::atomic::Ordering::SeqCst;
use exo_abi::layout::Regs;
use exo_abi::{Error, YIELD_ANY};
use switch::*;

/// Pages of a thread's stack (plus an unmapped guard page below).
pub const STACK_PAGES: u64 = 4;

/// Why a thread operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadError {
    /// No memory for its stack or control block.
    NoMemory,
    /// The handle names no thread of ours (or one already joined).
    BadHandle,
    /// Joining oneself, or blocking inside a critical section.
    Deadlock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Ready,
    Blocked,
    Done,
    Free,
}

/// An external condition a blocked thread waits for (see [`wait_for`]).
#[derive(Debug, Clone, Copy)]
pub struct Waiter {
    /// True when the thread may continue.
    pub check: fn(u64) -> bool,
    pub arg: u64,
    /// The environment that will make it true (0 = unknown): the idle loop
    /// hands it the processor, and finds out if it has ended.
    pub peer: u64,
}

/// How a [`wait_for`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// The condition holds.
    Ready,
    /// The peer environment has ended.
    PeerGone,
}

/// A thread's control block.
#[repr(C)]
pub(crate) struct Tcb {
    /// Stack pointer of a voluntarily saved thread.
    rsp: u64,
    /// Complete state of a preempted thread (valid when `preempted`).
    regs: Regs,
    preempted: bool,
    pub(crate) state: State,
    /// Link in the run queue or a wait queue.
    pub(crate) next: *mut Tcb,
    id: u64,
    entry: fn(u64) -> u64,
    arg: u64,
    result: u64,
    joiner: *mut Tcb,
    stack_top: u64,
    waiter: Option<Waiter>,
    woken: Woken,
}

impl Tcb {
    /// The main thread's block (id 1, running).
    const fn main() -> Self {
        let mut t = Tcb::new();
        t.id = 1;
        t
    }

    const fn new() -> Self {
        Tcb {
            rsp: 0,
            regs: Regs {
                rax: 0,
                rbx: 0,
                rcx: 0,
                rdx: 0,
                rsi: 0,
                rdi: 0,
                rbp: 0,
                r8: 0,
                r9: 0,
                r10: 0,
                r11: 0,
                r12: 0,
                r13: 0,
                r14: 0,
                r15: 0,
                rip: 0,
                rsp: 0,
                rflags: 0,
            },
            preempted: false,
            state: State::Running,
            next: null_mut(),
            id: 0,
            entry: |x| x,
            arg: 0,
            result: 0,
            joiner: null_mut(),
            stack_top: 0,
            waiter: None,
            woken: Woken::Ready,
        }
    }
}

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

struct Sched {
    current: *mut Tcb,
    ready: Queue,
    /// Threads blocked on a [`Waiter`].
    waiting: Queue,
    /// Ended, joined threads whose block and stack can be reused.
    free: *mut Tcb,
    live: u64,
    next_id: u64,
    sched_stack: u64,
    warned: bool,
}

/// The main thread's control block.
static mut MAIN: Tcb = Tcb::main();
static mut S: Sched = Sched {
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
fn s() -> &'static mut Sched {
    // SAFETY: see above; one CPU.
    unsafe { &mut *core::ptr::addr_of_mut!(S) }
}

/// Whether threads other than the main one exist (or ever did).
pub fn in_use() -> bool {
    // SAFETY: a read of one word.
    unsafe { (*core::ptr::addr_of!(S)).next_id > 2 }
}

/// A thread's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadId(pub u64);

/// The running thread.
pub fn current() -> ThreadId {
    let _c = private::critical();
    // SAFETY: current is a live block.
    ThreadId(unsafe { (*s().current).id })
}

/// A thread to [`join`].
#[derive(Debug)]
pub struct JoinHandle {
    tcb: *mut Tcb,
    id: u64,
}

impl JoinHandle {
    pub fn id(&self) -> ThreadId {
        ThreadId(self.id)
    }
}

/// Start a thread running `entry(arg)`; its return value is what [`join`]
/// returns. Threads are preempted at the end of each time slice.
pub fn spawn(entry: fn(u64) -> u64, arg: u64) -> Result<JoinHandle, ThreadError> {
    if !in_use() {
        // Preemption needs the end-of-slice upcall.
        crate::upcall::ensure().map_err(|_| ThreadError::NoMemory)?;
        crate::exception::ensure().map_err(|_| ThreadError::NoMemory)?;
    }
    let _c = private::critical();
    let sc = s();
    let t = if sc.free.is_null() {
        let top = crate::mem::new_thread_stack(STACK_PAGES).map_err(|_| ThreadError::NoMemory)?;
        let b = alloc::boxed::Box::new(Tcb::new());
        let t = alloc::boxed::Box::into_raw(b);
        // SAFETY: just made.
        unsafe { (*t).stack_top = top };
        t
    } else {
        let t = sc.free;
        // SAFETY: the free list holds ended blocks.
        sc.free = unsafe { (*t).next };
        t
    };
    // SAFETY: `t` is ours alone until it is queued below.
    let tcb = unsafe { &mut *t };
    tcb.id = sc.next_id;
    sc.next_id += 1;
    tcb.entry = entry;
    tcb.arg = arg;
    tcb.result = 0;
    tcb.joiner = null_mut();
    tcb.preempted = false;
    tcb.waiter = None;
    tcb.state = State::Ready;
    // The first switch into it pops six registers (RBX = the block) and
    // returns to exos_thread_start.
    let frame = tcb.stack_top - 64;
    let words = [0, 0, 0, 0, 0, t as u64, exos_thread_start as *const () as u64, 0];
    // SAFETY: the top 64 bytes of its stack are mapped and unused.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), frame as *mut u64, 8) };
    tcb.rsp = frame;
    sc.live += 1;
    sc.ready.push(t);
    Ok(JoinHandle { tcb: t, id: tcb.id })
}

/// Where a new thread starts (from exos_thread_start).
pub(crate) extern "C" fn thread_main(t: *mut Tcb) -> ! {
    private::exit(); // the section the switch into us was made in
    // SAFETY: our own block; entry and arg do not change while we run.
    let (entry, arg) = unsafe { ((*t).entry, (*t).arg) };
    exit(entry(arg))
}

/// End the running thread with `result` (the main thread ends the
/// environment).
pub fn exit(result: u64) -> ! {
    private::enter();
    let sc = s();
    let me = sc.current;
    if me == core::ptr::addr_of_mut!(MAIN) {
        sys::exit(result);
    }
    // SAFETY: our own block.
    let t = unsafe { &mut *me };
    t.result = result;
    t.state = State::Done;
    sc.live -= 1;
    if !t.joiner.is_null() {
        make_ready(t.joiner);
    }
    // Our stack stays ours until we are joined: leave it without saving.
    next_without_saving()
}

/// Wait for `h`'s thread to end; returns its result.
pub fn join(h: JoinHandle) -> Result<u64, ThreadError> {
    let _c = private::critical();
    let sc = s();
    // SAFETY: blocks are never freed; the id tells a reused one apart.
    let t = unsafe { &mut *h.tcb };
    if t.id != h.id || t.state == State::Free {
        return Err(ThreadError::BadHandle);
    }
    if h.tcb == sc.current {
        return Err(ThreadError::Deadlock);
    }
    if t.state != State::Done {
        if !can_block() {
            return Err(ThreadError::Deadlock);
        }
        if !t.joiner.is_null() {
            return Err(ThreadError::BadHandle);
        }
        t.joiner = sc.current;
        if let Err(e) = block_current() {
            t.joiner = null_mut();
            return Err(e);
        }
    }
    let result = t.result;
    t.state = State::Free;
    t.id = 0;
    t.next = sc.free;
    sc.free = h.tcb;
    Ok(result)
}

/// Let the next ready thread run (if any).
pub fn yield_now() {
    let _c = private::critical();
    let sc = s();
    poll_waiters(sc);
    if sc.ready.is_empty() || rt().nopreempt.load(SeqCst) != 1 {
        return;
    }
    let me = sc.current;
    // SAFETY: the running thread's block.
    unsafe { (*me).state = State::Ready };
    sc.ready.push(me);
    let next = sc.ready.pop();
    switch_to(next);
}

/// Block the running thread until `w.check(w.arg)` holds (or `w.peer`
/// ends). Other threads run meanwhile; with none, the environment waits
/// (see the module documentation).
pub fn wait_for(w: Waiter) -> Result<Woken, ThreadError> {
    let _c = private::critical();
    if (w.check)(w.arg) {
        return Ok(Woken::Ready);
    }
    if !can_block() {
        return Err(ThreadError::Deadlock);
    }
    let sc = s();
    let me = sc.current;
    // SAFETY: the running thread's block.
    unsafe {
        (*me).waiter = Some(w);
        (*me).woken = Woken::Ready;
    }
    sc.waiting.push(me);
    // SAFETY: as above.
    unsafe { (*me).state = State::Blocked };
    match schedule() {
        // SAFETY: as above; set by whoever woke us.
        Ok(()) => Ok(unsafe { (*me).woken }),
        Err(e) => {
            remove_waiting(sc, me);
            Err(e)
        }
    }
}

fn remove_waiting(sc: &mut Sched, t: *mut Tcb) {
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
#[inline]
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

#[inline]
fn schedule() -> Result<(), ThreadError> {
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
#[inline]
fn switch_to(next: *mut Tcb) {
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
fn next_without_saving() -> ! {
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
#[inline]
fn poll_waiters(sc: &mut Sched) {
    if sc.waiting.is_empty() {
        return;
    }
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
