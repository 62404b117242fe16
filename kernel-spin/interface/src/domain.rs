//! Domains: identities of loaded extensions, named sets of exported
//! interfaces, and linking (SPIN's Create, Resolve and Combine).
//!
//! - An [`Identity`] is the unforgeable name of a loaded extension; the
//!   kernel's loader creates one per extension (it needs the
//!   [`KernelKey`]). Installing handlers and resolving imports present it.
//! - [`Domain::create`] makes a domain from an extension's [`ExportTable`]:
//!   typed items (procedures, events, service objects) under
//!   `interface.symbol` names, each interface public or granted to named
//!   domains only.
//! - [`Domain::resolve`] binds an importer's [`Import`] slots to a domain's
//!   exports: every import of an interface the domain exports must exist,
//!   have the expected type, and be granted to the importer, or nothing is
//!   bound. A bound import is a function pointer in the importer's slot, so
//!   a cross-domain call costs an indirect call ([`Import::call`]).
//! - [`Domain::combine`] makes an aggregate domain exporting the union.
//! - [`unload`] (kernel only) revokes a faulted domain: its handlers are
//!   uninstalled, its exports vanish and imports bound to them are emptied
//!   (a later call returns [`LinkError::Unbound`]).

use crate::contain::critical;
use crate::key::KernelKey;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;
use spin_trusted::FnSlot;

/// A domain's number. `DomainId::KERNEL` is the kernel core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainId(u32);

impl DomainId {
    /// The kernel core's own domain.
    pub const KERNEL: DomainId = DomainId(0);

    /// The number, for messages.
    pub const fn number(self) -> u32 {
        self.0
    }

    /// The domain numbered `n` (the kernel, which keeps numbers in tables
    /// its panic path reads without locks).
    pub const fn from_number(_key: &KernelKey, n: u32) -> DomainId {
        DomainId(n)
    }
}

/// The unforgeable identity of a loaded extension (or of the kernel).
#[derive(Debug)]
pub struct Identity {
    id: DomainId,
    name: &'static str,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

impl Identity {
    /// A new identity named `name` (the kernel's loader, once per extension).
    pub fn new(_key: &KernelKey, name: &'static str) -> &'static Identity {
        let id = DomainId(NEXT_ID.fetch_add(1, Ordering::SeqCst));
        Box::leak(Box::new(Identity { id, name }))
    }

    /// The kernel core's identity.
    pub fn kernel(_key: &KernelKey) -> &'static Identity {
        static KERNEL: Identity = Identity { id: DomainId::KERNEL, name: "kernel" };
        &KERNEL
    }

    pub fn id(&self) -> DomainId {
        self.id
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Why linking failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The domain exports the interface but not this symbol.
    Missing { interface: &'static str, symbol: &'static str },
    /// The export has another type than the import expects.
    TypeMismatch { interface: &'static str, symbol: &'static str },
    /// The interface is not granted to the importing domain.
    NotGranted { interface: &'static str },
    /// The exporting domain has been unloaded.
    Unloaded,
    /// A domain with this name exists, or two combined domains export the same symbol.
    Duplicate,
    /// A call through an import that is not (or no longer) bound.
    Unbound,
    /// No domain has this name.
    NoSuchDomain,
    /// No kernel memory to record the domain.
    NoMemory,
    /// An extension's procedure is reached through an [`Import`] (which
    /// unload revokes), never looked up as a bare function pointer.
    ImportOnly { interface: &'static str, symbol: &'static str },
    /// An extension may export procedures and events, not other objects:
    /// a reference to an object runs its code with no way to revoke it
    /// once the domain is unloaded.
    NotRevocable { interface: &'static str, symbol: &'static str },
}

/// Who may import an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any domain.
    Public,
    /// Only the domains with these names.
    Only(&'static [&'static str]),
}

impl Access {
    fn admits(self, importer: &Identity) -> bool {
        match self {
            Access::Public => true,
            Access::Only(names) => importer.id == DomainId::KERNEL || names.contains(&importer.name),
        }
    }
}

/// What an export is (who may export it, how it is reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A procedure: imported (revoked on unload).
    Procedure,
    /// An event: the dispatcher runs none of an unloaded definer's code.
    Event,
    /// Anything else (the kernel's own capabilities).
    Object,
}

