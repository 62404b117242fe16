//! Locks and condition variables for strands (blocking), plus the
//! spinning primitives extensions use for their own small state.
//!
//! [`Mutex`] and [`Condition`] block through the strand events: a waiter
//! queues itself (a [`StrandQueue`]: no lock, no allocation) and raises
//! [`crate::strand::BLOCK`]; a releaser raises [`crate::strand::UNBLOCK`]
//! for the first waiter. The kernel is a uniprocessor that does not
//! preempt kernel code, so nothing runs between a waiter queueing itself
//! and blocking: no wakeup is lost.

use crate::strand::{self, StrandQueue};
use core::ops::{Deref, DerefMut};
/// Once-cell and lazy value for an extension's own statics.
pub use spin::{Lazy, Once};

/// A spinning lock for an extension's own small state.
///
/// Holding one does not shield the holder from containment: if the code
/// holding it panics, overflows its stack or overruns its time budget, the
/// kernel aborts it all the same, and the lock stays held (its stack frames
/// are abandoned, see [`crate::contain`]). A lock in an extension's statics
/// is reachable only through that extension's code, and the culprit is
/// unloaded; an extension that calls into foreign code while holding its
/// own lock risks that lock: if the foreign code is aborted, the next
/// `lock` of it spins until the time budget stops the spinner too. (An
/// earlier design deferred aborts while any such lock was held; a
/// forgotten guard then disabled containment for everyone.)
pub struct SpinLock<T> {
    inner: spin::Mutex<T>,
}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }

    /// Take the lock (spinning).
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        // Free in the common case (nothing preempts kernel code): one
        // compare-exchange and a branch, the spinning loop out of line.
        let inner = match self.inner.try_lock() {
            Some(inner) => inner,
            None => self.spin(),
        };
        SpinGuard { inner }
    }

    #[cold]
    #[inline(never)]
    fn spin(&self) -> spin::MutexGuard<'_, T> {
        self.inner.lock()
    }

    /// Take the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.inner.try_lock().map(|inner| SpinGuard { inner })
    }
}

/// Access to a [`SpinLock`]'s value; releases it when dropped.
pub struct SpinGuard<'a, T> {
    inner: spin::MutexGuard<'a, T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// A blocking lock.
pub struct Mutex<T> {
    data: spin::Mutex<T>,
    waiters: StrandQueue,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Self { data: spin::Mutex::new(value), waiters: StrandQueue::new() }
    }

    /// Take the lock, blocking while another strand holds it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(inner) = self.data.try_lock() {
                return MutexGuard { inner, release: Release(self) };
            }
            self.waiters.push_current();
            strand::block_current();
        }
    }
}

/// Wakes the first waiter of a [`Mutex`] when dropped (after the guard's
/// lock, which is declared before it, has been released).
struct Release<'a, T>(&'a Mutex<T>);

impl<T> Drop for Release<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Nothing runs between a waiter queueing itself and blocking (no
        // kernel preemption), so an empty queue means nobody to wake.
        let waiters = &self.0.waiters;
        if waiters.is_empty() {
            return;
        }
        if let Some(s) = waiters.pop() {
            strand::wake(s);
        }
    }
}

/// Access to a [`Mutex`]'s value; releases (and wakes a waiter) when
/// dropped. Fields drop in order: the lock, then the wake-up.
pub struct MutexGuard<'a, T> {
    inner: spin::MutexGuard<'a, T>,
    release: Release<'a, T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// A condition variable (Mesa semantics: re-check the condition after waking).
pub struct Condition {
    waiters: StrandQueue,
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    pub const fn new() -> Self {
        Self { waiters: StrandQueue::new() }
    }

    /// Release the lock, wait for a signal, take the lock again.
    #[inline]
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex = guard.release.0;
        self.waiters.push_current();
        drop(guard);
        strand::block_current();
        mutex.lock()
    }

    /// Wake one waiter.
    #[inline]
    pub fn signal(&self) {
        if let Some(s) = self.waiters.pop() {
            strand::wake(s);
        }
    }

    /// Wake every waiter.
    pub fn broadcast(&self) {
        while let Some(s) = self.waiters.pop() {
            strand::wake(s);
        }
    }
}
