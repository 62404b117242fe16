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

/// An extension's descriptor, made with [`Extension::new`] in the
/// extension's own crate.
pub struct Extension {
    name: &'static str,
    init: fn(&InitContext) -> Result<ExportTable, InitError>,
    source: &'static str,
}

impl Extension {
    /// The descriptor of an extension whose `init` sets it up (resolves
    /// imports, installs handlers, returns the exports). `name` is only a
    /// suggestion: the kernel names the domain when it loads it. The
    /// compiler records where this call is (the extension's own source
    /// file), which no extension can choose: the kernel charges a panic
    /// located in that crate to its domain.
    #[track_caller]
    pub const fn new(name: &'static str, init: fn(&InitContext) -> Result<ExportTable, InitError>) -> Self {
        Self { name, init, source: core::panic::Location::caller().file() }
    }

    /// The name the extension suggests.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Its set-up procedure.
    pub const fn init(&self) -> fn(&InitContext) -> Result<ExportTable, InitError> {
        self.init
    }

    /// The source file the descriptor was made in (e.g.
    /// `extensions/hello/src/lib.rs`), as the compiler recorded it.
    pub const fn source(&self) -> &'static str {
        self.source
    }
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

    /// A token that lets other code run work contained and charged to this
    /// extension (see [`crate::contain::Charge`]), e.g. a forked thread's
    /// body. Only here, in the extension's own `init`: an identity other
    /// code sees (an authorizer's argument) yields no charge.
    pub fn charge(&self) -> crate::contain::Charge {
        crate::contain::Charge(self.identity.id())
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
