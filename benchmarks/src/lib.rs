//! The benchmark suite, defined once for every kernel.
//!
//! - [`defs`]: every operation of the SPIN and Exokernel papers' tables, with
//!   its canonical name and iteration counts.
//! - [`measure`]: the timing loop (`lfence`-fenced `rdtsc`, warm-up, several
//!   runs), usable in ring 0 and ring 3 alike; no allocation.
//! - [`line`]: the result lines a kernel prints on the serial console and
//!   the parser xtask uses on them.
//! - [`stats`], [`budgets`], [`published`]: pure data and arithmetic the
//!   host uses to build tables.
//!
//! Each kernel supplies only thin glue: for each [`defs::Op`] it either
//! runs [`measure::measure`] around its own mechanism, or reports the
//! operation as not expressible with a reason.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod budgets;
pub mod defs;
pub mod line;
pub mod measure;
pub mod published;
pub mod stats;
pub mod suite;

pub use defs::{OPS, Op, Settings, Table};
pub use measure::{Sample, measure};
