//! Fixture: an extension raising a kernel-owned strand event to drive the
//! scheduler with a strand of its choosing (a forged wakeup). Only the
//! kernel and the capabilities that wrap a raise can raise core events:
//! `KernelEvent` has no `raise` for anyone else.
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::strand;

pub fn forge_wakeup() {
    strand::UNBLOCK.raise(strand::current());
}
