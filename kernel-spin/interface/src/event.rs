//! The dispatcher: events as typed procedure signatures.
//!
//! An [`Event<A, R>`] is a procedure type `fn(A) -> R` with a *default
//! handler* (run when no installed handler applies) and a *result rule*
//! ([`Combine`]). Its defining module calls [`Event::define`] once with an
//! [`Authorizer`]: every later [`Event::install`] asks it whether the
//! installing [`Identity`] may handle the event. Handlers may carry a
//! *guard* (`fn(&A) -> bool`); an event is one-to-one ([`Event::new_one`],
//! at most one handler) or one-to-many ([`Event::new`]).
//!
//! # Raising, and why it costs about a direct call
//!
//! Each event keeps a *runner* word ([`spin_trusted::MethodSlot`]): a
//! procedure specialised for the event's current handlers, which
//! [`Event::raise`] loads and calls. Unguarded handlers (up to
//! [`TABLE_HANDLERS`]) sit in a lock-free table ([`spin_trusted::FnTable`]);
//! for 1 to 16 of them the runner makes exactly that many indirect calls
//! at fixed offsets (no loop; with [`Combine::Last`] the last one is a
//! tail jump), beyond that a loop calls them sixteen per trip. So raising
//! one handler is a load, a call, a load and a jump; raising *N* adds one
//! load and one indirect call per handler. With no handlers the runner is
//! the default. An install or uninstall made while a raise is running may
//! or may not be seen by that raise.
//!
//! Each event also keeps an *entry* word ([`spin_trusted::FnSlot`]): the
//! lone unguarded handler, or the default when there is none, else empty.
//! [`Event::raise_entry_first`] calls it directly (a load, a test and a
//! direct call), which suits one-to-one events such as system calls, and
//! the kernel attributes a fault on that path to [`Event::lone_owner`].
//!
//! Otherwise (guards, or more handlers than the table holds) the runner is
//! the general path: it takes a reference-counted snapshot of the handler
//! list (so a raise in progress keeps a consistent list even if a handler
//! installs or uninstalls) and runs the handlers whose guards accept, in
//! installation order. Results combine by the event's rule:
//! [`Combine::Last`] returns the last handler's result, [`Combine::Fold`]
//! folds them with a function. If no handler ran, the default's result is
//! returned.

use crate::contain::{self, Fault, critical};
use crate::domain::{self, DomainId, Identity, Uninstall};
use crate::key::KernelKey;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use spin::{Mutex, Once};
use spin_trusted::{FnSlot, FnTable, MethodSlot};

/// How the results of several handlers become the result of the raise.
pub enum Combine<R> {
    /// The result of the last handler that ran.
    Last,
    /// Fold the results in order with this function.
    Fold(fn(R, R) -> R),
}

impl<R> Clone for Combine<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Combine<R> {}

/// What an authorizer learns about the event being installed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventInfo {
    pub name: &'static str,
    /// Position in an event family (e.g. the system-call number), else 0.
    pub index: u32,
}

/// The defining module's decision whether `installer` may install a handler.
pub type Authorizer = fn(installer: &Identity, event: &EventInfo) -> bool;

/// Why a dispatcher operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// The event's authorizer refused the installer.
    Denied,
    /// The event has not been defined (no authorizer yet): nobody may install.
    NotDefined,
    /// The event was already defined by someone.
    AlreadyDefined,
    /// A one-to-one event already has its handler.
    AlreadyBound,
    /// The event has the maximum number of handlers.
    TooMany,
    /// No handler with this id, or not installed by the caller.
    NoSuchHandler,
}

/// Names one installed handler (for [`Event::uninstall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerId(u64);

/// Most handlers one event may have.
pub const MAX_HANDLERS: usize = 256;
/// Handlers one domain may install on one event (a quarter of the table;
/// the bench extension needs 50): no domain can fill an
/// event's table (or grow its snapshots, which are allocated where a
/// failure could not be contained) for everyone else.
pub const MAX_HANDLERS_PER_DOMAIN: usize = 64;
/// Events one domain may handle at all (the same reason).
pub const MAX_EVENTS_PER_DOMAIN: usize = 64;
/// Most unguarded handlers the lock-free table path takes (beyond it, or
/// with guards, raises use the snapshot path).
pub const TABLE_HANDLERS: usize = 64;

