//! The cross-address-space call (ring 0, safe Rust), built from system
//! calls and in-kernel calls as in SPIN.
//!
//! A server process registers an entry point and a stack (`xas_register`
//! returns a server handle). A client's `xas_call(server, arg)` records
//! where the client resumes, moves the calling strand into the server's
//! address space and makes the system call return to the server's entry
//! (RDX = `arg`, RSP = stack top − 8). The server finishes with
//! `xas_return(result)`, which moves the strand back and returns `result`
//! to the client. The strand migrates; no thread is scheduled in between.
//! A server takes one call at a time (`Busy` otherwise); a dead server's
//! handle answers `BadHandle`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use spin_interface::abi::{Error, Return, nr};
use spin_interface::strand::{self, Strand};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::user::{Process, SYSTEM_CALLS, SyscallArgs, UserResume, UserServices, check_user_range};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension { name: "xas", init };

static USER: Once<&'static UserServices> = Once::new();

struct Server {
    process: Process,
    entry: u64,
    stack_top: u64,
    /// The call in progress, if any (a server takes one at a time).
    active: Option<Call>,
}

/// A call in progress: on which strand, who called, where it resumes.
#[derive(Clone, Copy)]
struct Call {
    strand: Strand,
    caller: Process,
    resume: UserResume,
}

/// Servers by handle − 1.
static SERVERS: SpinLock<Vec<Server>> = SpinLock::new(Vec::new());
const MAX_SERVERS: usize = 256;

fn user() -> &'static UserServices {
    USER.get().expect("set in init")
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static UserServices = ctx.lookup("kernel", "Trusted.User", "services")?;
    USER.call_once(|| services);
    let me = ctx.identity();
    SYSTEM_CALLS[nr::XAS_REGISTER as usize].install(me, register, None)?;
    SYSTEM_CALLS[nr::XAS_CALL as usize].install(me, call, None)?;
    SYSTEM_CALLS[nr::XAS_RETURN as usize].install(me, ret, None)?;
    Ok(ExportTable::new())
}

fn register(a: SyscallArgs) -> Return {
    let [entry, stack_top, ..] = a.0;
    let run = || {
        check_user_range(entry, 1)?;
        check_user_range(stack_top.checked_sub(8).ok_or(Error::BadAddress)?, 8)?;
        let process = user().current_process().ok_or(Error::BadState)?;
        let mut s = SERVERS.lock();
        if s.len() >= MAX_SERVERS {
            return Err(Error::NoMemory);
        }
        s.push(Server { process, entry, stack_top, active: None });
        Ok(s.len() as u64)
    };
    run().into()
}

fn call(a: SyscallArgs) -> Return {
    let [handle, arg, ..] = a.0;
    let run = || {
        let index = handle.checked_sub(1).ok_or(Error::BadHandle)? as usize;
        // One lock for the whole step: check, move the strand, record.
        let mut s = SERVERS.lock();
        let server = s.get_mut(index).ok_or(Error::BadHandle)?;
        if server.active.is_some() {
            return Err(Error::Busy);
        }
        // Into the server (BadHandle if it no longer exists).
        let (resume, caller) = user().transfer(server.process, server.entry, server.stack_top - 8)?;
        server.active = Some(Call { strand: strand::current(), caller, resume });
        Ok(arg)
    };
    run().into()
}

fn ret(a: SyscallArgs) -> Return {
    let run = || {
        let me = strand::current();
        let mut s = SERVERS.lock();
        let c = s
            .iter_mut()
            .rev()
            .find_map(|srv| srv.active.filter(|c| c.strand == me).map(|c| (srv, c)))
            .map(|(srv, c)| {
                srv.active = None;
                c
            })
            .ok_or(Error::BadState)?;
        user().transfer(c.caller, c.resume.rip, c.resume.rsp)?;
        Ok(a.0[0])
    };
    run().into()
}
