//! Downloaded code: the one small register-machine format the kernel runs
//! on an environment's behalf (wakeup predicates now; message handlers,
//! ASH, use the same format and verifier). Packet *filters* are not
//! programs in this format: DPF filters are declarative field tests, so
//! the kernel can merge all of them into one decision structure, which it
//! could not do with arbitrary programs.
//!
//! A program is at most [`MAX_INSNS`] [`Insn`]s over eight 64-bit
//! registers `r0`–`r7`, reading memory only through *windows*: byte ranges
//! of pages the environment holds a capability for, named when the code is
//! downloaded (at most [`MAX_WINDOWS`]). The kernel's verifier proves,
//! before the first run, that:
//!
//! - execution is bounded: every jump goes forward, so a run executes at
//!   most as many instructions as the program has (≤ [`MAX_INSNS`]);
//! - every load is inside its window (constant offsets, checked against the
//!   window's length; naturally aligned, so a load is one access);
//! - no register is read before every path to it has written it;
//! - only the helpers its kind allows are called ([`Helper`]);
//! - every path ends in `ret`.
//!
//! What it cannot prove is checked at run time and ends the run with a
//! *trap* (division by a register that holds zero): the kernel then
//! disables the program and tells the environment.
//!
//! Encoding (8 bytes, like eBPF's): `op`, `dst` and `src` register (or
//! window) numbers, a signed 16-bit `off` (jump distance or load offset)
//! and a signed 32-bit `imm` (12 bytes with the two zero padding fields).
//! Fields an operation does not use must be zero.

/// Instructions in one program, at most: the bound on a run's length.
pub const MAX_INSNS: usize = 256;
/// Windows one program may read, at most.
pub const MAX_WINDOWS: usize = 4;
/// Registers.
pub const REGS: u8 = 8;

/// One instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Insn {
    pub op: u8,
    pub dst: u8,
    pub src: u8,
    pub _pad: u8,
    pub off: i16,
    pub _pad2: u16,
    pub imm: i32,
}

const _: () = assert!(core::mem::size_of::<Insn>() == INSN_BYTES);

/// Bytes of one instruction in memory (the layout of [`Insn`]).
pub const INSN_BYTES: usize = 12;

impl Insn {
    /// The instruction in its in-memory layout (little-endian).
    pub fn from_bytes(b: [u8; INSN_BYTES]) -> Insn {
        Insn {
            op: b[0],
            dst: b[1],
            src: b[2],
            _pad: b[3],
            off: i16::from_le_bytes([b[4], b[5]]),
            _pad2: u16::from_le_bytes([b[6], b[7]]),
            imm: i32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// A window as the downloading environment names it: `len` bytes from
/// byte `offset` of the page of capability `cap` (which it must hold with
/// read rights); the range may not cross the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Window {
    pub cap: u64,
    pub offset: u32,
    pub len: u32,
}

/// Bytes of one window description in memory (the layout of [`Window`]).
pub const WINDOW_BYTES: usize = 16;

const _: () = assert!(core::mem::size_of::<Window>() == WINDOW_BYTES);

impl Window {
    pub fn from_bytes(b: [u8; WINDOW_BYTES]) -> Window {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Window { cap: u64::from(word(0)) | u64::from(word(4)) << 32, offset: word(8), len: word(12) }
    }
}

/// Operations. ALU and jump operations take their second operand from
/// register `src`, or from `imm` in their `…K` form.
pub mod op {
    /// `dst = imm` (sign-extended).
    pub const MOV_K: u8 = 0x01;
    /// `dst = src`.
    pub const MOV: u8 = 0x02;
    pub const ADD: u8 = 0x10;
    pub const SUB: u8 = 0x11;
    pub const MUL: u8 = 0x12;
    /// Unsigned division; a zero divisor register traps.
    pub const DIV: u8 = 0x13;
    /// Unsigned remainder; a zero divisor register traps.
    pub const MOD: u8 = 0x14;
    pub const AND: u8 = 0x15;
    pub const OR: u8 = 0x16;
    pub const XOR: u8 = 0x17;
    /// Shifts use the low six bits of the amount.
    pub const SHL: u8 = 0x18;
    pub const SHR: u8 = 0x19;
    /// The `…K` form of an ALU operation: `op | K`.
    pub const K: u8 = 0x80;
    /// `dst = window[src][off .. off + 1/2/4/8]`, little-endian, zero-extended.
    pub const LD8: u8 = 0x40;
    pub const LD16: u8 = 0x41;
    pub const LD32: u8 = 0x42;
    pub const LD64: u8 = 0x43;
    /// Unconditional forward jump by `off` (≥ 0) instructions past the next.
    pub const JA: u8 = 0x50;
    /// `if dst <cmp> src { jump by off }` (unsigned compares); `| K`
    /// compares with `imm` instead.
    pub const JEQ: u8 = 0x51;
    pub const JNE: u8 = 0x52;
    pub const JLT: u8 = 0x53;
    pub const JLE: u8 = 0x54;
    pub const JGT: u8 = 0x55;
    pub const JGE: u8 = 0x56;
    /// `r0 = helper(imm)(r1, r2)`; r1–r5 are then uninitialised again.
    pub const CALL: u8 = 0x60;
    /// End the run with result `r0`.
    pub const RET: u8 = 0x61;
}

/// Kernel helpers a program may call, by number (`imm` of `call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Helper {
    /// r0 = the kernel's clock in timer ticks.
    Now = 1,
}

impl Helper {
    pub fn from_number(n: i32) -> Option<Helper> {
        match n {
            1 => Some(Helper::Now),
            _ => None,
        }
    }
}

/// What the code is for: decides which helpers it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A wakeup predicate: result ≠ 0 wakes the environment, and the
    /// result is the tag it wakes with (which clause held).
    Predicate,
}

