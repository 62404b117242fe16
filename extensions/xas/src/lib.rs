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
//! A process may register at most `MAX_SERVERS_PER_PROCESS` servers
//! (`Limit`; the table holds 64). A server takes one call at a time
//! (`Busy` otherwise); a server may call
//! another (calls nest on the strand, and each `xas_return` ends the
//! innermost); a dead server's handle answers `BadHandle`, and a server's
//! registration goes when its process is reaped.
//!
//! A thread that ends while in calls (killed, or its server killed: the
//! kernel ends the strands inside a killed process's space, see
//! `User.ThreadEnded`) leaves them: its calls are dropped, so their
//! servers take new calls. The kernel reaps a server only once no strand
//! is inside its space.
//!
//! # The call path
//!
//! Servers sit in a fixed table by handle, and each strand's innermost
//! call is found by strand number, so a call or a return is one lock, an
//! index, a few stores and one kernel operation (`UserServices::transfer`
//! on the way in, `UserServices::move_to` on the way back: switch the
//! address space and redirect the system call's return).

#![no_std]
#![forbid(unsafe_code)]

use spin_interface::abi::{Error, MAX_SERVERS_PER_PROCESS, Return, nr};
use spin_interface::strand::{self, MAX_STRANDS, Strand};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::user::{self, Process, ResumePoint, SYSTEM_CALLS, SyscallArgs, UserServices};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("xas", init);

static USER: Once<&'static UserServices> = Once::new();

/// Most servers at once.
const MAX_SERVERS: usize = 64;
/// "No call" in the per-strand chain.
const NONE: u8 = u8::MAX;

#[derive(Clone, Copy)]
struct Server {
    process: Process,
    /// Where a call enters it: the entry, with RSP = stack top − 8
    /// (checked once, at registration).
    entry: ResumePoint,
    /// The call in progress, if any (a server takes one at a time).
    active: Option<Call>,
}

/// A call in progress: on which strand, who called, where it resumes, and
/// the strand's enclosing call (a server index, or [`NONE`]).
#[derive(Clone, Copy)]
struct Call {
    strand: Strand,
    caller: Process,
    resume: ResumePoint,
    outer: u8,
}

struct Table {
    /// Servers by handle − 1.
    servers: [Option<Server>; MAX_SERVERS],
    /// Each strand's innermost call (a server index, or [`NONE`]).
    innermost: [u8; MAX_STRANDS],
}

static TABLE: SpinLock<Table> =
    SpinLock::new(Table { servers: [None; MAX_SERVERS], innermost: [NONE; MAX_STRANDS] });

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
    user::PROCESS_REAPED.install(me, reaped, None)?;
    user::THREAD_ENDED.install(me, thread_ended, None)?;
    Ok(ExportTable::new().procedure("Xas", "servers", servers))
}

/// How many servers are registered (tests check reaping removes them).
fn servers(_: ()) -> usize {
    TABLE.lock().servers.iter().filter(|s| s.is_some()).count()
}

fn register(a: SyscallArgs) -> Return {
    let [entry, stack_top, ..] = a.0;
    let run = || {
        // Entered as if called: RSP = stack top − 8. The one check is the
        // resume point's (RIP a user address, the 8 bytes below RSP user
        // space); a stack top below 8 wraps and fails it.
        let entry = ResumePoint::new(entry, stack_top.wrapping_sub(8))?;
        let process = user().current_process().ok_or(Error::BadState)?;
        let mut t = TABLE.lock();
        // One process may not take every server slot.
        if t.servers.iter().flatten().filter(|s| s.process == process).count() >= MAX_SERVERS_PER_PROCESS {
            return Err(Error::Limit);
        }
        let free = t.servers.iter().position(Option::is_none).ok_or(Error::NoMemory)?;
        t.servers[free] = Some(Server { process, entry, active: None });
        Ok(free as u64 + 1)
    };
    run().into()
}

/// A process ended: its registrations go. No strand is inside its space
/// (the kernel reaps only then); a strand that called it and went on into
/// another server finds it gone on the way back (`xas_return` answers
/// `BadHandle`: the kernel refuses to move a strand into a reaped space).
fn reaped(p: Process) {
    let mut t = TABLE.lock();
    for s in t.servers.iter_mut() {
        if s.is_some_and(|s| s.process == p) {
            *s = None;
        }
    }
}

/// A thread ended on `strand`: drop the calls it was in, innermost first.
fn thread_ended(strand: Strand) {
    let mut t = TABLE.lock();
    let Some(&first) = t.innermost.get(strand.index()) else { return };
    let mut at = first;
    while let Some(server) = t.servers.get_mut(at as usize).and_then(Option::as_mut) {
        match server.active {
            Some(c) if c.strand == strand => {
                server.active = None;
                at = c.outer;
            }
            _ => break,
        }
    }
    t.innermost[strand.index()] = NONE;
}

fn call(a: SyscallArgs) -> Return {
    let [handle, arg, ..] = a.0;
    let run = || {
        let index = handle.wrapping_sub(1) as usize;
        let strand = strand::current();
        let me = strand.index();
        // One lock for the whole step: check, move the strand, record.
        let mut t = TABLE.lock();
        let outer = *t.innermost.get(me).ok_or(Error::BadState)?;
        let server = t.servers.get_mut(index).and_then(Option::as_mut).ok_or(Error::BadHandle)?;
        if server.active.is_some() {
            return Err(Error::Busy);
        }
        // Into the server (BadHandle if it no longer exists).
        let (resume, caller) = user().transfer(server.process, server.entry)?;
        server.active = Some(Call { strand, caller, resume, outer });
        t.innermost[me] = index as u8;
        Ok(arg)
    };
    run().into()
}

fn ret(a: SyscallArgs) -> Return {
    let run = || {
        let strand = strand::current();
        let me = strand.index();
        let mut t = TABLE.lock();
        let index = *t.innermost.get(me).ok_or(Error::BadState)?;
        let server = t.servers.get_mut(index as usize).and_then(Option::as_mut).ok_or(Error::BadState)?;
        let c = server.active.filter(|c| c.strand == strand).ok_or(Error::BadState)?;
        user().move_to(c.caller, c.resume)?;
        server.active = None;
        t.innermost[me] = c.outer;
        Ok(a.0[0])
    };
    run().into()
}
