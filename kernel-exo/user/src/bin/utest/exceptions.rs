//! Every kind of ring-3 exception reaches our own handler with the right
//! trap number, error code, address and RIP, and the handler resumes the
//! faulting context with every register and flag intact.

use core::arch::asm;
use exo_abi::layout::ExceptionArea;
use exo_user::{Checks, expect_eq, traps};

/// Run `body` (which faults once at the instruction labelled `2:`), and
/// return what the handler saw and the label's address.
macro_rules! fault {
    ($skip:expr, [$($t:literal),*] $(, $($op:tt)*)?) => {{
        traps::arm($skip);
        let at: u64;
        // SAFETY: the instruction faults into our handler, which resumes
        // after it; no other effect.
        unsafe { asm!("lea {at}, [rip + 2f]", $($t),*, at = out(reg) at $(, $($op)*)?) };
        (traps::last(), at)
    }};
}

/// Resume where the faulting `jmp`'s caller continues (see kernel_text).
fn resume_at_landing(area: &mut ExceptionArea) -> bool {
    area.rip = traps::RESUME_AT.swap(0, core::sync::atomic::Ordering::SeqCst);
    true
}

pub fn run() -> u64 {
    let mut c = Checks::new("exceptions");
    if let Err(e) = traps::install() {
        c.check(false, "install handler", format_args!("{e:?}"));
        return c.finish();
    }
    let (s, at) = fault!(2, ["2: ud2"]);
    expect_eq!(c, "#UD", (s.count, s.trapno, s.error, s.rip), (1, 6, 0, at));
    // int3 is a trap: the saved RIP already points past it.
    let (s, at) = fault!(0, ["int3", "2:"]);
    expect_eq!(c, "#BP", (s.count, s.trapno, s.rip), (2, 3, at));
    let (s, at) = fault!(3, ["xor edx, edx", "xor eax, eax", "xor ecx, ecx", "2: div rcx"], out("rax") _, out("rdx") _, out("rcx") _);
    expect_eq!(c, "#DE", (s.count, s.trapno, s.rip), (3, 0, at));
    let (s, at) = fault!(3, ["2: mov rax, qword ptr [rcx]"], in("rcx") 0x7000_0000u64, out("rax") _);
    expect_eq!(
        c,
        "#PF read of unmapped memory",
        (s.count, s.trapno, s.error, s.addr, s.rip),
        (4, 14, 4, 0x7000_0000, at)
    );
    let (s, at) = fault!(1, ["2: hlt"]);
    expect_eq!(c, "#GP privileged instruction", (s.count, s.trapno, s.error, s.rip), (5, 13, 0, at));
    let (s, _) = fault!(2, ["2: int 0x80"]);
    // The error code names the IDT gate: vector * 8 + 2 on hardware;
    // QEMU's 64-bit mode reports vector * 16 + 2 (its gates are 16 bytes).
    let gate = s.error == 0x80 * 8 + 2 || s.error == 0x80 * 16 + 2;
    expect_eq!(c, "#GP int to a kernel-only gate", (s.count, s.trapno, gate), (6, 13, true));
    let (s, _) = fault!(2, ["2: .byte 0xdb, 0xe3"]); // fninit
    expect_eq!(c, "#NM: no x87 for environments", (s.count, s.trapno), (7, 7));
    let (s, _) = fault!(3, ["2: .byte 0x0f, 0x57, 0xc0"]); // xorps xmm0, xmm0
    expect_eq!(c, "#UD: no SSE for environments", (s.count, s.trapno), (8, 6));
    let (s, _) = fault!(3, ["2: mov rax, qword ptr [rcx]"], in("rcx") 0xffff_8000_0000_0000u64, out("rax") _);
    expect_eq!(
        c,
        "#PF reading kernel memory",
        (s.count, s.trapno, s.error & 4, s.addr),
        (9, 14, 4, 0xffff_8000_0000_0000)
    );
    let (s, _) = fault!(3, ["2: mov rax, qword ptr [rcx]"], in("rcx") 0x0000_8000_0000_0000u64, out("rax") _);
    expect_eq!(c, "#GP non-canonical address", (s.count, s.trapno), (10, 13));
    let (s, _) = fault!(2, ["2: in al, 0x60"], out("al") _);
    expect_eq!(c, "#GP: no I/O ports for environments", (s.count, s.trapno), (11, 13));
    // Single-stepping: the trap comes after the first instruction run with
    // TF set, once; the handler itself runs without TF (else it would trap
    // on its own first instruction and the kernel would kill us).
    let (s, at) = fault!(0, ["pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "2:"]);
    expect_eq!(c, "#DB single step, delivered once", (s.count, s.trapno, s.rip), (12, 1, at));
    kernel_text(&mut c);
    registers_survive(&mut c);
    many(&mut c);
    c.finish()
}

/// Jumping into the kernel faults (the kernel half is supervisor-only).
fn kernel_text(c: &mut Checks) {
    let before = traps::last().count;
    traps::set_fixer(Some(resume_at_landing));
    // SAFETY: the jump faults; the fixer resumes at label 3 with the stack as it was.
    unsafe {
        asm!(
            "lea rcx, [rip + 3f]",
            "mov qword ptr [rip + {resume}], rcx",
            "mov rax, 0xffffffff80000000",
            "jmp rax",
            "3:",
            resume = sym traps::RESUME_AT,
            out("rax") _, out("rcx") _,
        )
    };
    traps::set_fixer(None);
    let s = traps::last();
    expect_eq!(
        c,
        "#PF executing kernel text",
        (s.count - before, s.trapno, s.addr),
        (1, 14, 0xffff_ffff_8000_0000)
    );
}

/// Every general register and the arithmetic flags come back unchanged.
fn registers_survive(c: &mut Checks) {
    traps::arm(2);
    let (mut a, mut cx, mut d, mut si, mut di) = (0xa0u64, 0xc0u64, 0xd0u64, 0x51u64, 0xd1u64);
    let (mut r8, mut r9, mut r10, mut r11) = (8u64, 9u64, 10u64, 11u64);
    let (mut r12, mut r13, mut r14, mut r15) = (12u64, 13u64, 14u64, 15u64);
    let carry: u8;
    // SAFETY: ud2 faults into our handler, which resumes after it.
    unsafe {
        asm!(
            "stc",
            "ud2",
            "setc {cf}",
            cf = out(reg_byte) carry,
            inout("rax") a, inout("rcx") cx, inout("rdx") d, inout("rsi") si, inout("rdi") di,
            inout("r8") r8, inout("r9") r9, inout("r10") r10, inout("r11") r11,
            inout("r12") r12, inout("r13") r13, inout("r14") r14, inout("r15") r15,
        )
    };
    let got = [a, cx, d, si, di, r8, r9, r10, r11, r12, r13, r14, r15];
    expect_eq!(
        c,
        "registers across an exception",
        got,
        [0xa0, 0xc0, 0xd0, 0x51, 0xd1, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    expect_eq!(c, "carry flag across an exception", carry, 1);
}

/// A thousand exceptions in a row.
fn many(c: &mut Checks) {
    traps::arm(0);
    let before = traps::last().count;
    for _ in 0..1000 {
        // SAFETY: int3 traps to our handler, which resumes after it.
        unsafe { asm!("int3") };
    }
    expect_eq!(c, "1000 breakpoints", traps::last().count - before, 1000);
}
