//! Trap entry: one naked stub per vector, a common save/restore path that
//! builds a [`TrapFrame`] on the kernel stack, and dispatch to the handler a
//! kernel registered for the vector.
//!
//! A handler may rewrite the frame (for example to resume a different user
//! context); the common path restores whatever the frame holds and `iretq`s.

use crate::cpu;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Registers saved on every trap, in memory order (lowest address first).
/// The first fifteen are pushed by the common stub, `vector` and
/// `error_code` by the per-vector stub (a dummy 0 where the CPU pushes none),
/// the last five by the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// RFLAGS.IF.
pub const RFLAGS_IF: u64 = 1 << 9;

impl TrapFrame {
    /// Whether the trap came from ring 3.
    pub const fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// A fresh ring-3 context that starts at `rip` with stack `rsp`,
    /// interrupts enabled, all other registers zero.
    pub const fn new_user(rip: u64, rsp: u64) -> Self {
        let mut f = Self {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: 0,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector: 0,
            error_code: 0,
            rip: 0,
            cs: 0,
            rflags: 0,
            rsp: 0,
            ss: 0,
        };
        f.rip = rip;
        f.rsp = rsp;
        f.cs = crate::gdt::USER_CS as u64;
        f.ss = crate::gdt::USER_DS as u64;
        f.rflags = RFLAGS_IF | 0x2;
        f
    }
}

/// Exception vector numbers used by the kernels.
pub mod vector {
    pub const DIVIDE_ERROR: u8 = 0;
    pub const DEBUG: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BREAKPOINT: u8 = 3;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
    /// The local APIC timer.
    pub const TIMER: u8 = 32;
    /// Spurious APIC interrupts.
    pub const SPURIOUS: u8 = 0xff;
}

/// A trap handler: runs with interrupts disabled, may modify the frame.
pub type Handler = fn(&mut TrapFrame);

static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Route `vector` to `handler` (replacing any previous one).
pub fn set_handler(vector: u8, handler: Handler) {
    HANDLERS[vector as usize].store(handler as usize, Ordering::Release);
}

/// Names of the architectural exceptions, for reports.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 21] = [
        "#DE divide error",
        "#DB debug",
        "NMI",
        "#BP breakpoint",
        "#OF overflow",
        "#BR bound range",
        "#UD invalid opcode",
        "#NM device not available",
        "#DF double fault",
        "coprocessor overrun",
        "#TS invalid TSS",
        "#NP segment not present",
        "#SS stack fault",
        "#GP general protection",
        "#PF page fault",
        "reserved",
        "#MF x87 error",
        "#AC alignment check",
        "#MC machine check",
        "#XM SIMD error",
        "#VE virtualization",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

/// Called by the common stub with the frame it built.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    frame.vector &= 0xff; // the stub pushed it sign-extended from 8 bits
    let h = HANDLERS[frame.vector as usize].load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: only `set_handler` stores non-zero values, and it stores `Handler`s.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        handler(frame);
        return;
    }
    match frame.vector as u8 {
        vector::DOUBLE_FAULT => double_fault(frame),
        vector::SPURIOUS => {}
        _ => unhandled(frame),
    }
}

/// Report a double fault and end the run with the failure code (the HAL's
/// default; a kernel's own double-fault handler calls it for every double
/// fault it cannot contain).
pub fn report_double_fault(frame: &TrapFrame) -> ! {
    double_fault(frame)
}

fn double_fault(frame: &TrapFrame) -> ! {
    crate::serial::emergency_write(format_args!(
        "\nDOUBLE FAULT at rip={:#x} rsp={:#x} cs={:#x}\n",
        frame.rip, frame.rsp, frame.cs
    ));
    crate::qemu::exit(crate::qemu::ExitCode::Failure)
}

fn unhandled(frame: &TrapFrame) -> ! {
    let cr2 = if frame.vector == vector::PAGE_FAULT as u64 { cpu::cr2() } else { 0 };
    panic!(
        "unhandled {} (vector {}) from ring {}: error={:#x} rip={:#x} rsp={:#x} cr2={:#x}",
        exception_name(frame.vector),
        frame.vector,
        frame.cs & 3,
        frame.error_code,
        frame.rip,
        frame.rsp,
        cr2
    )
}

/// Address of the generic entry stub for `vector`.
pub fn stub_address(vector: u8) -> u64 {
    let base = (vector_stubs as *const () as u64).next_multiple_of(16);
    base + 16 * vector as u64
}

/// 256 entry stubs, 16 bytes apart. Each pushes a dummy error code (for
/// vectors where the CPU pushes none), then its vector number as a
/// sign-extended 8-bit immediate, and jumps to [`trap_common`].
#[unsafe(naked)]
extern "C" fn vector_stubs() {
    naked_asm!(
        ".set vec, 0",
        ".rept 256",
        ".balign 16",
        // Vectors with a CPU-pushed error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.
        ".if (vec - 8) && (vec - 10) && (vec - 11) && (vec - 12) && (vec - 13) && (vec - 14) && (vec - 17) && (vec - 21) && (vec - 29) && (vec - 30)",
        "push 0",
        ".endif",
        ".byte 0x6a, vec", // push imm8
        "jmp {common}",
        ".set vec, vec + 1",
        ".endr",
        common = sym trap_common,
    )
}

/// Save the general registers, call [`trap_dispatch`], restore, `iretq`.
#[unsafe(naked)]
extern "C" fn trap_common() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        // The CPU aligned RSP to 16 before its 5 pushes; with our 17 the
        // frame is 22 × 8 bytes, so RSP is 16-aligned here as the ABI wants.
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "jmp {restore}",
        dispatch = sym trap_dispatch,
        restore = sym restore_frame_at_rsp,
    )
}

/// Pop a [`TrapFrame`] that starts at RSP and return through it.
#[unsafe(naked)]
pub(crate) extern "C" fn restore_frame_at_rsp() -> ! {
    naked_asm!(
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        "add rsp, 16", // vector and error code
        "iretq",
    )
}

/// Load every register from `frame` and return to the context it describes
/// (typically ring 3). Never returns.
///
/// # Safety
/// `frame` must describe a valid context: for ring 3, user selectors, a
/// canonical user `rip`, and an address space (CR3) in which that code is
/// mapped; for ring 0, a live kernel stack and code address. Interrupts must
/// be disabled (they are re-enabled only by the `iretq` if `frame.rflags` says so).
pub unsafe fn enter(frame: *const TrapFrame) -> ! {
    // SAFETY: guaranteed by the caller; `restore_frame_at_rsp` reads exactly
    // one TrapFrame starting at RSP and leaves through `iretq`.
    unsafe {
        core::arch::asm!(
            "mov rsp, {f}",
            "jmp {restore}",
            f = in(reg) frame,
            restore = sym restore_frame_at_rsp,
            options(noreturn)
        )
    }
}