struct Binding<A: 'static, R: 'static> {
    id: u64,
    owner: DomainId,
    handler: fn(A) -> R,
    guard: Option<fn(&A) -> bool>,
}

impl<A, R> Clone for Binding<A, R> {
    fn clone(&self) -> Self {
        Self { id: self.id, owner: self.owner, handler: self.handler, guard: self.guard }
    }
}

type Handlers<A, R> = Vec<fn(A) -> R>;

/// The handler list a raise works on.
struct Snapshot<A: 'static, R: 'static> {
    bindings: Vec<Binding<A, R>>,
    /// The handlers, when none has a guard (the unrolled loop's input).
    unguarded: Option<Handlers<A, R>>,
}

struct State<A: 'static, R: 'static> {
    bindings: Vec<Binding<A, R>>,
    next_id: u64,
    snapshot: Option<Arc<Snapshot<A, R>>>,
}

/// An event with argument `A` and result `R`.
pub struct Event<A: Copy + 'static, R: 'static> {
    /// The lone unguarded handler, or the default, or empty (general path).
    entry: FnSlot<A, R>,
    info: EventInfo,
    default: fn(A) -> R,
    combine: Combine<R>,
    one_to_one: bool,
    /// The defining module and its authorizer.
    definition: Once<(DomainId, Authorizer)>,
    /// Several unguarded handlers, called in order without a lock ...
    table: FnTable<A, R, TABLE_HANDLERS>,
    /// ... by this runner (set with the table; the general path otherwise).
    runner: MethodSlot<Self, A, R>,
    /// The owner of the handler in `entry` (fault attribution).
    lone_owner: AtomicU32,
    /// The definer (an extension) has been unloaded: its default never
    /// runs again (raises take the revoked runner).
    revoked: AtomicBool,
    state: Mutex<State<A, R>>,
}

impl<A: Copy + 'static, R: 'static> Event<A, R> {
    /// A one-to-many event (any number of handlers).
    pub const fn new(name: &'static str, default: fn(A) -> R, combine: Combine<R>) -> Self {
        Self::build(name, 0, default, combine, false)
    }

    /// A one-to-one event (at most one handler), member `index` of a family.
    pub const fn new_one(name: &'static str, index: u32, default: fn(A) -> R) -> Self {
        Self::build(name, index, default, Combine::Last, true)
    }

    const fn build(
        name: &'static str,
        index: u32,
        default: fn(A) -> R,
        combine: Combine<R>,
        one: bool,
    ) -> Self {
        Self {
            entry: FnSlot::empty(),
            table: FnTable::new(default),
            runner: MethodSlot::new(run_default::<A, R>),
            info: EventInfo { name, index },
            default,
            combine,
            one_to_one: one,
            definition: Once::new(),
            lone_owner: AtomicU32::new(0),
            revoked: AtomicBool::new(false),
            state: Mutex::new(State { bindings: Vec::new(), next_id: 1, snapshot: None }),
        }
    }

    /// Where the entry word sits in the event (in bytes): the kernel's
    /// assembly fast paths read it to recognise a lone handler they can
    /// inline (the word holds that handler's address, see [`Event::is_direct`]).
    pub const ENTRY_OFFSET: usize = core::mem::offset_of!(Self, entry);

    pub fn info(&self) -> EventInfo {
        self.info
    }

    /// Claim the event as its defining module, with the authorizer that
    /// decides every install. Only the first definition counts.
    ///
    /// An extension's event is revoked when it is unloaded: installs are
    /// refused (the authorizer is its code), and raises run the handlers
    /// of live domains but never its default (see [`Event::raise`]).
    pub fn define(&'static self, definer: &Identity, authorizer: Authorizer) -> Result<(), EventError> {
        if domain::is_unloaded(definer.id()) {
            return Err(EventError::Denied);
        }
        let mut fresh = false;
        self.definition.call_once(|| {
            fresh = true;
            (definer.id(), authorizer)
        });
        if !fresh {
            return Err(EventError::AlreadyDefined);
        }
        if definer.id() != DomainId::KERNEL && !domain::note_define(definer.id(), self) {
            // Not recorded, so it could not be revoked: never usable.
            self.revoke_now();
            return Err(EventError::TooMany);
        }
        Ok(())
    }

