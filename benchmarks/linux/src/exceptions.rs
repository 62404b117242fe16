//! Exception round trips through Unix signals: the fault raises a signal,
//! the handler skips the faulting instruction in the saved context, and
//! `sigreturn` resumes after it.

use crate::sys;
use benchmarks::{Sample, measure};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes the handler skips: the length of the faulting instruction.
static SKIP: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_exception(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: `ctx` is the ucontext the kernel passed to this SA_SIGINFO handler.
    unsafe { sys::skip_instruction(ctx, SKIP.load(Ordering::Relaxed)) };
}

pub fn round_trip(name: &str, iters: u32, runs: u32) -> Sample {
    let page = sys::map_pages(1);
    let (signal, skip): (libc::c_int, u64) = match name {
        "exception #ud" => (libc::SIGILL, 2),  // ud2
        "exception #bp" => (libc::SIGTRAP, 0), // int3 is a trap: RIP is already past it
        "exception #de" => (libc::SIGFPE, 2),  // div ecx (f7 f1)
        _ => (libc::SIGSEGV, 3),               // mov byte ptr [rdi], 0 (c6 07 00)
    };
    SKIP.store(skip, Ordering::SeqCst);
    sys::on_signal(signal, on_exception);
    if signal == libc::SIGSEGV {
        sys::protect(page, 1, false); // present but read-only: a protection fault
    }
    // SAFETY (each block below): the instruction faults, the handler skips
    // it (or, for int3, the CPU already has), and execution continues after
    // it; the registers it uses are declared.
    let sample = match name {
        // SAFETY: see above.
        "exception #ud" => measure(iters, runs, || unsafe { core::arch::asm!("ud2", options(nostack)) }),
        // SAFETY: see above.
        "exception #bp" => measure(iters, runs, || unsafe { core::arch::asm!("int3", options(nostack)) }),
        // SAFETY: see above.
        "exception #de" => measure(iters, runs, || unsafe {
            core::arch::asm!("xor eax, eax", "xor edx, edx", "div ecx", in("ecx") 0u32,
                             out("eax") _, out("edx") _, options(nostack))
        }),
        // SAFETY: see above; `page` is mapped read-only, so the store faults.
        _ => measure(iters, runs, || unsafe {
            core::arch::asm!("mov byte ptr [rdi], 0", in("rdi") page, options(nostack))
        }),
    };
    sys::default_signal(signal);
    sys::protect(page, 1, true);
    sys::unmap_pages(page, 1);
    sample
}
