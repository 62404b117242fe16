//! Lightweight remote procedure call over PCT.
//!
//! A server exports a table of procedures ([`serve`]). A client *binds*
//! to it once ([`bind`]): it makes an argument stack (one page it owns,
//! granted read-write to the server, which maps it) and learns a binding
//! number. A call is then one synchronous PCT into the server and one
//! back: the procedure number, the binding and three arguments travel in
//! registers, bulk data in the argument stack, and the caller's time
//! slices go with the call. The server runs the procedure on its PCT
//! stack, checks on every call that the binding belongs to the caller
//! (the kernel tells it who called; that cannot be forged), and replies
//! with a status and three results.
//!
//! Messages (five words): `[op | proc, binding, a0, a1, a2]` in,
//! `[status, r0, r1, r2, 0]` out.

use super::IpcError;
use super::shm::Shm;
use crate::{pct, sys, vm};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use exo_abi::{Cap, EnvId, Error, Prot, Rights};

/// What a procedure sees of a call.
pub struct Request<'a> {
    /// Who called (as the kernel reported it).
    pub client: EnvId,
    pub args: [u64; 3],
    /// What the call returns.
    pub results: [u64; 3],
    /// The binding's argument stack, shared with the client.
    pub astack: &'a mut [u8; 4096],
}

/// A procedure: fill `results` (and the argument stack) or fail with a
/// code the client receives as `IpcError::Failed(code)`.
pub type Procedure = fn(&mut Request) -> Result<(), u64>;

const TAG: u64 = 0x4c52_5043 << 32;
const TAG_MASK: u64 = 0xffff_ffff << 32;
const OP_BIND: u64 = 1 << 24;
const OP_CALL: u64 = 2 << 24;
const OP_UNBIND: u64 = 3 << 24;
const OP_MASK: u64 = 0xff << 24;
const PROC_MASK: u64 = 0xff_ffff;

const OK: u64 = 0;
const NO_PROC: u64 = 1;
const BAD_BINDING: u64 = 2;
const NO_ROOM: u64 = 3;
const BAD_ASTACK: u64 = 4;
const FAILED: u64 = 5;
const BAD_REQUEST: u64 = 6;

/// Most clients bound to one server at a time.
pub const MAX_BINDINGS: usize = 16;

#[derive(Clone, Copy)]
struct Slot {
    client: u64,
    /// Where the client's argument stack is mapped here (0 = free slot).
    astack: u64,
    /// Our grant of it.
    cap: u64,
    generation: u64,
}

static mut SLOTS: [Slot; MAX_BINDINGS] = [Slot { client: 0, astack: 0, cap: 0, generation: 0 }; MAX_BINDINGS];
static PROCS: AtomicUsize = AtomicUsize::new(0);
static NPROCS: AtomicUsize = AtomicUsize::new(0);

fn slots() -> &'static mut [Slot; MAX_BINDINGS] {
    // SAFETY: touched only by `dispatch`, which runs on the PCT stack, one
    // call at a time (the environment takes a PCT only while waiting).
    unsafe { &mut *core::ptr::addr_of_mut!(SLOTS) }
}

/// Serve `procedures` (numbered from 0) from now on; this context ends.
pub fn serve(procedures: &'static [Procedure]) -> Result<core::convert::Infallible, IpcError> {
    PROCS.store(procedures.as_ptr() as usize, Relaxed);
    NPROCS.store(procedures.len(), Relaxed);
    Ok(pct::serve_forever(dispatch)?)
}

fn procedures() -> &'static [Procedure] {
    let (p, n) = (PROCS.load(Relaxed), NPROCS.load(Relaxed));
    if p == 0 {
        return &[];
    }
    // SAFETY: `serve` stored a 'static slice's pointer and length.
    unsafe { core::slice::from_raw_parts(p as *const Procedure, n) }
}

fn binding_id(i: usize, generation: u64) -> u64 {
    (generation << 8) | i as u64
}

/// The slot binding `id` names, if it is `client`'s.
fn slot_of(id: u64, client: EnvId) -> Option<usize> {
    let i = (id & 0xff) as usize;
    let s = slots().get(i)?;
    (s.astack != 0 && binding_id(i, s.generation) == id && s.client == client.0).then_some(i)
}

/// Forget binding `i` (unmapping its argument stack, dropping our grant).
fn release(i: usize) {
    let s = &mut slots()[i];
    if s.astack != 0 {
        let _ = vm::unmap(s.astack, 1);
        s.astack = 0;
        s.client = 0;
    }
}

