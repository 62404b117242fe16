//! The verifier and the interpreter of downloaded code (the format is
//! `exo_abi::code`): the kernel verifies a program once, when it is
//! downloaded, and then runs it with no checks but the ones the verifier
//! could not do (a register divisor of zero).
//!
//! Interpreted rather than compiled: a predicate runs once each time its
//! environment's slice comes up, and a run of the few instructions a
//! predicate has costs about as much as entering compiled code would
//! (`cargo xtask bench`, "predicate wakeup", measures the whole path).

use exo_abi::code::{Helper, Insn, Kind, MAX_INSNS, MAX_WINDOWS, REGS, Reject, op};

/// A refusal: why, and the index of the instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub why: Reject,
    pub at: usize,
}

/// Check `code` for `kind`, reading windows of the given lengths (bytes).
/// `Ok` is a proof of the properties listed in `exo_abi::code`.
pub fn verify(code: &[Insn], kind: Kind, windows: &[u32]) -> Result<(), Refused> {
    let refuse = |why, at| Err(Refused { why, at });
    if code.is_empty() || code.len() > MAX_INSNS {
        return refuse(Reject::Length, 0);
    }
    if windows.len() > MAX_WINDOWS {
        return refuse(Reject::OutOfBounds, 0);
    }
    // Registers initialised on every path into each instruction (a bit
    // per register), and whether any path reaches it. Jumps only go
    // forward, so one pass in order sees every edge into an instruction
    // before the instruction itself.
    let mut init = [0u8; MAX_INSNS];
    let mut reached = [false; MAX_INSNS];
    reached[0] = true;
    for (pc, insn) in code.iter().enumerate() {
        if !reached[pc] {
            return refuse(Reject::Unreachable, pc);
        }
        let mut regs = init[pc];
        if insn._pad != 0 || insn._pad2 != 0 {
            return refuse(Reject::UnknownOp, pc);
        }
        let reg = |r: u8| if r < REGS { Ok(r) } else { Err(Refused { why: Reject::BadRegister, at: pc }) };
        let read = |regs: u8, r: u8| {
            let r = reg(r)?;
            if regs & (1 << r) == 0 { Err(Refused { why: Reject::Uninitialised, at: pc }) } else { Ok(()) }
        };
        let jump_target = |off: i16| {
            let t = pc as i64 + 1 + off as i64;
            if off < 0 || t >= code.len() as i64 {
                Err(Refused { why: Reject::BadJump, at: pc })
            } else {
                Ok(t as usize)
            }
        };
        let o = insn.op;
        // Fields the operation does not use must be zero: (dst, src, off, imm).
        let uses = match o & !op::K {
            _ if o == op::MOV_K => (true, false, false, true),
            op::MOV if o == op::MOV => (true, true, false, false),
            a if is_alu(a) => (true, o & op::K == 0, false, o & op::K != 0),
            op::LD8..=op::LD64 if o & op::K == 0 => (true, true, true, false),
            op::JA if o == op::JA => (false, false, true, false),
            j if is_jump(j) => (true, o & op::K == 0, true, o & op::K != 0),
            op::CALL if o == op::CALL => (false, false, false, true),
            _ => (false, false, false, false),
        };
        if (!uses.0 && insn.dst != 0)
            || (!uses.1 && insn.src != 0)
            || (!uses.2 && insn.off != 0)
            || (!uses.3 && insn.imm != 0)
        {
            return refuse(Reject::UnknownOp, pc);
        }
        // Whether control may continue with the next instruction.
        let mut falls_through = true;
        match o {
            op::MOV_K => regs |= 1 << reg(insn.dst)?,
            op::MOV => {
                read(regs, insn.src)?;
                regs |= 1 << reg(insn.dst)?;
            }
            _ if is_alu(o & !op::K) => {
                let constant = o & op::K != 0;
                read(regs, insn.dst)?;
                if constant {
                    if matches!(o & !op::K, op::DIV | op::MOD) && insn.imm == 0 {
                        return refuse(Reject::DivisionByZero, pc);
                    }
                } else {
                    read(regs, insn.src)?;
                }
            }
            op::LD8 | op::LD16 | op::LD32 | op::LD64 => {
                let width = 1u32 << (o - op::LD8);
                let Some(&len) = windows.get(insn.src as usize) else {
                    return refuse(Reject::OutOfBounds, pc);
                };
                let off = insn.off;
                if off < 0 || !(off as u32).is_multiple_of(width) || off as u32 + width > len {
                    return refuse(Reject::OutOfBounds, pc);
                }
                regs |= 1 << reg(insn.dst)?;
            }
            op::JA => {
                let t = jump_target(insn.off)?;
                reach(&mut init, &mut reached, t, regs);
                falls_through = false;
            }
            _ if is_jump(o & !op::K) => {
                read(regs, insn.dst)?;
                if o & op::K == 0 {
                    read(regs, insn.src)?;
                }
                let t = jump_target(insn.off)?;
                reach(&mut init, &mut reached, t, regs);
            }
            op::CALL => {
                let ok = Helper::from_number(insn.imm).is_some_and(|h| kind.allows(h));
                if !ok {
                    return refuse(Reject::Helper, pc);
                }
                // r0 gets the result; r1-r5 are the helper's to clobber.
                regs = (regs & !0b11_1110) | 1;
            }
            op::RET => {
                read(regs, 0)?;
                falls_through = false;
            }
            _ => return refuse(Reject::UnknownOp, pc),
        }
        if falls_through {
            if pc + 1 == code.len() {
                return refuse(Reject::NoReturn, pc);
            }
            reach(&mut init, &mut reached, pc + 1, regs);
        }
    }
    Ok(())
}

