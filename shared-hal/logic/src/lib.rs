//! Pure logic shared by both kernels and by xtask: no hardware, no `unsafe`.
//!
//! Everything here builds for `x86_64-unknown-none` (inside the kernels) and
//! for the host, where `cargo test -p hal-logic` runs the unit tests. Inputs
//! that come from outside the kernel (ramdisk archives, ELF files, command
//! lines, addresses a user program passes) are parsed here with typed errors,
//! so every hostile case can be tested without booting.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod addr;
pub mod cmdline;
pub mod elfplan;
pub mod frames;
pub mod fwcfg;
pub mod pte;
pub mod ramdisk;
