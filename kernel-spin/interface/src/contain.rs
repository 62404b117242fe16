//! Fault containment: what happens when an extension's code panics or runs
//! past its time budget while handling an event.
//!
//! A *contained* call ([`run`], used by [`crate::Event::raise_contained`]
//! and by the kernel's extension loader) names the domain whose code it is
//! about to run. The kernel core implements [`Containment`]: it records a
//! recovery point, runs the code, and if the code panics or overruns its
//! budget it unloads the culprit domain (its handlers are uninstalled, its
//! exports and the imports bound to them are revoked) and returns
//! `Err(Fault)` from the recovery point. The kernel and every other
//! extension keep running.
//!
//! What an aborted handler leaks: its stack frames are abandoned without
//! running destructors (like `mem::forget` of everything on them), so heap
//! memory they owned and the [`crate::sync::SpinLock`]s they held stay as
//! they were; the extension is unloaded, so nothing calls into it again.
//! Locks of this crate are never held across a call into extension code,
//! and the kernel never aborts inside one of this crate's own [`critical`]
//! sections (an overrun detected there is acted on when the section ends).
//! Extension code cannot open one: a critical section is this crate's (or
//! the kernel's, with its key) and always closes before any extension code
//! runs, so no extension can keep containment from acting.

use crate::domain::DomainId;
use crate::key::KernelKey;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Once;

/// Why a contained call did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The domain's code panicked; it has been unloaded.
    Panicked(DomainId),
    /// The domain's code ran past its time budget; it has been unloaded.
    TimedOut(DomainId),
    /// The domain's code overflowed its kernel stack (it hit the guard
    /// below it); it has been unloaded.
    Overflowed(DomainId),
    /// The domain had already been unloaded before the call.
    Unloaded(DomainId),
}

impl Fault {
    /// The domain that faulted.
    pub fn culprit(self) -> DomainId {
        match self {
            Fault::Panicked(d) | Fault::TimedOut(d) | Fault::Overflowed(d) | Fault::Unloaded(d) => d,
        }
    }
}

/// The kernel core's recovery machinery.
pub trait Containment: Sync {
    /// Run `f` as code of `culprit`; on a panic or overrun inside it, unload
    /// `culprit` and return the fault.
    fn run(&self, culprit: DomainId, f: &mut dyn FnMut()) -> Result<(), Fault>;
}

static CONTAINMENT: Once<&'static dyn Containment> = Once::new();

/// Install the kernel's containment (once).
pub fn install(_key: &KernelKey, c: &'static dyn Containment) {
    CONTAINMENT.call_once(|| c);
}

/// Run `f` as code of `culprit`, contained. Without an installed
/// containment (host unit tests) `f` simply runs.
pub fn run<R>(culprit: DomainId, f: impl FnOnce() -> R) -> Result<R, Fault> {
    if crate::domain::is_unloaded(culprit) {
        return Err(Fault::Unloaded(culprit));
    }
    let mut f = Some(f);
    let mut out = None;
    match CONTAINMENT.get() {
        Some(c) => c.run(culprit, &mut || {
            if let Some(f) = f.take() {
                out = Some(f());
            }
        })?,
        None => out = f.take().map(|f| f()),
    }
    // `out` is set whenever `run` returned Ok: the closure ran to completion.
    out.ok_or(Fault::Unloaded(culprit))
}

static CRITICAL: AtomicU32 = AtomicU32::new(0);

/// Run `f` as a critical section: the kernel defers aborting an overrunning
/// extension until it ends (so a lock taken inside is always released).
#[inline(always)]
pub(crate) fn critical<R>(f: impl FnOnce() -> R) -> R {
    CRITICAL.fetch_add(1, Ordering::SeqCst);
    let r = f();
    CRITICAL.fetch_sub(1, Ordering::SeqCst);
    r
}

/// The kernel core's own critical sections (same rule as above).
pub fn kernel_critical<R>(_key: &KernelKey, f: impl FnOnce() -> R) -> R {
    critical(f)
}

/// Whether a critical section is in progress (the kernel does not abort then).
pub fn in_critical() -> bool {
    CRITICAL.load(Ordering::SeqCst) != 0
}
