//! Strands: the unit of execution the scheduler schedules, and its events.
//!
//! SPIN separates *scheduling* from *thread packages*: the scheduler (an
//! extension) handles [`BLOCK`] (the current strand cannot continue: pick
//! another) and [`UNBLOCK`] (a strand may run again); a thread package (an
//! extension) handles [`CHECKPOINT`] (the strand is about to be taken off
//! the CPU) and [`RESUME`] (put this strand on the CPU), using the raw
//! context operations of [`StrandCore`], a capability the kernel grants
//! only to thread packages.

use crate::event::{Combine, Event};
use crate::key::KernelKey;
use crate::phys::MemError;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Once;

/// A strand: a capability naming one execution context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strand(u32);

impl Strand {
    /// A number for tables and messages.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

fn nothing(_: Strand) {}

/// The current strand cannot continue (it waits on something): schedule another.
pub static BLOCK: Event<Strand, ()> = Event::new("Strand.Block", nothing, Combine::Last);
/// The strand may run again.
pub static UNBLOCK: Event<Strand, ()> = Event::new("Strand.Unblock", nothing, Combine::Last);
/// The strand is about to lose the CPU: save what the package needs.
pub static CHECKPOINT: Event<Strand, ()> = Event::new("Strand.Checkpoint", nothing, Combine::Last);
/// Give the CPU to this strand (returns when the checkpointed one resumes).
pub static RESUME: Event<Strand, ()> = Event::new("Strand.Resume", nothing, Combine::Last);

static CURRENT: AtomicU32 = AtomicU32::new(0);

/// The strand running now.
#[inline]
pub fn current() -> Strand {
    Strand(CURRENT.load(Ordering::Relaxed))
}

/// Block the current strand until someone raises [`UNBLOCK`] for it.
pub fn block_current() {
    BLOCK.raise(current());
}

/// What the kernel core provides: kernel stacks and the context switch.
pub trait Backend: Sync {
    /// A new strand that will run `entry(arg)` on its own kernel stack.
    fn create(&self, entry: fn(usize), arg: usize) -> Result<u32, MemError>;
    /// Make the code running now (the boot thread) a strand.
    fn adopt_current(&self) -> u32;
    /// Save the CPU state in `from`, continue `to`.
    fn switch(&self, from: u32, to: u32);
    /// Free a strand's stack (it must not be running, and never run again).
    fn destroy(&self, s: u32);
}

static BACKEND: Once<&'static dyn Backend> = Once::new();

/// Install the kernel's implementation (once).
pub fn install(_key: &KernelKey, backend: &'static dyn Backend) {
    BACKEND.call_once(|| backend);
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
    fn backend(&self) -> &'static dyn Backend {
        match BACKEND.get() {
            Some(b) => *b,
            None => crate::not_installed("Strand"),
        }
    }

    /// A new strand running `entry(arg)`; it runs once someone resumes it.
    pub fn create(&self, entry: fn(usize), arg: usize) -> Result<Strand, MemError> {
        self.backend().create(entry, arg).map(Strand)
    }

    /// The running code as a strand (the boot thread), made current.
    pub fn adopt_current(&self) -> Strand {
        let s = Strand(self.backend().adopt_current());
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
        self.backend().switch(from.0, to.0)
    }

    /// Free a finished strand's resources.
    pub fn destroy(&self, s: Strand) {
        self.backend().destroy(s.0)
    }
}
