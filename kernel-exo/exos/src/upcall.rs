//! Kernel upcalls: the end of a time slice, and revocation requests.
//!
//! The kernel enters [`exos_upcall_entry`] on the upcall stack with RAX =
//! the kind, RDI/RSI = its arguments, and the interrupted context (if the
//! environment was running or ready) in the upcall area. The runtime
//! calls the program's hook for the kind, then resumes the interrupted
//! context in ring 3 (all registers and RFLAGS from the area, `busy`
//! cleared, `jmp` to the saved RIP) — or, if there was none, waits.
//!
//! Defaults: at the end of a slice, yield the processor (which answers
//! the upcall within its bound); on a revocation request, do nothing (the
//! kernel then repossesses pages of its own choosing at the deadline).

use crate::sys;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use exo_abi::layout::{UPCALL_VA, UpcallArea, uoff};
use exo_abi::{Error, HandlerKind, UpcallKind, YIELD_ANY};

/// Called at the end of a slice (the slice is over: be quick, then return).
pub type SliceEndHook = fn();
/// Called with (pages wanted, ticks left): return pages by freeing them.
pub type RevokeHook = fn(u64, u64);

static SLICE_END: AtomicUsize = AtomicUsize::new(0);
static REVOKE: AtomicUsize = AtomicUsize::new(0);

const STACK_PAGES: u64 = 4;

/// Take upcalls, with optional hooks (None = the default behaviour).
pub fn install(slice_end: Option<SliceEndHook>, revoke: Option<RevokeHook>) -> Result<(), Error> {
    SLICE_END.store(slice_end.map_or(0, |f| f as usize), Relaxed);
    REVOKE.store(revoke.map_or(0, |f| f as usize), Relaxed);
    let stack = crate::mem::new_stack(STACK_PAGES)?;
    // SAFETY: `exos_upcall_entry` follows the upcall convention; the stack
    // is fresh and used by nothing else.
    unsafe { sys::set_handler(HandlerKind::Upcall, exos_upcall_entry as *const () as u64, stack) }
}

/// The upcall area.
pub fn area() -> &'static UpcallArea {
    // SAFETY: mapped for the environment's life; read-only use here.
    unsafe { &*(UPCALL_VA as *const UpcallArea) }
}

extern "C" fn exos_upcall_dispatch(kind: u64, arg0: u64, arg1: u64) {
    match UpcallKind::from_number(kind) {
        Some(UpcallKind::SliceEnd) => match SLICE_END.load(Relaxed) {
            0 => {
                let _ = sys::yield_to(YIELD_ANY);
            }
            f => {
                // SAFETY: only `install` stores non-zero values, and they are hooks.
                let hook = unsafe { core::mem::transmute::<usize, SliceEndHook>(f) };
                hook()
            }
        },
        Some(UpcallKind::Revoke) => {
            let f = REVOKE.load(Relaxed);
            if f != 0 {
                // SAFETY: as above.
                let hook = unsafe { core::mem::transmute::<usize, RevokeHook>(f) };
                hook(arg0, arg1);
            }
        }
        None => {}
    }
    // SAFETY: volatile read of the area the kernel wrote before entering us.
    if unsafe { core::ptr::read_volatile(&area().has_ctx) } == 0 {
        sys::wait();
    }
}

/// The upcall entry point (see the module documentation).
#[unsafe(naked)]
pub extern "C" fn exos_upcall_entry() {
    naked_asm!(
        "mov rdx, rsi",                  // dispatch(kind, arg0, arg1)
        "mov rsi, rdi",
        "mov rdi, rax",
        "cld",
        "call {dispatch}",               // the stack top is 16-aligned
        // Resume the interrupted context from the area.
        "push qword ptr [{rflags}]",
        "popfq",                         // nothing below changes the flags
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
        "mov qword ptr [{busy}], 0",     // upcalls can be delivered again
        "jmp qword ptr [{rip}]",
        dispatch = sym exos_upcall_dispatch,
        rflags = const UPCALL_VA + uoff::RFLAGS as u64,
        rax = const UPCALL_VA + uoff::RAX as u64,
        rbx = const UPCALL_VA + uoff::RBX as u64,
        rcx = const UPCALL_VA + uoff::RCX as u64,
        rdx = const UPCALL_VA + uoff::RDX as u64,
        rsi = const UPCALL_VA + uoff::RSI as u64,
        rdi = const UPCALL_VA + uoff::RDI as u64,
        rbp = const UPCALL_VA + uoff::RBP as u64,
        r8 = const UPCALL_VA + uoff::R8 as u64,
        r9 = const UPCALL_VA + uoff::R9 as u64,
        r10 = const UPCALL_VA + uoff::R10 as u64,
        r11 = const UPCALL_VA + uoff::R11 as u64,
        r12 = const UPCALL_VA + uoff::R12 as u64,
        r13 = const UPCALL_VA + uoff::R13 as u64,
        r14 = const UPCALL_VA + uoff::R14 as u64,
        r15 = const UPCALL_VA + uoff::R15 as u64,
        rsp = const UPCALL_VA + uoff::RSP as u64,
        busy = const UPCALL_VA + uoff::BUSY as u64,
        rip = const UPCALL_VA + uoff::RIP as u64,
    )
}
