//! Loading a program into a child environment, done by the library OS
//! with nothing but the kernel's primitives: read the file from the boot
//! archive, check it (`hal_logic::elfplan`), create the child, and for
//! every page: allocate it, fill it through a scratch binding of our own,
//! give it to the child (`page_transfer`), and bind it into the child's
//! address space with the child's new capability. Then start the child.

use crate::private::{self, FILL_VA as SCRATCH};
use crate::sys;
use alloc::vec;
use exo_abi::layout::{RESERVED_END, RESERVED_START, STACK_PAGES, STACK_TOP};
use exo_abi::{ANY_PAGE, Binding, ENV_SELF, EnvId, EnvStatus, Error, Prot, YIELD_ANY};
use hal_logic::elfplan::{self, ElfError};

/// Why a program could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// A system call failed.
    Kernel(Error),
    /// The file is not a loadable program.
    Elf(ElfError),
    /// The program wants the kernel-managed window.
    Reserved,
    /// The arguments do not fit in the top stack page.
    ArgsTooLong,
}

impl From<Error> for SpawnError {
    fn from(e: Error) -> Self {
        SpawnError::Kernel(e)
    }
}

/// Start program `name` in a new child with `slices` of our time slices
/// and `quota` of our page quota; it receives `args`.
pub fn spawn(name: &str, args: &str, slices: u64, quota: u64) -> Result<EnvId, SpawnError> {
    load(name, slices, quota, |_| Ok(alloc::string::String::from(args)))
}

fn load(
    name: &str,
    slices: u64,
    quota: u64,
    make_args: impl FnOnce(EnvId) -> Result<alloc::string::String, Error>,
) -> Result<EnvId, SpawnError> {
    let (_, size) = sys::program_read(name, 0, &mut [])?;
    let mut file = vec![0u8; size as usize];
    sys::program_read(name, 0, &mut file)?;
    let plan = elfplan::plan(&file).map_err(SpawnError::Elf)?;
    if plan
        .segments
        .iter()
        .any(|s| s.page_start < RESERVED_END && s.page_start + s.pages * 4096 > RESERVED_START)
    {
        return Err(SpawnError::Reserved);
    }
    let child = sys::env_create(slices, quota)?;
    let args = match make_args(child) {
        Ok(a) if a.len() <= 1024 => a,
        Ok(_) => {
            let _ = sys::env_kill(child);
            return Err(SpawnError::ArgsTooLong);
        }
        Err(e) => {
            let _ = sys::env_kill(child);
            return Err(SpawnError::Kernel(e));
        }
    };
    let args = args.as_str();
    let loaded = (|| -> Result<(), Error> {
        for seg in &plan.segments {
            let mut prot = Prot::READ;
            if seg.writable {
                prot = prot.union(Prot::WRITE);
            }
            if seg.executable {
                prot = prot.union(Prot::EXEC);
            }
            for p in 0..seg.pages {
                let va = seg.page_start + p * 4096;
                let from = seg.copy_to.max(va);
                let to = (seg.copy_to + seg.file_len).min(va + 4096);
                give_page(child, va, prot, |page| {
                    if from < to {
                        let src = (seg.file_offset + (from - seg.copy_to)) as usize;
                        let at = (from - va) as usize;
                        page[at..at + (to - from) as usize]
                            .copy_from_slice(&file[src..src + (to - from) as usize]);
                    }
                })?;
            }
        }
        for p in 2..=STACK_PAGES {
            give_page(child, STACK_TOP - p * 4096, Prot::RW, |_| {})?;
        }
        let args_va = (STACK_TOP - args.len() as u64) & !15;
        let at = (args_va - (STACK_TOP - 4096)) as usize;
        give_page(child, STACK_TOP - 4096, Prot::RW, |page| {
            page[at..at + args.len()].copy_from_slice(args.as_bytes())
        })?;
        sys::env_start(child, plan.entry, args_va, args_va, args.len() as u64)
    })();
    match loaded {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = sys::env_kill(child);
            Err(SpawnError::Kernel(e))
        }
    }
}

/// Allocate a page, let `fill` write it through our scratch window, give
/// it to `child` and bind it there at `va` with `prot`.
fn give_page(child: EnvId, va: u64, prot: Prot, fill: impl FnOnce(&mut [u8])) -> Result<(), Error> {
    // The fill window is shared by everything that fills pages: no thread
    // switch while we use it.
    let _c = private::critical();
    let (cap, _) = sys::page_alloc(ANY_PAGE)?;
    // SAFETY: the fill window is private and used one page at a time.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: SCRATCH, cap: cap.0, prot: Prot::RW.0 }]) };
    r?;
    {
        // SAFETY: SCRATCH maps the fresh page read-write; the slice is
        // dropped before the page leaves our address space.
        let page = unsafe { core::slice::from_raw_parts_mut(SCRATCH as *mut u8, 4096) };
        fill(page);
    }
    // SAFETY: nothing refers to the scratch page any more.
    let theirs = unsafe { sys::page_transfer(cap, child) }?;
    let (_, r) = sys::bind_child(child, &[Binding { va, cap: theirs.0, prot: prot.0 }]);
    r
}

/// Wait for a child to end (yielding the processor meanwhile), remove its
/// record, and return how it ended.
pub fn wait_child(child: EnvId) -> Result<(EnvStatus, u64), Error> {
    loop {
        let (status, detail) = sys::env_status(child)?;
        match status {
            EnvStatus::Exited | EnvStatus::Killed | EnvStatus::Faulted => {
                sys::env_kill(child)?;
                // Pages we kept for it (copy-on-write) can go now.
                crate::vm::collect();
                return Ok((status, detail));
            }
            _ => {
                if sys::yield_to(child.0).is_err() {
                    sys::yield_to(YIELD_ANY)?;
                }
            }
        }
    }
}

/// Like [`spawn`], but the arguments are made once the child exists (so
/// they can carry capabilities granted to it): `make_args(child)`.
pub fn spawn_with(
    name: &str,
    slices: u64,
    quota: u64,
    make_args: impl FnOnce(EnvId) -> Result<alloc::string::String, Error>,
) -> Result<EnvId, SpawnError> {
    load(name, slices, quota, make_args)
}
