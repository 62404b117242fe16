//! User exception dispatch: the shortest path in the kernel.
//!
//! One naked stub per exception vector. For an exception from ring 3 whose
//! environment has a handler and is not already in it, the stub saves the
//! four registers it must overwrite (RIP, RSP, RAX, RCX) plus the trap
//! number, error code and (for #PF) CR2 into the environment's exception
//! area, sets its busy word, rewrites the CPU's interrupt frame to the
//! handler and its stack, and `iretq`s: 24 instructions, no Rust, no lock.
//! RFLAGS reach the handler unchanged except TF (the trap flag), which is
//! cleared so that the handler of a single-stepped context does not trap
//! on its own first instruction; every other register still holds the
//! faulting context's value. The handler resumes the faulting context
//! itself, in ring 3 (see exo_abi::layout::ExceptionArea).
//!
//! Everything else goes to the HAL's generic stub for the vector, which
//! builds a full frame and calls [`crate::faults::on_exception`]: the
//! kernel's own faults (including the user-copy fixups), and user
//! exceptions that cannot be delivered (no handler, or a fault while the
//! busy word is set), after which the environment is killed.

use super::envtab::{CURRENT, off};
use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::layout::xoff;
use shared_hal::idt::{self, Dpl};

/// Addresses of the HAL's generic stubs for vectors 0..32, where the
/// fast stubs send everything they do not deliver themselves.
static GENERIC: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

/// Generate one stub. `err` says whether the CPU pushes an error code,
/// `pf` whether to record CR2.
macro_rules! stub {
    ($name:ident, $vec:literal, err = $err:tt, pf = $pf:tt) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!(
                // Interrupt frame: [err], rip, cs, rflags, rsp, ss.
                concat!("test byte ptr [rsp + ", stub!(@cs $err), "], 3"), // from ring 3?
                "jz 9f",                          // no: the kernel's own fault
                "push rax",                       // two scratch registers
                "push rcx",
                "mov rcx, [rip + {current}]",     // the running environment
                "cmp qword ptr [rcx + {d_xhandler}], 0",
                "je 8f",                          // no handler: cannot deliver
                "mov rax, [rcx + {d_uarea}]",     // its exception area (kernel address)
                "bts qword ptr [rax + {busy}], 0", // mark busy; CF = it already was
                "jc 8f",                          // a fault inside the handler: cannot deliver
                "pop qword ptr [rax + {x_rcx}]",  // save the user's RCX ...
                "pop qword ptr [rax + {x_rax}]",  // ... and RAX
                stub!(@error $err),               // the error code (popped, or 0)
                concat!("mov qword ptr [rax + {trapno}], ", $vec),
                "pop qword ptr [rax + {x_rip}]",  // faulting RIP into the area ...
                "push qword ptr [rcx + {d_xhandler}]", // ... and iretq goes to the handler
                "push qword ptr [rsp + 24]",      // faulting RSP into the area ...
                "pop qword ptr [rax + {x_rsp}]",
                "push qword ptr [rcx + {d_xstack}]",
                "pop qword ptr [rsp + 24]",       // ... and the handler's stack replaces it
                "btr qword ptr [rsp + 16], 8",    // ... without TF: a single-stepped context
                                                  // must not single-step its handler
                stub!(@cr2 $pf),                  // #PF: the faulting address
                concat!("mov eax, ", $vec),       // RAX = trap number; no kernel pointer left ...
                "xor ecx, ecx",                   // ... in RAX or RCX
                "iretq",
                "8:",
                "pop rcx",                        // undo, and let the generic path decide
                "pop rax",
                "9:",
                concat!("jmp qword ptr [rip + {generic} + 8 * ", $vec, "]"),
                current = sym CURRENT,
                d_xhandler = const off::XHANDLER,
                d_xstack = const off::XSTACK,
                d_uarea = const off::UAREA,
                busy = const xoff::BUSY,
                trapno = const xoff::TRAPNO,
                error = const xoff::ERROR,
                addr = const xoff::ADDR,
                x_rip = const xoff::RIP,
                x_rsp = const xoff::RSP,
                x_rax = const xoff::RAX,
                x_rcx = const xoff::RCX,
                generic = sym GENERIC,
            )
        }
    };
    (@cs false) => { "8" };
    (@cs true) => { "16" };
    (@error false) => { "mov qword ptr [rax + {error}], 0" };
    (@error true) => { "pop qword ptr [rax + {error}]" };
    (@cr2 false) => { "/* no CR2 to record ({addr}) */" };
    (@cr2 true) => { "mov rcx, cr2\n mov [rax + {addr}], rcx" };
}

stub!(de, "0", err = false, pf = false);
stub!(db, "1", err = false, pf = false);
stub!(bp, "3", err = false, pf = false);
stub!(of, "4", err = false, pf = false);
stub!(br, "5", err = false, pf = false);
stub!(ud, "6", err = false, pf = false);
stub!(nm, "7", err = false, pf = false);
stub!(ts, "10", err = true, pf = false);
stub!(np, "11", err = true, pf = false);
stub!(ss, "12", err = true, pf = false);
stub!(gp, "13", err = true, pf = false);
stub!(pf, "14", err = true, pf = true);
stub!(mf, "16", err = false, pf = false);
stub!(ac, "17", err = true, pf = false);
stub!(xm, "19", err = false, pf = false);

/// The vectors routed to user handlers, with their stubs.
const STUBS: [(u8, extern "C" fn()); 15] = [
    (0, de),
    (1, db),
    (3, bp),
    (4, of),
    (5, br),
    (6, ud),
    (7, nm),
    (10, ts),
    (11, np),
    (12, ss),
    (13, gp),
    (14, pf),
    (16, mf),
    (17, ac),
    (19, xm),
];

/// Point the exception vectors at the fast stubs.
pub fn init() {
    for (v, slot) in GENERIC.iter().enumerate() {
        slot.store(shared_hal::trap::stub_address(v as u8), Relaxed);
    }
    for (vector, stub) in STUBS {
        // `int3` must stay usable from ring 3 (DPL 3); the others are
        // raised by the CPU only (a ring-3 `int n` for them is a #GP).
        let dpl = if vector == 3 { Dpl::User } else { Dpl::Kernel };
        // SAFETY: each stub follows the interrupt convention of its vector
        // (it knows whether an error code was pushed) and leaves through
        // `iretq` or the generic stub of the same vector.
        unsafe { idt::set_gate(vector, stub as *const () as u64, dpl, 0) };
    }
}
