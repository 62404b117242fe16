//! Strands: the unit of execution the scheduler schedules, and its events.
//!
//! SPIN separates *scheduling* from *thread packages*: the scheduler (an
//! extension) handles [`BLOCK`] (the current strand cannot continue: pick
//! another) and [`UNBLOCK`] (a strand may run again); a thread package (an
//! extension) handles [`CHECKPOINT`] (the strand is about to be taken off
//! the CPU) and [`RESUME`] (put this strand on the CPU), using the raw
//! context operations of [`StrandCore`], a capability the kernel grants
//! only to thread packages.
//!
//! Only the kernel and these capabilities raise the strand events (they
//! are [`KernelEvent`]s): thread packages raise `Unblock` through
//! [`StrandCore::unblock`], this crate's locks wake the strands that
//! queued themselves, and anyone may block the *current* strand
//! ([`block_current`]). `Unblock` hands its handler (the scheduler) a
//! [`Runnable`], which no one else can make: a [`RunQueue`] holds them,
//! and [`Runnable::switch_from`] raises `Checkpoint` and `Resume`. A
//! strand queue takes only the strand that runs
//! ([`StrandQueue::push_current`]): no extension can forge a wakeup, park
//! another strand in a queue of its own, or switch the CPU to a strand of
//! its choosing (the checks are types: they cost nothing at run time).

use crate::contain::critical;
use crate::event::{Combine, KernelEvent};
use crate::key::KernelKey;
use crate::phys::MemError;
use core::sync::atomic::{AtomicU32, Ordering};
use spin_trusted::RefSlot;

/// Most strands at once (the kernel's strand table has this many slots).
pub const MAX_STRANDS: usize = 128;

/// A strand: a capability naming one execution context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strand(u32);

impl Strand {
    /// A number for tables and messages.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The strand numbered `n` (the kernel, which keeps strands in tables).
    pub const fn from_index(_key: &KernelKey, n: u32) -> Strand {
        Strand(n)
    }
}

fn nothing(_: Strand) {}
fn nothing_runnable(_: Runnable) {}

/// The current strand cannot continue (it waits on something): schedule another.
pub static BLOCK: KernelEvent<Strand, ()> = KernelEvent::new("Strand.Block", nothing, Combine::Last);
/// The strand may run again.
pub static UNBLOCK: KernelEvent<Runnable, ()> =
    KernelEvent::new("Strand.Unblock", nothing_runnable, Combine::Last);
/// The strand is about to lose the CPU: save what the package needs.
pub static CHECKPOINT: KernelEvent<Strand, ()> =
    KernelEvent::new("Strand.Checkpoint", nothing, Combine::Last);
/// Give the CPU to this strand (returns when the checkpointed one resumes).
pub static RESUME: KernelEvent<Strand, ()> = KernelEvent::new("Strand.Resume", nothing, Combine::Last);

static CURRENT: AtomicU32 = AtomicU32::new(0);

/// The strand running now.
#[inline]
pub fn current() -> Strand {
    Strand(CURRENT.load(Ordering::Relaxed))
}

/// Block the current strand until someone raises [`UNBLOCK`] for it.
pub fn block_current() {
    BLOCK.inner().raise_entry_first(current());
}

/// Let `s` run again (this crate's locks: a strand that queued itself).
#[inline(always)]
pub(crate) fn wake(s: Strand) {
    UNBLOCK.inner().raise_entry_first(Runnable(s));
}

/// Whether strand `s` waits in a queue (a run queue, a lock's waiters):
/// the kernel does not abort a strand caught between queueing itself and
/// blocking, which would leave it queued while it runs on.
pub fn is_queued(s: Strand) -> bool {
    LINKS.get(s.index()).is_some_and(|l| l.load(Ordering::Relaxed) != UNQUEUED)
}

/// "In no queue" (see [`StrandQueue`]).
const UNQUEUED: u32 = u32::MAX;
/// "End of the queue".
const END: u32 = u32::MAX - 1;

/// Each strand's successor in the [`StrandQueue`] it is in (or
/// [`UNQUEUED`]): a strand waits in at most one queue at a time.
static LINKS: [AtomicU32; MAX_STRANDS] = [const { AtomicU32::new(UNQUEUED) }; MAX_STRANDS];

