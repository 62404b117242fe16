//! exos: the start of ExOS, kernel-exo's library OS. It runs in ring 3,
//! inside every environment, and does the management the kernel refuses
//! to do: it decides which physical pages to use and where to bind them,
//! handles its own exceptions and resumes from them without the kernel,
//! answers the kernel's upcalls, makes and serves protected control
//! transfers, and loads programs into child environments.
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
//! It may use `unsafe` (it is the environment's own trusted runtime); the
//! kernel protects everything else from it.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod console;
pub mod exception;
mod heap;
pub mod info;
pub mod mem;
pub mod pct;
pub mod rt;
pub mod spawn;
pub mod sys;
pub mod upcall;

pub use exo_abi as abi;
