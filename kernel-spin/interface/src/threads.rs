//! The interface of thread packages: what the kernel-thread extension
//! (`extensions/threads`) exports under the interface name [`INTERFACE`],
//! and the types importers need.
//!
//! | symbol | type |
//! |---|---|
//! | `fork` | `fn((Charge, fn(usize), usize)) -> Result<ThreadId, ThreadError>` |
//! | `join` | `fn(ThreadId) -> Result<(), ThreadError>` |
//! | `exit` | `fn(()) -> ()` (never returns) |
//! | `yield` | `fn(()) -> ()` |

/// The interface name thread packages export.
pub const INTERFACE: &str = "Threads";

/// A thread of a thread package (generation-checked by the package).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThreadId(pub u64);

/// Why a thread operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadError {
    /// No stack or table slot for another thread.
    NoResources,
    /// No such thread (never existed, or already joined).
    NoSuchThread,
    /// A thread cannot join itself.
    SelfJoin,
}

/// `fork`'s argument: who answers for the new thread (its body runs
/// contained and charged to that domain: a panicking, overflowing or
/// looping thread unloads its forker and ends), the function it runs, and
/// its argument. An extension passes `ctx.charge()` (kept from its `init`).
pub type ForkArgs = (crate::contain::Charge, fn(usize), usize);
