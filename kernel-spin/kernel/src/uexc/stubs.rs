//! The entry stubs of `uexc` (ring 0, trusted): hand-written assembly
//! for the five exceptions with an inlined reflecting handler (the fast
//! path described in `uexc`'s documentation) and the common entry of the
//! general path. A child module of `uexc`, so it reads the reflection
//! records and frames it shares with it without widening their visibility.

use super::{FaultEvent, GENERIC, REFLECT, Reflection, user_exception};
use core::arch::naked_asm;
use core::mem::offset_of;
use shared_hal::paging::pte;
use shared_hal::trap::vector;
use spin_interface::abi::TrapInfo;
use spin_interface::translation;
use spin_interface::user;

/// The frame-address bits of a page-table entry (a memory operand for the stubs).
static PTE_FRAME: u64 = pte::ADDR;
/// `USER_END - USER_START`: a page fault's address is a user address if
/// it is below this after subtracting `USER_START` (a memory operand).
static USER_SPAN: u64 = translation::USER_END - translation::USER_START;

/// One stub (see the module documentation). `$cs` is where the saved CS
/// sits (8 without an error code, 16 with one), `$err` whether the CPU
/// pushed an error code, `$find` the instructions that leave the raised
/// event's address in RCX (or jump to `8f` for the general path), `using`
/// the operands only those instructions name (each stub declares just what
/// it uses: `naked_asm!` rejects unused operands), `$addr` the
/// instructions that leave the faulting address in RAX.
///
/// After the three pushes the interrupt frame starts at `rsp + 24`
/// (+ 8 with an error code): RIP, CS, RFLAGS, RSP, SS.
macro_rules! stub {
    ($name:ident, $vector:expr, $k:expr, cs = $cs:literal, err = $err:tt, find = [$($find:literal),*], using = { $($ops:tt)* }, addr = [$($addr:literal),*]) => {
        #[unsafe(naked)]
        pub(super) extern "C" fn $name() {
            naked_asm!(
                concat!("test byte ptr [rsp + ", $cs, "], 3"), // from ring 3?
                "jz 9f",
                "push rax",                          // three scratch registers
                "push rcx",
                "push rdx",
                $($find,)*                           // RCX = the event raised
                "lea rax, [rip + {reflect}]",        // its lone handler is the
                "cmp [rcx + {entry_word}], rax",     // standard reflecting one?
                "jne 8f",
                "movzx ecx, byte ptr [rip + {tag}]", // the process's record
                "shl ecx, 6",
                "lea rax, [rip + {records}]",
                "add rcx, rax",
                "mov rax, [rcx + {r_pte}]",          // the entry mapping its TrapInfo
                "mov rdx, [rax]",
                "not dl",                            // present, writable and user:
                "test dl, 7",                        // the low 3 bits of !e are 0
                "jnz 8f",
                "or qword ptr [rax], {a_d}",         // written below: accessed, dirty
                "and rdx, [rip + {frame_bits}]",     // (clears the inverted byte too)
                "add rdx, [rcx + {r_window}]",       // RDX = the TrapInfo, kernel view
                "mov [rdx + {t_rdi}], rdi",
                "mov rdi, [rcx + {r_info}]",         // the handler's argument
                "mov qword ptr [rdx + {t_vector}], {vector}",
                stub!(@error $err),
                $($addr,)*
                "mov [rdx + {t_addr}], rax",
                concat!("mov rax, [rsp + 24 + ", stub!(@e $err), "]"),      // RIP
                "mov [rdx + {t_rip}], rax",
                concat!("mov rax, [rsp + 24 + 24 + ", stub!(@e $err), "]"), // RSP
                "mov [rdx + {t_rsp}], rax",
                concat!("mov rax, [rsp + 24 + 16 + ", stub!(@e $err), "]"), // RFLAGS
                "mov [rdx + {t_rflags}], rax",
                "mov rax, [rcx + {r_entry}]",        // continue in the handler ...
                concat!("mov [rsp + 24 + ", stub!(@e $err), "], rax"),
                "mov rax, [rcx + {r_rsp}]",          // ... on its stack ...
                concat!("mov [rsp + 24 + 24 + ", stub!(@e $err), "], rax"),
                concat!("mov qword ptr [rsp + 24 + 16 + ", stub!(@e $err), "], 0x202"), // ... IF only
                "pop rdx",
                "pop rcx",
                "pop rax",
                stub!(@drop $err),
                "iretq",
                "8:",                                // the general path
                "pop rdx",
                "pop rcx",
                "pop rax",
                stub!(@push $err),
                "push {vector}",
                "jmp {common}",
                "9:",
                "jmp qword ptr [rip + {generic} + {k} * 8]", // kernel mode: the HAL reports it
                vector = const $vector,
                common = sym common,
                generic = sym GENERIC,
                k = const $k,
                reflect = sym translation::reflect,
                entry_word = const FaultEvent::ENTRY_OFFSET,
                tag = sym crate::strands::TAG,
                records = sym REFLECT,
                r_pte = const offset_of!(Reflection, pte),
                r_window = const offset_of!(Reflection, window),
                r_info = const offset_of!(Reflection, info),
                r_entry = const offset_of!(Reflection, entry),
                r_rsp = const offset_of!(Reflection, rsp),
                frame_bits = sym PTE_FRAME,
                a_d = const pte::ACCESSED | pte::DIRTY,
                t_vector = const offset_of!(TrapInfo, vector),
                t_error = const offset_of!(TrapInfo, error),
                t_addr = const offset_of!(TrapInfo, addr),
                t_rip = const offset_of!(TrapInfo, rip),
                t_rsp = const offset_of!(TrapInfo, rsp),
                t_rflags = const offset_of!(TrapInfo, rflags),
                t_rdi = const offset_of!(TrapInfo, rdi),
                $($ops)*
            )
        }
    };
    (@e false) => { "0" };
    (@e true) => { "8" };
    (@error false) => { "mov qword ptr [rdx + {t_error}], 0" };
    (@error true) => { "mov rax, [rsp + 24]\n mov [rdx + {t_error}], rax" };
    (@drop false) => { "/* no error code */" };
    (@drop true) => { "add rsp, 8" };
    (@push false) => { "push 0" };
    (@push true) => { "/* the CPU pushed the error code */" };
}

