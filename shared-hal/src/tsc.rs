//! The time-stamp counter: reading it, and measuring its frequency against
//! the PIT.
//!
//! Under TCG with `-icount shift=0` the TSC advances exactly once per guest
//! instruction, which is what the benchmarks count; under KVM it counts cycles.

use core::sync::atomic::{AtomicU64, Ordering};

static HZ: AtomicU64 = AtomicU64::new(0);

/// Read the TSC with `lfence` on both sides, so earlier instructions have
/// completed before the read and later ones do not start before it.
#[inline(always)]
pub fn read() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc and lfence only read the counter; CR4.TSD is clear.
    unsafe {
        core::arch::asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi,
                         options(nomem, nostack, preserves_flags))
    };
    (hi as u64) << 32 | lo as u64
}

/// TSC ticks per second (0 before calibration).
pub fn hz() -> u64 {
    HZ.load(Ordering::Relaxed)
}

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_MS: u64 = 10;

/// Time a 10 ms one-shot of PIT channel 2 with the TSC.
pub fn calibrate() -> u64 {
    let count = (PIT_HZ * CALIBRATION_MS / 1000) as u16;
    // SAFETY: ports 0x42/0x43/0x61 are the PIT channel 2 and its gate on the
    // PC platform; nothing else in the kernels uses them.
    let ticks = unsafe {
        use crate::cpu::{inb, outb};
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        let start = read();
        while inb(0x61) & 0x20 == 0 {}
        let end = read();
        outb(0x61, gate);
        end - start
    };
    let hz = ticks * (1000 / CALIBRATION_MS);
    HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Busy-wait for `ticks` TSC ticks.
pub fn spin_for(ticks: u64) {
    let start = read();
    while read().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}
