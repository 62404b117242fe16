//! Fixture: a crate named like the interface that re-exports the HAL (the dependency of `fixture-impostor-user`; not an extension itself).
#![no_std]
#![forbid(unsafe_code)]

pub use shared_hal;
