//! The kernel's key: the one token that lets code construct capabilities and
//! install trusted implementations. See the crate documentation for why.

use core::sync::atomic::{AtomicBool, Ordering};

/// Proof of being the kernel core. The field is private, so no other crate
/// can build one; [`KernelKey::claim`] hands out the single instance once.
#[derive(Debug)]
pub struct KernelKey {
    _private: (),
}

static KEY: KernelKey = KernelKey { _private: () };
static CLAIMED: AtomicBool = AtomicBool::new(false);

impl KernelKey {
    /// The key, the first time this is called; `None` ever after. The kernel
    /// core calls it at boot before any extension runs.
    pub fn claim() -> Option<&'static KernelKey> {
        if CLAIMED.swap(true, Ordering::SeqCst) { None } else { Some(&KEY) }
    }
}

#[cfg(test)]
pub(crate) fn test_key() -> &'static KernelKey {
    &KEY
}
