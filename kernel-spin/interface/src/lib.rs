//! spin-interface: the SPIN extension interface (ring 0, safe Rust,
//! `forbid(unsafe_code)`), the **only** crate an extension may depend on
//! (besides `alloc`, which is not a Cargo dependency).
//!
//! Extensions are crates under `extensions/` linked into kernel-spin and run
//! in ring 0 in the kernel's single address space. What protects the kernel
//! and the extensions from each other is the language: extensions are safe
//! Rust (`#![forbid(unsafe_code)]`, checked by `cargo xtask test`), so they
//! can touch only memory they were handed, and every kernel resource is
//! reached through a *capability* defined here: a value of a type whose
//! fields are private and whose constructors need a [`KernelKey`].
//!
//! # How the kernel constructs capabilities and extensions cannot
//!
//! This crate is `forbid(unsafe_code)`, so Tock's trick (an `unsafe fn`
//! constructor) is unavailable. Instead there is one token type,
//! [`KernelKey`], with a private field; [`KernelKey::claim`] hands out the
//! one instance exactly once. kernel-spin's core claims it first thing at
//! boot, before any extension runs, and keeps it in a private static: every
//! later claim (an extension's) returns `None`. Constructors of capabilities
//! and the calls that install the kernel's trusted implementations take
//! `&KernelKey`; other capabilities are created only inside this crate, by
//! operations that already checked authority (allocating a page yields a
//! [`phys::PhysPage`]). Holding a reference to a capability is the right to
//! use it; nothing converts an integer into one.
//!
//! # Map
//! - [`event`]: the dispatcher. Events are typed procedure signatures with
//!   a default handler; handlers (optionally guarded) are installed with the
//!   defining module's authorization; raising one unguarded handler is an
//!   indirect call.
//! - [`domain`]: identities, domains (Create, Resolve, Combine), imports.
//! - [`contain`]: faults of extensions (the kernel stops and unloads them).
//! - [`phys`], [`translation`]: PhysAddr, VirtAddr and Translation services.
//! - [`strand`], [`sync`], [`threads`]: strands and their events, blocking
//!   locks and condition variables, the thread package's interface.
//! - [`user`]: user processes and the SystemCall event family.
//! - [`net`]: the NICs, `Ether.PacketArrived` and the protocol graph's types.
//! - [`extension`]: how an extension presents itself to the loader.
//! - [`log`]: logging macros that forward to the kernel's logger.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod contain;
pub mod domain;
pub mod event;
pub mod extension;
pub mod key;
pub mod log;
pub mod machine;
pub mod net;
pub mod phys;
pub mod strand;
pub mod sync;
pub mod threads;
pub mod translation;
pub mod user;

#[cfg(test)]
mod tests;

pub use domain::{Domain, DomainId, ExportTable, Identity, Import, LinkError};
pub use event::{Combine, Event, EventError, EventInfo, HandlerId, KernelEvent};
pub use extension::{Extension, InitContext, InitError};
pub use key::KernelKey;
/// The user-process ABI (call numbers, errors, trap layout).
pub use spin_abi as abi;

/// A service used before the kernel installed its implementation: a boot
/// order bug (out of line, so the services' fast paths stay short).
#[cold]
#[inline(never)]
fn not_installed(service: &str) -> ! {
    panic!("{service} backend used before the kernel installed it");
}
