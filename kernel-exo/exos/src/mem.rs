//! Virtual memory, managed in ring 3: where the library OS puts things,
//! fresh pages bound with one call per batch, and reading our own page
//! tables through the kernel's read-only self-map.

use crate::sys;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::layout::{pte as bits, selfmap};
use exo_abi::{ANY_PAGE, Binding, Cap, ENV_SELF, Error, Prot};

/// The heap grows up from here.
pub const HEAP_BASE: u64 = 0x4000_0000;
/// Most heap the runtime will map (1 GiB).
pub const HEAP_LIMIT: u64 = 0x4000_0000;
/// Handler stacks (exceptions, upcalls, PCT) are carved from here.
pub const STACKS_BASE: u64 = 0x8000_0000;
/// A window the loader maps pages at while filling them.
pub const SCRATCH: u64 = 0x9000_0000;
/// Addresses from here up to the conventional stack are the program's own.
pub const FREE_BASE: u64 = 0x1_0000_0000;

/// Pages bound per `bind` call in the helpers below.
const BATCH: usize = 16;

/// Allocate `pages` fresh (zeroed) pages and bind them at `va` onwards
/// with `prot`. Their capabilities go to `caps` (which must hold `pages`
/// entries) if given.
///
/// # Safety
/// `va..va + pages * 4096` must not hold anything the program still uses
/// (its old bindings are replaced).
pub unsafe fn map_fresh(va: u64, pages: u64, prot: Prot, mut caps: Option<&mut [Cap]>) -> Result<(), Error> {
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(BATCH as u64) as usize;
        let mut list = [Binding::default(); BATCH];
        for (j, b) in list[..n].iter_mut().enumerate() {
            let (cap, _) = sys::page_alloc(ANY_PAGE)?;
            if let Some(out) = caps.as_deref_mut() {
                out[done as usize + j] = cap;
            }
            *b = Binding { va: va + (done + j as u64) * 4096, cap: cap.0, prot: prot.0 };
        }
        // SAFETY: the caller vouches for the range.
        let (_, r) = unsafe { sys::bind(ENV_SELF, &list[..n]) };
        r?;
        done += n as u64;
    }
    Ok(())
}

static NEXT_STACK: AtomicU64 = AtomicU64::new(STACKS_BASE);

/// A fresh stack of `pages` pages with an unmapped guard page below it;
/// returns its (16-byte aligned) top.
pub fn new_stack(pages: u64) -> Result<u64, Error> {
    let base = NEXT_STACK.fetch_add((pages + 1) * 4096, Relaxed) + 4096;
    // SAFETY: the stack region is handed out only here, never twice.
    unsafe { map_fresh(base, pages, Prot::RW, None)? };
    Ok(base + pages * 4096)
}

fn read(addr: u64) -> u64 {
    // SAFETY: callers read self-map addresses whose upper levels they have
    // checked are present, so the access cannot fault; the self-map is
    // read-only and the kernel updates it, hence the volatile read.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Our page-table entry for `va` (through the read-only self-map), if the
/// page is mapped: its physical address and the PRESENT, WRITABLE,
/// ACCESSED, DIRTY and NO_EXECUTE bits (`exo_abi::layout::pte`).
pub fn pte(va: u64) -> Option<u64> {
    for addr in [selfmap::pml4e(va), selfmap::pdpte(va), selfmap::pde(va)] {
        let e = read(addr);
        if e & bits::PRESENT == 0 || e & bits::HUGE != 0 {
            return None;
        }
    }
    let e = read(selfmap::pte(va));
    (e & bits::PRESENT != 0).then_some(e)
}

/// Whether the page at `va` has been written since it was bound (or
/// since the last rebinding with `Prot::CLEAR_AD`).
pub fn is_dirty(va: u64) -> bool {
    pte(va).is_some_and(|e| e & bits::DIRTY != 0)
}