struct ExportEntry {
    interface: &'static str,
    symbol: &'static str,
    owner: DomainId,
    access: Access,
    kind: Kind,
    value: Box<dyn Any + Send + Sync>,
}

/// What an extension exports: typed items under `interface.symbol`.
pub struct ExportTable {
    entries: Vec<ExportEntry>,
}

impl Default for ExportTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ExportTable {
    pub fn new() -> Self {
        Self { entries: Vec::new() }
    }

    /// Export a procedure (callable through an [`Import`]).
    pub fn procedure<A: 'static, R: 'static>(
        self,
        interface: &'static str,
        symbol: &'static str,
        f: fn(A) -> R,
    ) -> Self {
        self.item(interface, symbol, Kind::Procedure, f)
    }

    /// Export an event (looked up as `&'static Event<A, R>`). Once the
    /// exporter is unloaded the event runs none of its code: handlers of
    /// live domains still run, the default does not (see
    /// [`crate::Event::raise`]).
    pub fn event<A: Copy + Send + Sync + 'static, R: Send + Sync + 'static>(
        self,
        interface: &'static str,
        symbol: &'static str,
        e: &'static crate::Event<A, R>,
    ) -> Self {
        self.item(interface, symbol, Kind::Event, e)
    }

    /// Export a copyable item: a service object (`&'static dyn Trait`,
    /// `&'static Struct`), a value. The kernel's domain only: an
    /// extension's [`Domain::create`] refuses it (`NotRevocable`).
    /// Extensions export procedures and events.
    pub fn object<T: Copy + Send + Sync + 'static>(
        self,
        interface: &'static str,
        symbol: &'static str,
        item: T,
    ) -> Self {
        self.item(interface, symbol, Kind::Object, item)
    }

    fn item<T: Send + Sync + 'static>(
        mut self,
        interface: &'static str,
        symbol: &'static str,
        kind: Kind,
        v: T,
    ) -> Self {
        self.entries.push(ExportEntry {
            interface,
            symbol,
            owner: DomainId::KERNEL,
            access: Access::Public,
            kind,
            value: Box::new(v),
        });
        self
    }

    /// Restrict `interface` (every symbol of it exported so far) to the named domains.
    pub fn restrict(mut self, interface: &'static str, to: &'static [&'static str]) -> Self {
        for e in self.entries.iter_mut().filter(|e| e.interface == interface) {
            e.access = Access::Only(to);
        }
        self
    }

    /// Number of exported items.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

struct DomainInner {
    name: String,
    exports: Vec<Arc<ExportEntry>>,
}

/// A capability for a domain: a named set of exported interfaces. Cloning
/// it shares the capability; it grants no access by itself (grants decide).
#[derive(Clone)]
pub struct Domain(Arc<DomainInner>);

impl core::fmt::Debug for Domain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Domain({})", self.0.name)
    }
}

/// Keeps [`ImportSlot`] implemented by this crate's [`Import`] alone: its
/// methods run inside the registry's critical section, where no extension
/// code may run (a panic there could not be contained, a loop not stopped).
mod sealed {
    pub trait Sealed {}
}

/// Something [`Domain::resolve`] can bind: an [`Import`] (sealed: no other
/// type can be one).
pub trait ImportSlot: Sync + sealed::Sealed {
    fn interface(&self) -> &'static str;
    fn symbol(&self) -> &'static str;
    /// Whether `item` has the type this slot expects.
    fn accepts(&self, item: &(dyn Any + Send + Sync)) -> bool;
    /// Bind the slot to `item` (which [`ImportSlot::accepts`]).
    fn bind(&self, item: &(dyn Any + Send + Sync));
    /// Empty the slot.
    fn unbind(&self);
    fn is_bound(&self) -> bool;
}

/// Something that holds handlers the loader must remove when their
/// installer is unloaded: an [`crate::Event`]. Private to this crate: an
/// extension that could call it would remove anyone's handlers.
pub(crate) trait Uninstall: Sync {
    fn remove_all_of(&self, owner: DomainId);
    /// Its definer is unloaded: run none of its code (the default) again.
    fn revoke(&self);
}

