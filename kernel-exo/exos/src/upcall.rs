//! Kernel upcalls: the end of a time slice, and revocation requests.
//!
//! The kernel enters [`exos_upcall_entry`] on the upcall stack with RAX =
//! the kind, RDI/RSI = its arguments, and the interrupted context (if the
//! environment was running or ready) in the upcall area; no upcall is
//! delivered while the area's busy word is set. The runtime then:
//!
//! - at the **end of a slice**: calls the program's hook if it installed
//!   one; otherwise lets the thread scheduler preempt the interrupted
//!   thread (`crate::thread`) and gives the processor up (which answers
//!   the upcall within its bound);
//! - on a **revocation request**: calls the program's hook if it
//!   installed one; otherwise ExOS's pager chooses the pages to return
//!   (`crate::pager`) — deferred to the end of the critical section if
//!   one was open;
//! - resumes the interrupted context in ring 3 (all registers and RFLAGS
//!   from the area, `busy` cleared, a jump through the saved RIP), or, if
//!   there was none (the environment was waiting), waits again or runs the
//!   thread scheduler.
//!
//! **Repairing RIP.** Three resume paths end with "release, then jump
//! through a saved address": this file's (the upcall area), the thread
//! resume sequence, and the exception resume. An upcall taken exactly at
//! that final jump would see RIP = the jump, and the address it jumps
//! through may be overwritten before it runs again; so the handler first
//! replaces such a RIP by the address that jump was going to take.

use crate::private::{self, off, rt};
use crate::sys;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use exo_abi::layout::{ExceptionArea, Regs, UAREA_VA, UPCALL_VA, UpcallArea, uoff};
use exo_abi::{Error, HandlerKind, UpcallKind};

/// Called at the end of a slice (the slice is over: be quick, then return).
pub type SliceEndHook = fn();
/// Called with (pages wanted, ticks left): return pages by freeing them.
pub type RevokeHook = fn(u64, u64);

static SLICE_END: AtomicUsize = AtomicUsize::new(0);
static REVOKE: AtomicUsize = AtomicUsize::new(0);

const STACK_PAGES: u64 = 4;

/// Take upcalls, with the program's own hooks (None = ExOS's behaviour).
pub fn install(slice_end: Option<SliceEndHook>, revoke: Option<RevokeHook>) -> Result<(), Error> {
    SLICE_END.store(slice_end.map_or(0, |f| f as usize), Relaxed);
    REVOKE.store(revoke.map_or(0, |f| f as usize), Relaxed);
    ensure()
}

/// The upcall stack's top, once the entry is registered.
static UPCALL_STACK: AtomicU64 = AtomicU64::new(0);

/// Register ExOS's upcall entry, if it is not yet.
pub fn ensure() -> Result<(), Error> {
    if UPCALL_STACK.load(Relaxed) != 0 {
        return Ok(());
    }
    let stack = crate::vm::new_private_stack(STACK_PAGES).map_err(crate::mem::to_error)?;
    // SAFETY: `exos_upcall_entry` follows the upcall convention; the stack
    // is fresh and used by nothing else.
    unsafe { sys::set_handler(HandlerKind::Upcall, exos_upcall_entry as *const () as u64, stack) }?;
    UPCALL_STACK.store(stack, Relaxed);
    Ok(())
}

/// Register the upcall entry again in a forked child (the kernel's
/// registration is per environment), if the parent had one. The stack
/// address is the parent's, which is valid here: a child gets fresh
/// pages at the parent's private stacks.
pub(crate) fn after_fork() -> Result<(), Error> {
    match UPCALL_STACK.load(Relaxed) {
        0 => Ok(()),
        // SAFETY: as in `ensure`.
        stack => unsafe {
            sys::set_handler(HandlerKind::Upcall, exos_upcall_entry as *const () as u64, stack)
        },
    }
}

/// The upcall area.
pub fn area() -> &'static UpcallArea {
    // SAFETY: mapped for the environment's life; read-only use here.
    unsafe { &*(UPCALL_VA as *const UpcallArea) }
}

