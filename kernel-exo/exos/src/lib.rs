//! exos: ExOS, kernel-exo's library operating system. It runs in ring 3,
//! inside every environment, and does all the management the exokernel
//! refuses to do, with nothing but the kernel's primitives:
//!
//! | module | what it manages |
//! |---|---|
//! | [`rt`], [`heap`](crate::mem), [`console`], [`spawn`] | start-up, heap, console output, loading programs into children, exit and wait |
//! | [`vm`] | the address space: its own view of it, page faults at user level, protection of pages and ranges, the dirty bit, application fault handlers |
//! | [`fork`] | fork with copy-on-write, entirely at user level |
//! | [`ipc`] | shared memory, pipes (shared pages + PCT wake-ups), LRPC over PCT |
//! | [`thread`] | user-level threads with their own scheduler, preempted by the end-of-slice upcall |
//! | [`net`] | ARP, IPv4 and UDP over the kernel's NIC binding (transmit from our pages, receive by packet filters into our rings) |
//! | [`pager`] | which pages to give back when the kernel asks, and surviving when it takes them |
//! | [`exception`], [`upcall`], [`pct`], [`sys`] | the kernel's entry points into the environment, and the system calls |
//!
//! A program links it and names its `main`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! fn main(args: &str) -> u64 {
//!     exos::println!("hello from {:?}", exos::sys::env_self());
//!     0
//! }
//! exos::entry!(main);
//! ```
//!
//! # Concurrency inside an environment
//!
//! One processor; inside an environment things interleave only through
//! the exception handler, upcalls, and user-level threads (switched only
//! by ExOS). ExOS's own state is guarded by *critical sections*
//! ([`private::critical`]): while one is open the upcall handler neither
//! switches threads nor runs the pager, it leaves that to the section's
//! end. ExOS's bookkeeping lives in private pages that are never shared
//! copy-on-write, so its exception handler never faults writing them.
//!
//! It may use `unsafe` (it is the environment's own trusted runtime); the
//! kernel protects everything else from it.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod console;
pub mod exception;
pub mod fork;
mod heap;
pub mod info;
pub mod ipc;
pub mod mem;
pub mod net;
pub mod pager;
pub mod pct;
pub mod private;
pub mod rt;
pub mod spawn;
pub mod sys;
pub mod thread;
pub mod upcall;
pub mod vm;

pub use exo_abi as abi;