/// A FIFO queue of strands (run queues, lock and condition waiters),
/// linked through one successor word per strand: O(1), no allocation,
/// no lock.
///
/// Why no lock is needed: the kernel is a uniprocessor that does not
/// preempt kernel code, and no interrupt handler works on queues while
/// it interrupted kernel code (the timer's time slicing runs only when it
/// interrupted ring 3). Each operation is a critical section, so fault
/// containment never aborts one halfway.
pub struct StrandQueue {
    head: AtomicU32,
    tail: AtomicU32,
}

impl Default for StrandQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl StrandQueue {
    pub const fn new() -> Self {
        Self { head: AtomicU32::new(END), tail: AtomicU32::new(END) }
    }

    /// Append the running strand (before it blocks). Returns false (and
    /// does nothing) if it is already in a queue.
    #[inline]
    pub fn push_current(&self) -> bool {
        self.push(current())
    }

    /// Append `s`. Returns false (and does nothing) if `s` is already in
    /// a queue: a strand is never queued twice. (Extensions queue only
    /// the running strand, or a [`Runnable`] in a [`RunQueue`].)
    #[inline]
    pub(crate) fn push(&self, s: Strand) -> bool {
        let Some(link) = LINKS.get(s.index()) else { return false };
        critical(|| {
            if link.load(Ordering::Relaxed) != UNQUEUED {
                return false;
            }
            link.store(END, Ordering::Relaxed);
            match self.tail.load(Ordering::Relaxed) {
                END => self.head.store(s.0, Ordering::Relaxed),
                t => LINKS[t as usize].store(s.0, Ordering::Relaxed),
            }
            self.tail.store(s.0, Ordering::Relaxed);
            true
        })
    }

    /// Remove and return the first strand.
    #[inline]
    pub fn pop(&self) -> Option<Strand> {
        critical(|| {
            let h = self.head.load(Ordering::Relaxed);
            let link = LINKS.get(h as usize)?;
            let next = link.load(Ordering::Relaxed);
            link.store(UNQUEUED, Ordering::Relaxed);
            self.head.store(next, Ordering::Relaxed);
            if next == END {
                self.tail.store(END, Ordering::Relaxed);
            }
            Some(Strand(h))
        })
    }

    /// Whether the queue is empty (one load).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed) == END
    }

    /// How many strands wait (walks the queue).
    pub fn len(&self) -> usize {
        critical(|| {
            let mut n = 0;
            let mut at = self.head.load(Ordering::Relaxed);
            while let Some(link) = LINKS.get(at as usize) {
                n += 1;
                at = link.load(Ordering::Relaxed);
            }
            n
        })
    }
}

/// [`Core::create`]: a new strand that will run `entry(arg)`, by number.
pub type CreateFn = fn(entry: fn(usize), arg: usize) -> Result<u32, MemError>;

/// The kernel core's strand procedures (kernel stacks and the context
/// switch), bound once at boot by [`install`]: a call is a load of the
/// table and an indirect call, with nothing to check first.
pub struct Core {
    /// A new strand that will run `entry(arg)` on its own kernel stack.
    pub create: CreateFn,
    /// Make the code running now (the boot thread) a strand.
    pub adopt_current: fn() -> u32,
    /// Save the CPU state in `from`, continue `to`.
    pub switch: fn(u32, u32),
    /// Free a strand's stack (it must not be running, and never run again).
    pub destroy: fn(u32),
}

/// Before the kernel binds its table: every procedure reports a boot-order bug.
static UNBOUND: Core = Core {
    create: |_, _| crate::not_installed("Strand"),
    adopt_current: || crate::not_installed("Strand"),
    switch: |_, _| crate::not_installed("Strand"),
    destroy: |_| crate::not_installed("Strand"),
};

static CORE: RefSlot<Core> = RefSlot::new(&UNBOUND);

/// Bind the kernel's implementation.
pub fn install(_key: &KernelKey, core: &'static Core) {
    CORE.set(core);
}

/// The raw strand operations: a capability only thread packages are granted.
pub struct StrandCore {
    _private: (),
}

