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

/// What a contained call runs: a bounded piece of work (a handler, an
/// `init`), or the body of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Aborted once it has run longer than the time budget since it began.
    Call,
    /// Aborted once it has run the time budget without giving up the CPU
    /// (blocking, yielding): a thread may live as long as it likes.
    Thread,
}

/// The kernel core's recovery machinery.
pub trait Containment: Sync {
    /// Run `f` as code of `culprit`; on a panic or overrun inside it, unload
    /// `culprit` and return the fault.
    fn run(&self, culprit: DomainId, span: Span, f: &mut dyn FnMut()) -> Result<(), Fault>;
}

/// The right to put a domain at stake in containment, and nothing else:
/// made by the domain itself in its `init` ([`crate::InitContext::charge`])
/// and handed to code that runs work on its behalf (a thread package
/// runs a forked thread's body charged to the forker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge(pub(crate) DomainId);

impl Charge {
    /// The kernel's own charge (its threads are never aborted).
    pub fn kernel(_key: &KernelKey) -> Charge {
        Charge(DomainId::KERNEL)
    }

    /// The domain charged.
    pub fn domain(self) -> DomainId {
        self.0
    }
}

/// Run a thread's body `f` contained and charged to `to`: a panic, an
/// overflow, or running the time budget without giving up the CPU unloads
/// that domain and returns the fault (the thread then ends normally).
pub fn run_thread<R>(to: Charge, f: impl FnOnce() -> R) -> Result<R, Fault> {
    run_span(to.0, Span::Thread, f)
}

static CONTAINMENT: Once<&'static dyn Containment> = Once::new();

/// Install the kernel's containment (once).
pub fn install(_key: &KernelKey, c: &'static dyn Containment) {
    CONTAINMENT.call_once(|| c);
}

/// Run `f` as code of the extension `who`, contained: if it panics,
/// overflows its stack or overruns its time budget, `who` is unloaded.
/// Only the holder of an identity can name it, so an extension can put
/// only itself at stake (never another domain, nor the kernel, whose code
/// the kernel never aborts).
pub fn run<R>(who: &crate::domain::Identity, f: impl FnOnce() -> R) -> Result<R, Fault> {
    run_as(who.id(), f)
}

/// [`run`] for the kernel's loader, which runs an extension's `init`
/// before handing it its identity.
pub fn run_for<R>(_key: &KernelKey, culprit: DomainId, f: impl FnOnce() -> R) -> Result<R, Fault> {
    run_as(culprit, f)
}

/// Run `f` as code of `culprit`, contained. Without an installed
/// containment (host unit tests) `f` simply runs.
pub(crate) fn run_as<R>(culprit: DomainId, f: impl FnOnce() -> R) -> Result<R, Fault> {
    run_span(culprit, Span::Call, f)
}

fn run_span<R>(culprit: DomainId, span: Span, f: impl FnOnce() -> R) -> Result<R, Fault> {
    if culprit == DomainId::KERNEL {
        // The kernel's own code is never aborted: no recovery point, so
        // what runs inside (a process's system calls on a kernel thread)
        // is contained by its own rules.
        return Ok(f());
    }
    if crate::domain::is_unloaded(culprit) {
        return Err(Fault::Unloaded(culprit));
    }
    let mut f = Some(f);
    let mut out = None;
    match CONTAINMENT.get() {
        Some(c) => c.run(culprit, span, &mut || {
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
