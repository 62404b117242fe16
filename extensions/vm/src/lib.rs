//! Virtual memory for user processes (ring 0, safe Rust): the operations
//! the SPIN VM benchmarks need, as system calls, and fault reflection.
//!
//! `vm_map` backs a range with fresh zeroed pages, `vm_protect` changes
//! protections (none / read / read-write), `vm_dirty` reads a page's dirty
//! bit, `vm_handler` registers where faults go. The extension handles the
//! Translation events (PageNotPresent, ProtectionFault, BadAddress) and
//! the user Exception event: if the faulting process registered a handler
//! the fault is reflected to it (`UserServices::reflect`: the interrupted
//! registers go to the process's `TrapInfo` area and the process continues
//! in its handler, which resumes the faulting context itself); otherwise
//! the default handler kills it.
//!
//! The frames `vm_map` takes for a process (its page tables included) are
//! counted against `MAX_FRAMES_PER_PROCESS` (`Limit` past it), so one
//! process cannot take every frame; they come back when it is reaped.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use spin_interface::abi::{self, Error, Return, nr};
use spin_interface::phys::{self, MemError};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::translation::{self, Context, Prot, VirtRange};
use spin_interface::user::{self, MAX_PROCESSES, Process, SYSTEM_CALLS, SyscallArgs, UserServices};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("vm", init);

static USER: Once<&'static UserServices> = Once::new();

/// Most frames `vm_map` may take for one process (see spin-abi).
const MAX_FRAMES_PER_PROCESS: u64 = abi::MAX_FRAMES_PER_PROCESS;
/// Most pages one `vm_map` may create.
const MAX_MAP_PAGES: u64 = 1024;

fn user() -> &'static UserServices {
    USER.get().expect("set in init")
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static UserServices = ctx.lookup("kernel", "Trusted.User", "services")?;
    USER.call_once(|| services);
    let me = ctx.identity();
    SYSTEM_CALLS[nr::VM_MAP as usize].install(me, vm_map, None)?;
    SYSTEM_CALLS[nr::VM_PROTECT as usize].install(me, vm_protect, None)?;
    SYSTEM_CALLS[nr::VM_DIRTY as usize].install(me, vm_dirty, None)?;
    SYSTEM_CALLS[nr::VM_HANDLER as usize].install(me, vm_handler, None)?;
    user::PROCESS_REAPED.install(me, reaped, None)?;
    for event in [
        &translation::PAGE_NOT_PRESENT,
        &translation::PROTECTION_FAULT,
        &translation::BAD_ADDRESS,
        &user::EXCEPTION,
    ] {
        // The standard reflecting handler: the kernel inlines it.
        event.install(me, translation::reflect, None)?;
    }
    Ok(ExportTable::new())
}

fn mem_error(e: MemError) -> Error {
    match e {
        MemError::OutOfMemory => Error::NoMemory,
        MemError::Unaligned => Error::Unaligned,
        MemError::NotUser => Error::BadAddress,
        MemError::BadLength | MemError::OutOfRange => Error::BadLength,
        MemError::AlreadyMapped => Error::Busy,
        MemError::NotMapped => Error::NotMapped,
        MemError::NoContext | MemError::InUse => Error::BadState,
    }
}

/// The protection each ABI value names (`None`: not a protection).
const BY_ABI: [Option<Prot>; 4] = {
    let mut t = [None; 4];
    t[abi::prot::NONE as usize] = Some(Prot::None);
    t[abi::prot::READ as usize] = Some(Prot::Read);
    t[abi::prot::READ_WRITE as usize] = Some(Prot::ReadWrite);
    t
};

/// An ABI protection value from user space (a bounds check and a load).
#[inline(always)]
fn prot(p: u64) -> Result<Prot, Error> {
    match BY_ABI.get(p as usize) {
        Some(&Some(prot)) => Ok(prot),
        _ => Err(Error::BadArgument),
    }
}

fn current_context() -> Result<Context, Error> {
    user().current_context().ok_or(Error::BadState)
}

/// Frames each process's `vm_map`s have taken, page tables included, by
/// `Process::slot` (an entry of a reaped process is reset when it is).
static CHARGED: SpinLock<[Option<(Process, u64)>; MAX_PROCESSES]> = SpinLock::new([None; MAX_PROCESSES]);

/// The frames `process` has taken so far.
fn charged(process: Process) -> u64 {
    match CHARGED.lock().get(process.slot()) {
        Some(Some((p, n))) if *p == process => *n,
        _ => 0,
    }
}

/// Add `frames` to what `process` has taken.
fn charge(process: Process, frames: u64) {
    if let Some(slot) = CHARGED.lock().get_mut(process.slot()) {
        let before = match slot {
            Some((p, n)) if *p == process => *n,
            _ => 0,
        };
        *slot = Some((process, before + frames));
    }
}

/// A process was reaped: its frames went back with its address space.
fn reaped(process: Process) {
    if let Some(slot) = CHARGED.lock().get_mut(process.slot())
        && slot.is_some_and(|(p, _)| p == process)
    {
        *slot = None;
    }
}

fn vm_map(a: SyscallArgs) -> Return {
    let [start, pages, p, ..] = a.0;
    let run = || {
        let range = VirtRange::new(start, pages).map_err(mem_error)?;
        let prot = prot(p)?;
        if pages > MAX_MAP_PAGES {
            return Err(Error::BadLength);
        }
        let ctx = current_context()?;
        let process = user().current_process().ok_or(Error::BadState)?;
        // The quota: no process may take every frame. The page tables a
        // call needs are not known before, so a call may overshoot by
        // those few frames; the charge is what it really took.
        if charged(process) + pages > MAX_FRAMES_PER_PROCESS {
            return Err(Error::Limit);
        }
        let before = phys::free_pages();
        let r = map_range(ctx, range, prot);
        // The kernel is not preempted: every frame taken meanwhile is this
        // call's (pages, and the page tables kept after an undo too).
        charge(process, before.saturating_sub(phys::free_pages()));
        r
    };
    run().into()
}

/// Back `range` with fresh pages, all or nothing.
fn map_range(ctx: Context, range: VirtRange, prot: Prot) -> Result<u64, Error> {
    {
        for (i, va) in range.iter().enumerate() {
            let mapped = phys::allocate()
                .map_err(mem_error)
                .and_then(|page| ctx.map(va, page, prot).map_err(|(e, _)| mem_error(e)));
            if let Err(e) = mapped {
                // Undo the pages this call mapped.
                for undo in range.iter().take(i) {
                    let _ = ctx.unmap(undo);
                }
                return Err(e);
            }
        }
        Ok(0)
    }
}

fn vm_protect(a: SyscallArgs) -> Return {
    let [start, pages, p, ..] = a.0;
    let run = || {
        let range = VirtRange::new(start, pages).map_err(mem_error)?;
        let prot = prot(p)?;
        user().protect_current(range, prot).map_err(mem_error)
    };
    run().into()
}

fn vm_dirty(a: SyscallArgs) -> Return {
    let run = || {
        let dirty = user().dirty_current(a.0[0]).map_err(mem_error)?;
        Ok(dirty as u64)
    };
    run().into()
}

fn vm_handler(a: SyscallArgs) -> Return {
    let [entry, stack_top, info, ..] = a.0;
    user().set_fault_handler(entry, stack_top, info).map(|()| 0).into()
}
