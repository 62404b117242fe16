//! SYSCALL/SYSRET: the MSRs, the entry stack, and a generic entry path.
//!
//! Register convention at the `syscall` instruction (the kernels' ABI crates
//! refine it): RAX = call number, RDI, RSI, RDX, R10, R8, R9 = arguments; the
//! CPU puts the return RIP in RCX and RFLAGS in R11, so those two are
//! clobbered. Results come back in RAX (and RDX where a call says so).
//!
//! The generic entry ([`generic_entry`]) saves a full [`TrapFrame`] (vector
//! [`SYSCALL_VECTOR`]) and calls the handler set with [`set_handler`]; it
//! returns with `sysretq` when the frame still describes a plain ring-3
//! context and with `iretq` otherwise (a kernel may have rewritten it to
//! resume someone else). A kernel with a hand-tuned fast path installs its
//! own entry with [`set_entry`] and uses [`ENTRY_STACK`] / [`USER_RSP`].

use crate::cpu::{rdmsr, wrmsr};
use crate::gdt::{KERNEL_CS, USER_CS, USER_DS};
use crate::trap::TrapFrame;
use core::arch::naked_asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const IA32_EFER: u32 = 0xc000_0080;
const IA32_STAR: u32 = 0xc000_0081;
const IA32_LSTAR: u32 = 0xc000_0082;
const IA32_FMASK: u32 = 0xc000_0084;

/// The `vector` value of frames built by the generic syscall entry.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Top of the kernel stack the SYSCALL entry switches to (kept equal to TSS.RSP0).
pub static ENTRY_STACK: AtomicU64 = AtomicU64::new(0);
/// Scratch slot where an entry stub parks the user RSP while switching stacks.
pub static USER_RSP: AtomicU64 = AtomicU64::new(0);

static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Set the MSRs: enable SYSCALL, segment bases, mask IF/TF/DF/AC/NT on entry,
/// and point LSTAR at the generic entry.
pub fn init() {
    // STAR[47:32]: SYSCALL loads CS = KERNEL_CS, SS = KERNEL_CS + 8.
    // STAR[63:48]: SYSRET loads CS = base + 16, SS = base + 8 (RPL forced to 3),
    // so base = USER_DS - 8 makes them USER_CS and USER_DS.
    let sysret_base = (USER_DS - 8) as u64;
    debug_assert_eq!(sysret_base + 16, USER_CS as u64);
    // SAFETY: architectural MSRs present on every x86-64 CPU; the values
    // match the GDT layout built by `gdt::init`.
    unsafe {
        wrmsr(IA32_EFER, rdmsr(IA32_EFER) | 1 | (1 << 11)); // SCE, NXE
        wrmsr(IA32_STAR, (sysret_base << 48) | ((KERNEL_CS as u64) << 32));
        wrmsr(IA32_FMASK, 0x4_0000 | 0x4000 | 0x400 | 0x200 | 0x100);
    }
    set_entry(generic_entry as *const () as u64);
}

/// Point LSTAR at a kernel's own entry stub.
///
/// The stub must switch to [`ENTRY_STACK`] before using the stack and must
/// return to ring 3 only with a canonical user RIP in RCX.
pub fn set_entry(addr: u64) {
    // SAFETY: LSTAR only takes effect on the next `syscall`, which ring 0
    // never executes; the address is a kernel entry stub.
    unsafe { wrmsr(IA32_LSTAR, addr) };
}

/// The handler the generic entry calls.
pub fn set_handler(handler: fn(&mut TrapFrame)) {
    HANDLER.store(handler as usize, Ordering::Release);
}

/// Set the stack the entry switches to (called by `gdt::set_kernel_stack`).
#[inline]
pub(crate) fn set_entry_stack(top: u64) {
    ENTRY_STACK.store(top, Ordering::Relaxed);
}

extern "C" fn generic_dispatch(frame: &mut TrapFrame) {
    let h = HANDLER.load(Ordering::Acquire);
    if h == 0 {
        frame.rax = u64::MAX; // no system calls in this kernel
        return;
    }
    // SAFETY: only `set_handler` stores non-zero values, and they are handlers.
    let handler: fn(&mut TrapFrame) = unsafe { core::mem::transmute::<usize, fn(&mut TrapFrame)>(h) };
    handler(frame);
}

/// Largest RIP `sysretq` may return to (above it, SYSRET would fault in ring 0).
const MAX_USER_RIP: u64 = 0x0000_7fff_ffff_ffff;

/// Generic SYSCALL entry: build a [`TrapFrame`], dispatch, return.
#[unsafe(naked)]
pub extern "C" fn generic_entry() {
    naked_asm!(
        "mov [rip + {user_rsp}], rsp",
        "mov rsp, [rip + {stack}]",
        "push {uds}",
        "push qword ptr [rip + {user_rsp}]",
        "push r11",
        "push {ucs}",
        "push rcx",
        "push 0",
        "push {vector}",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        // Leave with sysretq only for a plain ring-3 frame with a canonical user RIP.
        "mov rcx, [rsp + {rip}]",
        "mov r11, {max_rip}",
        "cmp rcx, r11",
        "ja 2f",
        "cmp qword ptr [rsp + {cs}], {ucs}",
        "jne 2f",
        "pop r15", "pop r14", "pop r13", "pop r12", "add rsp, 8", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "add rsp, 8", "pop rbx", "pop rax",
        "mov r11, [rsp + 32]", // rflags (rsp now points at `vector`)
        "mov rsp, [rsp + 40]", // user rsp
        "sysretq",
        "2:",
        "jmp {restore}",
        user_rsp = sym USER_RSP,
        stack = sym ENTRY_STACK,
        uds = const USER_DS as u64,
        ucs = const USER_CS as u64,
        vector = const SYSCALL_VECTOR,
        dispatch = sym generic_dispatch,
        rip = const offset_of!(TrapFrame, rip),
        cs = const offset_of!(TrapFrame, cs),
        max_rip = const MAX_USER_RIP,
        restore = sym crate::trap::restore_frame_at_rsp,
    )
}
