//! Where ExOS puts things in the address space, and a few conveniences
//! over `crate::vm` for code that just wants memory.
//!
//! ```text
//!   0x0000_0020_0000   program image (bound by the loader, adopted by vm::init)
//!   0x0000_4000_0000   heap (grows up, at most HEAP_LIMIT)
//!   0x0000_7800_0000   ExOS's private area (crate::private)
//!   0x0000_8000_0000   private stacks: exception, upcall, PCT, scheduler, ExOS
//!   0x0001_0000_0000   FREE_BASE: the program's own (ExOS never maps here)
//!   0x5000_0000_0000   anonymous mappings (vm::Mapping without an address)
//!   0x6000_0000_0000   thread stacks
//!   0x7000_0000_0000   STACK_TOP: the initial stack, below it
//! ```

use crate::vm::{self, Kind, Mapping, VmError};
use exo_abi::{Cap, Error, Prot};

/// The heap grows up from here.
pub const HEAP_BASE: u64 = 0x4000_0000;
/// Most heap the runtime will map (768 MiB, up to 0x7000_0000).
pub const HEAP_LIMIT: u64 = 0x3000_0000;
/// ExOS's private stacks are carved from here ...
pub const STACKS_BASE: u64 = 0x8000_0000;
/// ... to here.
pub const STACKS_END: u64 = 0x9000_0000;
/// Addresses from here up to the anonymous window are the program's own.
pub const FREE_BASE: u64 = 0x1_0000_0000;
/// Anonymous mappings.
pub const ANON_BASE: u64 = 0x5000_0000_0000;
pub const ANON_END: u64 = 0x6000_0000_0000;
/// Thread stacks.
pub const THREAD_STACKS: u64 = 0x6000_0000_0000;
pub const THREAD_STACKS_END: u64 = 0x6800_0000_0000;

const _: () = assert!(HEAP_BASE + HEAP_LIMIT <= crate::private::BASE);
const _: () = assert!(crate::private::END <= STACKS_BASE);

/// A system-call error for a virtual-memory error (for APIs that report
/// kernel errors).
pub fn to_error(e: VmError) -> Error {
    match e {
        VmError::Kernel(e) => e,
        VmError::BadRange => Error::BadAddress,
        VmError::Overlap => Error::BadState,
        VmError::NotMapped => Error::BadAddress,
        VmError::Denied => Error::NoRights,
    }
}

/// Allocate `pages` fresh (zeroed) pages and bind them at `va` onwards
/// with `prot`, as a region of ExOS's view. Their capabilities go to
/// `caps` (which must hold `pages` entries) if given.
///
/// # Safety
/// `va..va + pages * 4096` must not hold anything the program still uses.
pub unsafe fn map_fresh(va: u64, pages: u64, prot: Prot, caps: Option<&mut [Cap]>) -> Result<(), Error> {
    Mapping::anon(pages).at(va).prot(prot).map().map_err(to_error)?;
    if let Some(out) = caps {
        for (i, c) in out.iter_mut().take(pages as usize).enumerate() {
            *c = vm::page_at(va + i as u64 * 4096).map_or(Cap(0), |p| p.0);
        }
    }
    Ok(())
}

/// A fresh private stack of `pages` pages with an unmapped guard page
/// below it; returns its (16-byte aligned) top.
pub fn new_stack(pages: u64) -> Result<u64, Error> {
    vm::new_private_stack(pages).map_err(to_error)
}

/// A fresh thread stack (shared copy-on-write with a forked child, like
/// any data); returns its top.
pub fn new_thread_stack(pages: u64) -> Result<u64, VmError> {
    crate::private::on_exos_stack(|| {
        vm::ensure_window(THREAD_STACKS, THREAD_STACKS_END, Kind::ThreadStack, 0)?;
        let r = crate::private::rt();
        let base = r.next_stack + 4096; // a guard page below each
        if base + pages * 4096 > THREAD_STACKS_END {
            return Err(VmError::BadRange);
        }
        vm::populate_locked(base, pages, Prot::RW)?;
        r.next_stack = base + pages * 4096;
        Ok(base + pages * 4096)
    })
}

/// Our page-table entry for `va`, if the page is bound (see `vm::pte`).
pub fn pte(va: u64) -> Option<u64> {
    vm::pte(va)
}

/// Whether the page at `va` has been written since it was bound (or
/// since the last rebinding with `Prot::CLEAR_AD`).
pub fn is_dirty(va: u64) -> bool {
    vm::is_dirty(va).unwrap_or(false)
}
