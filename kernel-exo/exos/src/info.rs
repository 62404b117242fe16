//! This environment's info page (read-only, kept current by the kernel).

use exo_abi::layout::{EnvInfo, INFO_VA};

/// The info page.
pub fn get() -> &'static EnvInfo {
    // SAFETY: the kernel maps the info page read-only at INFO_VA in every
    // environment for its whole life; EnvInfo is plain data.
    unsafe { &*(INFO_VA as *const EnvInfo) }
}

/// Read one field freshly (the kernel changes the page behind our back).
#[macro_export]
macro_rules! info_field {
    ($field:ident) => {
        // SAFETY: the info page is mapped for the environment's whole life.
        unsafe { core::ptr::read_volatile(&$crate::info::get().$field) }
    };
}
