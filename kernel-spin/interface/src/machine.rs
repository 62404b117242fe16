//! Harmless machine operations any extension may use (waiting for an
//! interrupt, reading the tick count), implemented by the kernel core.

use crate::key::KernelKey;
use spin::Once;

/// What the kernel core provides for this module.
pub trait Backend: Sync {
    /// Enable interrupts and halt until the next one.
    fn idle(&self);
    /// Timer ticks since boot.
    fn ticks(&self) -> u64;
}

static BACKEND: Once<&'static dyn Backend> = Once::new();

/// Install the kernel's implementation (once).
pub fn install(_key: &KernelKey, backend: &'static dyn Backend) {
    BACKEND.call_once(|| backend);
}

/// Wait for the next interrupt (the scheduler's idle loop).
pub fn idle() {
    if let Some(b) = BACKEND.get() {
        b.idle()
    }
}

/// Timer ticks since boot (0 before the kernel installs the backend).
pub fn ticks() -> u64 {
    BACKEND.get().map_or(0, |b| b.ticks())
}
