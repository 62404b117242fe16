//! spin-abi: the system-call ABI between kernel-spin's user processes (ring
//! 3) and the extensions that handle their system calls (ring 0). Pure data;
//! both sides read it.
//!
//! # Register convention
//!
//! At `syscall`: RAX = call number ([`nr`]); RDI, RSI, RDX, R10, R8, R9 =
//! arguments 0..5. On return: RAX = status (0 = success, otherwise an
//! [`Error`] code), RDX = value. RCX and R11 are destroyed by the
//! instruction itself; RDI, RSI, R8, R9, R10 are zeroed by the kernel (so
//! no kernel value leaks); RBX, RBP, RSP, R12–R15 are preserved.
//!
//! Each call number is one `SystemCall` event of the kernel's event family
//! (`spin_interface::user::SYSTEM_CALLS`); the extension that installed the
//! handler for a number implements it. A number with no handler, or beyond
//! the family, returns [`Error::UnknownCall`].
#![no_std]
#![forbid(unsafe_code)]

/// Most live kernel threads one process may have (its main thread included):
/// no process can take every kernel thread.
pub const MAX_THREADS_PER_PROCESS: u32 = 16;

// Per-process quotas: what one process may hold of each kernel resource a
// system call can take, so that no process can starve the others (another
// process can always still be spawned and run). Past a quota the call
// answers [`Error::Limit`]; everything held comes back when the process
// is reaped. System-wide bounds (e.g. 1024 semaphores, 64 servers) answer
// [`Error::NoMemory`], as does a kernel heap or frame allocation failing.

/// Most thread ids from [`nr::THREAD_SPAWN`] one process may hold: live
/// threads and ended ones not yet joined (the kernel keeps a record of
/// each until [`nr::THREAD_JOIN`]), so spawning and never joining cannot
/// grow the kernel heap.
pub const MAX_THREAD_RECORDS_PER_PROCESS: usize = 64;
/// Most semaphores ([`nr::SEM_CREATE`]) one process may hold (of 1024 in
/// the system).
pub const MAX_SEMAPHORES_PER_PROCESS: usize = 64;
/// Most cross-address-space server registrations ([`nr::XAS_REGISTER`])
/// one process may hold (of 64 in the system).
pub const MAX_SERVERS_PER_PROCESS: usize = 4;
/// Most physical frames [`nr::VM_MAP`] may take for one process, the page
/// tables it needs included (16 MiB; the program's own image and stack,
/// loaded at spawn, are not counted).
pub const MAX_FRAMES_PER_PROCESS: u64 = 4096;
/// Most UDP sockets ([`nr::UDP_BIND`]) one process may hold (of 16 in the system).
pub const MAX_SOCKETS_PER_PROCESS: usize = 4;
/// The longest datagram payload [`nr::UDP_SEND_TO`] takes (one frame).
pub const MAX_UDP_PAYLOAD: u64 = 1472;
/// Datagrams a socket queues before it drops (counted) until one is received.
pub const SOCKET_QUEUE: usize = 4;
/// Most integrated user threads ([`nr::UT_FORK`]) one process may have,
/// its first thread included (exited ones count until joined).
pub const MAX_UTHREADS_PER_PROCESS: usize = 64;

