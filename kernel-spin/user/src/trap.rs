//! Catching one's own faults and exceptions (ring 3).
//!
//! [`install`] registers [`entry`] with the kernel's VM extension. When a
//! fault is reflected, the kernel has written the fault and the registers
//! it changed (RIP, RSP, RFLAGS, RDI) to [`INFO`] and starts [`entry`] on
//! [`STACK`] with RDI = &INFO; every other register still holds its
//! interrupted value. The entry stores the ones the handler's code may
//! clobber (RAX, RBX, RCX, RDX, RSI, R8–R11) in INFO and calls the
//! program's handler, which may change the saved state (typically `rip`,
//! to skip the faulting instruction); then it reloads them and jumps to
//! the saved RIP on the saved stack — the process resumes itself, with no
//! further system call. RBP and R12–R15 are not recorded (their fields in
//! INFO are left as they were): the handler is Rust code, which preserves
//! them, so they keep the interrupted values throughout and a handler
//! cannot change them.

use crate::{Error, TrapInfo, nr, syscall};
use core::arch::naked_asm;
use core::mem::offset_of;
use core::ptr::addr_of_mut;

/// The program's fault handler.
pub type Handler = fn(&mut TrapInfo);

static mut HANDLER: Option<Handler> = None;
/// Where the kernel saves the interrupted context.
pub static mut INFO: TrapInfo = TrapInfo {
    vector: 0,
    error: 0,
    addr: 0,
    rip: 0,
    rsp: 0,
    rflags: 0,
    rax: 0,
    rbx: 0,
    rcx: 0,
    rdx: 0,
    rsi: 0,
    rdi: 0,
    rbp: 0,
    r8: 0,
    r9: 0,
    r10: 0,
    r11: 0,
    r12: 0,
    r13: 0,
    r14: 0,
    r15: 0,
};

const STACK_SIZE: usize = 16 * 1024;
#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// Register `handler` for this process's faults and exceptions.
pub fn install(handler: Handler) -> Result<u64, Error> {
    // SAFETY: single-threaded setup; the kernel reads these addresses only.
    unsafe { HANDLER = Some(handler) };
    let stack_top = addr_of_mut!(STACK) as u64 + STACK_SIZE as u64;
    syscall(nr::VM_HANDLER, [entry as *const () as u64, stack_top, addr_of_mut!(INFO) as u64, 0, 0, 0])
}

/// Register a raw entry instead of a Rust handler: the kernel starts
/// `entry` on [`STACK`] with RDI = &[`INFO`], which holds what the kernel
/// wrote (the fault, RIP, RSP, RFLAGS, RDI); every other register still
/// holds its interrupted value. The entry resumes the context itself
/// (typically: adjust the saved RIP, reload RSP, RFLAGS and RDI, jump).
/// For minimal handlers written in assembly (the benchmarks' exception
/// rows), as an exokernel library OS would install.
pub fn install_entry(entry: unsafe extern "C" fn()) -> Result<u64, Error> {
    let stack_top = addr_of_mut!(STACK) as u64 + STACK_SIZE as u64;
    syscall(nr::VM_HANDLER, [entry as *const () as u64, stack_top, addr_of_mut!(INFO) as u64, 0, 0, 0])
}

extern "C" fn call_handler(info: *mut TrapInfo) {
    // SAFETY: the kernel passes &INFO; nothing else touches it while the
    // handler runs (faults are handled one at a time).
    let info = unsafe { &mut *info };
    // SAFETY: set once by `install` before any fault could be reflected.
    match unsafe { HANDLER } {
        Some(h) => h(info),
        None => crate::exit(-3),
    }
}

