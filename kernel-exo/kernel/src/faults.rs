//! The slow exception path and the kernel's own faults.
//!
//! The fast stubs (`fast::exceptions`) send here, through the HAL's
//! generic trap path, every exception they did not deliver: a ring-3
//! exception the environment cannot take (no handler registered, or a
//! fault while its handler is still running) kills that environment and
//! lets the others run; a kernel page fault at the user-copy instruction
//! is fixed up into an error return; any other kernel fault is a bug and
//! panics.

use crate::{sched, uaccess};
use exo_abi::EnvStatus;
use shared_hal::trap::{self, TrapFrame, vector};

/// Vectors the fast stubs handle (and may pass on to us).
const VECTORS: [u8; 15] = [0, 1, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19];

/// Route those vectors' slow path here, and make ring 0 honour read-only
/// pages (CR0.WP), which the user-copy routines rely on.
pub fn init() {
    for v in VECTORS {
        trap::set_handler(v, on_exception);
    }
    shared_hal::cpu::enable_write_protect();
}

fn on_exception(frame: &mut TrapFrame) {
    if frame.from_user() {
        sched::kill_current(frame, EnvStatus::Faulted, frame.vector);
        return;
    }
    if frame.vector == vector::PAGE_FAULT as u64
        && let Some(resume) = uaccess::fixup_for(frame.rip)
    {
        frame.rip = resume;
        return;
    }
    let cr2 = if frame.vector == vector::PAGE_FAULT as u64 { shared_hal::cpu::cr2() } else { 0 };
    panic!(
        "kernel-exo: {} in the kernel: rip={:#x} error={:#x} cr2={:#x} rsp={:#x}",
        trap::exception_name(frame.vector),
        frame.rip,
        frame.error_code,
        cr2,
        frame.rsp
    );
}
