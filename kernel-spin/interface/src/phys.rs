//! PhysAddr: physical pages as capabilities.
//!
//! A [`PhysPage`] owns one 4 KiB frame: only [`allocate`] (or the kernel,
//! with its key) makes one, dropping it returns the frame, and its contents
//! are reached only through its methods. When an allocation finds memory
//! exhausted the kernel raises [`RECLAIM`]: handlers give pages back and
//! return how many they freed (results are summed), then allocation is tried
//! once more.

use crate::event::{Combine, Event};
use crate::key::KernelKey;
use spin::Once;

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

/// What the kernel core provides for physical memory.
pub trait Backend: Sync {
    fn allocate(&self) -> Option<u64>;
    fn free(&self, pa: u64);
    fn read(&self, pa: u64, offset: usize, buf: &mut [u8]);
    fn write(&self, pa: u64, offset: usize, data: &[u8]);
    fn free_count(&self) -> u64;
}

static BACKEND: Once<&'static dyn Backend> = Once::new();

/// Install the kernel's implementation (once).
pub fn install(_key: &KernelKey, backend: &'static dyn Backend) {
    BACKEND.call_once(|| backend);
}

#[inline(always)]
fn backend() -> &'static dyn Backend {
    match BACKEND.get() {
        Some(b) => *b,
        None => crate::not_installed("PhysAddr"),
    }
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
pub static RECLAIM: Event<u64, u64> = Event::new("PhysAddr.Reclaim", no_reclaim, Combine::Fold(add));

/// Allocate a zeroed page, reclaiming once if memory is exhausted.
pub fn allocate() -> Result<PhysPage, MemError> {
    let b = backend();
    let pa = match b.allocate() {
        Some(pa) => pa,
        None => {
            // Ask the extensions that hold pages to give some back; a faulty
            // handler is unloaded and does not count.
            let _ = RECLAIM.raise_contained(1);
            b.allocate().ok_or(MemError::OutOfMemory)?
        }
    };
    Ok(PhysPage { pa })
}

/// Free frames in the machine.
pub fn free_pages() -> u64 {
    backend().free_count()
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
        backend().read(self.pa, offset, buf);
        Ok(())
    }

    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemError> {
        if offset.checked_add(data.len()).is_none_or(|end| end > PAGE) {
            return Err(MemError::OutOfRange);
        }
        backend().write(self.pa, offset, data);
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
        backend().free(self.pa);
    }
}