/// System-call numbers, and which extension implements each.
pub mod nr {
    #[allow(unused_imports)] // for the doc links
    use super::*;
    /// `null()`: do nothing (the "system call" benchmark). Extension `syscalls`.
    pub const NULL: u64 = 0;
    /// `exit(code) -> !`: end the whole process with `code` (its other
    /// threads end too, those blocked in the kernel included). Extension `syscalls`.
    pub const EXIT: u64 = 1;
    /// `write(ptr, len) -> len`: print bytes on the console. Extension `syscalls`.
    pub const WRITE: u64 = 2;
    /// `yield()`. Extension `syscalls`.
    pub const YIELD: u64 = 3;
    /// `xas_register(entry, stack_top) -> server`: offer a cross-address-space
    /// entry point; at most [`MAX_SERVERS_PER_PROCESS`] per process
    /// (`Limit`). Extension `xas`.
    pub const XAS_REGISTER: u64 = 4;
    /// `xas_call(server, arg) -> result`: call into the server's address space. Extension `xas`.
    pub const XAS_CALL: u64 = 5;
    /// `xas_return(result) -> !`: end the current incoming call. Extension `xas`.
    pub const XAS_RETURN: u64 = 6;
    /// `vm_map(start, pages, prot)`: back a range with fresh zeroed pages;
    /// at most [`MAX_FRAMES_PER_PROCESS`] frames per process (`Limit`).
    /// Extension `vm`.
    pub const VM_MAP: u64 = 7;
    /// `vm_protect(start, pages, prot) -> changed`: change the protection of mapped pages
    /// (all or nothing); returns how many pages' protection changed. Extension `vm`.
    pub const VM_PROTECT: u64 = 8;
    /// `vm_dirty(va) -> 0 | 1`: whether the page holding `va` was written. Extension `vm`.
    pub const VM_DIRTY: u64 = 9;
    /// `vm_handler(entry, stack_top, info)`: where faults and exceptions are
    /// reflected ([`crate::TrapInfo`] at `info`, which must be 8-byte
    /// aligned and inside one page: `Unaligned` otherwise; and mapped
    /// user-writable now: `NotMapped` / `BadAddress` otherwise). Extension `vm`.
    pub const VM_HANDLER: u64 = 10;
    /// `thread_spawn(entry, stack_top, arg) -> tid`: a new kernel thread in
    /// this process (the "layered" user-thread package); at most
    /// [`MAX_THREADS_PER_PROCESS`] live threads per process, the main one
    /// included, else [`Error::Limit`], and at most
    /// [`MAX_THREAD_RECORDS_PER_PROCESS`] thread ids not yet joined
    /// (`Limit`). Extension `syscalls`.
    pub const THREAD_SPAWN: u64 = 11;
    /// `thread_join(tid)`: wait for thread `tid` of this process to end
    /// and release its id (`BadHandle` for a foreign or joined one).
    /// Extension `syscalls`.
    pub const THREAD_JOIN: u64 = 12;
    /// `thread_exit() -> !`: end the calling thread only (the process ends
    /// with its last thread, exit code 0). Extension `syscalls`.
    pub const THREAD_EXIT: u64 = 13;
    /// `sem_create() -> sem`, `sem_signal(sem)`, `sem_wait(sem)`: kernel
    /// semaphores (a lock and a condition variable) for layered threads;
    /// at most [`MAX_SEMAPHORES_PER_PROCESS`] per process (`Limit`).
    /// Extension `syscalls`.
    pub const SEM_CREATE: u64 = 14;
    pub const SEM_SIGNAL: u64 = 15;
    pub const SEM_WAIT: u64 = 16;
    /// `ut_fork(entry, stack_top, arg) -> id`, `ut_signal_wait(id)`,
    /// `ut_exit(signal_id or u64::MAX)`, `ut_join(id)`: integrated user
    /// threads (see the `uthreads` extension; the user-side wrappers must
    /// save RBX, RBP, R12–R15 across the blocking calls, which may return
    /// into another thread); at most [`MAX_UTHREADS_PER_PROCESS`] threads
    /// per process (`Limit`). Extension `uthreads`.
    pub const UT_FORK: u64 = 17;
    pub const UT_SIGNAL_WAIT: u64 = 18;
    pub const UT_EXIT: u64 = 19;
    pub const UT_JOIN: u64 = 20;
    /// `bench_report(runs, iterations, min, median, max)`: a user benchmark
    /// program hands its measurement to the kernel's benchmark glue.
    /// Extension `bench`.
    pub const BENCH_REPORT: u64 = 21;
    /// `udp_bind(nic, port) -> socket`: a UDP endpoint on NIC `nic`'s
    /// address (10.0.17.(nic+1)) and `port` (not 0: `BadArgument`; taken:
    /// `Busy`); at most [`MAX_SOCKETS_PER_PROCESS`] per process (`Limit`).
    /// Extension `sockets`.
    pub const UDP_BIND: u64 = 24;
    /// `udp_send_to(socket, ptr, len, ipv4, port)`: send `len` bytes (at
    /// most [`MAX_UDP_PAYLOAD`]: `BadLength`) to `ipv4` (host order, a
    /// `u32`) : `port`. `Unreachable` answers are `BadArgument`. Extension `sockets`.
    pub const UDP_SEND_TO: u64 = 25;
    /// `udp_recv_from(socket, ptr, len) -> len | src_port << 16 | src_ipv4 << 32`:
    /// block until a datagram arrives, copy at most `len` bytes of it to
    /// `ptr` (the rest is dropped). Extension `sockets`.
    pub const UDP_RECV_FROM: u64 = 26;
    /// `udp_close(socket)`. Extension `sockets`.
    pub const UDP_CLOSE: u64 = 27;
    /// How many numbers the `SystemCall` event family has.
    pub const COUNT: u64 = 28;
}

