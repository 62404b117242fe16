//! User processes (ring 3) and the SystemCall event family.
//!
//! A system call with number `n` raises `SYSTEM_CALLS[n]` with the six
//! argument registers; the extension the kernel authorized for that number
//! (see spin-abi's `nr`) handles it and returns an [`abi::Return`]
//! (status, value). Each member is one-to-one: a call number has one
//! implementation. The default handler answers [`abi::Error::UnknownCall`].
//!
//! Exceptions other than page faults (#DE, #BP, #UD, #GP) in a user
//! process raise [`EXCEPTION`]; page faults raise the Translation events.
//!
//! [`UserServices`] is the trusted capability through which system-call
//! extensions act on processes: validate and copy user memory, redirect
//! the return from the current system call (the cross-address-space call),
//! register where the process's faults are reflected, spawn threads. The kernel
//! grants it only to the extensions that implement system calls.

use crate::abi::{self, Error, Return};
use crate::event::{Combine, KernelEvent};
use crate::key::KernelKey;
use crate::phys::MemError;
use crate::strand::Strand;
use crate::threads::ThreadId;
use crate::translation::{self, Context, FaultAction, FaultInfo, Prot, VirtRange};
use spin_trusted::RefSlot;

/// The six argument registers of a system call (RDI, RSI, RDX, R10, R8, R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallArgs(pub [u64; 6]);

/// A system-call event.
pub type SyscallEvent = KernelEvent<SyscallArgs, Return>;

fn unknown_call(_: SyscallArgs) -> Return {
    Return::err(Error::UnknownCall)
}

const COUNT: usize = abi::nr::COUNT as usize;

const fn member(n: u32) -> SyscallEvent {
    KernelEvent::new_one("SystemCall", n, unknown_call)
}

/// The SystemCall event family, indexed by call number.
pub static SYSTEM_CALLS: [SyscallEvent; COUNT] = [
    member(0),
    member(1),
    member(2),
    member(3),
    member(4),
    member(5),
    member(6),
    member(7),
    member(8),
    member(9),
    member(10),
    member(11),
    member(12),
    member(13),
    member(14),
    member(15),
    member(16),
    member(17),
    member(18),
    member(19),
    member(20),
    member(21),
    member(22),
    member(23),
    member(24),
    member(25),
    member(26),
    member(27),
];

fn kill(_: FaultInfo) -> FaultAction {
    FaultAction::Kill
}

/// A user-mode exception other than a page fault.
pub static EXCEPTION: KernelEvent<FaultInfo, FaultAction> =
    KernelEvent::new("User.Exception", kill, Combine::Last);

fn nothing(_: Process) {}

/// A process has ended and been reaped (its address space is gone):
/// extensions drop what they kept for it. Raised contained by the kernel,
/// once per process; handlers may not assume the process can be named
/// by anything else any more.
pub static PROCESS_REAPED: KernelEvent<Process, ()> =
    KernelEvent::new("User.ProcessReaped", nothing, Combine::Last);

/// A process has been asked to end (killed, or one of its threads called
/// `exit`): extensions wake its threads blocked in them, and a woken
/// thread calls [`UserServices::end_if_killed`] once it holds no lock.
/// Raised contained by the kernel, once per process, on the killer's strand.
pub static PROCESS_KILLED: KernelEvent<Process, ()> =
    KernelEvent::new("User.ProcessKilled", nothing, Combine::Last);

fn nothing_for(_: Strand) {}

/// A process's thread has ended, on this strand (raised contained by the
/// kernel on the ending strand, after it has left every address space):
/// extensions drop what they kept for the strand, such as the
/// cross-address-space calls it was in. The strand's number may be reused
/// by a later strand.
pub static THREAD_ENDED: KernelEvent<Strand, ()> =
    KernelEvent::new("User.ThreadEnded", nothing_for, Combine::Last);

/// Most processes at once: [`Process::slot`] is below this.
pub const MAX_PROCESSES: usize = 256;

/// A user process (capability handle; the kernel checks it is alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Process(u32);

