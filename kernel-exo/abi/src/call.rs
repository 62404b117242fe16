//! System-call numbers, with each call's arguments, results and errors.
//!
//! Numbers below [`FAST_CALLS`] are *table calls*: they never switch
//! environments and return with `sysretq` through one indirect call in the
//! entry stub. Numbers from [`FIRST_SWITCHING`] on may run another
//! environment before the caller continues (or never continue it).

/// Number of entries in the kernel's fast call table (unused ones answer
/// [`crate::Error::UnknownCall`]).
pub const FAST_CALLS: u64 = 32;

/// First call number that may switch environments.
pub const FIRST_SWITCHING: u64 = 32;

/// Every system call. The doc of each variant lists arguments (a0..a5 in
/// RDI, RSI, RDX, R10, R8, R9), results (r0 in RDX, r1 in R8) and the
/// errors it can return besides the ones every call may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Call {
    /// Do nothing and return 0: the null system call.
    Null = 0,
    /// Write `a1` bytes at user address `a0` to the console (at most
    /// [`crate::types::CONSOLE_MAX`]). Errors: BadAddress, BadLength.
    ConsoleWrite = 1,
    /// r0 = the caller's [`crate::EnvId`].
    EnvSelf = 2,
    /// Allocate physical page number `a0`, or any free page if `a0` is
    /// [`crate::ANY_PAGE`]. The page is zeroed and owned by the caller.
    /// r0 = owner capability, r1 = page number.
    /// Errors: NoSuchPage, PageInUse, OutOfMemory, QuotaExceeded, Limit.
    PageAlloc = 3,
    /// Free the page named by owner capability `a0`: every grant of it is
    /// revoked, every binding of it in any environment is broken.
    /// Errors: InvalidCap, Revoked, NotHolder, NoRights (not the owner).
    PageFree = 4,
    /// Grant the page of owner capability `a0` to environment `a1` with
    /// [`crate::Rights`] `a2` (READ, or READ|WRITE). r0 = the new
    /// capability, held by `a1` (pass it on, e.g. in a PCT message).
    /// Errors: cap errors, NoRights, NoSuchEnv, BadArgument, Limit.
    PageGrant = 5,
    /// Give the page of owner capability `a0` to environment `a1` (a child
    /// or the parent), which becomes its owner and is charged for it. The
    /// caller's bindings and all grants are broken. r0 = the new owner
    /// capability, held by `a1`.
    /// Errors: cap errors, NoRights, NoSuchEnv, Denied, QuotaExceeded.
    PageTransfer = 6,
    /// Revoke capability `a0`: the holder of a grant drops it, or the
    /// owner of the page takes back a grant it gave. Bindings made with
    /// it are broken. Errors: InvalidCap, Revoked, NotHolder, BadArgument
    /// (an owner capability: use PageFree).
    CapRevoke = 7,
    /// r0 = page number of capability `a0`, r1 = its [`crate::Rights`]
    /// (with [`crate::Rights::OWNER`] for the owner capability). The
    /// caller must hold `a0` — or own its page: an owner may ask about a
    /// grant it gave, to learn whether the holder still holds it (Revoked
    /// once the holder dropped it or ended).
    /// Errors: InvalidCap, Revoked, NotHolder.
    CapInfo = 8,
    /// Apply `a2` [`crate::Binding`]s (bind, reprotect or unbind) read
    /// from user address `a1` to the address space of environment `a0`
    /// ([`crate::ENV_SELF`] or a descendant). Each binding's capability must
    /// be held by that environment. Stops at the first bad binding; r0 =
    /// how many were applied. Reprotecting an address with nothing bound
    /// is BadAddress.
    /// Errors: BadAddress, Unaligned, BadLength, BadArgument, cap errors,
    /// NoRights, NoSuchEnv, Denied, OutOfMemory, QuotaExceeded.
    Bind = 9,
    /// Register handler kind `a0` ([`crate::HandlerKind`]) at entry `a1`
    /// with stack top `a2` (16-byte aligned; ignored for the PCT entry).
    /// Entry 0 unregisters. Errors: BadArgument, BadAddress, Unaligned.
    SetHandler = 10,
    /// Create a child environment with `a0` time slices and a page quota
    /// of `a1`, both taken from the caller's own. The child has an empty
    /// address space and has not started. r0 = its [`crate::EnvId`].
    /// Errors: Limit, QuotaExceeded, OutOfMemory, BadArgument.
    EnvCreate = 11,
    /// Start child `a0` at RIP `a1` with RSP `a2`, RDI = `a3`, RSI = `a4`
    /// and every other register zero. Errors: NoSuchEnv, Denied,
    /// BadState (already started), BadAddress.
    EnvStart = 12,
    /// Kill environment `a0` (a descendant, or [`crate::ENV_SELF`]):
    /// everything it holds is freed, its descendants are killed too. On a
    /// child that has already ended it only removes the record.
    /// Errors: NoSuchEnv, Denied.
    EnvKill = 13,
    /// r0 = [`crate::EnvStatus`] code of child `a0`, r1 = its detail
    /// (exit code, trap number). Errors: NoSuchEnv, Denied.
    EnvStatus = 14,
    /// Ask child `a0` to return `a1` pages within `a2` timer ticks (the
    /// revocation protocol; the kernel repossesses what is not returned).
    /// Errors: NoSuchEnv, Denied, BadArgument, BadState (one already pending).
    EnvReclaim = 15,
    /// Copy up to `a4` bytes from offset `a2` of the boot-archive program
    /// named by the `a1` bytes at `a0`, into user buffer `a3`. r0 = bytes
    /// copied, r1 = the file's size. Errors: NotFound, BadAddress, BadLength.
    ProgramRead = 16,
    /// Change the protection of the `a2` pages bound from `a1` on in the
    /// address space of `a0` ([`crate::ENV_SELF`] or a descendant) to
    /// [`crate::Prot`] `a3` — a reprotection (see [`crate::Binding`]) of a
    /// whole range in one call, without a list. WRITE only where the
    /// capability each page was bound with allows it. Stops at the first
    /// page with nothing bound. r0 = pages whose entry changed (a page that
    /// already had `a3` does not count); after an error, r0 = pages
    /// reprotected before the one that stopped it.
    /// Errors: BadAddress, Unaligned, BadLength, BadArgument, NoRights,
    /// NoSuchEnv, Denied.
    Protect = 17,
    /// Which capability the page bound at `a0` in the caller's own address
    /// space was bound with: r0 = that capability (held by the caller),
    /// r1 = the page number. Lets a library OS adopt pages it did not bind
    /// itself (the program image its loader bound). Errors: Unaligned,
    /// BadAddress (outside user space, or nothing bound there).
    Lookup = 18,
    /// Download a wakeup predicate (`exo_abi::code`): `a1` instructions at
    /// user address `a0`, reading the `a3` windows ([`crate::code::Window`])
    /// at `a2`. The kernel verifies it and installs it as the caller's
    /// predicate, replacing any earlier one; `a1` = 0 removes it. Each
    /// window's capability must be held by the caller with READ rights;
    /// the window may not cross its page. When the code is refused:
    /// status BadCode, r0 = the [`crate::code::Reject`] reason, r1 = the
    /// instruction's index.
    /// Errors: BadCode, BadAddress, BadLength, BadArgument (a window), cap
    /// errors, NoRights, OutOfMemory.
    PredSet = 30,
    /// About NIC `a0` (numbered in PCI slot order from 0): r0 = its MAC
    /// address (the 6 bytes big-endian in the low 48 bits), r1 = how many
    /// NICs there are. If `a1` is not 0, the NIC's
    /// [`crate::net::NicStats`] are copied to user address `a1`.
    /// Errors: NotFound (no such NIC), BadAddress.
    NetInfo = 19,
    /// Transmit the `a3`-byte frame at byte `a2` of the page named by
    /// capability `a1` (held by the caller, with WRITE) on NIC `a0`, and
    /// wait until the device has sent it. The frame must fit in the page
    /// with [`crate::net::TX_HEADROOM`] bytes before it (overwritten with
    /// the device's header: the NIC reads the page itself, no copy) and be
    /// [`crate::net::FRAME_MIN`]..=[`crate::net::FRAME_MAX`] bytes; the
    /// kernel does not look inside it.
    /// Errors: NotFound, cap errors, NoRights, BadLength, BadArgument
    /// (no headroom, or past the page).
    NetTransmit = 20,
    /// Install a packet filter on NIC `a0`: `a2` [`crate::net::Atom`]s at
    /// user address `a1`, delivering into the receive ring made of the
    /// `a4` pages whose capabilities (u64 each, held by the caller with
    /// WRITE) are at user address `a3`. The kernel initialises the ring
    /// header. r0 = the filter's id.
    /// Errors: NotFound, BadAddress, BadLength (no atoms, too many, ring
    /// size), BadArgument (a malformed atom, a field tested twice, the same
    /// page twice), cap errors, NoRights, Conflict, Limit (filters per
    /// environment or in total), OutOfMemory.
    NetFilterInstall = 21,
    /// Remove filter `a0` (installed by the caller).
    /// Errors: NotFound (no such filter, or another environment's).
    NetFilterRemove = 22,
    /// Receive: take every frame NIC `a0` has received (at most one
    /// virtqueue's worth) and demultiplex it into the rings of the matching
    /// filters (or drop and count it). r0 = frames taken. Errors: NotFound.
    NetPoll = 23,
    /// Benchmark probe: run the demultiplexer of NIC `a0` on the `a2`-byte
    /// frame at user address `a1` without delivering it. r0 = the id of
    /// the matching filter (0: none), r1 = the instructions the decision
    /// took (TSC under `-icount`). Errors: NotFound, BadLength, BadAddress.
    NetDemuxProbe = 24,

    /// Synchronous protected control transfer to environment `a0` (see
    /// the crate docs for the register convention): the caller stops (it
    /// is *waiting*: only a PCT or an upcall enters it again) and donates
    /// its time slices to the callee until a synchronous PCT back.
    /// Errors (returned to the caller): NoSuchEnv, BadState (target not
    /// waiting), NoEntry.
    PctSync = 32,
    /// Asynchronous PCT: like [`Call::PctSync`], but the caller's state is
    /// saved and it continues later in its own slices (RAX = 0); only the
    /// rest of the current slice is donated.
    PctAsync = 33,
    /// Give up the rest of the slice: to environment `a0`, or to the next
    /// slice owner if `a0` is [`crate::YIELD_ANY`]. Returns (RAX = 0) when
    /// the caller runs again. Errors: NoSuchEnv, BadState (target cannot run).
    Yield = 34,
    /// Stop and wait: the caller keeps no saved state and runs again only
    /// when entered through its PCT entry or an upcall. Never returns.
    Wait = 35,
    /// End the caller with exit code `a0`. Never returns.
    Exit = 36,
    /// Sleep until the installed predicate (see [`Call::PredSet`]) holds:
    /// the scheduler evaluates it whenever the caller's slice comes up and
    /// skips the caller while it is false. r0 = the predicate's result
    /// (its tag: which clause held), or 0 when the caller was entered for
    /// another reason first (an upcall resumed it: check again). The
    /// predicate stays installed. If it holds already, returns at once.
    /// Errors: BadState (no predicate installed), Revoked (a window's
    /// capability went away while it slept: the predicate is removed),
    /// CodeTrapped (a run trapped, e.g. divided by zero: removed).
    PredWait = 37,
}

