//! Fixture: an extension depending on a crate from the public registry
//! (here the real `log`, whose `set_max_level` silences the kernel).
#![no_std]
#![forbid(unsafe_code)]

pub fn silence_the_kernel() {
    log::set_max_level(log::LevelFilter::Off);
}
