//! Ending the run: QEMU's isa-debug-exit device.
//!
//! xtask starts QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
//! Writing `v` there makes QEMU exit with status `(v << 1) | 1`; xtask treats
//! only [`ExitCode::Success`] (status 33) as a pass. Without the device (a
//! plain `qemu` run by hand) the write is ignored and the CPU halts.

/// The values a kernel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU exit status 33.
    Success = 0x10,
    /// QEMU exit status 35.
    Failure = 0x11,
}

/// The QEMU process exit status xtask sees for each code.
pub const fn host_status(code: ExitCode) -> i32 {
    ((code as i32) << 1) | 1
}

/// Leave QEMU with `code`; halts if the exit device is absent.
pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device (or nothing); writing it
    // ends the virtual machine and touches no memory.
    unsafe { crate::cpu::outl(0xf4, code as u32) };
    crate::cpu::halt_forever()
}
