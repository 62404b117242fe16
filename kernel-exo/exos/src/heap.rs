//! The environment's heap: `linked_list_allocator` over pages the library
//! OS allocates and binds itself, starting when the program first
//! allocates and growing on demand. A program that never allocates never
//! pays for a heap.

use crate::mem::{HEAP_BASE, HEAP_LIMIT, map_fresh};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use exo_abi::Prot;
use linked_list_allocator::Heap;
use spin::Mutex;

/// Pages mapped when the heap starts, and the least it grows by.
const GROW_PAGES: u64 = 16;

struct State {
    heap: Heap,
    /// End of the mapped heap.
    end: u64,
}

struct ExosHeap(Mutex<Option<State>>);

#[global_allocator]
static HEAP: ExosHeap = ExosHeap(Mutex::new(None));

impl State {
    /// Map at least `bytes` more and hand them to the allocator.
    fn grow(&mut self, bytes: u64) -> bool {
        let pages = bytes.div_ceil(4096).max(GROW_PAGES);
        if self.end + pages * 4096 > HEAP_BASE + HEAP_LIMIT {
            return false;
        }
        // SAFETY: the heap region above `end` is used by nothing else.
        if unsafe { map_fresh(self.end, pages, Prot::RW, None) }.is_err() {
            return false;
        }
        self.end += pages * 4096;
        // SAFETY: the pages just mapped directly follow the heap's current
        // top (the heap always covers HEAP_BASE..end).
        unsafe { self.heap.extend(pages as usize * 4096) };
        true
    }
}

// SAFETY: delegates to `linked_list_allocator::Heap`, which returns blocks
// that fit the layout and do not overlap live ones; the mutex serialises it
// (environments are single-threaded, but exception handlers may allocate).
unsafe impl GlobalAlloc for ExosHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut guard = self.0.lock();
        let state = match guard.as_mut() {
            Some(s) => s,
            None => {
                // SAFETY: the region is reserved for the heap.
                if unsafe { map_fresh(HEAP_BASE, GROW_PAGES, Prot::RW, None) }.is_err() {
                    return core::ptr::null_mut();
                }
                let mut heap = Heap::empty();
                // SAFETY: HEAP_BASE.. is mapped, writable, and used by nothing else.
                unsafe { heap.init(HEAP_BASE as *mut u8, (GROW_PAGES * 4096) as usize) };
                guard.insert(State { heap, end: HEAP_BASE + GROW_PAGES * 4096 })
            }
        };
        loop {
            if let Ok(p) = state.heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
            if !state.grow(layout.size() as u64 + layout.align() as u64) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let (Some(p), Some(state)) = (NonNull::new(ptr), self.0.lock().as_mut()) {
            // SAFETY: the caller passes a block this allocator returned, with its layout.
            unsafe { state.heap.deallocate(p, layout) };
        }
    }
}