/// The PCT server: decode, check, run, reply.
fn dispatch(client: EnvId, m: pct::Message) -> pct::Message {
    if m[0] & TAG_MASK != TAG {
        return [BAD_REQUEST, 0, 0, 0, 0];
    }
    match m[0] & OP_MASK {
        OP_BIND => {
            // Bindings of clients that have ended: their pages are gone.
            for i in 0..MAX_BINDINGS {
                if slots()[i].astack != 0 && sys::cap_info(Cap(slots()[i].cap)).is_err() {
                    release(i);
                }
            }
            let Some(i) = slots().iter().position(|s| s.astack == 0) else { return [NO_ROOM, 0, 0, 0, 0] };
            let cap = Cap(m[1]);
            // The page must be a read-write grant to us.
            if !sys::cap_info(cap).is_ok_and(|(_, r)| r == Rights::READ_WRITE) {
                return [BAD_ASTACK, 0, 0, 0, 0];
            }
            let Ok(va) = vm::map_grants(&[cap], Prot::RW) else { return [BAD_ASTACK, 0, 0, 0, 0] };
            let s = &mut slots()[i];
            let generation = s.generation + 1;
            *s = Slot { client: client.0, astack: va, cap: cap.0, generation };
            [OK, binding_id(i, generation), procedures().len() as u64, 0, 0]
        }
        OP_CALL => {
            let Some(i) = slot_of(m[1], client) else { return [BAD_BINDING, 0, 0, 0, 0] };
            let n = (m[0] & PROC_MASK) as usize;
            let Some(proc) = procedures().get(n) else { return [NO_PROC, 0, 0, 0, 0] };
            // SAFETY: the argument stack is mapped read-write for the
            // binding's life (zeroes if the client took it back); the
            // client may write it too, as the protocol allows.
            let astack = unsafe { &mut *(slots()[i].astack as *mut [u8; 4096]) };
            let mut req = Request { client, args: [m[2], m[3], m[4]], results: [0; 3], astack };
            match proc(&mut req) {
                Ok(()) => [OK, req.results[0], req.results[1], req.results[2], 0],
                Err(code) => [FAILED, code, 0, 0, 0],
            }
        }
        OP_UNBIND => match slot_of(m[1], client) {
            Some(i) => {
                release(i);
                [OK, 0, 0, 0, 0]
            }
            None => [BAD_BINDING, 0, 0, 0, 0],
        },
        _ => [BAD_REQUEST, 0, 0, 0, 0],
    }
}

/// A client's binding to a server.
#[derive(Debug)]
pub struct Binding {
    server: EnvId,
    id: u64,
    procedures: u64,
    astack: Shm,
}

/// Make a synchronous PCT to `server`, handing it the processor while it
/// is not yet waiting for calls.
fn transfer(server: EnvId, msg: pct::Message) -> Result<pct::Message, IpcError> {
    for _ in 0..1000 {
        match pct::call(server, msg) {
            Err(Error::BadState) => {
                if sys::yield_to(server.0).is_err() {
                    sys::yield_to(exo_abi::YIELD_ANY)?;
                }
            }
            Err(Error::NoSuchEnv) => return Err(IpcError::PeerGone),
            Err(e) => return Err(e.into()),
            Ok(r) if r[0] == pct::NO_SERVER => return Err(IpcError::NotAServer),
            Ok(r) => return Ok(r),
        }
    }
    Err(IpcError::Kernel(Error::BadState))
}

fn status(r: &pct::Message) -> Result<(), IpcError> {
    match r[0] {
        OK => Ok(()),
        NO_PROC => Err(IpcError::NoSuchProcedure),
        BAD_BINDING => Err(IpcError::BadBinding),
        FAILED => Err(IpcError::Failed(r[1])),
        NO_ROOM => Err(IpcError::Kernel(Error::Limit)),
        _ => Err(IpcError::NotAServer),
    }
}

/// Bind to the LRPC server `server`.
pub fn bind(server: EnvId) -> Result<Binding, IpcError> {
    pct::ensure()?; // its replies arrive as PCTs
    let astack = Shm::create(1)?;
    let (cap, _, _) = vm::page_at(astack.addr()).ok_or(IpcError::Broken)?;
    let grant = sys::page_grant(cap, server, Rights::READ_WRITE)?;
    let r = match transfer(server, [TAG | OP_BIND, grant.0, 0, 0, 0]) {
        Ok(r) => r,
        Err(e) => {
            // SAFETY: the grant was never bound by anyone.
            let _ = unsafe { sys::cap_revoke(grant) };
            return Err(e);
        }
    };
    status(&r)?;
    Ok(Binding { server, id: r[1], procedures: r[2], astack })
}

impl Binding {
    /// Call procedure `proc` with three arguments; returns three results.
    #[inline]
    pub fn call(&self, proc: u32, args: [u64; 3]) -> Result<[u64; 3], IpcError> {
        call_raw(self.server, self.id, proc, args)
    }

    /// The argument stack, shared with the server for bulk arguments and
    /// results.
    pub fn astack(&self) -> *mut [u8; 4096] {
        self.astack.addr() as *mut [u8; 4096]
    }

    /// How many procedures the server exports.
    pub fn procedures(&self) -> u64 {
        self.procedures
    }

    /// The binding number (what the server checks on every call).
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn server(&self) -> EnvId {
        self.server
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        let _ = transfer(self.server, [TAG | OP_UNBIND, self.id, 0, 0, 0]);
    }
}

/// Call procedure `proc` of `server` through binding number `id` (what
/// [`Binding::call`] does; without a `Binding`, what an impostor would do).
pub fn call_raw(server: EnvId, id: u64, proc: u32, args: [u64; 3]) -> Result<[u64; 3], IpcError> {
    let r = transfer(server, [TAG | OP_CALL | (proc as u64 & PROC_MASK), id, args[0], args[1], args[2]])?;
    status(&r)?;
    Ok([r[1], r[2], r[3]])
}
