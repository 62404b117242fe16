//! Loading a program from the boot archive into a new environment — how
//! the kernel starts the *first* environments. Later ones are loaded by
//! their parents' library OS with the ordinary calls (`exos::spawn`).
//!
//! The loader uses the same primitives an environment would: it allocates
//! pages owned by the new environment, fills them through the kernel's
//! physical window, and binds them with the environment's own
//! capabilities, so the result is indistinguishable from a self-made one.

use crate::bind::{self, LeafCache};
use crate::env::{self, Ending};
use crate::kernel::Kernel;
use crate::pages;
use exo_abi::layout::{RESERVED_END, RESERVED_START, STACK_PAGES, STACK_TOP};
use exo_abi::{ANY_PAGE, Binding, EnvStatus, Error, Prot};
use hal_logic::elfplan::{self, ElfError, Segment};
use shared_hal::memory::phys_to_virt;

/// Why a program could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// No such program in the boot archive (or no archive).
    NotFound,
    /// The file is not a loadable program.
    Elf(ElfError),
    /// The program wants the kernel-managed window.
    Reserved,
    /// The arguments do not fit in the stack page.
    ArgsTooLong,
    /// Creating, allocating or binding failed.
    Kernel(Error),
}

/// Most argument bytes passed on the stack.
pub const ARGS_MAX: usize = 1024;

/// Create an environment (parent: the kernel) running program `name` with
/// `slices` time slices and a page quota of `quota`. It starts with
/// RDI/RSI = address/length of `args` (copied to the top of its stack).
/// Returns its id.
pub fn spawn(k: &mut Kernel, name: &str, args: &str, slices: u64, quota: u64) -> Result<u64, LoadError> {
    if args.len() > ARGS_MAX {
        return Err(LoadError::ArgsTooLong);
    }
    let file = k.programs.and_then(|a| a.get(name)).ok_or(LoadError::NotFound)?;
    let plan = elfplan::plan(file).map_err(LoadError::Elf)?;
    if plan
        .segments
        .iter()
        .any(|s| s.page_start < RESERVED_END && s.page_start + s.pages * 4096 > RESERVED_START)
    {
        return Err(LoadError::Reserved);
    }
    let i = env::create(k, 0, slices, quota).map_err(LoadError::Kernel)?;
    let loaded = (|| {
        let mut cache = LeafCache::default();
        for seg in &plan.segments {
            for p in 0..seg.pages {
                let va = seg.page_start + p * 4096;
                let pa = new_page(k, i, va, prot_of(seg), &mut cache)?;
                fill(file, seg, va, pa);
            }
        }
        for p in 1..=STACK_PAGES {
            new_page(k, i, STACK_TOP - p * 4096, Prot::RW.0, &mut cache)?;
        }
        let top_page = k.env(i).root;
        let pa = crate::pt::lookup(top_page, STACK_TOP - 4096).expect("just bound") & 0x000f_ffff_ffff_f000;
        let args_va = (STACK_TOP - args.len() as u64) & !15;
        let off = (args_va - (STACK_TOP - 4096)) as usize;
        // SAFETY: `pa` is the new environment's top stack page, reached
        // through the physical window; `off + args.len()` is within it.
        unsafe {
            core::ptr::copy_nonoverlapping(
                args.as_ptr(),
                (phys_to_virt(pa) + off as u64) as *mut u8,
                args.len(),
            )
        };
        env::start(k, i, plan.entry, args_va, args_va, args.len() as u64)
    })();
    match loaded {
        Ok(()) => Ok(k.env(i).id),
        Err(e) => {
            env::destroy(k, i, Ending { status: EnvStatus::Killed, detail: 0 });
            env::reap(k, i);
            Err(LoadError::Kernel(e))
        }
    }
}

fn prot_of(seg: &Segment) -> u64 {
    let mut p = Prot::READ.0;
    if seg.writable {
        p |= Prot::WRITE.0;
    }
    if seg.executable {
        p |= Prot::EXEC.0;
    }
    p
}

/// Allocate a page for environment `i` and bind it at `va`; returns its
/// physical address.
fn new_page(k: &mut Kernel, i: usize, va: u64, prot: u64, cache: &mut LeafCache) -> Result<u64, Error> {
    let (cap, ppn) = pages::alloc(k, i, ANY_PAGE)?;
    let (_, r) = bind::bind(k, i, &[Binding { va, cap, prot }], cache);
    r?;
    Ok(ppn << 12)
}

/// Copy the part of `seg`'s file bytes that falls in the page at `va`
/// (already zeroed) into frame `pa`.
fn fill(file: &[u8], seg: &Segment, va: u64, pa: u64) {
    let from = seg.copy_to.max(va);
    let to = (seg.copy_to + seg.file_len).min(va + 4096);
    if from >= to {
        return;
    }
    let src = (seg.file_offset + (from - seg.copy_to)) as usize;
    let len = (to - from) as usize;
    let bytes = &file[src..src + len];
    // SAFETY: `pa` is a frame just allocated for this page; `from - va +
    // len <= 4096`; the plan checked the file extent.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), (phys_to_virt(pa) + (from - va)) as *mut u8, len)
    };
}
