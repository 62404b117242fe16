//! Physical memory: the window through which the kernel reaches all of it,
//! and the frame allocator over the bootloader's memory map.
//!
//! Frames are named by physical address (4 KiB aligned) in this API; the
//! bitmap underneath ([`hal_logic::frames`]) counts in frame numbers.

use bootloader_api::BootInfo;
use bootloader_api::info::MemoryRegionKind;
use core::sync::atomic::{AtomicU64, Ordering};
use hal_logic::frames::{self, FrameBitmap, FrameError, Region};
use spin::Mutex;

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);
static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);

/// Maximum number of usable regions we look at (the map is rarely longer than a dozen).
const MAX_REGIONS: usize = 64;

/// The usable regions of the memory map: the frames the allocator may
/// ever hand out. Frames between them (firmware, MMIO, the kernel image)
/// are inside the bitmap's span but are no memory a client may have.
static USABLE: Mutex<([Region; MAX_REGIONS], usize)> =
    Mutex::new(([Region { start: 0, end: 0 }; MAX_REGIONS], 0));

/// Record the physical-memory window and build the frame allocator.
///
/// # Safety
/// Call once, before any other function of this module, with the boot info
/// the bootloader passed to the kernel entry point.
pub unsafe fn init(boot_info: &'static BootInfo) -> u64 {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("bootloader did not map physical memory (BOOTLOADER_CONFIG asks it to)");
    PHYS_OFFSET.store(offset, Ordering::Relaxed);

    let mut usable = [Region { start: 0, end: 0 }; MAX_REGIONS];
    let mut n = 0;
    for r in boot_info.memory_regions.iter() {
        // Frame 0 stays out: a physical address of 0 is never handed out.
        if r.kind == MemoryRegionKind::Usable && n < MAX_REGIONS {
            usable[n] = Region { start: r.start.max(0x1000), end: r.end };
            n += 1;
        }
    }
    *USABLE.lock() = (usable, n);
    let usable = &usable[..n];
    let plan = frames::plan(usable).expect("no usable memory for the frame bitmap");
    let words = frames::words_needed(plan.frame_count);
    // SAFETY: `plan` placed the storage inside a usable region, which the
    // bootloader leaves untouched and which we reserve below so it is never
    // handed out; the physical window maps it; nothing else aliases it.
    let storage: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut((offset + plan.storage_phys) as *mut u64, words) };
    let mut bitmap =
        FrameBitmap::new(storage, plan.base_frame, plan.frame_count).expect("bitmap storage sized by plan()");
    for r in usable {
        bitmap.add_free_region(*r);
    }
    for i in 0..plan.storage_bytes / 4096 {
        bitmap.alloc_specific((plan.storage_phys >> 12) + i).expect("bitmap storage frames are free");
    }
    *FRAMES.lock() = Some(bitmap);
    offset
}

/// Virtual address at which the kernel sees physical address `pa`.
#[inline]
pub fn phys_to_virt(pa: u64) -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed) + pa
}

/// The offset of the physical-memory window.
#[inline]
pub fn phys_offset() -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed)
}

fn with_frames<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> R {
    crate::cpu::without_interrupts(|| {
        let mut guard = FRAMES.lock();
        f(guard.as_mut().expect("memory::init not called"))
    })
}

/// Allocate any free frame; returns its physical address. Contents are stale.
pub fn alloc_frame() -> Option<u64> {
    with_frames(|b| b.alloc_any()).map(|f| f << 12)
}

/// Allocate any free frame and zero it.
pub fn alloc_zeroed_frame() -> Option<u64> {
    let pa = alloc_frame()?;
    zero_frame(pa);
    Some(pa)
}

/// Allocate `n` physically contiguous frames, zeroed; returns the first's
/// address.
pub fn alloc_contiguous_zeroed(n: u64) -> Option<u64> {
    let pa = with_frames(|b| b.alloc_contiguous(n))? << 12;
    for i in 0..n {
        zero_frame(pa + i * 4096);
    }
    Some(pa)
}

/// Allocate the frame at physical address `pa` (4 KiB aligned).
pub fn alloc_specific_frame(pa: u64) -> Result<(), FrameError> {
    if !pa.is_multiple_of(4096) {
        return Err(FrameError::OutOfRange);
    }
    with_frames(|b| b.alloc_specific(pa >> 12))
}

/// Return a frame to the allocator.
pub fn free_frame(pa: u64) -> Result<(), FrameError> {
    if !pa.is_multiple_of(4096) {
        return Err(FrameError::OutOfRange);
    }
    with_frames(|b| b.free(pa >> 12))
}

/// Whether `pa` is a frame the allocator manages (allocated or free): the
/// memory a kernel may hand to its clients — a whole frame of a usable
/// region of the memory map — as opposed to MMIO, firmware, the kernel
/// image or a hole between regions.
pub fn is_managed(pa: u64) -> bool {
    let (regions, n) = &*USABLE.lock();
    pa.is_multiple_of(4096)
        && regions[..*n].iter().any(|r| r.contains_frame(pa >> 12))
        && with_frames(|b| b.manages(pa >> 12))
}

/// Whether `pa` is currently free.
pub fn is_free(pa: u64) -> bool {
    pa.is_multiple_of(4096) && with_frames(|b| b.is_free(pa >> 12))
}

/// Number of free frames.
pub fn free_frames() -> u64 {
    with_frames(|b| b.free_count())
}

/// Zero one frame through the physical window.
pub fn zero_frame(pa: u64) {
    // SAFETY: `pa` is a frame the caller owns; the window maps it writable.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, 4096) };
}

/// Copy one frame's contents to another.
pub fn copy_frame(from: u64, to: u64) {
    // SAFETY: both are whole frames the caller owns; distinct frames never overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(phys_to_virt(from) as *const u8, phys_to_virt(to) as *mut u8, 4096)
    };
}