    fn revoke_now(&self) {
        critical(|| {
            let mut s = self.state.lock();
            self.revoked.store(true, Ordering::SeqCst);
            self.refresh(&mut s);
        })
    }

    /// Install `handler` (with an optional `guard`) for `installer`, if the
    /// event's authorizer agrees.
    pub fn install(
        &'static self,
        installer: &Identity,
        handler: fn(A) -> R,
        guard: Option<fn(&A) -> bool>,
    ) -> Result<HandlerId, EventError> {
        let (definer, authorize) = self.definition.get().copied().ok_or(EventError::NotDefined)?;
        // An unloaded domain installs nothing (its threads may still be
        // running when it is unloaded), and the authorizer is the definer's
        // code: it runs contained, and not at all once the definer is gone.
        if domain::is_unloaded(installer.id()) {
            return Err(EventError::Denied);
        }
        if !contain::run_as(definer, || authorize(installer, &self.info)).unwrap_or(false) {
            return Err(EventError::Denied);
        }
        if installer.id() != DomainId::KERNEL
            && domain::events_installed_by(installer.id()) >= MAX_EVENTS_PER_DOMAIN
        {
            return Err(EventError::TooMany);
        }
        let id = critical(|| {
            let mut s = self.state.lock();
            if self.one_to_one && !s.bindings.is_empty() {
                return Err(EventError::AlreadyBound);
            }
            let own = s.bindings.iter().filter(|b| b.owner == installer.id()).count();
            if s.bindings.len() >= MAX_HANDLERS || own >= MAX_HANDLERS_PER_DOMAIN {
                return Err(EventError::TooMany);
            }
            let id = s.next_id;
            s.next_id += 1;
            s.bindings.push(Binding { id, owner: installer.id(), handler, guard });
            self.refresh(&mut s);
            Ok(id)
        })?;
        domain::note_install(installer.id(), self);
        Ok(HandlerId(id))
    }

    /// Remove a handler `installer` installed.
    pub fn uninstall(&self, installer: &Identity, handler: HandlerId) -> Result<(), EventError> {
        critical(|| {
            let mut s = self.state.lock();
            let before = s.bindings.len();
            s.bindings.retain(|b| !(b.id == handler.0 && b.owner == installer.id()));
            if s.bindings.len() == before {
                return Err(EventError::NoSuchHandler);
            }
            self.refresh(&mut s);
            Ok(())
        })
    }

    /// Number of installed handlers.
    pub fn handler_count(&self) -> usize {
        critical(|| self.state.lock().bindings.len())
    }

    /// Whether raising takes the one-indirect-call path.
    pub fn is_direct(&self) -> bool {
        self.entry.is_set()
    }

    /// Whether the entry word holds `handler`: it is the lone unguarded
    /// handler (what the kernel's fast paths look for, see
    /// [`Event::ENTRY_OFFSET`]).
    pub fn entry_is(&self, handler: fn(A) -> R) -> bool {
        self.entry.holds(handler)
    }

    /// The domain whose lone handler the entry calls (the kernel's default
    /// otherwise): whom to blame if a raise on the direct path faults.
    pub fn lone_owner(&self) -> DomainId {
        domain_from(self.lone_owner.load(Ordering::Acquire))
    }