/// User.Exception for the vectors other than #PF.
macro_rules! exception_stub {
    ($name:ident, $vector:expr, $k:expr, cs = $cs:literal, err = $err:tt) => {
        stub!(
            $name,
            $vector,
            $k,
            cs = $cs,
            err = $err,
            find = ["lea rcx, [rip + {exception}]"],
            using = { exception = sym user::EXCEPTION },
            addr = ["xor eax, eax"]
        );
    };
}

exception_stub!(stub_de, vector::DIVIDE_ERROR, 0, cs = "8", err = false);
exception_stub!(stub_bp, vector::BREAKPOINT, 1, cs = "8", err = false);
exception_stub!(stub_ud, vector::INVALID_OPCODE, 2, cs = "8", err = false);
exception_stub!(stub_gp, vector::GENERAL_PROTECTION, 3, cs = "16", err = true);
// A page fault raises PageNotPresent or ProtectionFault (error bit 0) for
// a user address; BadAddress (kernel half, reserved slot, null page) goes
// the general way.
stub!(
    stub_pf,
    vector::PAGE_FAULT,
    4,
    cs = "16",
    err = true,
    find = [
        "mov rax, cr2",
        "lea rcx, [rax - {user_start}]",
        "cmp rcx, [rip + {user_span}]",
        "jae 8f",
        // A branch rather than `cmov`: one instruction less for protection
        // faults (the VM rows), as many for not-present ones.
        "lea rcx, [rip + {pfault}]",
        "test byte ptr [rsp + 24], 1", // error bit 0: a present page
        "jnz 1f",
        "lea rcx, [rip + {pnp}]",
        "1:"
    ],
    using = {
        pnp = sym translation::PAGE_NOT_PRESENT,
        pfault = sym translation::PROTECTION_FAULT,
        user_start = const translation::USER_START,
        user_span = sym USER_SPAN,
    },
    addr = ["mov rax, cr2"]
);

/// Save the caller-saved registers, call [`user_exception`], restore, `iretq`.
#[unsafe(naked)]
pub(crate) extern "C" fn common() {
    naked_asm!(
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "mov rdi, rsp", // &mut ExcFrame
        "cld",          // Rust code assumes DF = 0; ring 3 may have set it
        "call {handler}",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "add rsp, 16", // vector and error code
        "iretq",
        handler = sym user_exception,
    )
}