impl StrandCore {
    /// The one instance (the kernel exports it to thread packages).
    pub fn new(_key: &KernelKey) -> &'static StrandCore {
        static CORE: StrandCore = StrandCore { _private: () };
        &CORE
    }

    #[inline(always)]
    fn core(&self) -> &'static Core {
        CORE.get()
    }

    /// A new strand running `entry(arg)`; it runs once someone resumes it.
    pub fn create(&self, entry: fn(usize), arg: usize) -> Result<Strand, MemError> {
        (self.core().create)(entry, arg).map(Strand)
    }

    /// The running code as a strand (the boot thread), made current.
    pub fn adopt_current(&self) -> Strand {
        let s = Strand((self.core().adopt_current)());
        self.set_current(s);
        s
    }

    /// Record `s` as the current strand.
    #[inline]
    pub fn set_current(&self, s: Strand) {
        CURRENT.store(s.0, Ordering::Relaxed);
    }

    /// Switch the CPU from `from` (saved) to `to`; returns when `from` is resumed.
    #[inline]
    pub fn switch(&self, from: Strand, to: Strand) {
        (self.core().switch)(from.0, to.0)
    }

    /// Make `to` current and switch the CPU to it from the current strand
    /// (saved); returns when that one is resumed.
    #[inline]
    pub fn switch_to(&self, to: Strand) {
        let from = CURRENT.swap(to.0, Ordering::Relaxed);
        (self.core().switch)(from, to.0)
    }

    /// Free a finished strand's resources.
    pub fn destroy(&self, s: Strand) {
        (self.core().destroy)(s.0)
    }

    /// Raise [`UNBLOCK`] for `s` (a new thread, a yield, a joiner).
    #[inline(always)]
    pub fn unblock(&self, s: Strand) {
        wake(s);
    }
}

/// A strand the scheduler may run: what [`UNBLOCK`] hands its handler
/// (the scheduler), and the only thing a [`RunQueue`] takes. No extension
/// can make one: only the kernel, thread packages ([`StrandCore::unblock`])
/// and this crate's locks raise `Unblock`. Holding one is the right to
/// give the CPU to its strand ([`Runnable::switch_from`]); a raise of
/// `Checkpoint` or `Resume` needs nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runnable(Strand);

impl Runnable {
    /// The strand.
    #[inline(always)]
    pub fn strand(self) -> Strand {
        self.0
    }

    /// Take the CPU from `from` (the strand `Block` named: the running
    /// one) and give it to this strand: raise [`CHECKPOINT`] for `from`,
    /// then [`RESUME`] for this one (returns when `from` runs again).
    #[inline(always)]
    pub fn switch_from(self, from: Strand) {
        CHECKPOINT.inner().raise_entry_first(from);
        RESUME.inner().raise_entry_first(self.0);
    }
}

/// Make `s` runnable (the kernel: strands it wakes).
pub fn unblock(_key: &KernelKey, s: Strand) {
    wake(s);
}

/// A FIFO queue of [`Runnable`] strands: a scheduler's run queue.
pub struct RunQueue(StrandQueue);

impl Default for RunQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueue {
    pub const fn new() -> Self {
        Self(StrandQueue::new())
    }

    /// Append `r`; false (nothing done) if its strand is already queued.
    #[inline]
    pub fn push(&self, r: Runnable) -> bool {
        self.0.push(r.0)
    }

    /// Remove and return the first.
    #[inline]
    pub fn pop(&self) -> Option<Runnable> {
        self.0.pop().map(Runnable)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strand_queue_is_fifo_and_never_holds_a_strand_twice() {
        // Strands 100..104 are used by this test only (links are global).
        let (a, b, c) = (Strand(100), Strand(101), Strand(102));
        let q = StrandQueue::new();
        let other = StrandQueue::new();
        assert!(q.is_empty() && q.pop().is_none());
        assert!(q.push(a) && q.push(b) && q.push(c));
        assert!(!q.push(b), "a queued strand was queued again");
        assert!(!other.push(a), "a strand was put in two queues");
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(a));
        assert!(other.push(a), "a popped strand can be queued again");
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(b), Some(c), None));
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        assert!(q.push(c));
        assert_eq!((other.pop(), q.pop()), (Some(a), Some(c)));
        assert!(!q.push(Strand(MAX_STRANDS as u32)), "an out-of-range strand was queued");
    }
}
