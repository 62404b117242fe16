//! Translation and VirtAddr: address spaces (contexts), virtual ranges, and
//! the events the MMU raises.
//!
//! A [`Context`] names one address space; it is a handle with a private
//! field, made only by [`Context::create`] or by the kernel (a process's
//! context). Mappings take ownership of a [`PhysPage`] and give it back on
//! removal; destroying a context frees every page still mapped in it.
//! [`VirtRange`] is a checked range of user virtual pages (VirtAddr).
//!
//! Page faults in user processes raise [`PAGE_NOT_PRESENT`],
//! [`PROTECTION_FAULT`] or [`BAD_ADDRESS`]; a handler returns
//! [`FaultAction::Handled`] after repairing the mapping, or
//! [`FaultAction::Reflect`] to send the fault to the process's own
//! handler; otherwise the default kills the process.

use crate::event::{Combine, KernelEvent};
use crate::key::KernelKey;
use crate::phys::{MemError, PhysPage};
use crate::user::Process;
use spin_trusted::RefSlot;

/// What a protection procedure of the kernel answers, in one register
/// (a `Result<u32, MemError>` would travel through memory): the number of
/// pages whose protection changed, below 2^32, or an error at bit 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Changed(u64);

impl Changed {
    const ERROR: u64 = 1 << 32;

    /// `pages` pages changed (at most [`MAX_RANGE_PAGES`], below 2^32).
    #[inline(always)]
    pub const fn pages(pages: u64) -> Changed {
        Changed(pages)
    }

    /// The call failed with `e`.
    #[inline(always)]
    pub const fn error(e: MemError) -> Changed {
        Changed(Self::ERROR | e as u64)
    }

    /// Back to a `Result`.
    #[inline(always)]
    pub fn result(self) -> Result<u64, MemError> {
        if self.0 < Self::ERROR { Ok(self.0) } else { Err(Self::decode(self.0 as u8)) }
    }

    #[cold]
    fn decode(code: u8) -> MemError {
        use MemError::*;
        [OutOfMemory, Unaligned, NotUser, BadLength, AlreadyMapped, NotMapped, OutOfRange, NoContext, InUse]
            .into_iter()
            .find(|e| *e as u8 == code)
            .unwrap_or(NoContext)
    }
}

impl From<Result<u64, MemError>> for Changed {
    #[inline(always)]
    fn from(r: Result<u64, MemError>) -> Changed {
        match r {
            Ok(n) => Changed::pages(n),
            Err(e) => Changed::error(e),
        }
    }
}

/// Page protection as user code sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prot {
    /// No user access (the page stays mapped for the kernel).
    None,
    /// Read and execute.
    Read,
    /// Read and write, no execute.
    ReadWrite,
}

/// What [`Context::examine`] reports for a mapped page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub frame: u64,
    pub prot: Prot,
    pub dirty: bool,
    pub accessed: bool,
}

/// The kernel core's Translation procedures, bound once at boot by
/// [`install`] (like an extension's resolved imports): a call from this
/// module is a load of the table and an indirect call, with nothing to
/// check first. Context numbers and addresses are checked here before a
/// call; the `_current` procedures act on the address space the current
/// strand runs in (the running process's, which is live by definition, so
/// there is no context number to check), and fail with `NoContext` on a
/// strand without one.
pub struct Core {
    pub create: fn() -> Result<u64, MemError>,
    pub destroy: fn(u64) -> Result<(), MemError>,
    pub map: fn(u64, u64, u64, Prot) -> Result<(), MemError>,
    pub unmap: fn(u64, u64) -> Result<u64, MemError>,
    pub protect: fn(u64, u64, u64, Prot) -> Changed,
    pub examine: fn(u64, u64) -> Result<Mapping, MemError>,
    pub dirty: fn(u64, u64) -> Result<bool, MemError>,
    pub protect_current: fn(VirtRange, Prot) -> Changed,
    pub dirty_current: fn(u64) -> Result<bool, MemError>,
}

