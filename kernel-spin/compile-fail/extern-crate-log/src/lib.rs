//! Fixture: naming the `log` crate (in spin-interface's closure, so its
//! library sits in the same dependency directory) to silence the kernel.
//! rustc refuses: `extern crate` finds only declared dependencies.
#![no_std]
#![forbid(unsafe_code)]

extern crate log;

pub fn silence_the_kernel() {
    log::set_max_level(log::LevelFilter::Off);
}
