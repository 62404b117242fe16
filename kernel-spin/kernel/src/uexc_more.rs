//! The other user-exception entries (ring 0, trusted): every vector ring 3
//! can raise besides `uexc`'s five enters the same common path and raises
//! `User.Exception`, so the process's registered handler gets it (or the
//! thread ends with `KILLED − vector`). Without an error code: #DB (TF
//! single-step, ICEBP), #OF, #BR, #NM (x87 with CR0.EM set), #MF, #XM;
//! with one: #TS, #NP, #SS (a stack access through a non-canonical RSP),
//! #AC (alignment check, if CR0.AM is ever set).
//!
//! Left with the HAL's report (a kernel bug or a hardware fault, never an
//! act of ring 3): NMI (2) and #MC (18) are raised by hardware, #DF (8) only
//! when delivering one exception raises another, which the kernel's own
//! stacks prevent for ring-3 exceptions; 9, 15 and 20–31 are reserved or
//! need features the kernel does not enable (EPT, CET, SEV).
//!
//! Each stub is the same five instructions as `uexc`'s: test the saved CS,
//! from ring 3 push a zero error code where the CPU pushes none and the
//! vector and jump to the common path; from ring 0 jump to the HAL's
//! generic stub (a panic report: the kernel never sets TF or uses x87).

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use shared_hal::idt::{self, Dpl};
use shared_hal::trap;

/// The vectors, in stub order (first those without an error code).
const VECTORS: [u8; 10] = [1, 4, 5, 7, 16, 19, 10, 11, 12, 17];

/// The HAL's generic stubs for [`VECTORS`], for exceptions in kernel mode.
static GENERIC: [AtomicU64; VECTORS.len()] = [const { AtomicU64::new(0) }; VECTORS.len()];

/// One stub: `$k` is the index in [`VECTORS`]; `$cs` where the saved CS
/// sits (8 without an error code, 16 with one); `$push_error` pushes the
/// missing error code.
macro_rules! stub {
    ($name:ident, $k:literal, $cs:literal, $($push_error:literal)?) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!(
                concat!("test byte ptr [rsp + ", $cs, "], 3"), // from ring 3?
                "jz 2f",
                $($push_error,)?
                "push {vector}",
                "jmp {common}",
                "2:",
                "jmp qword ptr [rip + {generic} + {k} * 8]", // kernel mode: the HAL reports it
                vector = const VECTORS[$k],
                common = sym crate::uexc::common,
                generic = sym GENERIC,
                k = const $k,
            )
        }
    };
}

stub!(stub_db, 0, "8", "push 0");
stub!(stub_of, 1, "8", "push 0");
stub!(stub_br, 2, "8", "push 0");
stub!(stub_nm, 3, "8", "push 0");
stub!(stub_mf, 4, "8", "push 0");
stub!(stub_xm, 5, "8", "push 0");
stub!(stub_ts, 6, "16",);
stub!(stub_np, 7, "16",);
stub!(stub_ss, 8, "16",);
stub!(stub_ac, 9, "16",);

/// Point the vectors at the stubs (with `uexc::install`).
pub fn install() {
    let stubs: [extern "C" fn(); VECTORS.len()] =
        [stub_db, stub_of, stub_br, stub_nm, stub_mf, stub_xm, stub_ts, stub_np, stub_ss, stub_ac];
    for (k, (v, s)) in VECTORS.iter().zip(stubs).enumerate() {
        GENERIC[k].store(trap::stub_address(*v), Ordering::Relaxed);
        trap::set_handler(*v, crate::uexc::kernel_exception);
        // SAFETY: `s` is an exception entry stub that handles both rings.
        // DPL 0: `int n` from ring 3 for these vectors is a #GP (ICEBP,
        // which raises #DB, is not subject to the gate's DPL).
        unsafe { idt::set_gate(*v, s as *const () as u64, Dpl::Kernel, 0) };
    }
}
