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

/// Who pays for heap blocks: a kernel's accounting, if it installs one
/// (kernel-spin charges each block to the extension domain whose code
/// allocated it, so one extension cannot exhaust the heap for everyone).
/// Both methods run inside the allocator with interrupts off: they must
/// neither allocate nor take a lock an allocating path may hold.
pub trait Accounting: Sync {
    /// Charge `bytes` to whoever is running: the tag to keep with the
    /// block (0: nobody is charged), or `None` to refuse the allocation.
    fn charge(&self, bytes: usize) -> Option<u32>;
    /// Give `bytes` back to the payer the block was tagged with.
    fn credit(&self, tag: u32, bytes: usize);
}

static ACCOUNTING: spin::Once<&'static dyn Accounting> = spin::Once::new();

/// Install the heap's accounting (once; blocks allocated before carry tag 0).
pub fn set_accounting(a: &'static dyn Accounting) {
    ACCOUNTING.call_once(|| a);
}

/// What a block of `bytes` (alignment ≤ 16) takes from the heap, header
/// included; 0 for no block.
pub fn footprint(bytes: usize) -> usize {
    if bytes == 0 { 0 } else { bytes + 16 }
}

/// Every block carries a header just below what the caller gets: the
/// accounting tag. It is `align` bytes (at least 16), so the caller's part
/// keeps the alignment it asked for; `dealloc` recomputes it from the layout.
fn with_header(layout: Layout) -> Option<(Layout, usize)> {
    let header = layout.align().max(16);
    let full = Layout::from_size_align(layout.size().checked_add(header)?, layout.align()).ok()?;
    Some((full, header))
}

// SAFETY: delegates to `linked_list_allocator::Heap`, which returns blocks
// that fit the enlarged layout and do not overlap live blocks; the caller
// gets the part above the header, `header` (a multiple of the alignment)
// bytes in, which fits `layout`; the mutex serialises the heap.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((full, header)) = with_header(layout) else { return core::ptr::null_mut() };
        crate::cpu::without_interrupts(|| {
            let tag = match ACCOUNTING.get() {
                Some(a) => match a.charge(layout.size()) {
                    Some(tag) => tag,
                    None => return core::ptr::null_mut(),
                },
                None => 0,
            };
            match self.0.lock().allocate_first_fit(full) {
                Ok(p) => {
                    let base = p.as_ptr();
                    // SAFETY: the block is at least `header` (≥ 16) bytes
                    // longer than `layout` and aligned to ≥ 4: the tag fits
                    // at its start, below the caller's part.
                    unsafe {
                        (base as *mut u32).write(tag);
                        base.add(header)
                    }
                }
                Err(()) => {
                    if let Some(a) = ACCOUNTING.get() {
                        a.credit(tag, layout.size());
                    }
                    core::ptr::null_mut()
                }
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((full, header)) = with_header(layout) else { return };
        if ptr.is_null() {
            return;
        }
        // SAFETY: `ptr` came from `alloc` with this layout, so the block
        // starts `header` bytes below it and begins with its tag.
        let (base, tag) = unsafe {
            let base = ptr.sub(header);
            (base, (base as *const u32).read())
        };
        crate::cpu::without_interrupts(|| {
            if let Some(p) = NonNull::new(base) {
                // SAFETY: `base` and `full` are the block and layout `alloc` got from the heap.
                unsafe { self.0.lock().deallocate(p, full) };
            }
            if let Some(a) = ACCOUNTING.get() {
                a.credit(tag, layout.size());
            }
        })
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

/// Whether the heap's lock is held: code interrupted inside the allocator
/// (a fault, a double fault) must not allocate before it returns.
pub fn busy() -> bool {
    ALLOCATOR.0.is_locked()
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
