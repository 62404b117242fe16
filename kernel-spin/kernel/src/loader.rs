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

/// Where a boot extension comes from.
pub enum Boot {
    /// Linked into the kernel image.
    Linked(&'static Extension),
    /// A certified object of the boot archive (`dynload`), by file stem.
    Object(&'static str),
}

/// The extensions kernel-spin runs, in load order (each may import from
/// the ones before it), with the name the kernel's owner gives each: its
/// domain's name, reserved before its `init` runs, on which every grant of
/// the kernel's policy (`kdomain`) is keyed. The name an extension writes
/// in its own `Extension` is only its suggestion and confers nothing.
pub const BOOT_EXTENSIONS: &[(&str, Boot)] = &[
    ("scheduler", Boot::Linked(&spin_ext_scheduler::EXTENSION)),
    ("threads", Boot::Linked(&spin_ext_threads::EXTENSION)),
    ("syscalls", Boot::Linked(&spin_ext_syscalls::EXTENSION)),
    ("xas", Boot::Linked(&spin_ext_xas::EXTENSION)),
    ("vm", Boot::Linked(&spin_ext_vm::EXTENSION)),
    ("uthreads", Boot::Linked(&spin_ext_uthreads::EXTENSION)),
    ("bench", Boot::Linked(&spin_ext_bench::EXTENSION)),
    // Loaded into the running kernel from the boot archive (not linked).
    ("hello", Boot::Object("hello")),
    // The course exercise "an extension with a guard" (reference solution).
    ("evens", Boot::Object("evens")),
    // The protocol graph: Ether.PacketArrived -> IP -> UDP -> endpoints.
    ("arp", Boot::Linked(&spin_ext_arp::EXTENSION)),
    ("ip", Boot::Linked(&spin_ext_ip::EXTENSION)),
    ("udp", Boot::Linked(&spin_ext_udp::EXTENSION)),
    ("udp-echo", Boot::Linked(&spin_ext_udp_echo::EXTENSION)),
    ("sockets", Boot::Linked(&spin_ext_sockets::EXTENSION)),
];

/// Load extension `ext` as the domain `name` (the kernel's choice): the
/// name is reserved first (`Link(Duplicate)` before any of its code runs),
/// its `init` runs contained, and every failure leaves nothing behind —
/// handlers it installed, imports it bound, the name.
pub fn load(
    key: &KernelKey,
    name: &'static str,
    ext: &'static Extension,
) -> Result<&'static Identity, LoadError> {
    Domain::reserve(key, name).map_err(LoadError::Link)?;
    let identity = Identity::new(key, name);
    let ctx = InitContext::new(key, identity);
    let init = ext.init();
    crate::contain::note_source(identity.id(), ext.source());
    let failed = |e: LoadError| {
        // Undo what it did before failing (a fault has unloaded it already).
        // (and threads it forked end when next resumed).
        crate::contain::unload_domain(identity.id());
        Domain::release(key, name);
        Err(e)
    };
    match contain::run_for(key, identity.id(), || init(&ctx)) {
        Err(fault) => failed(LoadError::Fault(fault)),
        Ok(Err(e)) => failed(LoadError::Init(e)),
        Ok(Ok(table)) => match Domain::create(identity, table) {
            Err(e) => failed(LoadError::Link(e)),
            Ok(_) => {
                log::info!("kernel-spin: loaded extension {name:?} (domain {})", identity.id().number());
                Ok(identity)
            }
        },
    }
}
