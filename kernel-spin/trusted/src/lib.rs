//! spin-trusted: the one primitive the extension interface cannot write in
//! safe Rust, kept in its own tiny crate so that `spin-interface` can be
//! `#![forbid(unsafe_code)]` (ring 0, trusted, audited).
//!
//! [`FnSlot`] is an atomic, optional function pointer. The dispatcher keeps
//! one per event (the lone handler, so that raising an event with one
//! unguarded handler is a load, a test and an indirect call) and one per
//! import (a cross-domain call is the same three instructions).
//! [`FnTable`] is a fixed-size table of function pointers that the
//! dispatcher calls in order for an event with several unguarded handlers,
//! without taking a lock or a reference count. Core Rust has no atomic
//! function pointer, and turning a stored word back into a function pointer
//! needs a `transmute`; that is the whole of this crate.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

/// An atomically replaceable `Option<fn(A) -> R>`.
///
/// Invariant: the word is 0 or the address of a `fn(A) -> R` stored by
/// [`FnSlot::set`]; nothing else ever writes it, so reading it back as that
/// type is sound. Functions are code and are never freed, so a pointer read
/// here stays callable even after the slot is changed.
pub struct FnSlot<A, R> {
    word: AtomicUsize,
    _signature: PhantomData<fn(A) -> R>,
}

impl<A, R> FnSlot<A, R> {
    /// An empty slot.
    pub const fn empty() -> Self {
        Self { word: AtomicUsize::new(0), _signature: PhantomData }
    }

    /// The function in the slot, if any: one load.
    #[inline(always)]
    pub fn get(&self) -> Option<fn(A) -> R> {
        let word = self.word.load(Ordering::Acquire);
        // SAFETY: by the invariant, `word` is 0 or was produced from a
        // `fn(A) -> R` by `set`; `Option<fn>` uses 0 for `None` (the
        // null-pointer optimisation is guaranteed for function pointers) and
        // both types are one pointer wide.
        unsafe { core::mem::transmute::<usize, Option<fn(A) -> R>>(word) }
    }

    /// Replace the function (or empty the slot with `None`).
    pub fn set(&self, f: Option<fn(A) -> R>) {
        self.word.store(f.map_or(0, |f| f as usize), Ordering::Release);
    }

    /// Whether the slot holds a function.
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) != 0
    }

    /// Whether the slot holds exactly `f`.
    pub fn holds(&self, f: fn(A) -> R) -> bool {
        self.word.load(Ordering::Acquire) == f as usize
    }
}

impl<A, R> Default for FnSlot<A, R> {
    fn default() -> Self {
        Self::empty()
    }
}

/// Up to `N` functions `fn(A) -> R`, called in order by [`FnTable::call_all`].
///
/// Invariant: every word below the highest length ever published holds a
/// function stored by [`FnTable::set`] (words are written before the length
/// that covers them is published, and never cleared), so every word a
/// reader can reach through a length it loaded is a valid function. A
/// `set` racing with `call_all` may let that raise see some old and some
/// new functions — each one valid.
pub struct FnTable<A, R, const N: usize> {
    words: [AtomicUsize; N],
    len: AtomicUsize,
    _signature: PhantomData<fn(A) -> R>,
}

/// [`FnTable::set`] was given more than `N` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

impl<A, R, const N: usize> FnTable<A, R, N> {
    /// An empty table.
    pub const fn new() -> Self {
        Self { words: [const { AtomicUsize::new(0) }; N], len: AtomicUsize::new(0), _signature: PhantomData }
    }

    /// Make the table hold exactly `fns`.
    pub fn set(&self, fns: &[fn(A) -> R]) -> Result<(), TableFull> {
        if fns.len() > N {
            return Err(TableFull);
        }
        for (w, f) in self.words.iter().zip(fns) {
            w.store(*f as usize, Ordering::Relaxed);
        }
        self.len.store(fns.len(), Ordering::Release);
        Ok(())
    }

    /// Empty the table (its words stay valid, see the invariant).
    pub fn clear(&self) {
        self.len.store(0, Ordering::Release);
    }

    /// How many functions the table holds.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The function in `word`, one of `self.words[..len]` for a published `len`.
    #[inline(always)]
    fn function(word: &AtomicUsize) -> fn(A) -> R {
        let word = word.load(Ordering::Relaxed);
        // SAFETY: callers pass only words below a published length, which by
        // the invariant hold a `fn(A) -> R` stored by `set` (never 0).
        unsafe { core::mem::transmute::<usize, fn(A) -> R>(word) }
    }

    /// Call each function with `a`, in order, passing each result to
    /// `each`; four calls per loop trip.
    #[inline(always)]
    pub fn call_all(&self, a: A, mut each: impl FnMut(R))
    where
        A: Copy,
    {
        // A slice of the published words: the loop keeps one pointer in a
        // callee-saved register and calls through it at fixed offsets.
        let words = &self.words[..self.len().min(N)];
        let mut quads = words.chunks_exact(4);
        for q in &mut quads {
            each(Self::function(&q[0])(a));
            each(Self::function(&q[1])(a));
            each(Self::function(&q[2])(a));
            each(Self::function(&q[3])(a));
        }
        for w in quads.remainder() {
            each(Self::function(w)(a));
        }
    }
}

impl<A, R, const N: usize> Default for FnTable<A, R, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        2 * x
    }
    fn triple(x: u64) -> u64 {
        3 * x
    }

    #[test]
    fn table_calls_in_order_and_shrinks() {
        let t: FnTable<u64, u64, 8> = FnTable::new();
        let mut seen = [0u64; 8];
        let mut n = 0;
        t.call_all(1, |_| n += 1);
        assert_eq!(n, 0);
        let fns: [fn(u64) -> u64; 6] = [double, triple, double, triple, double, triple];
        t.set(&fns).unwrap();
        t.call_all(5, |r| {
            seen[n] = r;
            n += 1;
        });
        assert_eq!(&seen[..n], &[10, 15, 10, 15, 10, 15]);
        t.set(&fns[..1]).unwrap();
        assert_eq!(t.len(), 1);
        let mut sum = 0;
        t.call_all(2, |r| sum += r);
        assert_eq!(sum, 4);
        let nine: [fn(u64) -> u64; 9] = [double; 9];
        assert_eq!(t.set(&nine), Err(TableFull));
        t.clear();
        assert!(t.is_empty());
    }

    #[test]
    fn set_get_replace_clear() {
        let s: FnSlot<u64, u64> = FnSlot::empty();
        assert!(s.get().is_none() && !s.is_set());
        s.set(Some(double));
        assert_eq!(s.get().unwrap()(21), 42);
        assert!(s.holds(double) && !s.holds(triple));
        s.set(Some(triple));
        assert_eq!(s.get().unwrap()(2), 6);
        s.set(None);
        assert!(s.get().is_none());
    }
}
