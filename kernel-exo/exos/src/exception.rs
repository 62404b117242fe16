//! Exceptions, handled entirely in ring 3.
//!
//! The kernel's fast path puts the trap number, error code, faulting
//! address, RIP, RSP, RAX and RCX into the exception area and jumps to
//! [`exos_xentry`] on the exception stack, with RFLAGS unchanged and every
//! other register still the faulting context's. The entry saves RFLAGS and
//! the caller-saved registers, lets ExOS's virtual memory try a page fault
//! first (copy-on-write, demand-zero, the region's own handler: see
//! `crate::vm::fault`), then calls the program's handler (which may edit
//! the area, e.g. advance `rip` past the faulting instruction), restores
//! the registers, and resumes the faulting context itself — no system
//! call on the way back: RCX, RAX and RSP come from the area, `busy` is
//! cleared, and a `jmp` through the saved RIP completes the return.
//!
//! The entry is registered on first need ([`ensure`]): by [`install`], or
//! by the parts of ExOS that take faults (`vm`, `fork`).

use crate::sys;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use exo_abi::layout::{ExceptionArea, UAREA_VA, xoff};
use exo_abi::{Error, HandlerKind};

/// What the handler decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Resume the context the area describes.
    Resume,
    /// End the environment with this exit code.
    Exit(u64),
}

/// A handler: look at (and possibly edit) the saved state, decide.
pub type Handler = fn(&mut ExceptionArea) -> Resolution;

static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Pages of the exception stack.
const STACK_PAGES: u64 = 4;

const PAGE_FAULT: u64 = 14;

/// Handle this environment's exceptions with `handler` (page faults that
/// ExOS's virtual memory resolves never reach it).
pub fn install(handler: Handler) -> Result<(), Error> {
    HANDLER.store(handler as usize, Relaxed);
    ensure()
}

/// Register ExOS's exception entry, if it is not yet.
pub fn ensure() -> Result<(), Error> {
    let r = crate::private::rt();
    if r.xstack != 0 {
        return Ok(());
    }
    let stack = crate::vm::new_private_stack(STACK_PAGES).map_err(crate::mem::to_error)?;
    // SAFETY: `exos_xentry` follows the exception entry convention and the
    // stack was just mapped for it alone.
    unsafe { sys::set_handler(HandlerKind::Exception, exos_xentry as *const () as u64, stack) }?;
    r.xstack = stack;
    Ok(())
}

/// Whether ExOS's exception entry is registered.
pub fn installed() -> bool {
    crate::private::rt().xstack != 0
}

/// A handler that reports the exception and ends the environment.
pub fn report_and_exit(area: &mut ExceptionArea) -> Resolution {
    crate::println!(
        "[exos] environment {:#x}: unhandled exception {} (error {:#x}, address {:#x}) at {:#x}",
        crate::info::get().id,
        area.trapno,
        area.error,
        area.addr,
        area.rip
    );
    Resolution::Exit(128 + area.trapno)
}

extern "C" fn exos_xdispatch() {
    // SAFETY: the user area is mapped read-write at UAREA_VA for the
    // environment's whole life; while `busy` is set the kernel does not
    // write the exception part, so this is the only reference to it.
    let area = unsafe { &mut *(UAREA_VA as *mut ExceptionArea) };
    if area.trapno == PAGE_FAULT && crate::vm::fault::on_page_fault(area) {
        return;
    }
    let h = HANDLER.load(Relaxed);
    let resolution = if h == 0 {
        report_and_exit(area)
    } else {
        // SAFETY: only `install` stores non-zero values, and they are Handlers.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        handler(area)
    };
    if let Resolution::Exit(code) = resolution {
        sys::exit(code);
    }
}

/// The exception entry point (see the module documentation).
#[unsafe(naked)]
pub extern "C" fn exos_xentry() {
    naked_asm!(
        "pushfq",                        // the faulting context's flags
        "push rdx", "push rsi", "push rdi", "push r8", "push r9", "push r10", "push r11",
        "cld",
        "call {dispatch}",               // 8 words pushed: the stack is 16-aligned for the call
        "pop r11", "pop r10", "pop r9", "pop r8", "pop rdi", "pop rsi", "pop rdx",
        "popfq",
        // Resume: nothing below changes the flags.
        "mov rcx, qword ptr [{x_rcx}]",
        "mov rax, qword ptr [{x_rax}]",
        "mov rsp, qword ptr [{x_rsp}]",
        "mov qword ptr [{x_busy}], 0",   // from here on a new exception can be delivered
        // An upcall taken here finds RIP = this jump (see `crate::upcall`).
        ".globl exos_xresume_jmp",
        "exos_xresume_jmp:",
        "jmp qword ptr [{x_rip}]",
        dispatch = sym exos_xdispatch,
        x_rcx = const UAREA_VA + xoff::RCX as u64,
        x_rax = const UAREA_VA + xoff::RAX as u64,
        x_rsp = const UAREA_VA + xoff::RSP as u64,
        x_busy = const UAREA_VA + xoff::BUSY as u64,
        x_rip = const UAREA_VA + xoff::RIP as u64,
    )
}