/// The global linking state: the name service and what to revoke on unload.
struct Registry {
    domains: Vec<(DomainId, Domain)>,
    unloaded: Vec<DomainId>,
    /// Import slots and the domain whose export they were bound to.
    bound: Vec<(DomainId, &'static dyn ImportSlot)>,
    /// Events on which a domain installed handlers.
    installed: Vec<(DomainId, &'static dyn Uninstall)>,
    /// Events an extension defined (revoked when it is unloaded).
    defined: Vec<(DomainId, &'static dyn Uninstall)>,
    /// Names the loader reserved for extensions whose `init` is running.
    reserved: Vec<&'static str>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    domains: Vec::new(),
    unloaded: Vec::new(),
    bound: Vec::new(),
    installed: Vec::new(),
    defined: Vec::new(),
    reserved: Vec::new(),
});

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    critical(|| f(&mut REGISTRY.lock()))
}

impl Domain {
    /// Create the domain of `owner` from its export table and register it
    /// under the owner's name (SPIN's Create). A name can be registered once.
    pub fn create(owner: &Identity, table: ExportTable) -> Result<Domain, LinkError> {
        if owner.id != DomainId::KERNEL
            && let Some(e) = table.entries.iter().find(|e| e.kind == Kind::Object)
        {
            return Err(LinkError::NotRevocable { interface: e.interface, symbol: e.symbol });
        }
        let exports = table
            .entries
            .into_iter()
            .map(|mut e| {
                e.owner = owner.id;
                Arc::new(e)
            })
            .collect();
        let d = Domain(Arc::new(DomainInner { name: String::from(owner.name), exports }));
        with_registry(|r| {
            if r.domains.iter().any(|(_, x)| x.0.name == owner.name) || unloaded_in(r, owner.id) {
                return Err(LinkError::Duplicate);
            }
            r.domains.try_reserve(1).map_err(|_| LinkError::NoMemory)?;
            // The name the loader reserved for it before its `init` is now its own.
            r.reserved.retain(|n| *n != owner.name);
            r.domains.push((owner.id, d.clone()));
            Ok(d)
        })
    }

    /// Reserve `name` for an extension about to be loaded, before any of
    /// its code runs (the kernel's loader; names are the kernel owner's to
    /// give, never the extension's to choose). `Duplicate` if a domain has
    /// it or another load reserved it.
    pub fn reserve(_key: &KernelKey, name: &'static str) -> Result<(), LinkError> {
        with_registry(|r| {
            if r.domains.iter().any(|(_, x)| x.0.name == name) || r.reserved.contains(&name) {
                return Err(LinkError::Duplicate);
            }
            r.reserved.try_reserve(1).map_err(|_| LinkError::NoMemory)?;
            r.reserved.push(name);
            Ok(())
        })
    }

    /// Give back a name reserved for a load that failed.
    pub fn release(_key: &KernelKey, name: &'static str) {
        with_registry(|r| r.reserved.retain(|n| *n != name));
    }

    /// An aggregate domain exporting everything `parts` export (SPIN's
    /// Combine). It is not registered by name; symbols must not collide.
    pub fn combine(name: &str, parts: &[&Domain]) -> Result<Domain, LinkError> {
        let mut exports: Vec<Arc<ExportEntry>> = Vec::new();
        for p in parts {
            for e in &p.0.exports {
                if exports.iter().any(|x| x.interface == e.interface && x.symbol == e.symbol) {
                    return Err(LinkError::Duplicate);
                }
                exports.push(e.clone());
            }
        }
        Ok(Domain(Arc::new(DomainInner { name: String::from(name), exports })))
    }

