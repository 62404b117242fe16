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
use crate::event::{Combine, Event};
use crate::key::KernelKey;
use crate::threads::ThreadId;
use crate::translation::{Context, FaultAction, FaultInfo};
use spin::Once;

/// The six argument registers of a system call (RDI, RSI, RDX, R10, R8, R9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallArgs(pub [u64; 6]);

/// A system-call event.
pub type SyscallEvent = Event<SyscallArgs, Return>;

fn unknown_call(_: SyscallArgs) -> Return {
    Return::err(Error::UnknownCall)
}

const COUNT: usize = abi::nr::COUNT as usize;

const fn member(n: u32) -> SyscallEvent {
    Event::new_one("SystemCall", n, unknown_call)
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
];

fn kill(_: FaultInfo) -> FaultAction {
    FaultAction::Kill
}

/// A user-mode exception other than a page fault.
pub static EXCEPTION: Event<FaultInfo, FaultAction> = Event::new("User.Exception", kill, Combine::Last);

fn nothing(_: Process) {}

/// A process has ended and been reaped (its address space is gone):
/// extensions drop what they kept for it. Raised contained by the kernel,
/// once per process; handlers may not assume the process can be named
/// by anything else any more.
pub static PROCESS_REAPED: Event<Process, ()> = Event::new("User.ProcessReaped", nothing, Combine::Last);

/// A process has been asked to end (killed, or one of its threads called
/// `exit`): extensions wake its threads blocked in them, and a woken
/// thread calls [`UserServices::end_if_killed`] once it holds no lock.
/// Raised contained by the kernel, once per process, on the killer's strand.
pub static PROCESS_KILLED: Event<Process, ()> = Event::new("User.ProcessKilled", nothing, Combine::Last);

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

/// Where a user context resumes: the registers a system call's return
/// (or a redirect) sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserResume {
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

/// What the kernel core provides for processes.
pub trait Backend: Sync {
    fn current_process(&self) -> Option<u32>;
    fn context_of(&self, p: u32) -> Option<u64>;
    fn current_context(&self) -> Option<u64>;
    fn exit_current(&self, code: Option<i64>) -> !;
    fn exit_process(&self, code: i64) -> !;
    fn killed(&self) -> bool;
    fn copy_from_user(&self, va: u64, buf: &mut [u8]) -> Result<(), Error>;
    fn copy_to_user(&self, va: u64, data: &[u8]) -> Result<(), Error>;
    fn syscall_resume(&self) -> UserResume;
    fn set_syscall_resume(&self, r: UserResume) -> Result<(), Error>;
    fn switch_process(&self, p: u32) -> Result<(), Error>;
    fn transfer(&self, p: u32, rip: u64, rsp: u64) -> Result<(UserResume, u32), Error>;
    fn exchange_resume(&self, rip: u64, rsp: u64) -> Result<UserResume, Error>;
    fn set_fault_handler(&self, entry: u64, stack_top: u64, info: u64) -> Result<(), Error>;
    fn spawn_thread(&self, p: u32, entry: u64, stack_top: u64, arg: u64) -> Result<ThreadId, Error>;
    fn console_write(&self, bytes: &[u8]);
}

static BACKEND: Once<&'static dyn Backend> = Once::new();