/// Record an edge into `target` carrying the initialised set `regs`.
fn reach(init: &mut [u8], reached: &mut [bool], target: usize, regs: u8) {
    if reached[target] {
        init[target] &= regs;
    } else {
        reached[target] = true;
        init[target] = regs;
    }
}

fn is_alu(o: u8) -> bool {
    (op::ADD..=op::SHR).contains(&o)
}

fn is_jump(o: u8) -> bool {
    (op::JEQ..=op::JGE).contains(&o)
}

/// What a run needs from its environment: loads from windows (in bounds:
/// the verifier proved it) and the helpers.
pub trait Machine {
    /// `width` bytes at `off` of window `w`, little-endian.
    fn load(&self, w: usize, off: usize, width: usize) -> u64;
    fn now(&self) -> u64;
}

/// Why a run stopped without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    DivisionByZero,
}

/// Run verified `code` to its `ret`: the result is `r0`.
///
/// Unverified code must never reach this: the interpreter trusts the
/// verifier for bounds, jumps and registers (out-of-range values are
/// still safe Rust — a panic, never memory unsafety — but the kernel
/// relies on verification to exclude them).
pub fn run(code: &[Insn], m: &impl Machine) -> Result<u64, Trap> {
    let mut r = [0u64; REGS as usize];
    let mut pc = 0;
    loop {
        let insn = code[pc];
        pc += 1;
        let o = insn.op;
        let d = insn.dst as usize;
        // The second operand of ALU and compare operations (masked: the
        // verifier proved `src` a register wherever it is one).
        let b = if o & op::K != 0 { insn.imm as i64 as u64 } else { r[(insn.src % REGS) as usize] };
        match o & !op::K {
            op::MOV_K => r[d] = insn.imm as i64 as u64,
            op::MOV => r[d] = b,
            op::ADD => r[d] = r[d].wrapping_add(b),
            op::SUB => r[d] = r[d].wrapping_sub(b),
            op::MUL => r[d] = r[d].wrapping_mul(b),
            op::DIV => r[d] = r[d].checked_div(b).ok_or(Trap::DivisionByZero)?,
            op::MOD => r[d] = r[d].checked_rem(b).ok_or(Trap::DivisionByZero)?,
            op::AND => r[d] &= b,
            op::OR => r[d] |= b,
            op::XOR => r[d] ^= b,
            op::SHL => r[d] <<= b & 63,
            op::SHR => r[d] >>= b & 63,
            op::LD8 | op::LD16 | op::LD32 | op::LD64 => {
                r[d] = m.load(insn.src as usize, insn.off as usize, 1 << (o - op::LD8))
            }
            op::JA => pc += insn.off as usize,
            j @ op::JEQ..=op::JGE => {
                let a = r[d];
                let taken = match j {
                    op::JEQ => a == b,
                    op::JNE => a != b,
                    op::JLT => a < b,
                    op::JLE => a <= b,
                    op::JGT => a > b,
                    _ => a >= b,
                };
                if taken {
                    pc += insn.off as usize;
                }
            }
            op::CALL => {
                r[0] = match Helper::from_number(insn.imm) {
                    Some(Helper::Now) => m.now(),
                    None => 0,
                }
            }
            op::RET => return Ok(r[0]),
            _ => unreachable!("verified code has only known operations"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_abi::code::asm::*;
    use exo_abi::code::op::*;

    struct Mem<'a> {
        windows: &'a [&'a [u8]],
        now: u64,
    }

    impl Machine for Mem<'_> {
        fn load(&self, w: usize, off: usize, width: usize) -> u64 {
            let bytes = &self.windows[w][off..off + width]; // panics if out of bounds
            bytes.iter().rev().fold(0, |acc, b| acc << 8 | *b as u64)
        }
        fn now(&self) -> u64 {
            self.now
        }
    }

    fn refused(code: &[Insn], windows: &[u32]) -> Option<(Reject, usize)> {
        verify(code, Kind::Predicate, windows).err().map(|r| (r.why, r.at))
    }

    /// "word 0 of window 0 ≠ word 1 of window 0": the pipe-style predicate.
    const HEAD_NE_TAIL: [Insn; 6] =
        [load(8, 1, 0, 0), load(8, 2, 0, 8), jmp(JNE, 1, 2, 2), mov_k(0, 0), ret(), mov_k(0, 1)];

    #[test]
    fn a_valid_predicate_verifies_and_runs() {
        let mut code = HEAD_NE_TAIL.to_vec();
        code.push(ret());
        assert_eq!(refused(&code, &[16]), None);
        let mut page = [0u8; 16];
        let m = |p: &[u8; 16]| run(&code, &Mem { windows: &[&p[..]], now: 0 }).unwrap();
        assert_eq!(m(&page), 0);
        page[0] = 5;
        assert_eq!(m(&page), 1);
    }

    #[test]
    fn clock_and_arithmetic() {
        // (now * 3 + 1) % 7, and the clause tag 2 when now > 10.
        let code = [
            call(Helper::Now),
            mov(6, 0),
            alu_k(MUL, 0, 3),
            alu_k(ADD, 0, 1),
            alu_k(MOD, 0, 7),
            jmp_k(JGT, 6, 10, 1),
            ret(),
            mov_k(0, 2),
            ret(),
        ];
        assert_eq!(refused(&code, &[]), None);
        assert_eq!(run(&code, &Mem { windows: &[], now: 4 }), Ok(13 % 7));
        assert_eq!(run(&code, &Mem { windows: &[], now: 11 }), Ok(2));
    }

    #[test]
    fn each_rejection_for_its_reason() {
        let cases: &[(&[Insn], &[u32], Reject, usize)] = &[
            (&[], &[], Reject::Length, 0),
            (&[Insn { op: 0x7f, ..Insn::default() }], &[], Reject::UnknownOp, 0),
            (&[Insn { _pad: 1, ..mov_k(0, 0) }, ret()], &[], Reject::UnknownOp, 0),
            (&[Insn { off: 3, ..mov_k(0, 0) }, ret()], &[], Reject::UnknownOp, 0),
            (&[Insn { op: MOV_K | K, ..Insn::default() }, ret()], &[], Reject::UnknownOp, 0),
            (&[mov_k(9, 0), ret()], &[], Reject::BadRegister, 0),
            (&[mov_k(0, 0), ja(-2), ret()], &[], Reject::BadJump, 1),
            (&[mov_k(0, 0), ja(5), ret()], &[], Reject::BadJump, 1),
            (&[load(8, 0, 0, 9), ret()], &[16], Reject::OutOfBounds, 0), // misaligned
            (&[load(8, 0, 0, 16), ret()], &[16], Reject::OutOfBounds, 0), // past the end
            (&[load(1, 0, 0, -1), ret()], &[16], Reject::OutOfBounds, 0),
            (&[load(1, 0, 1, 0), ret()], &[16], Reject::OutOfBounds, 0), // no window 1
            (&[ret()], &[], Reject::Uninitialised, 0),
            (&[mov(0, 3), ret()], &[], Reject::Uninitialised, 0),
            // r1 is set on one path only.
            (
                &[mov_k(0, 0), jmp_k(JEQ, 0, 0, 1), mov_k(1, 1), mov(0, 1), ret()],
                &[],
                Reject::Uninitialised,
                3,
            ),
            // A helper call clobbers r1-r5.
            (&[mov_k(1, 0), call(Helper::Now), mov(0, 1), ret()], &[], Reject::Uninitialised, 2),
            (&[Insn { imm: 99, ..call(Helper::Now) }, ret()], &[], Reject::Helper, 0),
            (&[mov_k(0, 0)], &[], Reject::NoReturn, 0),
            (&[mov_k(0, 0), jmp_k(JEQ, 0, 0, 0)], &[], Reject::BadJump, 1),
            (&[mov_k(0, 0), ret(), mov_k(0, 1), ret()], &[], Reject::Unreachable, 2),
            (&[mov_k(0, 1), alu_k(DIV, 0, 0), ret()], &[], Reject::DivisionByZero, 1),
        ];
        for (code, windows, why, at) in cases {
            assert_eq!(refused(code, windows), Some((*why, *at)), "{code:?}");
        }
        let long = vec![mov_k(0, 0); MAX_INSNS + 1];
        assert_eq!(refused(&long, &[]), Some((Reject::Length, 0)));
        assert_eq!(
            refused(&[load(1, 0, 0, 0), ret()], &[1; MAX_WINDOWS + 1]),
            Some((Reject::OutOfBounds, 0))
        );
    }

    #[test]
    fn a_zero_register_divisor_traps() {
        let code = [mov_k(0, 1), mov_k(1, 0), alu(DIV, 0, 1), ret()];
        assert_eq!(refused(&code, &[]), None);
        assert_eq!(run(&code, &Mem { windows: &[], now: 0 }), Err(Trap::DivisionByZero));
    }

    /// Random programs: whatever the verifier accepts runs to a `ret`
    /// within the bound, reading only inside its windows (the test
    /// machine panics on any other load). Many are accepted: the
    /// generator favours well-formed instructions.
    #[test]
    fn whatever_verifies_runs_safely() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        const OPS: [u8; 30] = [
            MOV_K,
            MOV,
            ADD,
            SUB,
            MUL,
            DIV,
            MOD,
            AND,
            OR,
            XOR,
            SHL,
            SHR,
            ADD | K,
            MUL | K,
            DIV | K,
            MOD | K,
            SHR | K,
            LD8,
            LD16,
            LD32,
            LD64,
            JA,
            JEQ,
            JNE,
            JLT | K,
            JGE | K,
            JGT,
            CALL,
            RET,
            RET,
        ];
        let page = [0xa5u8; 64];
        let windows: [&[u8]; 2] = [&page[..64], &page[..8]];
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = 1 + next() as usize % 12;
            let prologue = (0..4).map(|r| mov_k(r, r as i32));
            let body = (0..len).map(|_| {
                let o = OPS[next() as usize % OPS.len()];
                let r = next();
                let mut i = Insn { op: o, dst: (r % 4) as u8, src: (r >> 8) as u8 % 3, ..Insn::default() };
                match o & !K {
                    LD8..=LD64 => i.off = ((r >> 16) % 72) as i16,
                    JA..=JGE => i.off = ((r >> 16) % 4) as i16,
                    _ => {}
                }
                if o & K != 0 || o == MOV_K {
                    i.src = 0;
                    i.imm = (r >> 32) as i32 % 5;
                }
                if o == CALL {
                    i = call(Helper::Now);
                }
                if o == RET || o == JA {
                    i.dst = 0;
                    i.src = 0;
                }
                if o == RET {
                    i.off = 0;
                }
                i
            });
            let code: Vec<Insn> = prologue.chain(body).chain([ret()]).collect();
            if verify(&code, Kind::Predicate, &[64, 8]).is_ok() {
                accepted += 1;
                let _ = run(&code, &Mem { windows: &windows, now: 7 });
            }
        }
        assert!(accepted > 1_000, "only {accepted} random programs verified");
    }
}
