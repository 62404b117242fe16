//! Communication between environments, built on shared pages and PCT:
//! shared memory regions ([`shm`]), pipes ([`pipe`]) and lightweight
//! remote procedure calls ([`lrpc`]).
//!
//! Everything a peer can write is untrusted: a misbehaving peer can make
//! a pipe or a call fail (an [`IpcError`]), never make ExOS panic or
//! touch memory outside what was shared.

pub mod lrpc;
pub mod pipe;
pub mod shm;

use crate::thread::ThreadError;
use crate::vm::VmError;
use exo_abi::Error;

/// Why a communication request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcError {
    /// A system call failed (e.g. a PCT to an environment that has ended:
    /// `Kernel(NoSuchEnv)`).
    Kernel(Error),
    /// Mapping the shared pages failed.
    Vm(VmError),
    /// Blocking failed (inside a critical section).
    Thread(ThreadError),
    /// An argument is out of range.
    BadArgument,
    /// Only the owner of a shared region may share it.
    NotOwner,
    /// The token is not a token for us.
    BadToken,
    /// The shared pages are gone (the owner took them back or ended).
    Broken,
    /// The other end of the pipe was closed.
    Closed,
    /// The environment on the other side has ended.
    PeerGone,
    /// The shared state the peer writes makes no sense.
    Corrupt,
    /// LRPC: the server has no procedure with this number.
    NoSuchProcedure,
    /// LRPC: the binding is not (or no longer) ours.
    BadBinding,
    /// LRPC: the target serves no calls.
    NotAServer,
    /// LRPC: the procedure failed with this code.
    Failed(u64),
}

impl From<Error> for IpcError {
    fn from(e: Error) -> Self {
        IpcError::Kernel(e)
    }
}

impl From<VmError> for IpcError {
    fn from(e: VmError) -> Self {
        IpcError::Vm(e)
    }
}

impl From<ThreadError> for IpcError {
    fn from(e: ThreadError) -> Self {
        IpcError::Thread(e)
    }
}
