//! Argument and result types of the system calls, and their limits.

/// An environment's name. Ids are never 0 and are not reused soon: a
/// stale id (of an environment that has ended) names nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct EnvId(pub u64);

/// "The caller itself", where a call takes an environment.
pub const ENV_SELF: u64 = 0;

/// `yield(YIELD_ANY)`: give the rest of the slice to the next slice owner.
pub const YIELD_ANY: u64 = 0;

/// `page_alloc(ANY_PAGE)`: any free page will do.
pub const ANY_PAGE: u64 = u64::MAX;

/// Most bytes one `console_write` takes.
pub const CONSOLE_MAX: u64 = 4096;

/// Most bindings one `bind` call takes.
pub const BIND_MAX: u64 = 512;

/// Most pages one `protect` call changes.
pub const PROTECT_MAX: u64 = 1 << 20;

/// Most environments alive (or ended but not yet reaped) at once.
pub const MAX_ENVS: usize = 64;

/// Most capabilities one environment may hold.
pub const MAX_CAPS_PER_ENV: usize = 4096;

/// Most addresses one capability's page may be bound at (in its holder's
/// address space) at the same time.
pub const MAX_MAPPINGS_PER_CAP: usize = 64;

/// Number of time slices in the kernel's slice vector.
pub const SLICE_SLOTS: usize = 64;

/// A capability: an opaque, unforgeable-in-practice handle (never 0) that
/// names one right to one physical page, held by one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Cap(pub u64);

/// What a capability allows (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Rights(pub u64);

impl Rights {
    pub const READ: Rights = Rights(1);
    pub const WRITE: Rights = Rights(2);
    pub const READ_WRITE: Rights = Rights(3);
    /// Reported by `cap_info` for the owner capability (never passed in).
    pub const OWNER: Rights = Rights(4);

    /// Whether every right in `other` is in `self`.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether this is a valid right set to grant: READ or READ|WRITE.
    pub const fn is_grantable(self) -> bool {
        self.0 == Self::READ.0 || self.0 == Self::READ_WRITE.0
    }
}

/// How a binding maps a page (a bit set); 0 removes the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Prot(pub u64);

impl Prot {
    /// Remove the binding.
    pub const UNMAP: Prot = Prot(0);
    pub const READ: Prot = Prot(1);
    pub const WRITE: Prot = Prot(2);
    pub const EXEC: Prot = Prot(4);
    /// Modifier: clear the accessed and dirty bits (otherwise a rebinding
    /// of the same page keeps them).
    pub const CLEAR_AD: Prot = Prot(8);
    pub const RW: Prot = Prot(3);
    pub const RX: Prot = Prot(5);
    /// Every bit a binding may carry.
    pub const VALID_BITS: u64 = 0xf;

    pub const fn contains(self, other: Prot) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }
}

/// One entry of a `bind` batch, as laid out in user memory. Three kinds:
///
/// - **bind** (`cap` != 0, `prot` != 0): map the capability's page at `va`
///   (replacing whatever was there);
/// - **reprotect** (`cap` == [`CAP_KEEP`], `prot` != 0): keep the page
///   already bound at `va`, change only its protection — WRITE is allowed
///   only if the capability it was bound with allowed writing (the kernel
///   recorded that at bind time, so no capability is looked up again);
/// - **unbind** (`prot` == 0): remove the binding at `va` (`cap` ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Binding {
    /// Page-aligned virtual address in the target's address space.
    pub va: u64,
    /// Capability (held by the target) for the page to map, or [`CAP_KEEP`].
    pub cap: u64,
    /// [`Prot`] bits: 0 = unmap, else READ plus optional WRITE, EXEC, CLEAR_AD.
    pub prot: u64,
}

/// `Binding::cap` for "keep the page bound at this address" (no
/// capability is ever 0).
pub const CAP_KEEP: u64 = 0;

/// Which entry point `set_handler` registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum HandlerKind {
    /// Every ring-3 exception, on the given stack (see `layout::ExceptionArea`).
    Exception = 0,
    /// Protected control transfers into this environment.
    Pct = 1,
    /// Kernel upcalls (end of slice, revocation), on the given stack.
    Upcall = 2,
}

impl HandlerKind {
    pub fn from_number(n: u64) -> Option<HandlerKind> {
        [HandlerKind::Exception, HandlerKind::Pct, HandlerKind::Upcall].into_iter().find(|k| *k as u64 == n)
    }
}

/// Why the kernel upcalls an environment (RAX at the upcall entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum UpcallKind {
    /// The time slice is over: save what you need and `yield` within
    /// [`GRACE_TICKS`] ticks, or be preempted and penalised.
    SliceEnd = 1,
    /// Return RDI pages (free them) within RSI ticks, or the kernel
    /// repossesses pages of its choosing (see `EnvInfo::repossessed`).
    Revoke = 2,
}

impl UpcallKind {
    pub fn from_number(n: u64) -> Option<UpcallKind> {
        [UpcallKind::SliceEnd, UpcallKind::Revoke].into_iter().find(|k| *k as u64 == n)
    }
}

/// Timer ticks an environment has after an end-of-slice upcall to give up
/// the processor (yield, wait, exit or PCT) before it is preempted.
pub const GRACE_TICKS: u64 = 1;

/// A child's state, as `env_status` reports it (r0; r1 is the detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum EnvStatus {
    /// Created, not started.
    NotStarted = 1,
    /// Started and not ended (running, ready or waiting).
    Alive = 2,
    /// Called `exit`; detail = the exit code.
    Exited = 3,
    /// Killed by an ancestor (or by the kernel's teardown of an ancestor).
    Killed = 4,
    /// Killed by the kernel because it could not take an exception (no
    /// handler, or a fault inside its handler); detail = the trap number.
    Faulted = 5,
}

impl EnvStatus {
    pub fn from_number(n: u64) -> Option<EnvStatus> {
        [EnvStatus::NotStarted, EnvStatus::Alive, EnvStatus::Exited, EnvStatus::Killed, EnvStatus::Faulted]
            .into_iter()
            .find(|s| *s as u64 == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_and_prot() {
        assert!(Rights::READ_WRITE.contains(Rights::WRITE));
        assert!(!Rights::READ.contains(Rights::WRITE));
        assert!(Rights::READ.is_grantable() && Rights::READ_WRITE.is_grantable());
        assert!(!Rights::WRITE.is_grantable() && !Rights(0).is_grantable() && !Rights(7).is_grantable());
        assert!(Prot::RW.contains(Prot::READ));
        assert_eq!(Prot::READ.union(Prot::EXEC), Prot::RX);
        assert_eq!(core::mem::size_of::<Binding>(), 24);
    }

    #[test]
    fn enumerations_round_trip() {
        for k in [HandlerKind::Exception, HandlerKind::Pct, HandlerKind::Upcall] {
            assert_eq!(HandlerKind::from_number(k as u64), Some(k));
        }
        assert_eq!(HandlerKind::from_number(3), None);
        for k in [UpcallKind::SliceEnd, UpcallKind::Revoke] {
            assert_eq!(UpcallKind::from_number(k as u64), Some(k));
        }
        for s in 1..=5 {
            assert_eq!(EnvStatus::from_number(s).map(|s| s as u64), Some(s));
        }
        assert_eq!(EnvStatus::from_number(0), None);
    }
}