/// Before the kernel binds its table: every procedure reports a boot-order bug.
static UNBOUND: Core = Core {
    create: || crate::not_installed("Translation"),
    destroy: |_| crate::not_installed("Translation"),
    map: |_, _, _, _| crate::not_installed("Translation"),
    unmap: |_, _| crate::not_installed("Translation"),
    protect: |_, _, _, _| crate::not_installed("Translation"),
    examine: |_, _| crate::not_installed("Translation"),
    dirty: |_, _| crate::not_installed("Translation"),
    protect_current: |_, _| crate::not_installed("Translation"),
    dirty_current: |_| crate::not_installed("Translation"),
};

static CORE: RefSlot<Core> = RefSlot::new(&UNBOUND);

/// Bind the kernel's implementation.
pub fn install(_key: &KernelKey, core: &'static Core) {
    CORE.set(core);
}

#[inline(always)]
pub(crate) fn core() -> &'static Core {
    CORE.get()
}

/// First user address and one past the last (the split both kernels
/// share, defined once in `hal_logic::addr`).
pub use hal_logic::addr::{USER_END, USER_START};

/// A checked, page-aligned, non-empty range of user virtual pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtRange {
    start: u64,
    pages: u64,
}

/// Most pages one range may span (bounds the work of one call).
pub const MAX_RANGE_PAGES: u64 = 1 << 20;

impl VirtRange {
    /// Check an untrusted `(start, pages)` pair.
    ///
    /// On the fast path of every range-taking system call, so the accepting
    /// case is one branch per condition and no error value is computed
    /// until a check fails ([`VirtRange::refusal`] then says which).
    #[inline(always)]
    pub fn new(start: u64, pages: u64) -> Result<VirtRange, MemError> {
        // With 1 <= pages <= MAX_RANGE_PAGES the length is at most 2^32, so
        // `start + length` can only wrap when `start` is already far above
        // USER_END: the carry test catches exactly that.
        let ok = start.is_multiple_of(4096)
            && pages.wrapping_sub(1) < MAX_RANGE_PAGES
            && start >= USER_START
            && matches!(start.overflowing_add(pages << 12), (end, false) if end <= USER_END);
        if ok { Ok(VirtRange { start, pages }) } else { Err(Self::refusal(start, pages)) }
    }

    /// Why `new` refused `(start, pages)`: the first failing check, in the
    /// order alignment, length, placement.
    #[cold]
    #[inline(never)]
    fn refusal(start: u64, pages: u64) -> MemError {
        if !start.is_multiple_of(4096) {
            MemError::Unaligned
        } else if pages == 0 || pages > MAX_RANGE_PAGES {
            MemError::BadLength
        } else {
            MemError::NotUser
        }
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The page addresses, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + use<> {
        let s = self.start;
        (0..self.pages).map(move |i| s + i * 4096)
    }
}

/// An address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    id: u64,
}

impl Context {
    /// A new, empty user address space (the kernel half is always mapped).
    pub fn create() -> Result<Context, MemError> {
        Ok(Context { id: (core().create)()? })
    }