fn area_mut() -> &'static mut UpcallArea {
    // SAFETY: mapped read-write for the environment's life; while `busy` is
    // set the kernel does not write it and this handler is the only user.
    unsafe { &mut *(UPCALL_VA as *mut UpcallArea) }
}

unsafe extern "C" {
    fn exos_upcall_area_jmp();
    fn exos_xresume_jmp();
}

/// Replace a RIP taken at one of the resume paths' final jumps by the
/// address the jump was going to take (see the module documentation).
fn repair(ctx: &mut Regs) {
    let rip = ctx.rip;
    if rip == exos_upcall_area_jmp as *const () as u64 {
        ctx.rip = rt().upcall_rip;
    } else if rip == crate::thread::switch::exos_resume_jmp as *const () as u64 {
        ctx.rip = rt().resume.rip;
    } else if rip == exos_xresume_jmp as *const () as u64 {
        // SAFETY: the exception area is mapped for the environment's life.
        ctx.rip = unsafe { core::ptr::read_volatile(&(*(UAREA_VA as *const ExceptionArea)).rip) };
    }
}

extern "C" fn exos_upcall_dispatch(kind: u64, arg0: u64, arg1: u64) {
    let a = area_mut();
    // SAFETY: volatile read of the area the kernel wrote before entering us.
    let has_ctx = unsafe { core::ptr::read_volatile(&a.has_ctx) } != 0;
    if has_ctx {
        repair(&mut a.ctx);
    }
    // A revocation request deferred by a critical section that has not
    // been handled yet (no section closed since): now, if we may.
    if has_ctx
        && rt().pending.load(core::sync::atomic::Ordering::SeqCst) & private::PENDING_REVOKE != 0
        && rt().nopreempt.load(core::sync::atomic::Ordering::SeqCst) == 0
        && !exception_busy()
    {
        rt().pending.fetch_and(!private::PENDING_REVOKE, core::sync::atomic::Ordering::SeqCst);
        crate::pager::on_revoke(core::mem::take(&mut rt().revoke_wanted));
    }
    match UpcallKind::from_number(kind) {
        Some(UpcallKind::SliceEnd) => match SLICE_END.load(Relaxed) {
            0 if has_ctx => crate::thread::on_slice_end(&a.ctx),
            0 => {}
            f => {
                // SAFETY: only `install` stores non-zero values, and they are hooks.
                let hook = unsafe { core::mem::transmute::<usize, SliceEndHook>(f) };
                hook()
            }
        },
        Some(UpcallKind::Revoke) => match REVOKE.load(Relaxed) {
            0 => {
                let open = rt().nopreempt.load(core::sync::atomic::Ordering::SeqCst) != 0;
                if has_ctx && (open || exception_busy()) {
                    rt().revoke_wanted = arg0;
                    rt().pending.fetch_or(private::PENDING_REVOKE, core::sync::atomic::Ordering::SeqCst);
                } else {
                    crate::pager::on_revoke(arg0);
                }
            }
            f => {
                // SAFETY: as above.
                let hook = unsafe { core::mem::transmute::<usize, RevokeHook>(f) };
                hook(arg0, arg1);
            }
        },
        None => {}
    }
    if !has_ctx {
        // We were waiting: in a synchronous call (wait for the reply), or
        // idle (let the scheduler decide).
        if crate::pct::in_call() {
            // SAFETY: our busy word; nothing of this upcall is kept.
            unsafe { core::ptr::write_volatile(&mut a.busy, 0) };
            sys::wait();
        }
        crate::thread::reenter();
    }
}

fn exception_busy() -> bool {
    // SAFETY: the user area is mapped for the environment's life.
    unsafe { core::ptr::read_volatile(UAREA_VA as *const u64) != 0 }
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
        // Resume the interrupted context from the area. Its RIP goes to a
        // private word first: the final jump must not read the area.
        "push qword ptr [{rip}]",
        "pop qword ptr [{upcall_rip}]",
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
        ".globl exos_upcall_area_jmp",
        "exos_upcall_area_jmp:",
        "jmp qword ptr [{upcall_rip}]",
        dispatch = sym exos_upcall_dispatch,
        upcall_rip = const off::UPCALL_RIP,
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
