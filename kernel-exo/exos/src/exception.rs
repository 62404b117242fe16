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

use crate::private::RegionRec;
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

/// The general path: everything the entry's fast path did not resolve.
extern "C" fn exos_xdispatch() {
    // SAFETY: the user area is mapped read-write at UAREA_VA for the
    // environment's whole life; while `busy` is set the kernel does not
    // write the exception part, so this is the only reference to it.
    let area = unsafe { &mut *(UAREA_VA as *mut ExceptionArea) };
    if area.trapno == PAGE_FAULT && crate::vm::fault::on_page_fault(area) {
        return;
    }
    exos_xunhandled();
}

/// Nothing in ExOS resolved it: the program's handler, or a report.
extern "C" fn exos_xunhandled() {
    // SAFETY: as in `exos_xdispatch`.
    let area = unsafe { &mut *(UAREA_VA as *mut ExceptionArea) };
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
///
/// Fast path (the "fault", "trap" and "appel" benchmarks take it): a page
/// fault in the region of the last fault or protection change (the view's
/// one-entry region cache), with an application handler and nothing for
/// ExOS to do first (no copy-on-write or demand-zero page in the region),
/// calls that handler directly. Everything else goes to the Rust
/// dispatcher. RAX and RCX are free here: the kernel saved the faulting
/// context's in the area, and RAX holds the trap number.
#[unsafe(naked)]
pub extern "C" fn exos_xentry() {
    naked_asm!(
        "pushfq",                        // the faulting context's flags
        "push rdx", "push rsi", "push rdi", "push r8", "push r9", "push r10", "push r11",
        "cld",                           // 8 words pushed: the stack is 16-aligned for calls
        "cmp eax, {pf}",                 // a page fault?
        "jne 2f",
        "mov rcx, qword ptr [{last}]",   // the cached region (byte offset of its slot)
        "mov rdi, qword ptr [{addr}]",
        "cmp rdi, qword ptr [rcx + {r_start}]",
        "jb 2f",                         // below the region
        "cmp rdi, qword ptr [rcx + {r_end}]",
        "jae 2f",                        // above it (an empty slot: 0..0, contains nothing)
        "test dword ptr [rcx + {r_flags}], {not_fast}",
        "jnz 2f",                        // copy-on-write, demand-zero, or no handler
        "mov [{fault_off}], rcx",        // for Fault::protect: the region checked here
        "mov edi, {area}",               // handler(&Fault): a view of the area
        "call qword ptr [rcx + {r_handler}]",
        "test al, al",                   // Action::Retry = 0
        "jz 3f",
        "call {unhandled}",
        "jmp 3f",
        "2:",
        "call {dispatch}",
        "3:",
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
        pf = const PAGE_FAULT,
        last = const crate::private::RUNTIME_VA + core::mem::offset_of!(crate::private::Runtime, last_off) as u64,
        fault_off = const crate::private::RUNTIME_VA + core::mem::offset_of!(crate::private::Runtime, fault_off) as u64,
        addr = const UAREA_VA + xoff::ADDR as u64,
        area = const UAREA_VA,
        r_start = const REGIONS + core::mem::offset_of!(RegionRec, start) as u64,
        r_end = const REGIONS + core::mem::offset_of!(RegionRec, end) as u64,
        r_flags = const REGIONS + core::mem::offset_of!(RegionRec, flags) as u64,
        r_handler = const REGIONS + core::mem::offset_of!(RegionRec, handler) as u64,
        not_fast = const crate::vm::region::HAS_COW | crate::vm::region::ZERO_FILL | crate::vm::region::NO_HANDLER,
        unhandled = sym exos_xunhandled,
        dispatch = sym exos_xdispatch,
        x_rcx = const UAREA_VA + xoff::RCX as u64,
        x_rax = const UAREA_VA + xoff::RAX as u64,
        x_rsp = const UAREA_VA + xoff::RSP as u64,
        x_busy = const UAREA_VA + xoff::BUSY as u64,
        x_rip = const UAREA_VA + xoff::RIP as u64,
    )
}

/// Address of the region table in the runtime page.
const REGIONS: u64 =
    crate::private::RUNTIME_VA + core::mem::offset_of!(crate::private::Runtime, regions) as u64;
const _: () = assert!(core::mem::size_of::<RegionRec>() == 32, "the fast path indexes regions with shl 5");
const _: () = assert!(REGIONS + 32 * crate::private::MAX_REGIONS as u64 <= 0x8000_0000);
