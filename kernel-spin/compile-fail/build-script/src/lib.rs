//! Fixture: an extension with a build script (host code that would run
//! during the build, whatever the library's lints say).
#![no_std]
#![forbid(unsafe_code)]

pub fn nothing() {}
