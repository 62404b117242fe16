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
//! without taking a lock or a reference count, and [`MethodSlot`] holds the
//! runner specialised for the number of handlers. Core Rust has no atomic
//! function pointer, and turning a stored word back into a function pointer
//! needs a `transmute`; [`RefSlot`] is a never-empty atomic `&'static T`
//! (the kernel core's procedure tables); that is the whole of this crate.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// An atomically replaceable `Option<fn(A) -> R>`.
///
/// Invariant: the word is 0 or the address of a `fn(A) -> R` stored by
/// [`FnSlot::set`]; nothing else ever writes it, so reading it back as that
/// type is sound. Functions are code and are never freed, so a pointer read
/// here stays callable even after the slot is changed.
///
/// `repr(transparent)`: the slot is its word, so assembly that knows where
/// a slot sits can compare the word with a function's address.
#[repr(transparent)]
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

/// An atomically replaceable `fn(&T, A) -> R`: a procedure that takes its
/// owner (the dispatcher keeps one per event: the runner of its
/// [`FnTable`], specialised for the number of handlers). Never empty, so
/// calling it needs no test.
///
/// Invariant: the word is the address of a `fn(&T, A) -> R` stored by
/// [`MethodSlot::new`] or [`MethodSlot::set`].
pub struct MethodSlot<T: ?Sized, A, R> {
    word: AtomicPtr<()>,
    _signature: PhantomData<fn(&T, A) -> R>,
}

impl<T: ?Sized, A, R> MethodSlot<T, A, R> {
    /// A slot holding `f`.
    pub const fn new(f: fn(&T, A) -> R) -> Self {
        Self { word: AtomicPtr::new(f as *mut ()), _signature: PhantomData }
    }

    /// The procedure in the slot: one load.
    #[inline(always)]
    pub fn get(&self) -> fn(&T, A) -> R {
        let word = self.word.load(Ordering::Acquire);
        // SAFETY: by the invariant, `word` was produced from a
        // `fn(&T, A) -> R` by `new` or `set` (never null).
        unsafe { core::mem::transmute::<*mut (), fn(&T, A) -> R>(word) }
    }

    /// Replace the procedure.
    pub fn set(&self, f: fn(&T, A) -> R) {
        self.word.store(f as *mut (), Ordering::Release);
    }
}

/// An atomically replaceable `&'static T` that is never empty: it starts
/// with a default reference and [`RefSlot::set`] replaces it. The
/// extension interface keeps the kernel core's procedure tables in these
/// (the default table's procedures report a boot-order bug), so calling
/// the core is a load of the table and an indirect call — no test.
///
/// Invariant: the pointer was made from a `&'static T` (by `new` or
/// `set`), so it is never null and always points at a live `T` that is
/// never mutated through it.
pub struct RefSlot<T: 'static> {
    ptr: AtomicPtr<T>,
}

impl<T: Sync + 'static> RefSlot<T> {
    /// A slot holding `initial`.
    pub const fn new(initial: &'static T) -> Self {
        Self { ptr: AtomicPtr::new(initial as *const T as *mut T) }
    }

    /// The reference in the slot: one load.
    #[inline(always)]
    pub fn get(&self) -> &'static T {
        // SAFETY: by the invariant the pointer came from a `&'static T`;
        // `T: Sync`, so sharing it is sound, and nothing writes through it.
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Replace the reference.
    pub fn set(&self, r: &'static T) {
        self.ptr.store(r as *const T as *mut T, Ordering::Release);
    }
}

/// `N` functions `fn(A) -> R`, of which the first [`FnTable::len`] are
/// called in order by [`FnTable::call_all`] (or a known number of them by
/// [`FnTable::call_first`] and [`FnTable::call_first_last`]).
///
/// Invariant: every word holds a `fn(A) -> R` — the `fill` function
/// given to [`FnTable::new`], or one stored by [`FnTable::set`] — so
/// every word is always a valid function and calling any of them needs no
/// check. A `set` racing with a call may let that call see some old and
/// some new functions — each one valid.
pub struct FnTable<A, R, const N: usize> {
    words: [AtomicPtr<()>; N],
    len: AtomicUsize,
    _signature: PhantomData<fn(A) -> R>,
}

/// [`FnTable::set`] was given more than `N` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

