//! In-QEMU tests of ExOS, the library OS: each runs one role of the
//! `exo-exostest` program (ring 3), which makes its checks itself and
//! exits with the number that failed; the kernel then checks that the
//! whole family is gone and not one frame leaked.

use super::{exited_cleanly, isolated, run, spawn};
use alloc::format;
use alloc::string::String;

/// Run `exo-exostest role=<role>` alone with `slices` and `quota`.
pub fn exostest(role: &str, slices: u64, quota: u64) -> Result<(), String> {
    isolated(|| {
        let id = spawn("exo-exostest", &format!("role={role}"), slices, quota)?;
        run();
        exited_cleanly(id, &format!("exo-exostest role={role}"))
    })
}