    /// Recompute the entry and the snapshot after a change (lock held).
    fn refresh(&self, s: &mut State<A, R>) {
        if self.revoked.load(Ordering::SeqCst) {
            // Every raise takes the checked path: the entry word empty
            // (so the direct path falls back to the runner), the runner
            // the revoked one; the snapshot still lists the live handlers.
            self.entry.set(None);
            self.runner.set(run_revoked::<A, R>);
            self.table.clear();
            s.snapshot = (!s.bindings.is_empty())
                .then(|| Arc::new(Snapshot { bindings: s.bindings.clone(), unguarded: None }));
            return;
        }
        let n = s.bindings.len();
        let lone = if n == 1 && s.bindings[0].guard.is_none() { Some(&s.bindings[0]) } else { None };
        s.snapshot = if n == 0 {
            None
        } else {
            let unguarded = s
                .bindings
                .iter()
                .all(|b| b.guard.is_none())
                .then(|| s.bindings.iter().map(|b| b.handler).collect());
            Some(Arc::new(Snapshot { bindings: s.bindings.clone(), unguarded }))
        };
        let table_fns = match &s.snapshot {
            Some(snap) => snap.unguarded.as_deref(),
            None => None,
        };
        // The table, then its runner, then (below) the entry: a raise
        // finds the runner's table complete.
        match table_fns.map(|fns| self.table.set(fns)) {
            _ if n == 0 => {
                self.runner.set(run_default::<A, R>);
                self.table.clear();
            }
            Some(Ok(())) => self.runner.set(runner_for(n, self.combine)),
            _ => {
                self.runner.set(run_general::<A, R>);
                self.table.clear();
            }
        }
        match (n, lone) {
            (0, _) => {
                self.lone_owner.store(self.definer().number(), Ordering::Release);
                self.entry.set(Some(self.default));
            }
            (_, Some(b)) => {
                self.lone_owner.store(b.owner.number(), Ordering::Release);
                self.entry.set(Some(b.handler));
            }
            _ => self.entry.set(None),
        }
    }

    fn definer(&self) -> DomainId {
        self.definition.get().map_or(DomainId::KERNEL, |(d, _)| *d)
    }

    fn snapshot(&self) -> Option<Arc<Snapshot<A, R>>> {
        critical(|| self.state.lock().snapshot.clone())
    }

    /// Raise the event: run its handlers and return the combined result.
    /// A load and a call of the event's runner, which calls each handler
    /// (one handler: a load and a tail jump).
    ///
    /// An event whose defining extension has been unloaded runs the
    /// handlers of live domains; if none applies there is no result to
    /// return without the definer's default, which never runs again: the
    /// raise panics (a fault of the raising domain, contained like any
    /// panic). [`Event::raise_contained`] answers `Fault::Unloaded` instead.
    #[inline(always)]
    pub fn raise(&self, a: A) -> R {
        self.runner.get()(self, a)
    }

    /// [`Event::raise`] for events that (nearly) always have exactly one
    /// unguarded handler, such as the one-to-one system-call events: the
    /// entry word is that handler, so this is a load, a test and a direct
    /// call of it; otherwise it falls back to the runner.
    #[inline(always)]
    pub fn raise_entry_first(&self, a: A) -> R {
        match self.entry.get() {
            Some(handler) => handler(a),
            None => self.runner.get()(self, a),
        }
    }

    #[inline(never)]
    fn raise_general(&self, a: A) -> R {
        match self.snapshot() {
            None => (self.default)(a),
            Some(s) => match &s.unguarded {
                Some(fns) => self.run_unguarded(fns, a),
                None => self.run_guarded(&s.bindings, a),
            },
        }
    }

    #[inline(always)]
    fn fold(&self, acc: Option<R>, r: R) -> R {
        match (self.combine, acc) {
            (Combine::Fold(f), Some(prev)) => f(prev, r),
            _ => r,
        }
    }

    /// All handlers, no guards: four calls per loop trip.
    fn run_unguarded(&self, fns: &[fn(A) -> R], a: A) -> R {
        let mut acc: Option<R> = None;
        let mut quads = fns.chunks_exact(4);
        for q in &mut quads {
            let r = q[0](a);
            acc = Some(self.fold(acc, r));
            let r = q[1](a);
            acc = Some(self.fold(acc, r));
            let r = q[2](a);
            acc = Some(self.fold(acc, r));
            let r = q[3](a);
            acc = Some(self.fold(acc, r));
        }
        for f in quads.remainder() {
            let r = f(a);
            acc = Some(self.fold(acc, r));
        }
        match acc {
            Some(r) => r,
            None => (self.default)(a),
        }
    }

    fn run_guarded(&self, bindings: &[Binding<A, R>], a: A) -> R {
        let mut acc: Option<R> = None;
        for b in bindings {
            if b.guard.is_none_or(|g| g(&a)) {
                let r = (b.handler)(a);
                acc = Some(self.fold(acc, r));
            }
        }
        match acc {
            Some(r) => r,
            None => (self.default)(a),
        }
    }

