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
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use spin_interface::abi::{self, Error, Return, nr};
use spin_interface::phys::{self, MemError};
use spin_interface::sync::Once;
use spin_interface::translation::{self, Context, Prot, VirtRange};
use spin_interface::user::{self, SYSTEM_CALLS, SyscallArgs, UserServices};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension { name: "vm", init };

static USER: Once<&'static UserServices> = Once::new();

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

fn vm_map(a: SyscallArgs) -> Return {
    let [start, pages, p, ..] = a.0;
    let run = || {
        let range = VirtRange::new(start, pages).map_err(mem_error)?;
        let prot = prot(p)?;
        if pages > MAX_MAP_PAGES {
            return Err(Error::BadLength);
        }
        let ctx = current_context()?;
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
    };
    run().into()
}

fn vm_protect(a: SyscallArgs) -> Return {
    let [start, pages, p, ..] = a.0;
    let run = || {
        let range = VirtRange::new(start, pages).map_err(mem_error)?;
        let prot = prot(p)?;
        user().protect_current(range, prot).map_err(mem_error)?;
        Ok(0)
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
