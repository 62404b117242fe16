//! The environment's heap: `linked_list_allocator` over pages the library
//! OS allocates and binds itself (a heap region of its view), starting
//! when the program first allocates and growing on demand. A program that
//! never allocates never pays for a heap.
//!
//! The allocator runs in a critical section rather than under a lock:
//! user-level threads are switched only outside critical sections (see
//! `crate::private`), so nothing else can be inside it. Upcall and
//! exception handlers must not allocate (they may interrupt it).

use crate::mem::{HEAP_BASE, HEAP_LIMIT};
use crate::private;
use crate::vm::{self, Kind, Mapping};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use exo_abi::Prot;
use linked_list_allocator::Heap;

/// Pages mapped when the heap starts, and the least it grows by.
const GROW_PAGES: u64 = 16;

struct State {
    heap: Heap,
    /// End of the mapped heap (0 before the first allocation).
    end: u64,
}

struct ExosHeap(UnsafeCell<State>);

// SAFETY: the state is only touched inside critical sections, which no
// other thread of the environment can enter at the same time (one CPU,
// no thread switch inside one).
unsafe impl Sync for ExosHeap {}

#[global_allocator]
static HEAP: ExosHeap = ExosHeap(UnsafeCell::new(State { heap: Heap::empty(), end: 0 }));

impl State {
    /// Map at least `bytes` more and hand them to the allocator.
    fn grow(&mut self, bytes: u64) -> bool {
        let pages = bytes.div_ceil(4096).max(GROW_PAGES);
        if self.end == 0 {
            let made = Mapping::anon(HEAP_LIMIT / 4096).at(HEAP_BASE).kind(Kind::Heap, 0).unpopulated().map();
            if made.is_err() {
                return false;
            }
            self.end = HEAP_BASE;
        }
        if self.end + pages * 4096 > HEAP_BASE + HEAP_LIMIT {
            return false;
        }
        if vm::populate(self.end, pages, Prot::RW).is_err() {
            return false;
        }
        if self.end == HEAP_BASE {
            // SAFETY: HEAP_BASE.. is mapped, writable, and used by nothing else.
            unsafe { self.heap.init(HEAP_BASE as *mut u8, (pages * 4096) as usize) };
        } else {
            // SAFETY: the pages just mapped directly follow the heap's
            // current top (the heap always covers HEAP_BASE..end).
            unsafe { self.heap.extend(pages as usize * 4096) };
        }
        self.end += pages * 4096;
        true
    }
}

// SAFETY: delegates to `linked_list_allocator::Heap`, which returns blocks
// that fit the layout and do not overlap live ones; critical sections
// serialise it.
unsafe impl GlobalAlloc for ExosHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _c = private::critical();
        // SAFETY: inside the critical section this is the only reference.
        let state = unsafe { &mut *self.0.get() };
        loop {
            if state.end != 0
                && let Ok(p) = state.heap.allocate_first_fit(layout)
            {
                return p.as_ptr();
            }
            if !state.grow(layout.size() as u64 + layout.align() as u64) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _c = private::critical();
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block this allocator returned, with its layout.
            unsafe { state.heap.deallocate(p, layout) };
        }
    }
}