    /// Raise, containing faults where that costs nothing extra: with one
    /// unguarded handler (or none) this is the direct call of [`Event::raise`]
    /// and the *caller* must attribute a panic or overrun to
    /// [`Event::lone_owner`] (the kernel's system-call and fault paths do,
    /// from their own recovery code); otherwise it is
    /// [`Event::raise_contained`].
    #[inline(always)]
    pub fn raise_attributed(&self, a: A) -> Result<R, Fault> {
        match self.entry.get() {
            Some(handler) => Ok(handler(a)),
            None => self.raise_contained(a),
        }
    }

    /// Raise with fault containment: each guard and handler runs as code of
    /// the domain that installed it; if one panics or overruns its budget,
    /// that domain is unloaded and the raise returns the fault.
    pub fn raise_contained(&self, a: A) -> Result<R, Fault> {
        let Some(s) = self.snapshot() else {
            let default = self.default;
            return contain::run_as(self.definer(), || default(a));
        };
        let mut acc: Option<R> = None;
        for b in s.bindings.iter() {
            if let Some(g) = b.guard
                && !contain::run_as(b.owner, || g(&a))?
            {
                continue;
            }
            let h = b.handler;
            let r = contain::run_as(b.owner, || h(a))?;
            acc = Some(self.fold(acc, r));
        }
        match acc {
            Some(r) => Ok(r),
            None => {
                let default = self.default;
                contain::run_as(self.definer(), || default(a))
            }
        }
    }
}

/// Exactly `K` unguarded handlers, the last one's result.
fn run_last<A: Copy + 'static, R: 'static, const K: usize>(e: &Event<A, R>, a: A) -> R {
    e.table.call_first_last::<K>(a)
}

/// Exactly `K` unguarded handlers, results folded in order.
fn run_fold<A: Copy + 'static, R: 'static, const K: usize>(e: &Event<A, R>, a: A) -> R {
    let Combine::Fold(f) = e.combine else { return e.table.call_first_last::<K>(a) };
    let mut acc: Option<R> = None;
    e.table.call_first::<K>(a, |r| {
        acc = Some(match acc.take() {
            Some(prev) => f(prev, r),
            None => r,
        })
    });
    acc.unwrap_or_else(|| (e.default)(a))
}

/// Any number of unguarded handlers (the table's published length), the
/// last one's result.
fn run_table_last<A: Copy + 'static, R: 'static>(e: &Event<A, R>, a: A) -> R {
    let mut acc: Option<R> = None;
    e.table.call_all(a, |r| acc = Some(r));
    acc.unwrap_or_else(|| (e.default)(a))
}

/// Any number of unguarded handlers, results folded in order.
fn run_table_fold<A: Copy + 'static, R: 'static>(e: &Event<A, R>, a: A) -> R {
    let Combine::Fold(f) = e.combine else { return run_table_last(e, a) };
    let mut acc: Option<R> = None;
    e.table.call_all(a, |r| {
        acc = Some(match acc.take() {
            Some(prev) => f(prev, r),
            None => r,
        })
    });
    acc.unwrap_or_else(|| (e.default)(a))
}

/// The runner of an event without handlers.
fn run_default<A: Copy + 'static, R: 'static>(e: &Event<A, R>, a: A) -> R {
    (e.default)(a)
}

/// The runner of an event whose definer has been unloaded.
#[cold]
#[inline(never)]
fn run_revoked<A: Copy + 'static, R: 'static>(e: &Event<A, R>, a: A) -> R {
    let mut acc: Option<R> = None;
    if let Some(s) = e.snapshot() {
        for b in s.bindings.iter() {
            if b.guard.is_none_or(|g| g(&a)) {
                let r = (b.handler)(a);
                acc = Some(e.fold(acc, r));
            }
        }
    }
    match acc {
        Some(r) => r,
        None => panic!("event {} raised after its defining domain was unloaded", e.info.name),
    }
}

/// The runner of an event that is neither direct nor a plain table.
fn run_general<A: Copy + 'static, R: 'static>(e: &Event<A, R>, a: A) -> R {
    e.raise_general(a)
}