impl Kind {
    pub fn allows(self, h: Helper) -> bool {
        match self {
            Kind::Predicate => matches!(h, Helper::Now),
        }
    }
}

/// Why the verifier refused a program (result 0 of the failed call, with
/// the instruction's index as result 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Reject {
    /// No instructions, or more than [`MAX_INSNS`].
    Length = 1,
    /// An operation the format does not have, or reserved bits set.
    UnknownOp = 2,
    /// A register number ≥ [`REGS`].
    BadRegister = 3,
    /// A jump backwards, or past the end.
    BadJump = 4,
    /// A load outside its window, misaligned, or from a window the
    /// program was not given.
    OutOfBounds = 5,
    /// A register read before every path to it wrote it.
    Uninitialised = 6,
    /// A helper that does not exist or that this kind may not call.
    Helper = 7,
    /// A path that does not end in `ret` (falls off the end).
    NoReturn = 8,
    /// An instruction no path reaches.
    Unreachable = 9,
    /// Division or remainder by the constant zero.
    DivisionByZero = 10,
}

impl Reject {
    pub const ALL: [Reject; 10] = [
        Reject::Length,
        Reject::UnknownOp,
        Reject::BadRegister,
        Reject::BadJump,
        Reject::OutOfBounds,
        Reject::Uninitialised,
        Reject::Helper,
        Reject::NoReturn,
        Reject::Unreachable,
        Reject::DivisionByZero,
    ];

    pub fn from_code(code: u64) -> Option<Reject> {
        Reject::ALL.into_iter().find(|r| *r as u64 == code)
    }
}

/// Constructors, so programs read like assembly.
pub mod asm {
    use super::{Insn, op};

    const fn i(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { op, dst, src, _pad: 0, off, _pad2: 0, imm }
    }
    pub const fn mov_k(dst: u8, imm: i32) -> Insn {
        i(op::MOV_K, dst, 0, 0, imm)
    }
    pub const fn mov(dst: u8, src: u8) -> Insn {
        i(op::MOV, dst, src, 0, 0)
    }
    /// An ALU operation on registers (`op::ADD` …).
    pub const fn alu(o: u8, dst: u8, src: u8) -> Insn {
        i(o, dst, src, 0, 0)
    }
    /// An ALU operation with a constant.
    pub const fn alu_k(o: u8, dst: u8, imm: i32) -> Insn {
        i(o | op::K, dst, 0, 0, imm)
    }
    /// Load `width` (1, 2, 4 or 8) bytes at `off` of window `window`.
    pub const fn load(width: u8, dst: u8, window: u8, off: i16) -> Insn {
        let o = match width {
            1 => op::LD8,
            2 => op::LD16,
            4 => op::LD32,
            _ => op::LD64,
        };
        i(o, dst, window, off, 0)
    }
    pub const fn ja(off: i16) -> Insn {
        i(op::JA, 0, 0, off, 0)
    }
    /// Conditional jump comparing two registers (`op::JEQ` …).
    pub const fn jmp(o: u8, dst: u8, src: u8, off: i16) -> Insn {
        i(o, dst, src, off, 0)
    }
    /// Conditional jump comparing a register with a constant.
    pub const fn jmp_k(o: u8, dst: u8, imm: i32, off: i16) -> Insn {
        i(o | op::K, dst, 0, off, imm)
    }
    pub const fn call(helper: super::Helper) -> Insn {
        i(op::CALL, 0, 0, 0, helper as i32)
    }
    pub const fn ret() -> Insn {
        i(op::RET, 0, 0, 0, 0)
    }
}