impl<A, R, const N: usize> FnTable<A, R, N> {
    /// An empty table whose words all hold `fill` (never called through
    /// the published length, but always a valid function).
    pub const fn new(fill: fn(A) -> R) -> Self {
        let mut words = [const { AtomicPtr::new(core::ptr::null_mut()) }; N];
        let mut i = 0;
        while i < N {
            words[i] = AtomicPtr::new(fill as *mut ());
            i += 1;
        }
        Self { words, len: AtomicUsize::new(0), _signature: PhantomData }
    }

    /// Make the table hold exactly `fns` (the words after them keep
    /// whatever valid functions they held).
    pub fn set(&self, fns: &[fn(A) -> R]) -> Result<(), TableFull> {
        if fns.len() > N {
            return Err(TableFull);
        }
        for (w, f) in self.words.iter().zip(fns) {
            w.store(*f as *mut (), Ordering::Relaxed);
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

    /// The function in `word`.
    #[inline(always)]
    fn function(word: &AtomicPtr<()>) -> fn(A) -> R {
        let word = word.load(Ordering::Relaxed);
        // SAFETY: by the invariant every word holds a `fn(A) -> R` (stored
        // by `new` or `set`, never null).
        unsafe { core::mem::transmute::<*mut (), fn(A) -> R>(word) }
    }

    /// Call each of the first `len()` functions with `a`, in order, passing
    /// each result to `each`; sixteen calls per loop trip.
    #[inline(always)]
    pub fn call_all(&self, a: A, mut each: impl FnMut(R))
    where
        A: Copy,
    {
        // A slice of the published words: the loop keeps one pointer in a
        // callee-saved register and calls through it at fixed offsets.
        let words = self.words.get(..self.len()).unwrap_or(&[]);
        let (blocks, rest) = words.as_chunks::<16>();
        for b in blocks {
            for w in b {
                each(Self::function(w)(a));
            }
        }
        for w in rest {
            each(Self::function(w)(a));
        }
    }

    /// Call the first `K` functions with `a`, in order, passing each
    /// result to `each`: `K` indirect calls through fixed offsets, no loop
    /// (for a caller that knows the table holds `K`).
    #[inline(always)]
    pub fn call_first<const K: usize>(&self, a: A, mut each: impl FnMut(R))
    where
        A: Copy,
    {
        const { assert!(K <= N) };
        for w in &self.words[..K] {
            each(Self::function(w)(a));
        }
    }

    /// Call the first `K` functions with `a`, in order, and return the
    /// last one's result (the others' are dropped): the last call can be a
    /// tail call.
    #[inline(always)]
    pub fn call_first_last<const K: usize>(&self, a: A) -> R
    where
        A: Copy,
    {
        const { assert!(K >= 1 && K <= N) };
        for w in &self.words[..K - 1] {
            drop(Self::function(w)(a));
        }
        Self::function(&self.words[K - 1])(a)
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
        let t: FnTable<u64, u64, 8> = FnTable::new(double);
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
    fn known_counts_call_exactly_that_many() {
        let t: FnTable<u64, u64, 8> = FnTable::new(triple);
        let fns: [fn(u64) -> u64; 3] = [double, double, triple];
        t.set(&fns).unwrap();
        let mut seen = [0u64; 3];
        let mut n = 0;
        t.call_first::<3>(1, |r| {
            seen[n] = r;
            n += 1;
        });
        assert_eq!(seen, [2, 2, 3]);
        assert_eq!(t.call_first_last::<2>(7), 14);
        assert_eq!(t.call_first_last::<3>(7), 21);
        // Words past the published length are still valid functions (the fill).
        assert_eq!(t.call_first_last::<8>(1), 3);
    }

    fn plus_len(v: &[u64], x: u64) -> u64 {
        v.len() as u64 + x
    }

    fn minus_len(v: &[u64], x: u64) -> u64 {
        x - v.len() as u64
    }

    #[test]
    fn method_slot_passes_its_owner() {
        let m: MethodSlot<[u64], u64, u64> = MethodSlot::new(plus_len);
        let owner = [1, 2, 3];
        assert_eq!(m.get()(&owner, 10), 13);
        m.set(minus_len);
        assert_eq!(m.get()(&owner, 10), 7);
    }

    #[test]
    fn ref_slot_starts_with_its_default_and_is_replaced() {
        static ONE: u64 = 1;
        static TWO: u64 = 2;
        let s: RefSlot<u64> = RefSlot::new(&ONE);
        assert_eq!(*s.get(), 1);
        s.set(&TWO);
        assert_eq!(*s.get(), 2);
        assert!(core::ptr::eq(s.get(), &TWO));
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
