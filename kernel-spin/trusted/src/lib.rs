//! spin-trusted: the one primitive the extension interface cannot write in
//! safe Rust, kept in its own tiny crate so that `spin-interface` can be
//! `#![forbid(unsafe_code)]` (ring 0, trusted, audited).
//!
//! [`FnSlot`] is an atomic, optional function pointer. The dispatcher keeps
//! one per event (the lone handler, so that raising an event with one
//! unguarded handler is a load, a test and an indirect call) and one per
//! import (a cross-domain call is the same three instructions). Core Rust has
//! no atomic function pointer, and turning the stored word back into a
//! function pointer needs a `transmute`; that is the whole of this crate.
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
