//! The kernel heap: `linked_list_allocator` over a static region.
//!
//! A static array keeps the heap independent of the frame allocator and of
//! where the bootloader put things; 8 MiB is plenty for both kernels'
//! bookkeeping. Interrupts are off while the heap lock is held, so an
//! interrupt handler that allocates cannot deadlock against the code it
//! interrupted.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, addr_of_mut};
use linked_list_allocator::Heap;
use spin::Mutex;

const HEAP_SIZE: usize = 8 * 1024 * 1024;

#[allow(dead_code)] // only its address is used
#[repr(align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

struct KernelHeap(Mutex<Heap>);

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap(Mutex::new(Heap::empty()));

// SAFETY: delegates to `linked_list_allocator::Heap`, which returns blocks
// that fit `layout` and do not overlap live blocks; the mutex serialises it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        crate::cpu::without_interrupts(|| {
            self.0.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block this allocator returned, with its layout.
            crate::cpu::without_interrupts(|| unsafe { self.0.lock().deallocate(p, layout) })
        }
    }
}

/// Hand the arena to the allocator.
pub fn init() {
    // SAFETY: called once; the arena is a static used by nothing else.
    unsafe { ALLOCATOR.0.lock().init(addr_of_mut!(ARENA) as *mut u8, HEAP_SIZE) };
}

/// Bytes currently allocated from the heap (for leak checks in tests).
pub fn used() -> usize {
    crate::cpu::without_interrupts(|| ALLOCATOR.0.lock().used())
}