impl Process {
    /// Wrap a kernel process number (the low 8 bits are its slot, the
    /// rest a generation, so a number is never reused).
    pub fn from_number(_key: &KernelKey, n: u32) -> Process {
        Process(n)
    }

    pub fn number(self) -> u32 {
        self.0
    }

    /// A small number, below [`MAX_PROCESSES`], that no other *live*
    /// process has: an index for per-process tables (an entry found there
    /// must still be checked against the whole `Process`, since a later
    /// process reuses the slot).
    #[inline(always)]
    pub fn slot(self) -> usize {
        (self.0 & 0xff) as usize
    }
}

/// A place to resume user code whose RIP is known to be a user address
/// (what `sysretq` needs to be safe). Made only by [`ResumePoint::new`],
/// which checks RIP and that the 8 bytes below RSP are user space (see
/// [`check_user_resume`]), or handed out by the kernel: where a system
/// call would have returned, whose RSP is whatever the process had (the
/// kernel never dereferences a user RSP; a bad one faults in ring 3). So
/// the kernel takes a point without checking again: a thread package that
/// stores the points it is given never pays for the check twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    rip: u64,
    rsp: u64,
}

impl ResumePoint {
    /// Check an untrusted resume point.
    #[inline(always)]
    pub fn new(rip: u64, rsp: u64) -> Result<ResumePoint, Error> {
        check_user_resume(rip, rsp)?;
        Ok(ResumePoint { rip, rsp })
    }

    /// The kernel's word that a system call of a process returns here
    /// (its saved RIP is where a `syscall` instruction of ring 3 was; its
    /// RSP is the process's own business).
    #[inline(always)]
    pub fn from_saved(_key: &KernelKey, rip: u64, rsp: u64) -> ResumePoint {
        ResumePoint { rip, rsp }
    }

    pub fn rip(&self) -> u64 {
        self.rip
    }

    pub fn rsp(&self) -> u64 {
        self.rsp
    }
}

/// The kernel core's procedures for processes, bound once at boot by
/// [`install`] (like an extension's resolved imports): a call through
/// [`UserServices`] is a load of the table and an indirect call, with
/// nothing to check first. Arguments are checked by [`UserServices`]
/// before the call (or carried by checked types such as [`ResumePoint`]).
pub struct Core {
    pub current_process: fn() -> Option<u32>,
    pub context_of: fn(u32) -> Option<u64>,
    pub current_context: fn() -> Option<u64>,
    pub exit_current: fn(Option<i64>) -> !,
    pub exit_process: fn(i64) -> !,
    pub killed: fn() -> bool,
    pub copy_from_user: fn(u64, &mut [u8]) -> Result<(), Error>,
    pub copy_to_user: fn(u64, &[u8]) -> Result<(), Error>,
    pub syscall_resume: fn() -> Result<ResumePoint, Error>,
    pub transfer: fn(u32, ResumePoint) -> Result<(ResumePoint, u32), Error>,
    pub move_to: fn(u32, ResumePoint) -> Result<(), Error>,
    pub exchange_resume: fn(ResumePoint) -> Result<ResumePoint, Error>,
    pub set_fault_handler: fn(u64, u64, u64) -> Result<(), Error>,
    pub spawn_thread: fn(u32, u64, u64, u64) -> Result<ThreadId, Error>,
    pub console_write: fn(&[u8]),
}

/// Before the kernel binds its table: every procedure reports a boot-order bug.
static UNBOUND: Core = Core {
    current_process: || crate::not_installed("User"),
    context_of: |_| crate::not_installed("User"),
    current_context: || crate::not_installed("User"),
    exit_current: |_| crate::not_installed("User"),
    exit_process: |_| crate::not_installed("User"),
    killed: || crate::not_installed("User"),
    copy_from_user: |_, _| crate::not_installed("User"),
    copy_to_user: |_, _| crate::not_installed("User"),
    syscall_resume: || crate::not_installed("User"),
    transfer: |_, _| crate::not_installed("User"),
    move_to: |_, _| crate::not_installed("User"),
    exchange_resume: |_| crate::not_installed("User"),
    set_fault_handler: |_, _, _| crate::not_installed("User"),
    spawn_thread: |_, _, _, _| crate::not_installed("User"),
    console_write: |_| crate::not_installed("User"),
};

