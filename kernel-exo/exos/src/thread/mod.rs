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

mod sched;
pub mod switch;
pub mod sync;

use crate::private::{self, rt};
use crate::sys;
use core::ptr::null_mut;
use core::sync::atomic::Ordering::SeqCst;
use exo_abi::layout::Regs;

use sched::*;
use switch::*;

pub(crate) use sched::Queue;
pub(crate) use sched::{
    after_fork, block_current, can_block, current_tcb, make_ready, on_slice_end, reenter,
};

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
    pub(super) rsp: u64,
    /// Complete state of a preempted thread (valid when `preempted`).
    pub(super) regs: Regs,
    pub(super) preempted: bool,
    pub(super) state: State,
    /// Link in the run queue or a wait queue.
    pub(super) next: *mut Tcb,
    pub(super) id: u64,
    pub(super) entry: fn(u64) -> u64,
    pub(super) arg: u64,
    pub(super) result: u64,
    pub(super) joiner: *mut Tcb,
    pub(super) stack_top: u64,
    pub(super) waiter: Option<Waiter>,
    pub(super) woken: Woken,
}

impl Tcb {
    /// The main thread's block (id 1, running).
    pub(super) const fn main() -> Self {
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

/// Whether threads other than the main one exist (or ever did).
pub fn in_use() -> bool {
    // SAFETY: a read of one word.
    unsafe { (*core::ptr::addr_of!(S)).next_id > 2 }
}
