//! Exception round trips: raise, deliver to this environment's handler,
//! resume after the faulting instruction. The handlers are the minimal
//! ones a library OS registers for such a fault: advance the saved RIP
//! past the instruction (with `lea`, leaving the flags alone) and resume
//! in ring 3 from the exception area — no system call on the way back.

use benchmarks::suite::Outcome;
use core::arch::{asm, naked_asm};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::layout::{UAREA_VA, xoff};
use exo_abi::{HandlerKind, Prot};

/// A handler that resumes `$skip` bytes after the faulting instruction.
macro_rules! skip_handler {
    ($name:ident, $skip:literal) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!(
                "mov rcx, qword ptr [{rip}]",
                concat!("lea rcx, [rcx + ", $skip, "]"), // past the instruction; flags untouched
                "mov qword ptr [{rip}], rcx",
                "mov rcx, qword ptr [{rcx}]",            // resume: the faulting context's RCX,
                "mov rax, qword ptr [{rax}]",            // RAX,
                "mov rsp, qword ptr [{rsp}]",            // stack,
                "mov qword ptr [{busy}], 0",             // ready for the next exception,
                "jmp qword ptr [{rip}]",                 // and RIP
                rip = const UAREA_VA + xoff::RIP as u64,
                rcx = const UAREA_VA + xoff::RCX as u64,
                rax = const UAREA_VA + xoff::RAX as u64,
                rsp = const UAREA_VA + xoff::RSP as u64,
                busy = const UAREA_VA + xoff::BUSY as u64,
            )
        }
    };
}

skip_handler!(resume_after_2, "2");
skip_handler!(resume_after_3, "3");

/// #BP is a trap: the saved RIP is already past `int3`.
#[unsafe(naked)]
extern "C" fn resume_as_is() {
    naked_asm!(
        "mov rcx, qword ptr [{rcx}]",
        "mov rax, qword ptr [{rax}]",
        "mov rsp, qword ptr [{rsp}]",
        "mov qword ptr [{busy}], 0",
        "jmp qword ptr [{rip}]",
        rip = const UAREA_VA + xoff::RIP as u64,
        rcx = const UAREA_VA + xoff::RCX as u64,
        rax = const UAREA_VA + xoff::RAX as u64,
        rsp = const UAREA_VA + xoff::RSP as u64,
        busy = const UAREA_VA + xoff::BUSY as u64,
    )
}

/// A read-only page for the #PF row.
const PF_PAGE: u64 = 0x0f00_0000;

/// The handlers' stack (one, made on first use).
pub fn handler_stack() -> u64 {
    static STACK: AtomicU64 = AtomicU64::new(0);
    if STACK.load(Relaxed) == 0 {
        STACK.store(exos::mem::new_stack(4).expect("exception stack"), Relaxed);
    }
    STACK.load(Relaxed)
}

pub fn run(name: &str, iters: u32, runs: u32) -> Outcome {
    let stack = handler_stack();
    let handler: extern "C" fn() = match name {
        "exception #ud" => resume_after_2,
        "exception #bp" => resume_as_is,
        _ => resume_after_3,
    };
    // SAFETY: the handlers follow the exception entry convention; the
    // stack is fresh.
    unsafe { exos::sys::set_handler(HandlerKind::Exception, handler as *const () as u64, stack) }
        .expect("register the handler");
    // In every row the instruction faults into the handler registered
    // above, which resumes after it; nothing else changes.
    let sample = match name {
        "exception #ud" => benchmarks::measure(iters, runs, || {
            // SAFETY: see above.
            unsafe { asm!("ud2", options(nostack)) }
        }),
        "exception #bp" => benchmarks::measure(iters, runs, || {
            // SAFETY: see above.
            unsafe { asm!("int3", options(nostack)) }
        }),
        "exception #de" => benchmarks::measure(iters, runs, || {
            // SAFETY: see above. `div rcx` (3 bytes) with RCX = 0.
            unsafe { asm!("div rcx", in("rcx") 0u64, out("rax") _, out("rdx") _, options(nostack)) }
        }),
        _ => {
            // A store (3 bytes) to a page bound read-only: a protection
            // fault on a present page.
            // SAFETY: PF_PAGE is reserved for this benchmark.
            unsafe { exos::mem::map_fresh(PF_PAGE, 1, Prot::READ, None) }.expect("map the read-only page");
            benchmarks::measure(iters, runs, || {
                // SAFETY: see above.
                unsafe {
                    asm!("mov qword ptr [rcx], rax", in("rcx") PF_PAGE, in("rax") 0u64, options(nostack))
                }
            })
        }
    };
    // SAFETY: unregistering transfers control nowhere.
    unsafe { exos::sys::set_handler(HandlerKind::Exception, 0, 0) }.expect("unregister the handler");
    Outcome::Measured(sample)
}