static CORE: RefSlot<Core> = RefSlot::new(&UNBOUND);

/// Bind the kernel's implementation.
pub fn install(_key: &KernelKey, core: &'static Core) {
    CORE.set(core);
}

#[inline(always)]
fn core() -> &'static Core {
    CORE.get()
}

/// Check an untrusted user pointer range `(va, len)`: non-empty, inside
/// user space, no wrap-around.
pub fn check_user_range(va: u64, len: u64) -> Result<(), Error> {
    let end = va.checked_add(len).ok_or(Error::BadAddress)?;
    if va < crate::translation::USER_START || end > crate::translation::USER_END {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// Check a user resume point: `rip` a user address, and the 8 bytes below
/// `rsp` in user space (two compares each way).
#[inline(always)]
pub fn check_user_resume(rip: u64, rsp: u64) -> Result<(), Error> {
    use crate::translation::{USER_END, USER_START};
    if rip.wrapping_sub(USER_START) >= USER_END - USER_START
        || rsp.wrapping_sub(USER_START + 8) > USER_END - USER_START - 8
    {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// Check a `TrapInfo` area: in user space, 8-byte aligned, within one page.
pub fn check_trap_area(info: u64) -> Result<(), Error> {
    check_user_range(info, abi::TRAP_INFO_SIZE)?;
    if !info.is_multiple_of(8) || (info & 4095) + abi::TRAP_INFO_SIZE > 4096 {
        return Err(Error::Unaligned);
    }
    Ok(())
}

/// The trusted process operations (granted to system-call extensions).
pub struct UserServices {
    _private: (),
}

impl UserServices {
    /// The one instance (the kernel exports it, restricted).
    pub fn new(_key: &KernelKey) -> &'static UserServices {
        static SERVICES: UserServices = UserServices { _private: () };
        &SERVICES
    }

    /// The process the current strand is running, if any.
    #[inline]
    pub fn current_process(&self) -> Option<Process> {
        (core().current_process)().map(Process)
    }

    /// A process's address space.
    pub fn context(&self, p: Process) -> Option<Context> {
        (core().context_of)(p.0).map(Context::from_kernel_number)
    }

    /// The address space the current strand runs in (one kernel call).
    #[inline]
    pub fn current_context(&self) -> Option<Context> {
        (core().current_context)().map(Context::from_kernel_number)
    }

    /// Change the protection of `range` in the address space the current
    /// strand runs in (every page must be mapped; all or nothing): the
    /// common case of `current_context()?.protect(range, prot)`, in one
    /// kernel call. `NoContext` on a strand without a process. Returns how
    /// many pages' protection changed (a page that already had `prot` does
    /// not count).
    #[inline]
    pub fn protect_current(&self, range: VirtRange, prot: Prot) -> Result<u64, MemError> {
        (translation::core().protect_current)(range, prot).result()
    }

    /// Whether the page holding `va` in the address space the current
    /// strand runs in has been written: `current_context()?.is_dirty(va)`
    /// in one kernel call. `NotUser` for an address outside user space.
    #[inline]
    pub fn dirty_current(&self, va: u64) -> Result<bool, MemError> {
        if !(translation::USER_START..translation::USER_END).contains(&va) {
            return Err(MemError::NotUser);
        }
        (translation::core().dirty_current)(va & !4095)
    }

    /// End the current thread; with `Some(code)`, also record the process's
    /// exit code (the process finishes when its last thread has ended).
    /// Never returns.
    pub fn exit_current(&self, code: Option<i64>) -> ! {
        (core().exit_current)(code)
    }

    /// End the current process: record `code` as its exit code (unless one
    /// is recorded already), make every other thread of it end (those
    /// blocked in extensions are woken through [`PROCESS_KILLED`]), and end
    /// this thread. Never returns.
    pub fn exit_process(&self, code: i64) -> ! {
        (core().exit_process)(code)
    }

    /// Whether the current thread must end: its process has been asked to
    /// end, or the process whose address space it is in (a server it
    /// called into) has been killed by the kernel.
    pub fn killed(&self) -> bool {
        (core().killed)()
    }

    /// If the current thread must end (see [`UserServices::killed`]), end
    /// it (never returns then). Call it with no lock held and nothing
    /// to drop: a handler that blocked calls it after waking up.
    pub fn end_if_killed(&self) {
        if (core().killed)() {
            (core().exit_current)(None)
        }
    }

    /// Copy bytes from the current process (range checked, pages must be mapped and user-readable).
    pub fn copy_from_user(&self, va: u64, buf: &mut [u8]) -> Result<(), Error> {
        check_user_range(va, buf.len() as u64)?;
        (core().copy_from_user)(va, buf)
    }

    /// Copy bytes into the current process (pages must be mapped user-writable).
    pub fn copy_to_user(&self, va: u64, data: &[u8]) -> Result<(), Error> {
        check_user_range(va, data.len() as u64)?;
        (core().copy_to_user)(va, data)
    }

    /// Where the current system call returns to, as the kernel saved it
    /// (`BadState` outside a system call). Made by the kernel, like the
    /// points [`UserServices::transfer`] and
    /// [`UserServices::exchange_resume`] hand back: the process's RSP is
    /// not checked (see [`ResumePoint`]).
    pub fn syscall_resume_point(&self) -> Result<ResumePoint, Error> {
        (core().syscall_resume)()
    }

    /// The cross-address-space call's one step, in one kernel operation:
    /// move the current strand into `p`'s address space and make the
    /// current system call return to `to` (RFLAGS unchanged). Returns
    /// where the call would have returned before, and the process the
    /// strand was running in.
    #[inline]
    pub fn transfer(&self, p: Process, to: ResumePoint) -> Result<(ResumePoint, Process), Error> {
        (core().transfer)(p.0, to).map(|(r, old)| (r, Process(old)))
    }

    /// [`UserServices::transfer`] for the way back, where the point being
    /// left is not needed again (the end of a cross-address-space call: the
    /// server's next call starts at its entry): move the current strand
    /// into `p`'s address space and make the current system call return
    /// to `to`.
    #[inline]
    pub fn move_to(&self, p: Process, to: ResumePoint) -> Result<(), Error> {
        (core().move_to)(p.0, to)
    }

    /// Make the current system call return to `to` (RFLAGS unchanged) in
    /// the same address space, and return where it would have returned: a
    /// user-level thread switch in one kernel call.
    #[inline]
    pub fn exchange_resume(&self, to: ResumePoint) -> Result<ResumePoint, Error> {
        (core().exchange_resume)(to)
    }

    /// Register where the current process's faults go when a fault
    /// handler answers [`crate::translation::FaultAction::Reflect`]: the
    /// kernel fills the [`abi::TrapInfo`] at `info` (see its docs for which
    /// registers) and continues the process at `entry` with RSP =
    /// `stack_top` − 8 and RDI = `info`. The area must be mapped
    /// user-writable now (`NotMapped` / `BadAddress` otherwise); if it is
    /// not when a fault comes, the process is killed instead.
    pub fn set_fault_handler(&self, entry: u64, stack_top: u64, info: u64) -> Result<(), Error> {
        check_user_range(entry, 1)?;
        check_user_range(stack_top.checked_sub(8).ok_or(Error::BadAddress)?, 8)?;
        check_trap_area(info)?;
        (core().set_fault_handler)(entry, stack_top, info)
    }

    /// A new kernel thread in process `p` that enters user mode at `entry`
    /// with RSP = `stack_top`, RDI = `arg`.
    pub fn spawn_thread(&self, p: Process, entry: u64, stack_top: u64, arg: u64) -> Result<ThreadId, Error> {
        check_user_range(entry, 1)?;
        check_user_range(stack_top.saturating_sub(8), 8)?;
        (core().spawn_thread)(p.0, entry, stack_top, arg)
    }

    /// Print bytes on the console.
    pub fn console_write(&self, bytes: &[u8]) {
        (core().console_write)(bytes)
    }
}

impl Context {
    fn from_kernel_number(id: u64) -> Context {
        Context::from_id_internal(id)
    }
}
