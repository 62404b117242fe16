//! Interrupt controllers and the periodic timer: the legacy 8259 PICs are
//! remapped and masked, the local APIC is enabled, and its timer is
//! calibrated against the TSC to fire `timer_hz` times per second on
//! vector 32.
//!
//! The HAL owns the timer vector: it counts ticks, acknowledges the
//! interrupt, then calls the hook a kernel installed with [`set_timer_hook`]
//! (where the kernels do preemption, slice accounting or budget checks).

use crate::cpu::{outb, rdmsr, wrmsr};
use crate::trap::{TrapFrame, vector};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

const IA32_APIC_BASE: u32 = 0x1b;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

static BASE: AtomicU64 = AtomicU64::new(0);
static PERIOD: AtomicU32 = AtomicU32::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static HOOK: AtomicUsize = AtomicUsize::new(0);

fn write(reg: u64, v: u32) {
    // SAFETY: BASE is the local APIC's register page in the physical window;
    // `reg` is one of the architectural register offsets above.
    unsafe { core::ptr::write_volatile((BASE.load(Ordering::Relaxed) + reg) as *mut u32, v) };
}

fn read(reg: u64) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile((BASE.load(Ordering::Relaxed) + reg) as *const u32) }
}

fn disable_pic() {
    // SAFETY: the 8259 command/data ports; the ICW sequence remaps both PICs
    // to vectors 0x20..0x30 (so a stray IRQ cannot look like an exception)
    // and the final writes mask every line.
    unsafe {
        for (cmd, data, offset, cascade) in [(0x20, 0x21, 0x20, 4), (0xa0, 0xa1, 0x28, 2)] {
            outb(cmd, 0x11);
            outb(data, offset);
            outb(data, cascade);
            outb(data, 0x01);
            outb(data, 0xff);
        }
    }
}

/// Enable the local APIC and calibrate its timer (the timer stays masked
/// until [`start_timer`]).
pub fn init(timer_hz: u32, tsc_hz: u64) {
    disable_pic();
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; setting bit 11
    // (global enable) keeps the APIC at its current base.
    let base_pa = unsafe {
        let v = rdmsr(IA32_APIC_BASE);
        wrmsr(IA32_APIC_BASE, v | (1 << 11));
        v & 0xffff_f000
    };
    BASE.store(crate::memory::phys_to_virt(base_pa), Ordering::Relaxed);
    write(REG_SVR, 0x100 | vector::SPURIOUS as u32);
    write(REG_TPR, 0);

    // Count APIC ticks (divide by 16) over 10 ms of TSC time.
    write(REG_TIMER_DIVIDE, 0x3);
    write(REG_LVT_TIMER, LVT_MASKED | vector::TIMER as u32);
    write(REG_TIMER_INIT, u32::MAX);
    crate::tsc::spin_for(tsc_hz / 100);
    let per_10ms = u32::MAX - read(REG_TIMER_CURRENT);
    write(REG_TIMER_INIT, 0);
    let period = (per_10ms as u64 * 100 / timer_hz.max(1) as u64).clamp(1, u32::MAX as u64);
    PERIOD.store(period as u32, Ordering::Relaxed);
    crate::trap::set_handler(vector::TIMER, timer_interrupt);
}

/// Start the periodic timer.
pub fn start_timer() {
    write(REG_LVT_TIMER, LVT_PERIODIC | vector::TIMER as u32);
    write(REG_TIMER_INIT, PERIOD.load(Ordering::Relaxed));
}

/// Stop the periodic timer.
pub fn stop_timer() {
    write(REG_LVT_TIMER, LVT_MASKED | vector::TIMER as u32);
    write(REG_TIMER_INIT, 0);
}

/// Acknowledge the interrupt being serviced.
#[inline]
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Timer interrupts taken since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Call `hook` on every timer tick (after the tick is counted and acknowledged).
pub fn set_timer_hook(hook: fn(&mut TrapFrame)) {
    HOOK.store(hook as usize, Ordering::Release);
}

fn timer_interrupt(frame: &mut TrapFrame) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    eoi();
    let h = HOOK.load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: only `set_timer_hook` stores non-zero values, and they are hooks.
        let hook: fn(&mut TrapFrame) = unsafe { core::mem::transmute::<usize, fn(&mut TrapFrame)>(h) };
        hook(frame);
    }
}
