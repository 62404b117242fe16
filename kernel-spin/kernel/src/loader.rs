//! Loading extensions (ring 0, trusted): give each one an identity, run its
//! `init` contained, and register its domain. The kernel's own domain
//! ("kernel") exports the trusted capabilities, restricted to the
//! extensions the manifest names.

use spin_interface::contain::{self, Fault};
use spin_interface::{Domain, Extension, Identity, InitContext, InitError, KernelKey, LinkError};

/// Why an extension did not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    /// `init` panicked or overran its budget; the extension is unloaded.
    Fault(Fault),
    /// `init` returned an error; whatever it installed is removed.
    Init(InitError),
    /// Its domain could not be registered (name taken).
    Link(LinkError),
}

/// The extensions kernel-spin runs, in load order (each may import from
/// the ones before it).
pub const BOOT_EXTENSIONS: &[&Extension] = &[
    &spin_ext_scheduler::EXTENSION,
    &spin_ext_threads::EXTENSION,
    &spin_ext_syscalls::EXTENSION,
    &spin_ext_xas::EXTENSION,
    &spin_ext_vm::EXTENSION,
    &spin_ext_uthreads::EXTENSION,
    &spin_ext_bench::EXTENSION,
    &spin_ext_hello::EXTENSION,
    // The course exercise "an extension with a guard" (reference solution).
    &spin_ext_evens::EXTENSION,
];

/// Load one extension.
pub fn load(key: &KernelKey, ext: &'static Extension) -> Result<&'static Identity, LoadError> {
    let identity = Identity::new(key, ext.name);
    let ctx = InitContext::new(key, identity);
    let init = ext.init;
    match contain::run_for(key, identity.id(), || init(&ctx)) {
        Err(fault) => Err(LoadError::Fault(fault)),
        Ok(Err(e)) => {
            // Undo what it did before failing.
            spin_interface::domain::unload(key, identity.id());
            Err(LoadError::Init(e))
        }
        Ok(Ok(table)) => {
            Domain::create(identity, table).map_err(LoadError::Link)?;
            log::info!("kernel-spin: loaded extension {:?} (domain {})", ext.name, identity.id().number());
            Ok(identity)
        }
    }
}
