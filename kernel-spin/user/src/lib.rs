//! The runtime of kernel-spin's user programs (ring 3): system-call
//! wrappers following spin-abi's register convention, console output, the
//! panic handler, and the trap-handler glue that lets a program catch its
//! own faults and exceptions and resume the faulting context.
//!
//! Built by xtask for `x86_64-unknown-none` as static executables (never
//! for the host). Ring 3 is protected by the MMU, so this code may use
//! `unsafe` for the instructions it needs (`syscall`, the trap glue).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod trap;
pub mod uthread;

use core::fmt::{self, Write};
pub use spin_abi::{Error, Return, TrapInfo, nr, prot};

/// A system call with six arguments: the status word and value exactly as
/// the kernel left them (the fuzzer judges raw statuses).
#[inline(always)]
pub fn syscall_raw(n: u64, a: [u64; 6]) -> Return {
    let status: u64;
    let value: u64;
    // SAFETY: `syscall` enters the kernel, which preserves RBX, RBP, RSP and
    // R12–R15 and writes RAX, RDX, RCX, R11, RDI, RSI, R8–R10 (all declared).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n => status,
            inlateout("rdi") a[0] => _,
            inlateout("rsi") a[1] => _,
            inlateout("rdx") a[2] => value,
            inlateout("r10") a[3] => _,
            inlateout("r8") a[4] => _,
            inlateout("r9") a[5] => _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        )
    };
    Return { status, value }
}

/// A system call with six arguments.
#[inline(always)]
pub fn syscall(n: u64, a: [u64; 6]) -> Result<u64, Error> {
    syscall_raw(n, a).into_result()
}

/// A system call with up to three arguments: only the registers it uses
/// are loaded (the others are declared clobbered, as the ABI says).
#[inline(always)]
pub fn syscall3(n: u64, a0: u64, a1: u64, a2: u64) -> Result<u64, Error> {
    let status: u64;
    let value: u64;
    // SAFETY: as in `syscall`.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n => status,
            inlateout("rdi") a0 => _,
            inlateout("rsi") a1 => _,
            inlateout("rdx") a2 => value,
            lateout("r10") _,
            lateout("r8") _,
            lateout("r9") _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        )
    };
    Return { status, value }.into_result()
}

/// A system call with one argument (the others are declared clobbered).
#[inline(always)]
pub fn syscall1(n: u64, a0: u64) -> Result<u64, Error> {
    let status: u64;
    let value: u64;
    // SAFETY: as in `syscall`.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n => status,
            inlateout("rdi") a0 => _,
            lateout("rsi") _,
            lateout("rdx") value,
            lateout("r10") _,
            lateout("r8") _,
            lateout("r9") _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        )
    };
    Return { status, value }.into_result()
}

/// `null()`: the system-call benchmark's operation.
#[inline(always)]
pub fn null() -> Result<u64, Error> {
    let status: u64;
    // SAFETY: as in `syscall`; no arguments are loaded.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr::NULL => status,
            lateout("rdi") _, lateout("rsi") _, lateout("rdx") _, lateout("r10") _,
            lateout("r8") _, lateout("r9") _, out("rcx") _, out("r11") _,
            options(nostack),
        )
    };
    if status == 0 { Ok(0) } else { Err(Error::from_code(status).unwrap_or(Error::UnknownCall)) }
}

pub fn exit(code: i64) -> ! {
    let _ = syscall(nr::EXIT, [code as u64, 0, 0, 0, 0, 0]);
    // No exit call (its extension is not loaded): an unhandled invalid
    // opcode makes the kernel end the process instead.
    loop {
        // SAFETY: raises #UD, which kills a process without a handler.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) }
    }
}

pub fn write(bytes: &[u8]) -> Result<u64, Error> {
    syscall(nr::WRITE, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0])
}

pub fn vm_map(start: u64, pages: u64, prot: u64) -> Result<u64, Error> {
    syscall3(nr::VM_MAP, start, pages, prot)
}

#[inline(always)]
pub fn vm_protect(start: u64, pages: u64, prot: u64) -> Result<u64, Error> {
    syscall3(nr::VM_PROTECT, start, pages, prot)
}

#[inline(always)]
pub fn vm_dirty(va: u64) -> Result<u64, Error> {
    syscall1(nr::VM_DIRTY, va)
}

#[inline(always)]
pub fn xas_call(server: u64, arg: u64) -> Result<u64, Error> {
    syscall3(nr::XAS_CALL, server, arg, 0)
}

pub fn thread_spawn(entry: extern "C" fn(u64) -> !, stack_top: u64, arg: u64) -> Result<u64, Error> {
    syscall(nr::THREAD_SPAWN, [entry as *const () as u64, stack_top, arg, 0, 0, 0])
}

pub fn thread_join(t: u64) -> Result<u64, Error> {
    syscall(nr::THREAD_JOIN, [t, 0, 0, 0, 0, 0])
}

pub fn thread_exit() -> ! {
    let _ = syscall(nr::THREAD_EXIT, [0; 6]);
    unreachable!("thread_exit returned")
}

pub fn sem_create() -> Result<u64, Error> {
    syscall(nr::SEM_CREATE, [0; 6])
}

#[inline(always)]
pub fn sem_signal(s: u64) -> Result<u64, Error> {
    syscall3(nr::SEM_SIGNAL, s, 0, 0)
}

#[inline(always)]
pub fn sem_wait(s: u64) -> Result<u64, Error> {
    syscall3(nr::SEM_WAIT, s, 0, 0)
}

/// Console output through `write`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s.as_bytes()).map(|_| ()).map_err(|_| fmt::Error)
    }
}

/// Print formatted text on the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{ let _ = core::fmt::Write::write_fmt(&mut $crate::Console, format_args!($($arg)*)); }};
}

/// Print a line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{ $crate::print!($($arg)*); $crate::print!("\n"); }};
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Console, "user panic: {info}");
    exit(-2)
}