/// Why a system call failed: the one error enum of the user ABI (RAX on return).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    /// No such call number, or no extension handles it.
    UnknownCall = 1,
    /// A pointer or range is not inside the caller's user space (null,
    /// kernel half, non-canonical, or wraps around).
    BadAddress = 2,
    /// An address that must be page aligned is not.
    Unaligned = 3,
    /// A length or count is zero where it may not be, or too large.
    BadLength = 4,
    /// A handle (server, thread, semaphore) that does not exist or belongs
    /// to another process.
    BadHandle = 5,
    /// An argument outside its allowed set (e.g. an unknown protection).
    BadArgument = 6,
    /// The memory the call names is not mapped.
    NotMapped = 7,
    /// Already mapped, already registered, or otherwise in use.
    Busy = 8,
    /// Out of memory or another kernel resource.
    NoMemory = 9,
    /// The extension handling the call faulted and was unloaded.
    ExtensionFault = 10,
    /// The call is not valid in the caller's state (e.g. `xas_return` outside a call).
    BadState = 11,
    /// A per-process quota is reached (e.g. [`nr::THREAD_SPAWN`] beyond
    /// [`MAX_THREADS_PER_PROCESS`] live threads; the other quotas are the
    /// `MAX_*_PER_PROCESS` constants). The culprit alone is refused.
    Limit = 12,
}

impl Error {
    pub const ALL: [Error; 12] = [
        Error::UnknownCall,
        Error::BadAddress,
        Error::Unaligned,
        Error::BadLength,
        Error::BadHandle,
        Error::BadArgument,
        Error::NotMapped,
        Error::Busy,
        Error::NoMemory,
        Error::ExtensionFault,
        Error::BadState,
        Error::Limit,
    ];

    /// The status word for this error.
    pub const fn code(self) -> u64 {
        self as u64
    }

    /// Decode a non-zero status word.
    pub fn from_code(code: u64) -> Option<Error> {
        Error::ALL.into_iter().find(|e| e.code() == code)
    }
}

/// What a handler returns: RAX (status) and RDX (value), in that order, so
/// the kernel's return path moves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Return {
    pub status: u64,
    pub value: u64,
}

impl Return {
    #[inline(always)]
    pub const fn ok(value: u64) -> Self {
        Self { status: 0, value }
    }

    #[inline(always)]
    pub const fn err(e: Error) -> Self {
        Self { status: e.code(), value: 0 }
    }

    /// Decode on the user side (inlined: a test and a branch on success).
    #[inline(always)]
    pub fn into_result(self) -> Result<u64, Error> {
        if self.status == 0 { Ok(self.value) } else { Err(decode(self.status)) }
    }
}

