//! Fixture: an extension whose `log` is a path dependency that is really a
//! procedural macro emitting `unsafe` (a name check let it through).
#![no_std]
#![forbid(unsafe_code)]

pub fn peek() -> u64 {
    log::info!("hello")
}