/// The entry the kernel starts on a reflected fault.
#[unsafe(naked)]
pub extern "C" fn entry() -> ! {
    naked_asm!(
        // Complete the record: the kernel left these registers in place.
        // RBP and R12–R15 are not recorded: the handler's Rust code keeps
        // them intact, so they still hold the interrupted values on resume.
        "mov [rdi + {rax}], rax",
        "mov [rdi + {rbx}], rbx",
        "mov [rdi + {rcx}], rcx",
        "mov [rdi + {rdx}], rdx",
        "mov [rdi + {rsi}], rsi",
        "mov [rdi + {r8}], r8",
        "mov [rdi + {r9}], r9",
        "mov [rdi + {r10}], r10",
        "mov [rdi + {r11}], r11",
        "mov rbx, rdi",
        "call {handler}",
        // Resume: push RIP and RFLAGS on the interrupted stack, reload.
        "mov rsp, [rbx + {rsp}]",
        "push qword ptr [rbx + {rip}]",
        "push qword ptr [rbx + {rflags}]",
        "mov rax, [rbx + {rax}]",
        "mov rcx, [rbx + {rcx}]",
        "mov rdx, [rbx + {rdx}]",
        "mov rsi, [rbx + {rsi}]",
        "mov rdi, [rbx + {rdi}]",
        "mov r8, [rbx + {r8}]",
        "mov r9, [rbx + {r9}]",
        "mov r10, [rbx + {r10}]",
        "mov r11, [rbx + {r11}]",
        "mov rbx, [rbx + {rbx}]",
        "popfq",
        "ret",
        handler = sym call_handler,
        rsp = const offset_of!(TrapInfo, rsp),
        rip = const offset_of!(TrapInfo, rip),
        rflags = const offset_of!(TrapInfo, rflags),
        rax = const offset_of!(TrapInfo, rax),
        rbx = const offset_of!(TrapInfo, rbx),
        rcx = const offset_of!(TrapInfo, rcx),
        rdx = const offset_of!(TrapInfo, rdx),
        rsi = const offset_of!(TrapInfo, rsi),
        rdi = const offset_of!(TrapInfo, rdi),
        r8 = const offset_of!(TrapInfo, r8),
        r9 = const offset_of!(TrapInfo, r9),
        r10 = const offset_of!(TrapInfo, r10),
        r11 = const offset_of!(TrapInfo, r11),
    )
}

/// Instructions with known lengths that raise each exception, for tests
/// and benchmarks. Each returns normally once the handler skipped it.
pub mod raise {
    /// `ud2` (2 bytes): #UD.
    #[inline(always)]
    pub fn invalid_opcode() {
        // SAFETY: traps to the registered handler, which skips the 2 bytes.
        unsafe { core::arch::asm!("ud2", options(nostack)) }
    }

    /// `int3` (1 byte; #BP is a trap, RIP already points past it).
    #[inline(always)]
    pub fn breakpoint() {
        // SAFETY: traps to the handler, which resumes at the saved RIP.
        unsafe { core::arch::asm!("int3", options(nostack)) }
    }

    /// `div rcx` with RCX = 0 (3 bytes: 48 f7 f1): #DE.
    #[inline(always)]
    pub fn divide_error() {
        // SAFETY: traps to the handler, which skips the 3 bytes.
        unsafe {
            core::arch::asm!("xor ecx, ecx", "mov eax, 1", "xor edx, edx", ".byte 0x48, 0xf7, 0xf1",
                             out("rax") _, out("rcx") _, out("rdx") _, options(nostack))
        }
    }

    /// `mov byte ptr [rax], 1` (3 bytes: c6 00 01) at `addr`: #PF if not writable.
    #[inline(always)]
    pub fn write_byte(addr: u64) {
        // SAFETY: either writes a byte of a page the caller mapped or traps
        // to the handler, which skips the 3 bytes.
        unsafe { core::arch::asm!(".byte 0xc6, 0x00, 0x01", in("rax") addr, options(nostack)) }
    }

    /// `mov al, byte ptr [rax]` (2 bytes: 8a 00) from `addr`; returns the byte.
    #[inline(always)]
    pub fn read_byte(addr: u64) -> u8 {
        let rax: u64;
        // SAFETY: reads a byte of a page the caller mapped, or traps to the
        // handler (which resolves the fault and retries, or skips 2 bytes).
        unsafe { core::arch::asm!(".byte 0x8a, 0x00", inout("rax") addr => rax, options(nostack)) }
        rax as u8
    }
}
