//! PhysAddr: physical pages as capabilities.
//!
//! A [`PhysPage`] owns one 4 KiB frame: only [`allocate`] (or the kernel,
//! with its key) makes one, dropping it returns the frame, and its contents
//! are reached only through its methods. When an allocation finds memory
//! exhausted the kernel raises [`RECLAIM`]: handlers give pages back and
//! return how many they freed (results are summed), then allocation is tried
//! once more.

use crate::event::{Combine, KernelEvent};
use crate::key::KernelKey;
use core::sync::atomic::{AtomicBool, Ordering};
use spin_trusted::RefSlot;

/// Why a memory operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// No free frame (even after reclaiming).
    OutOfMemory,
    /// Not page aligned.
    Unaligned,
    /// Outside the user half, non-canonical, or the range wraps.
    NotUser,
    /// Zero pages, or too many.
    BadLength,
    /// The page is already mapped.
    AlreadyMapped,
    /// The page is not mapped.
    NotMapped,
    /// An offset or length outside the page.
    OutOfRange,
    /// The context handle is stale (destroyed) or not a context.
    NoContext,
    /// The context belongs to a process: only the kernel may destroy it.
    InUse,
}

/// The kernel core's physical-memory procedures, bound once at boot by
/// [`install`]: a call is a load of the table and an indirect call, with
/// nothing to check first. Frames are named by physical address; the
/// interface checks offsets and lengths before `read` and `write`.
pub struct Core {
    /// A zeroed free frame, if any.
    pub allocate: fn() -> Option<u64>,
    /// Return a frame a [`PhysPage`] owned.
    pub free: fn(u64),
    /// Copy from a frame at an offset (`offset + buf.len() <= PAGE`).
    pub read: fn(u64, usize, &mut [u8]),
    /// Copy into a frame at an offset (`offset + data.len() <= PAGE`).
    pub write: fn(u64, usize, &[u8]),
    /// Free frames in the machine.
    pub free_count: fn() -> u64,
}

/// Before the kernel binds its table: every procedure reports a boot-order bug.
static UNBOUND: Core = Core {
    allocate: || crate::not_installed("PhysAddr"),
    free: |_| crate::not_installed("PhysAddr"),
    read: |_, _, _| crate::not_installed("PhysAddr"),
    write: |_, _, _| crate::not_installed("PhysAddr"),
    free_count: || crate::not_installed("PhysAddr"),
};

static CORE: RefSlot<Core> = RefSlot::new(&UNBOUND);

/// Bind the kernel's implementation.
pub fn install(_key: &KernelKey, core: &'static Core) {
    CORE.set(core);
}

#[inline(always)]
fn core() -> &'static Core {
    CORE.get()
}

/// One physical page, owned. Zeroed when allocated.
#[derive(Debug)]
pub struct PhysPage {
    pa: u64,
}

/// Bytes in a page.
pub const PAGE: usize = 4096;

fn no_reclaim(_: u64) -> u64 {
    0
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Raised with the number of pages wanted when memory runs out; each
/// handler returns how many pages it freed (summed).
pub static RECLAIM: KernelEvent<u64, u64> =
    KernelEvent::new("PhysAddr.Reclaim", no_reclaim, Combine::Fold(add));

/// Whether a [`RECLAIM`] raise is in progress: a handler that allocates
/// while reclaiming gets `OutOfMemory` instead of reclaiming again (which
/// recursed until the stack overflowed).
static RECLAIMING: AtomicBool = AtomicBool::new(false);

/// Allocate a zeroed page, reclaiming once if memory is exhausted.
pub fn allocate() -> Result<PhysPage, MemError> {
    let c = core();
    let pa = match (c.allocate)() {
        Some(pa) => pa,
        None => {
            if RECLAIMING.swap(true, Ordering::SeqCst) {
                return Err(MemError::OutOfMemory);
            }
            // Ask the extensions that hold pages to give some back; a faulty
            // handler is unloaded and does not count.
            let _ = RECLAIM.inner().raise_contained(1);
            RECLAIMING.store(false, Ordering::SeqCst);
            (c.allocate)().ok_or(MemError::OutOfMemory)?
        }
    };
    Ok(PhysPage { pa })
}

/// Free frames in the machine.
pub fn free_pages() -> u64 {
    (core().free_count)()
}

impl PhysPage {
    /// The physical address (a name, not a right: it grants no access).
    pub fn addr(&self) -> u64 {
        self.pa
    }

    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemError> {
        if offset.checked_add(buf.len()).is_none_or(|end| end > PAGE) {
            return Err(MemError::OutOfRange);
        }
        (core().read)(self.pa, offset, buf);
        Ok(())
    }

    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        if offset.checked_add(data.len()).is_none_or(|end| end > PAGE) {
            return Err(MemError::OutOfRange);
        }
        (core().write)(self.pa, offset, data);
        Ok(())
    }

    /// Give up the capability, keeping the frame allocated: the kernel does
    /// this when a page-table entry takes ownership of the frame.
    pub fn into_frame(self, _key: &KernelKey) -> u64 {
        let pa = self.pa;
        core::mem::forget(self);
        pa
    }

    /// Wrap a frame the kernel owns as a capability.
    pub fn from_frame(_key: &KernelKey, pa: u64) -> PhysPage {
        PhysPage { pa }
    }

    pub(crate) fn from_frame_internal(pa: u64) -> PhysPage {
        PhysPage { pa }
    }
}

impl Drop for PhysPage {
    fn drop(&mut self) {
        (core().free)(self.pa);
    }
}
