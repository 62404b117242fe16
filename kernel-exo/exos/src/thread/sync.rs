//! Blocking synchronisation for ExOS threads: a mutex (ownership handed
//! directly to the next waiter, so no thread can barge in and starve it)
//! and a condition variable. Both block the calling thread only; the
//! environment keeps running its other threads.

use super::{Queue, Tcb, ThreadError, block_current, current_tcb, make_ready};
use crate::private;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::ptr::null_mut;

/// A mutual-exclusion lock protecting a `T`.
pub struct Mutex<T> {
    owner: UnsafeCell<*mut Tcb>,
    waiters: UnsafeCell<Queue>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock state is only touched inside critical sections (no two
// threads of the environment are inside one at a time), and the data only
// by the owner.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex {
            owner: UnsafeCell::new(null_mut()),
            waiters: UnsafeCell::new(Queue::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Take the lock, blocking the thread while another holds it.
    #[inline]
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, ThreadError> {
        let _c = private::critical();
        let me = current_tcb();
        // SAFETY: inside a critical section, the only access.
        let owner = unsafe { &mut *self.owner.get() };
        if owner.is_null() {
            *owner = me;
        } else if *owner == me || !super::can_block() {
            return Err(ThreadError::Deadlock);
        } else {
            // SAFETY: as above.
            unsafe { (*self.waiters.get()).push(me) };
            // The unlocking thread makes us the owner before waking us.
            block_current().inspect_err(|_| self.forget(me))?;
        }
        Ok(MutexGuard { lock: self })
    }

    /// Take the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let _c = private::critical();
        // SAFETY: inside a critical section, the only access.
        let owner = unsafe { &mut *self.owner.get() };
        if owner.is_null() {
            *owner = current_tcb();
            Some(MutexGuard { lock: self })
        } else {
            None
        }
    }

    fn forget(&self, t: *mut Tcb) {
        // SAFETY: inside the caller's critical section.
        remove(unsafe { &mut *self.waiters.get() }, t);
    }

    /// Release (inside a critical section): hand the lock to the first
    /// waiter, or free it.
    #[inline]
    fn release(&self) {
        // SAFETY: inside the caller's critical section.
        let next = unsafe { (*self.waiters.get()).pop() };
        // SAFETY: as above.
        unsafe { *self.owner.get() = next };
        if !next.is_null() {
            make_ready(next);
        }
    }
}

/// Holding the lock; dropping it unlocks.
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we own the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we own the lock.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        let _c = private::critical();
        self.lock.release();
    }
}

/// A condition variable, used with a [`Mutex`].
pub struct Condvar {
    waiters: UnsafeCell<Queue>,
}

// SAFETY: only touched inside critical sections.
unsafe impl Sync for Condvar {}
// SAFETY: as above.
unsafe impl Send for Condvar {}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Condvar {
    pub const fn new() -> Self {
        Condvar { waiters: UnsafeCell::new(Queue::new()) }
    }

    /// Release the lock, block until signalled, take the lock again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> Result<MutexGuard<'a, T>, ThreadError> {
        // One critical section for all of it: release, block, and (once
        // woken) take the lock again — directly if it is free.
        let _c = private::critical();
        if !super::can_block() {
            return Err(ThreadError::Deadlock); // the guard unlocks as it drops
        }
        let lock = guard.lock;
        core::mem::forget(guard);
        let me = current_tcb();
        // SAFETY: inside a critical section.
        unsafe { (*self.waiters.get()).push(me) };
        lock.release();
        if let Err(e) = block_current() {
            // No memory to wait in: off the queue; the lock stays released.
            // SAFETY: inside the critical section.
            remove(unsafe { &mut *self.waiters.get() }, me);
            return Err(e);
        }
        // SAFETY: inside the critical section, the only access.
        let owner = unsafe { &mut *lock.owner.get() };
        if owner.is_null() {
            *owner = me;
        } else {
            // SAFETY: as above; the unlocking thread hands us the lock.
            unsafe { (*lock.waiters.get()).push(me) };
            block_current().inspect_err(|_| lock.forget(me))?;
        }
        Ok(MutexGuard { lock })
    }

    /// Wake one waiter.
    #[inline]
    pub fn notify_one(&self) {
        let _c = private::critical();
        // SAFETY: inside a critical section.
        let t = unsafe { (*self.waiters.get()).pop() };
        if !t.is_null() {
            make_ready(t);
        }
    }

    /// Wake every waiter.
    pub fn notify_all(&self) {
        let _c = private::critical();
        loop {
            // SAFETY: inside a critical section.
            let t = unsafe { (*self.waiters.get()).pop() };
            if t.is_null() {
                break;
            }
            make_ready(t);
        }
    }
}

/// Take `t` off queue `q` (if it is there).
fn remove(q: &mut Queue, t: *mut Tcb) {
    let mut keep = Queue::new();
    while !q.is_empty() {
        let x = q.pop();
        if x != t {
            keep.push(x);
        }
    }
    *q = keep;
}