/// Install the kernel's implementation (once).
pub fn install(_key: &KernelKey, backend: &'static dyn Backend) {
    BACKEND.call_once(|| backend);
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

    #[inline(always)]
    fn b(&self) -> &'static dyn Backend {
        match BACKEND.get() {
            Some(b) => *b,
            None => crate::not_installed("User"),
        }
    }

    /// The process the current strand is running, if any.
    #[inline]
    pub fn current_process(&self) -> Option<Process> {
        self.b().current_process().map(Process)
    }

    /// A process's address space.
    pub fn context(&self, p: Process) -> Option<Context> {
        self.b().context_of(p.0).map(Context::from_kernel_number)
    }

    /// The address space the current strand runs in (one kernel call).
    #[inline]
    pub fn current_context(&self) -> Option<Context> {
        self.b().current_context().map(Context::from_kernel_number)
    }

    /// End the current thread; with `Some(code)`, also record the process's
    /// exit code (the process finishes when its last thread has ended).
    /// Never returns.
    pub fn exit_current(&self, code: Option<i64>) -> ! {
        self.b().exit_current(code)
    }

    /// End the current process: record `code` as its exit code (unless one
    /// is recorded already), make every other thread of it end (those
    /// blocked in extensions are woken through [`PROCESS_KILLED`]), and end
    /// this thread. Never returns.
    pub fn exit_process(&self, code: i64) -> ! {
        self.b().exit_process(code)
    }

    /// Whether the current thread's process has been asked to end.
    pub fn killed(&self) -> bool {
        self.b().killed()
    }

    /// If the current process has been asked to end, end the current
    /// thread (never returns then). Call it with no lock held and nothing
    /// to drop: a handler that blocked calls it after waking up.
    pub fn end_if_killed(&self) {
        if self.b().killed() {
            self.b().exit_current(None)
        }
    }

    /// Copy bytes from the current process (range checked, pages must be mapped and user-readable).
    pub fn copy_from_user(&self, va: u64, buf: &mut [u8]) -> Result<(), Error> {
        check_user_range(va, buf.len() as u64)?;
        self.b().copy_from_user(va, buf)
    }

    /// Copy bytes into the current process (pages must be mapped user-writable).
    pub fn copy_to_user(&self, va: u64, data: &[u8]) -> Result<(), Error> {
        check_user_range(va, data.len() as u64)?;
        self.b().copy_to_user(va, data)
    }

    /// Where the current system call returns to (all zero outside one).
    pub fn syscall_resume(&self) -> UserResume {
        self.b().syscall_resume()
    }

    /// Make the current system call return to `r` instead (RIP and RSP
    /// must be user addresses).
    pub fn set_syscall_resume(&self, r: UserResume) -> Result<(), Error> {
        check_user_resume(r.rip, r.rsp)?;
        self.b().set_syscall_resume(r)
    }

    /// Run the current strand in `p`'s address space from now on.
    pub fn switch_process(&self, p: Process) -> Result<(), Error> {
        self.b().switch_process(p.0)
    }

    /// The cross-address-space call's one step, in one kernel operation:
    /// move the current strand into `p`'s address space and make the
    /// current system call return to `rip` with `rsp` (RFLAGS unchanged).
    /// Returns where the call would have returned before, and the process
    /// the strand was running in.
    #[inline]
    pub fn transfer(&self, p: Process, rip: u64, rsp: u64) -> Result<(UserResume, Process), Error> {
        check_user_resume(rip, rsp)?;
        self.b().transfer(p.0, rip, rsp).map(|(r, old)| (r, Process(old)))
    }

    /// Make the current system call return to `rip` with `rsp` (RFLAGS
    /// unchanged) in the same address space, and return where it would
    /// have returned: a user-level thread switch in one kernel call.
    #[inline]
    pub fn exchange_resume(&self, rip: u64, rsp: u64) -> Result<UserResume, Error> {
        check_user_resume(rip, rsp)?;
        self.b().exchange_resume(rip, rsp)
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
        self.b().set_fault_handler(entry, stack_top, info)
    }

    /// A new kernel thread in process `p` that enters user mode at `entry`
    /// with RSP = `stack_top`, RDI = `arg`.
    pub fn spawn_thread(&self, p: Process, entry: u64, stack_top: u64, arg: u64) -> Result<ThreadId, Error> {
        check_user_range(entry, 1)?;
        check_user_range(stack_top.saturating_sub(8), 8)?;
        self.b().spawn_thread(p.0, entry, stack_top, arg)
    }

    /// Print bytes on the console.
    pub fn console_write(&self, bytes: &[u8]) {
        self.b().console_write(bytes)
    }
}

impl Context {
    fn from_kernel_number(id: u64) -> Context {
        Context::from_id_internal(id)
    }
}
