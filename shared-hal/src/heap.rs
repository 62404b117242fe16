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

/// Bytes the heap could still hand out (ignoring fragmentation).
pub fn free() -> usize {
    crate::cpu::without_interrupts(|| ALLOCATOR.0.lock().free())
}

/// Heap taken away for an exhaustion test: blocks held until dropped, so a
/// test can reach "the kernel heap is full" through a system-call
/// interface in seconds instead of filling all of it from ring 3.
pub struct Ballast {
    blocks: [(usize, usize); 64],
    n: usize,
}

impl Ballast {
    /// Allocate until at most `leave` bytes of the heap stay free.
    pub fn leaving(leave: usize) -> Ballast {
        let mut b = Ballast { blocks: [(0, 0); 64], n: 0 };
        let mut size = HEAP_SIZE;
        while b.n < b.blocks.len() && size >= 64 {
            let free = free();
            if free <= leave {
                break;
            }
            let want = size.min(free - leave) & !7;
            if want < 64 {
                break;
            }
            let layout = Layout::from_size_align(want, 8).expect("a small power-of-two alignment");
            // SAFETY: `layout` has a non-zero size; the block is freed with
            // the same layout in `drop`.
            let p = unsafe { alloc::alloc::alloc(layout) };
            if p.is_null() {
                size /= 2;
            } else {
                b.blocks[b.n] = (p as usize, want);
                b.n += 1;
            }
        }
        b
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        for &(p, size) in &self.blocks[..self.n] {
            let layout = Layout::from_size_align(size, 8).expect("as allocated");
            // SAFETY: `p` was returned by `alloc` with this layout in `leaving`
            // and is freed once, here.
            unsafe { alloc::alloc::dealloc(p as *mut u8, layout) };
        }
    }
}