#[cold]
#[inline(never)]
fn decode(status: u64) -> Error {
    Error::from_code(status).unwrap_or(Error::UnknownCall)
}

impl From<Result<u64, Error>> for Return {
    #[inline(always)]
    fn from(r: Result<u64, Error>) -> Self {
        match r {
            Ok(v) => Return::ok(v),
            Err(e) => Return::err(e),
        }
    }
}

/// Page protections for `vm_map` / `vm_protect`.
pub mod prot {
    /// No access from user mode.
    pub const NONE: u64 = 0;
    /// Read (and execute) only.
    pub const READ: u64 = 1;
    /// Read and write.
    pub const READ_WRITE: u64 = 3;
}

/// Where the user-visible address space is laid out by the kernel's loader.
///
/// Every user entry (a program's `_start`, a new thread, a cross-address-
/// space call into a server, a reflected fault) is entered *as if called*:
/// RSP = the given stack top − 8, 16-byte aligned plus a return-address
/// slot, as the System V ABI expects at a function's first instruction.
/// A program starts with RDI and RSI = the two arguments its spawner gave.
pub mod layout {
    /// Top of the main thread's stack (exclusive).
    pub const STACK_TOP: u64 = 0x7000_0000_0000;
    /// Pages of main-thread stack.
    pub const STACK_PAGES: u64 = 16;
}

/// The interrupted context of a reflected fault, at the `info` address a
/// process registered with `vm_handler`. `#[repr(C)]`, 8-byte fields.
///
/// The kernel writes `vector`, `error`, `addr` and the registers the
/// reflection itself changes (`rip`, `rsp`, `rflags`, `rdi`), then starts
/// the handler entry with RSP = the registered stack top − 8 (as if
/// called) and RDI = `info`. **Every other general register still holds
/// the interrupted value when the entry starts**: the entry stores the
/// ones it needs here (the `spin-user` runtime stores them all, so its
/// handlers see a complete record). To resume, load the registers back
/// and jump to `rip` (after fixing `rip` to skip the faulting instruction
/// if the handler wants to); no system call is needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TrapInfo {
    /// Exception vector (0 #DE, 3 #BP, 6 #UD, 13 #GP, 14 #PF).
    pub vector: u64,
    /// The CPU's error code (for #PF: bit 0 present, bit 1 write, bit 2 user).
    pub error: u64,
    /// The faulting address (#PF), otherwise 0.
    pub addr: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// Size of [`TrapInfo`] in bytes.
pub const TRAP_INFO_SIZE: u64 = core::mem::size_of::<TrapInfo>() as u64;

/// Vectors reflected to the user handler.
pub mod vector {
    pub const DIVIDE_ERROR: u64 = 0;
    pub const BREAKPOINT: u64 = 3;
    pub const INVALID_OPCODE: u64 = 6;
    pub const GENERAL_PROTECTION: u64 = 13;
    pub const PAGE_FAULT: u64 = 14;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_roundtrip_and_are_nonzero() {
        for e in Error::ALL {
            assert_ne!(e.code(), 0);
            assert_eq!(Error::from_code(e.code()), Some(e));
            assert_eq!(Return::err(e).into_result(), Err(e));
        }
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Return::ok(7).into_result(), Ok(7));
        assert_eq!(Return { status: 999, value: 0 }.into_result(), Err(Error::UnknownCall));
    }

    #[test]
    fn trap_info_layout() {
        assert_eq!(TRAP_INFO_SIZE, 21 * 8);
        assert_eq!(core::mem::offset_of!(TrapInfo, rip), 24);
    }

    #[test]
    fn numbers_fit_the_family() {
        for n in [nr::NULL, nr::UT_JOIN, nr::SEM_WAIT, nr::VM_HANDLER] {
            assert!(n < nr::COUNT);
        }
    }
}