/// The runner for `n` (≥ 1) unguarded handlers combined by `combine`.
fn runner_for<A: Copy + 'static, R: 'static>(n: usize, combine: Combine<R>) -> fn(&Event<A, R>, A) -> R {
    macro_rules! by_count {
        ($run:ident, $any:ident: $($k:literal)*) => {
            match n {
                $($k => $run::<A, R, $k>,)*
                _ => $any::<A, R>,
            }
        };
    }
    match combine {
        Combine::Last => by_count!(run_last, run_table_last: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16),
        Combine::Fold(_) => by_count!(run_fold, run_table_fold: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16),
    }
}

fn domain_from(n: u32) -> DomainId {
    // Only `refresh` stores these, from real DomainIds.
    crate::domain::id_from_number(n)
}

impl<A: Copy + 'static, R: 'static> Uninstall for Event<A, R> {
    fn remove_all_of(&self, owner: DomainId) {
        critical(|| {
            let mut s = self.state.lock();
            s.bindings.retain(|b| b.owner != owner);
            self.refresh(&mut s);
        })
    }

    fn revoke(&self) {
        self.revoke_now();
    }
}

/// An authorizer that admits anyone.
pub fn anyone(_: &Identity, _: &EventInfo) -> bool {
    true
}

/// An authorizer that admits only the kernel core.
pub fn kernel_only(who: &Identity, _: &EventInfo) -> bool {
    who.id() == DomainId::KERNEL
}

/// An event the kernel owns the raising of: anyone the event's authorizer
/// admits may handle it, but only the kernel (with its key) and the
/// holders of the capabilities that wrap a raise (the scheduler's
/// [`crate::strand::Scheduling`], the thread packages'
/// [`crate::strand::StrandCore`], this crate's locks) can raise it. A raise
/// of a core event drives kernel state machines (the scheduler's, a
/// process's system calls, the fault path), and its arguments would be
/// forged if anyone could raise it; an extension that tries does not build
/// (the method does not exist for it).
///
/// The same layout as [`Event`] (the kernel's assembly fast paths read the
/// entry word at [`KernelEvent::ENTRY_OFFSET`]).
#[repr(transparent)]
pub struct KernelEvent<A: Copy + 'static, R: 'static>(Event<A, R>);

impl<A: Copy + 'static, R: 'static> KernelEvent<A, R> {
    /// A one-to-many event (any number of handlers).
    pub const fn new(name: &'static str, default: fn(A) -> R, combine: Combine<R>) -> Self {
        Self(Event::new(name, default, combine))
    }

    /// A one-to-one event (at most one handler), member `index` of a family.
    pub const fn new_one(name: &'static str, index: u32, default: fn(A) -> R) -> Self {
        Self(Event::new_one(name, index, default))
    }

    /// See [`Event::ENTRY_OFFSET`] (the wrapper adds nothing in front).
    pub const ENTRY_OFFSET: usize = Event::<A, R>::ENTRY_OFFSET;

    /// The event with every right, raising included (the kernel core).
    #[inline(always)]
    pub fn event(&self, _key: &KernelKey) -> &Event<A, R> {
        &self.0
    }

    /// The event with every right (this crate's capabilities and locks).
    #[inline(always)]
    pub(crate) fn inner(&self) -> &Event<A, R> {
        &self.0
    }

    pub fn info(&self) -> EventInfo {
        self.0.info()
    }

    /// See [`Event::define`] (the kernel defines its events at boot, first).
    pub fn define(&'static self, definer: &Identity, authorizer: Authorizer) -> Result<(), EventError> {
        self.0.define(definer, authorizer)
    }

    /// See [`Event::install`].
    pub fn install(
        &'static self,
        installer: &Identity,
        handler: fn(A) -> R,
        guard: Option<fn(&A) -> bool>,
    ) -> Result<HandlerId, EventError> {
        self.0.install(installer, handler, guard)
    }

    /// See [`Event::uninstall`].
    pub fn uninstall(&self, installer: &Identity, handler: HandlerId) -> Result<(), EventError> {
        self.0.uninstall(installer, handler)
    }

    pub fn handler_count(&self) -> usize {
        self.0.handler_count()
    }

    pub fn is_direct(&self) -> bool {
        self.0.is_direct()
    }

    pub fn entry_is(&self, handler: fn(A) -> R) -> bool {
        self.0.entry_is(handler)
    }

    pub fn lone_owner(&self) -> DomainId {
        self.0.lone_owner()
    }
}
