//! How an extension presents itself to the kernel's loader.
//!
//! Each extension crate has a `pub static EXTENSION: Extension` naming it
//! and its initialisation procedure. The loader gives the extension an
//! [`Identity`], runs `init` contained (an extension that panics while
//! initialising is unloaded and the kernel goes on), and creates the
//! extension's domain from the [`ExportTable`] `init` returns.

use crate::domain::{Domain, ExportTable, Identity, ImportSlot, LinkError};
use crate::event::EventError;
use crate::phys::MemError;

/// An extension's descriptor.
pub struct Extension {
    /// Its name (the domain name; grants refer to it).
    pub name: &'static str,
    /// Set up: resolve imports, install handlers, return the exports.
    pub init: fn(&InitContext) -> Result<ExportTable, InitError>,
}

/// Why an extension could not initialise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    Link(LinkError),
    Event(EventError),
    Memory(MemError),
}

impl From<LinkError> for InitError {
    fn from(e: LinkError) -> Self {
        InitError::Link(e)
    }
}

impl From<EventError> for InitError {
    fn from(e: EventError) -> Self {
        InitError::Event(e)
    }
}

impl From<MemError> for InitError {
    fn from(e: MemError) -> Self {
        InitError::Memory(e)
    }
}

/// What `init` is given.
pub struct InitContext {
    identity: &'static Identity,
}

impl InitContext {
    /// The loader's context for the extension with this identity.
    pub fn new(_key: &crate::KernelKey, identity: &'static Identity) -> InitContext {
        InitContext { identity }
    }

    /// The extension's own identity (present it to install and resolve).
    pub fn identity(&self) -> &'static Identity {
        self.identity
    }

    /// Resolve `imports` against the domain registered as `domain`.
    pub fn resolve(&self, domain: &str, imports: &[&'static dyn ImportSlot]) -> Result<usize, LinkError> {
        Domain::named(domain)?.resolve(self.identity, imports)
    }

    /// Look up one item (event, service object) exported by `domain`.
    pub fn lookup<T: Copy + 'static>(
        &self,
        domain: &str,
        interface: &'static str,
        symbol: &'static str,
    ) -> Result<T, LinkError> {
        Domain::named(domain)?.lookup(self.identity, interface, symbol)
    }
}