impl Call {
    /// Every call, for tables and tests.
    pub const ALL: [Call; 32] = [
        Call::Null,
        Call::ConsoleWrite,
        Call::EnvSelf,
        Call::PageAlloc,
        Call::PageFree,
        Call::PageGrant,
        Call::PageTransfer,
        Call::CapRevoke,
        Call::CapInfo,
        Call::Bind,
        Call::SetHandler,
        Call::EnvCreate,
        Call::EnvStart,
        Call::EnvKill,
        Call::EnvStatus,
        Call::EnvReclaim,
        Call::ProgramRead,
        Call::Protect,
        Call::Lookup,
        Call::PredSet,
        Call::NetInfo,
        Call::NetTransmit,
        Call::NetFilterInstall,
        Call::NetFilterRemove,
        Call::NetPoll,
        Call::NetDemuxProbe,
        Call::PctSync,
        Call::PctAsync,
        Call::Yield,
        Call::Wait,
        Call::Exit,
        Call::PredWait,
    ];

    /// The call with number `n`, if there is one.
    pub fn from_number(n: u64) -> Option<Call> {
        Call::ALL.into_iter().find(|c| *c as u64 == n)
    }

    /// Whether the call may run another environment before returning.
    pub const fn switches(self) -> bool {
        self as u64 >= FIRST_SWITCHING
    }
}

/// Highest call number.
pub const LAST_CALL: u64 = Call::PredWait as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_classes_are_consistent() {
        for c in Call::ALL {
            assert_eq!(Call::from_number(c as u64), Some(c));
            assert_eq!(c.switches(), c as u64 >= FIRST_SWITCHING);
            if !c.switches() {
                assert!((c as u64) < FAST_CALLS, "{c:?} must fit the fast table");
            }
            assert!(c as u64 <= LAST_CALL);
        }
        assert_eq!(Call::from_number(25), None);
        assert_eq!(Call::from_number(LAST_CALL + 1), None);
        assert_eq!(Call::from_number(u64::MAX), None);
    }
}
