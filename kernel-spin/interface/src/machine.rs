//! Harmless machine operations any extension may use (waiting for an
//! interrupt, reading the tick count), implemented by the kernel core.

use crate::key::KernelKey;
use spin_trusted::RefSlot;

/// The kernel core's machine procedures, bound once at boot by
/// [`install`]: a call is a load of the table and an indirect call.
pub struct Core {
    /// Enable interrupts and halt until the next one.
    pub idle: fn(),
    /// Timer ticks since boot.
    pub ticks: fn() -> u64,
}

/// Before the kernel binds its table: idling returns at once and the
/// clock reads 0 (both harmless, unlike the other services' defaults).
static UNBOUND: Core = Core { idle: || {}, ticks: || 0 };

static CORE: RefSlot<Core> = RefSlot::new(&UNBOUND);

/// Bind the kernel's implementation.
pub fn install(_key: &KernelKey, core: &'static Core) {
    CORE.set(core);
}

/// Wait for the next interrupt (the scheduler's idle loop).
pub fn idle() {
    (CORE.get().idle)()
}

/// Timer ticks since boot (0 before the kernel binds its table).
pub fn ticks() -> u64 {
    (CORE.get().ticks)()
}