    /// Wrap a kernel context number as a capability.
    pub fn from_id(_key: &KernelKey, id: u64) -> Context {
        Context { id }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn from_id_internal(id: u64) -> Context {
        Context { id }
    }

    /// Destroy the context and free every page still mapped in it.
    pub fn destroy(self) -> Result<(), MemError> {
        (core().destroy)(self.id)
    }

    /// Map `page` at `va` (page aligned, user space) with `prot`. On
    /// failure the page comes back with the error.
    pub fn map(&self, va: u64, page: PhysPage, prot: Prot) -> Result<(), (MemError, PhysPage)> {
        if let Err(e) = VirtRange::new(va, 1) {
            return Err((e, page));
        }
        let frame = page.addr();
        match (core().map)(self.id, va, frame, prot) {
            Ok(()) => {
                // The page table owns the frame now.
                core::mem::forget(page);
                Ok(())
            }
            Err(e) => Err((e, page)),
        }
    }

    /// Remove the mapping at `va` and return its page.
    pub fn unmap(&self, va: u64) -> Result<PhysPage, MemError> {
        VirtRange::new(va, 1)?;
        let frame = (core().unmap)(self.id, va)?;
        Ok(PhysPage::from_owned_frame(frame))
    }

    /// Change the protection of every page of `range` (all must be mapped).
    /// Returns how many pages' protection changed (a page that already had
    /// `prot` does not count).
    pub fn protect(&self, range: VirtRange, prot: Prot) -> Result<u64, MemError> {
        (core().protect)(self.id, range.start, range.pages, prot).result()
    }

    /// The mapping at `va`.
    pub fn examine(&self, va: u64) -> Result<Mapping, MemError> {
        VirtRange::new(va & !4095, 1)?;
        (core().examine)(self.id, va & !4095)
    }

    /// Whether the page mapped at `va` has been written (its dirty bit):
    /// what [`Context::examine`] reports as `dirty`, without the rest.
    #[inline]
    pub fn is_dirty(&self, va: u64) -> Result<bool, MemError> {
        if !(USER_START..USER_END).contains(&va) {
            return Err(MemError::NotUser);
        }
        (core().dirty)(self.id, va & !4095)
    }
}

impl PhysPage {
    /// A frame the translation backend handed back from a page table.
    fn from_owned_frame(pa: u64) -> PhysPage {
        PhysPage::from_frame_internal(pa)
    }
}

/// A fault or exception in a user process, as the events see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultInfo {
    pub process: Process,
    pub context: Context,
    /// Exception vector (14 for page faults).
    pub vector: u64,
    /// The CPU's error code.
    pub error: u64,
    /// The faulting address (page faults), else 0.
    pub addr: u64,
    /// Where the process was.
    pub rip: u64,
}

impl FaultInfo {
    /// A page fault caused by a write.
    pub fn is_write(&self) -> bool {
        self.error & 2 != 0
    }
}

/// What a fault handler decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Repaired: resume the process at the faulting instruction.
    Handled,
    /// Continue the process in the handler it registered with
    /// [`crate::user::UserServices::set_fault_handler`] (the kernel kills
    /// it if it registered none, or its `TrapInfo` area is not writable).
    Reflect,
    /// Kill the process.
    Kill,
}

fn kill(_: FaultInfo) -> FaultAction {
    FaultAction::Kill
}

/// The standard handler that sends every fault to the process's own
/// handler ([`FaultAction::Reflect`]). Install it rather than an
/// equivalent function of your own: when it is an event's lone handler,
/// the kernel's exception stubs recognise it and inline it (the fault is
/// reflected in a few dozen instructions, without entering Rust code), as
/// SPIN's dispatcher inlined small handlers into the raise.
///
/// Never inlined: that keeps it one function with one address (a small
/// function may otherwise be copied into each crate that names it).
#[inline(never)]
pub fn reflect(_: FaultInfo) -> FaultAction {
    FaultAction::Reflect
}

/// A user access to an unmapped user page.
pub static PAGE_NOT_PRESENT: KernelEvent<FaultInfo, FaultAction> =
    KernelEvent::new("Translation.PageNotPresent", kill, Combine::Last);
/// A user access a present page's protection forbids.
pub static PROTECTION_FAULT: KernelEvent<FaultInfo, FaultAction> =
    KernelEvent::new("Translation.ProtectionFault", kill, Combine::Last);
/// A user access outside user space (kernel half, non-canonical).
pub static BAD_ADDRESS: KernelEvent<FaultInfo, FaultAction> =
    KernelEvent::new("Translation.BadAddress", kill, Combine::Last);
