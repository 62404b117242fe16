//! The user-level context switches, in assembly.
//!
//! A thread is saved in one of two ways:
//!
//! - **voluntarily** (it called into the scheduler): its callee-saved
//!   registers are pushed on its own stack and only the stack pointer is
//!   kept ([`exos_switch`]); it continues by popping them and returning;
//! - **preempted** (the end-of-slice upcall took it at an arbitrary
//!   instruction): the kernel left its complete register state in the
//!   upcall area and the scheduler copies it into the thread; it
//!   continues through the *resume sequence* ([`exos_resume`]), which
//!   loads every register from the runtime page's `resume` slot.
//!
//! Both ways back in end with a window in which an upcall can arrive after
//! the busy word / critical section is released but before the final
//! jump; `crate::upcall` repairs the interrupted RIP for exactly those
//! instructions (the `*_jmp` labels), so no state is lost there.

use crate::private::off as rt;
use core::arch::global_asm;
use core::mem::offset_of;
use exo_abi::layout::{Regs, UPCALL_VA, uoff};

unsafe extern "C" {
    /// Save the current thread (callee-saved registers on its stack, the
    /// stack pointer to `*save`) and continue the voluntarily saved thread
    /// whose stack pointer is `to`. Returns when the saved thread is
    /// continued.
    pub fn exos_switch(save: *mut u64, to: u64);
    /// Save the current thread as [`exos_switch`] does and continue the
    /// preempted context in the runtime page's `resume` slot.
    pub fn exos_switch_resume(save: *mut u64);
    /// Save the current thread as [`exos_switch`] does and run `f` on the
    /// stack whose top is `stack` (the scheduler's idle loop).
    pub fn exos_switch_to_stack(save: *mut u64, stack: u64, f: extern "C" fn() -> !);
    /// Continue a voluntarily saved thread, saving nothing (from a
    /// handler, the idle loop, or a thread that ended). Clears the upcall
    /// busy word on the way.
    pub fn exos_enter(to: u64) -> !;
    /// Continue the preempted context in the `resume` slot, saving
    /// nothing; clears the upcall busy word and the critical-section depth.
    pub fn exos_resume() -> !;
    /// Run `f` on the stack whose top is `stack`, abandoning this one.
    pub fn exos_run_on_stack(stack: u64, f: extern "C" fn() -> !) -> !;
    /// The first instruction of a new thread (see `crate::thread`).
    pub fn exos_thread_start();
    /// The resume sequence's final jump (for `crate::upcall`).
    pub fn exos_resume_jmp();
    /// The resume sequence's first instruction.
    pub fn exos_resume_start();
}

macro_rules! regs_off {
    ($f:ident) => {
        rt::RESUME + offset_of!(Regs, $f) as u64
    };
}

global_asm!(
    // exos_switch(save = RDI, to = RSI)
    ".globl exos_switch",
    "exos_switch:",
    "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
    "ret",

    // exos_switch_resume(save = RDI)
    ".globl exos_switch_resume",
    "exos_switch_resume:",
    "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
    "mov [rdi], rsp",
    "jmp exos_resume",

    // exos_switch_to_stack(save = RDI, stack = RSI, f = RDX)
    ".globl exos_switch_to_stack",
    "exos_switch_to_stack:",
    "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "call rdx",
    "ud2",

    // exos_run_on_stack(stack = RDI, f = RSI)
    ".globl exos_run_on_stack",
    "exos_run_on_stack:",
    "mov rsp, rdi",
    "call rsi",
    "ud2",

    // exos_enter(to = RDI): the thread's callee-saved registers are on its stack.
    ".globl exos_enter",
    "exos_enter:",
    "mov rsp, rdi",
    "mov qword ptr [{upcall_busy}], 0",   // a handler that switched has finished with the area
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
    "ret",

    // exos_resume: every register from the resume slot. Entered inside a
    // critical section, which the last instructions close.
    ".globl exos_resume",
    ".globl exos_resume_start",
    "exos_resume:",
    "exos_resume_start:",
    "push qword ptr [{rflags}]",
    "popfq",                                // nothing below changes the flags
    "mov rax, qword ptr [{rax}]",
    "mov rbx, qword ptr [{rbx}]",
    "mov rcx, qword ptr [{rcx}]",
    "mov rdx, qword ptr [{rdx}]",
    "mov rsi, qword ptr [{rsi}]",
    "mov rdi, qword ptr [{rdi}]",
    "mov rbp, qword ptr [{rbp}]",
    "mov r8, qword ptr [{r8}]",
    "mov r9, qword ptr [{r9}]",
    "mov r10, qword ptr [{r10}]",
    "mov r11, qword ptr [{r11}]",
    "mov r12, qword ptr [{r12}]",
    "mov r13, qword ptr [{r13}]",
    "mov r14, qword ptr [{r14}]",
    "mov r15, qword ptr [{r15}]",
    "mov rsp, qword ptr [{rsp}]",
    "mov qword ptr [{upcall_busy}], 0",
    "mov qword ptr [{nopreempt}], 0",       // the thread was preempted outside any critical section
    ".globl exos_resume_jmp",
    "exos_resume_jmp:",
    "jmp qword ptr [{rip}]",

    // A new thread: RBX = its control block (see thread::new_stack_frame).
    ".globl exos_thread_start",
    "exos_thread_start:",
    "mov rdi, rbx",
    "and rsp, -16",
    "cld",
    "call {main}",
    "ud2",

    upcall_busy = const UPCALL_VA + uoff::BUSY as u64,
    nopreempt = const rt::NOPREEMPT,
    rflags = const regs_off!(rflags),
    rax = const regs_off!(rax),
    rbx = const regs_off!(rbx),
    rcx = const regs_off!(rcx),
    rdx = const regs_off!(rdx),
    rsi = const regs_off!(rsi),
    rdi = const regs_off!(rdi),
    rbp = const regs_off!(rbp),
    r8 = const regs_off!(r8),
    r9 = const regs_off!(r9),
    r10 = const regs_off!(r10),
    r11 = const regs_off!(r11),
    r12 = const regs_off!(r12),
    r13 = const regs_off!(r13),
    r14 = const regs_off!(r14),
    r15 = const regs_off!(r15),
    rsp = const regs_off!(rsp),
    rip = const regs_off!(rip),
    main = sym super::thread_main,
);
