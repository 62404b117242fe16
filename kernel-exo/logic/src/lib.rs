//! exo-logic: the parts of kernel-exo that are plain data structures, kept
//! out of the ring-0 crate so `cargo test` can exercise them on the host.
//!
//! - [`handles`]: generational slot tables, which name capabilities and
//!   environments with handles that go stale when their object dies.
//! - [`dpf`]: the merged packet filters (a trie with hashing on shared
//!   fields) that demultiplex received frames.
//! - [`slices`]: the time-slice vector, round-robin selection, and the
//!   resolution of donated slices (synchronous PCT).
//! - [`code`]: the verifier and interpreter of downloaded code (wakeup
//!   predicates).
//! - [`revoke`]: the bookkeeping of one "return N pages by tick T" request.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod code;
pub mod dpf;
pub mod handles;
pub mod revoke;
pub mod slices;