    /// Look a registered domain up by name.
    pub fn named(name: &str) -> Result<Domain, LinkError> {
        with_registry(|r| r.domains.iter().find(|(_, d)| d.0.name == name).map(|(_, d)| d.clone()))
            .ok_or(LinkError::NoSuchDomain)
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether the domain exports `interface`.
    pub fn exports(&self, interface: &str) -> bool {
        self.0.exports.iter().any(|e| e.interface == interface)
    }

    fn find(
        &self,
        importer: &Identity,
        interface: &'static str,
        symbol: &'static str,
    ) -> Result<&ExportEntry, LinkError> {
        let mut of_interface = self.0.exports.iter().filter(|e| e.interface == interface).peekable();
        if of_interface.peek().is_none() {
            return Err(LinkError::Missing { interface, symbol });
        }
        let e = of_interface.find(|e| e.symbol == symbol).ok_or(LinkError::Missing { interface, symbol })?;
        if !e.access.admits(importer) {
            return Err(LinkError::NotGranted { interface });
        }
        if is_unloaded(e.owner) {
            return Err(LinkError::Unloaded);
        }
        Ok(e)
    }

    /// Bind every import of `imports` whose interface this domain exports
    /// (SPIN's Resolve); imports of other interfaces are left alone. All or
    /// nothing: a missing symbol, a type mismatch, an interface not granted
    /// to `importer` or an unloaded exporter refuses the whole resolve.
    /// Returns how many imports were bound.
    pub fn resolve(
        &self,
        importer: &Identity,
        imports: &[&'static dyn ImportSlot],
    ) -> Result<usize, LinkError> {
        let mut plan: Vec<(&'static dyn ImportSlot, &ExportEntry)> = Vec::new();
        for slot in imports.iter().copied().filter(|s| self.exports(s.interface())) {
            let e = self.find(importer, slot.interface(), slot.symbol())?;
            if !slot.accepts(&*e.value) {
                return Err(LinkError::TypeMismatch { interface: slot.interface(), symbol: slot.symbol() });
            }
            plan.push((slot, e));
        }
        with_registry(|r| {
            for (slot, e) in &plan {
                slot.bind(&*e.value);
                r.bound.retain(|(_, s)| !same_slot(*s, *slot));
                r.bound.push((e.owner, *slot));
            }
        });
        Ok(plan.len())
    }

    /// Resolve one copyable item (an event, or a service object of the
    /// kernel's) and return a copy of it. Such imports are capabilities
    /// the importer keeps: an extension's event runs none of its code once
    /// it is unloaded, and the kernel's objects are never unloaded. An
    /// extension's procedure is `ImportOnly` (an [`Import`] is revoked on
    /// unload, a bare function pointer could not be).
    pub fn lookup<T: Copy + 'static>(
        &self,
        importer: &Identity,
        interface: &'static str,
        symbol: &'static str,
    ) -> Result<T, LinkError> {
        let e = self.find(importer, interface, symbol)?;
        if e.kind == Kind::Procedure && e.owner != DomainId::KERNEL {
            return Err(LinkError::ImportOnly { interface, symbol });
        }
        e.value.downcast_ref::<T>().copied().ok_or(LinkError::TypeMismatch { interface, symbol })
    }
}

fn same_slot(a: &dyn ImportSlot, b: &dyn ImportSlot) -> bool {
    core::ptr::addr_eq(a as *const dyn ImportSlot, b as *const dyn ImportSlot)
}

/// Domains numbered below this have their unloaded bit in [`UNLOADED`].
const UNLOADED_BITS: usize = 4096;

/// One bit per domain number below [`UNLOADED_BITS`]: set (for good) when
/// the domain is unloaded. Lets [`is_unloaded`] answer without the
/// registry's lock (the kernel asks on every resume of a strand that runs
/// extension code, and from its panic and timer paths).
static UNLOADED: [AtomicU64; UNLOADED_BITS / 64] = [const { AtomicU64::new(0) }; UNLOADED_BITS / 64];

/// Set (for good) once any domain has been unloaded.
static ANY_UNLOADED: AtomicBool = AtomicBool::new(false);

/// Whether any domain has ever been unloaded (one load: the kernel's
/// context switch asks before looking further).
#[inline(always)]
pub fn any_unloaded() -> bool {
    ANY_UNLOADED.load(Ordering::Relaxed)
}

/// Whether `id` has been unloaded.
pub fn is_unloaded(id: DomainId) -> bool {
    match unloaded_bit(id) {
        Some(set) => set,
        None => with_registry(|r| r.unloaded.contains(&id)),
    }
}

/// The unloaded bit of `id`, if its number has one.
fn unloaded_bit(id: DomainId) -> Option<bool> {
    let n = id.0 as usize;
    UNLOADED.get(n / 64).map(|word| word.load(Ordering::Acquire) & (1 << (n % 64)) != 0)
}

/// [`is_unloaded`] with the registry already locked.
fn unloaded_in(r: &Registry, id: DomainId) -> bool {
    unloaded_bit(id).unwrap_or_else(|| r.unloaded.contains(&id))
}

/// Record that `owner` installed handlers on `event` (called by the dispatcher).
/// How many events domain `id` has installed handlers on.
pub(crate) fn events_installed_by(id: DomainId) -> usize {
    with_registry(|r| r.installed.iter().filter(|(o, _)| *o == id).count())
}

/// Record that extension `definer` defined `event`. `false` (nothing
/// recorded) without heap for the record: the definition is then refused.
pub(crate) fn note_define(definer: DomainId, event: &'static dyn Uninstall) -> bool {
    with_registry(|r| {
        if r.defined.try_reserve(1).is_err() {
            return false;
        }
        r.defined.push((definer, event));
        true
    })
}

pub(crate) fn note_install(owner: DomainId, event: &'static dyn Uninstall) {
    with_registry(|r| {
        let e = event as *const dyn Uninstall;
        if !r.installed.iter().any(|(o, x)| *o == owner && core::ptr::addr_eq(*x as *const dyn Uninstall, e))
        {
            r.installed.push((owner, event));
        }
    })
}

/// Unload domain `id` (kernel only; used by fault containment): remove its
/// domain from the name service, empty every import bound to its exports,
/// and uninstall every handler it installed. Returns how many imports and
/// events were touched.
pub fn unload(_key: &KernelKey, id: DomainId) -> (usize, usize) {
    if id == DomainId::KERNEL {
        return (0, 0);
    }
    if let Some(word) = UNLOADED.get(id.0 as usize / 64) {
        word.fetch_or(1 << (id.0 % 64), Ordering::AcqRel);
    }
    ANY_UNLOADED.store(true, Ordering::SeqCst);
    let (slots, events, defined) = with_registry(|r| {
        // Numbers without a bit are listed (if the heap has room: the
        // registry forgets the domain's exports and handlers either way).
        if unloaded_bit(id).is_none() && !r.unloaded.contains(&id) && r.unloaded.try_reserve(1).is_ok() {
            r.unloaded.push(id);
        }
        r.domains.retain(|(o, _)| *o != id);
        let slots: Vec<_> = r.bound.iter().filter(|(o, _)| *o == id).map(|(_, s)| *s).collect();
        r.bound.retain(|(o, _)| *o != id);
        let events: Vec<_> = r.installed.iter().filter(|(o, _)| *o == id).map(|(_, e)| *e).collect();
        r.installed.retain(|(o, _)| *o != id);
        let defined: Vec<_> = r.defined.iter().filter(|(o, _)| *o == id).map(|(_, e)| *e).collect();
        r.defined.retain(|(o, _)| *o != id);
        (slots, events, defined)
    });
    for e in &defined {
        e.revoke();
    }
    for s in &slots {
        s.unbind();
    }
    for e in &events {
        e.remove_all_of(id);
    }
    (slots.len(), events.len())
}

/// A typed import of a procedure `fn(A) -> R`, declared as a `static` by the
/// importer and bound by [`Domain::resolve`].
pub struct Import<A: 'static, R: 'static> {
    interface: &'static str,
    symbol: &'static str,
    slot: FnSlot<A, R>,
}

impl<A: 'static, R: 'static> Import<A, R> {
    pub const fn new(interface: &'static str, symbol: &'static str) -> Self {
        Self { interface, symbol, slot: FnSlot::empty() }
    }

    /// Call the bound procedure: a protected cross-domain call. One load, a
    /// test and an indirect call.
    #[inline(always)]
    pub fn call(&self, a: A) -> Result<R, LinkError> {
        match self.slot.get() {
            Some(f) => Ok(f(a)),
            None => Err(LinkError::Unbound),
        }
    }
}

impl<A: 'static, R: 'static> sealed::Sealed for Import<A, R> {}

impl<A: 'static, R: 'static> ImportSlot for Import<A, R> {
    fn interface(&self) -> &'static str {
        self.interface
    }
    fn symbol(&self) -> &'static str {
        self.symbol
    }
    fn accepts(&self, item: &(dyn Any + Send + Sync)) -> bool {
        item.is::<fn(A) -> R>()
    }
    fn bind(&self, item: &(dyn Any + Send + Sync)) {
        self.slot.set(item.downcast_ref::<fn(A) -> R>().copied());
    }
    fn unbind(&self) {
        self.slot.set(None);
    }
    fn is_bound(&self) -> bool {
        self.slot.is_set()
    }
}

/// Rebuild a `DomainId` from a number this crate stored earlier.
pub(crate) fn id_from_number(n: u32) -> DomainId {
    DomainId(n)
}
