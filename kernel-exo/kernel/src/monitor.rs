//! The monitor: the kernel's own thread of control (on the boot stack),
//! which sets environments up, lets them run until nothing can, and then
//! looks at what happened — `kernel_main` in normal and benchmark mode, the
//! in-kernel tests in test mode.
//!
//! [`run`] switches to the *trap stack* (the stack every trap from ring 3
//! lands on) and enters the first runnable environment. From then on the
//! kernel only runs in response to traps; when a trap finds nothing left
//! to run, [`back`] switches to the monitor again, abandoning the trap
//! stack (no lock or heap object lives on it across that switch).

use crate::kernel;
use crate::revoke;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};
use shared_hal::trap::TrapFrame;
use shared_hal::{apic, context, cpu, gdt, paging};

const TRAP_STACK_SIZE: usize = 64 * 1024;

#[allow(dead_code)] // only its address is used
#[repr(C, align(16))]
struct Stack([u8; TRAP_STACK_SIZE]);

static mut TRAP_STACK: Stack = Stack([0; TRAP_STACK_SIZE]);

/// The monitor's saved stack pointer while environments run.
static MONITOR_RSP: AtomicU64 = AtomicU64::new(0);

/// Top of the trap stack (16-byte aligned).
fn top() -> u64 {
    addr_of_mut!(TRAP_STACK) as u64 + TRAP_STACK_SIZE as u64
}

/// Where every trap from ring 3 leaves its frame: the top of the trap stack.
fn frame_slot() -> *mut TrapFrame {
    (top() - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame
}

/// Point TSS.RSP0 and the SYSCALL entry at the trap stack.
pub fn init() {
    gdt::set_kernel_stack(top());
}

/// Run environments until none can run. Starts the timer first if
/// `timer` (preemption, slices, revocation deadlines) and stops it after.
pub fn run(timer: bool) {
    cpu::disable_interrupts();
    kernel::with(|k| k.timer_hz = if timer { crate::TIMER_HZ as u64 } else { 0 });
    if timer {
        apic::start_timer();
    }
    loop {
        // The scheduler starts on the trap stack, below the frame slot.
        // SAFETY: the trap stack is ours and unused while the monitor runs;
        // 256 bytes below its top leaves the frame slot free.
        let entry = unsafe { context::prepare_stack(top() - 256, scheduler_start, 0) };
        // SAFETY: MONITOR_RSP outlives the switch; `entry` was just prepared.
        unsafe { context::switch(MONITOR_RSP.as_ptr(), entry) };
        // Back: nothing could run.
        // SAFETY: the kernel root maps the kernel as every root does.
        unsafe { cpu::set_cr3(paging::kernel_root()) };
        // Only the clock can change anything now: a revocation deadline, or
        // a sleeper whose predicate reads the clock.
        let clock_matters = || kernel::with(|k| revoke::pending(k) || crate::wakeup::clock_sleepers(k));
        if !(timer && clock_matters()) {
            break;
        }
        // Let the clock run until someone can.
        while !crate::sched::anything_runnable() && clock_matters() {
            cpu::wait_for_interrupt();
            cpu::disable_interrupts();
        }
    }
    if timer {
        apic::stop_timer();
    }
    kernel::with(|k| k.timer_hz = 0);
}

extern "C" fn scheduler_start(_: usize) -> ! {
    let frame = frame_slot();
    // SAFETY: the frame slot is at the top of the trap stack, above this
    // function's own frames, and nothing else uses it now.
    if crate::sched::start(unsafe { &mut *frame }) {
        // SAFETY: `start` loaded a ring-3 context of the environment it
        // made current, whose root is now CR3.
        unsafe { shared_hal::trap::enter(frame) }
    }
    back()
}

/// Return to the monitor: no environment can run. Called from trap
/// handlers on the trap stack, with no lock held; never returns.
pub fn back() -> ! {
    let mut abandoned = 0u64;
    // SAFETY: MONITOR_RSP holds the monitor context saved by `run`'s
    // switch, whose stack (the boot stack) is intact; the trap stack we
    // leave holds nothing that needs dropping.
    unsafe { context::switch(&mut abandoned, MONITOR_RSP.load(Ordering::Relaxed)) };
    unreachable!("the monitor context never switches back to an abandoned trap stack")
}
