//! exo-fuzz: a seeded system-call fuzzer for kernel-exo (run by the test
//! `exo::fuzz_system_calls`).
//!
//! It makes `calls=N` system calls from a xorshift PRNG seeded by `seed=S`:
//! every call number (and unknown ones), with arguments drawn from hostile
//! pools — kernel-half, non-canonical, unaligned and reserved addresses,
//! its own pages and scratch buffers, stale and forged capabilities and
//! environment ids, another environment's capability (`foreign_cap=`) and
//! id (`other=`), huge counts — and, every `phase=` calls, one exhaustion
//! phase in turn: frames, kernel heap (bindings), children, time slices.
//! Every answer must be success or an error code the ABI defines; the exit
//! code is the number of answers that were not (each printed).
//!
//! What it never does to itself, so that it survives to report: bind or
//! protect its own address space outside its arena, register a handler at
//! a user address, give away its last time slice, wait, exit, or kill
//! itself. Children it creates get
//! anything, including a start at garbage (the kernel kills them).
#![no_std]
#![no_main]

use exo_abi::code::{Helper, Insn, MAX_INSNS, MAX_WINDOWS, Reject, Window, asm, op};
use exo_abi::layout::{INFO_VA, RESERVED_START, UAREA_VA, USER_END, selfmap};
use exo_abi::{ANY_PAGE, BIND_MAX, Binding, CONSOLE_MAX, Call, ENV_SELF, Error, MAX_ENVS, YIELD_ANY};
use exo_user::{arg_u64, expect_eq};
use exos::sys;

/// Where the fuzzer binds pages in its own address space (nothing of
/// ExOS lives here), and how many page addresses it uses.
const ARENA: u64 = 0x60_0000_0000;
const ARENA_PAGES: u64 = 1 << 14;

const KERNEL: u64 = 0xffff_8000_0000_0000;
const TOP_PAGE: u64 = 0xffff_ffff_ffff_f000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

/// xorshift64*: small, fast, and reproducible from the seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A fixed ring of remembered values (capabilities, environment ids).
struct Ring<const N: usize> {
    items: [u64; N],
    len: usize,
    next: usize,
}

impl<const N: usize> Ring<N> {
    const fn new() -> Self {
        Self { items: [0; N], len: 0, next: 0 }
    }

    fn push(&mut self, v: u64) {
        self.items[self.next] = v;
        self.next = (self.next + 1) % N;
        self.len = (self.len + 1).min(N);
    }

    fn any(&self, rng: &mut Rng) -> Option<u64> {
        (self.len > 0).then(|| self.items[rng.below(self.len as u64) as usize])
    }

    fn take_all(&mut self) -> impl Iterator<Item = u64> + '_ {
        let n = core::mem::replace(&mut self.len, 0);
        self.next = 0;
        self.items[..n].iter().copied()
    }
}

/// Bytes the kernel may read (console, program names) or write (program
/// reads): page-sized and owned by this program, so any count the kernel
/// accepts stays inside them.
#[repr(align(4096))]
struct Scratch([u8; 2 * 4096]);
static mut READ_BUF: Scratch = Scratch([b'.'; 2 * 4096]);
static mut WRITE_BUF: Scratch = Scratch([0; 2 * 4096]);
/// Binding lists: `BIND_MAX` entries, so any count the kernel accepts
/// reads only this array.
static mut CODE: [Insn; MAX_INSNS] =
    [Insn { op: 0, dst: 0, src: 0, _pad: 0, off: 0, _pad2: 0, imm: 0 }; MAX_INSNS];
static mut WINDOWS: [Window; MAX_WINDOWS] = [Window { cap: 0, offset: 0, len: 0 }; MAX_WINDOWS];
/// Packet-filter atoms and ring capabilities for the network calls.
static mut ATOMS: [exo_abi::net::Atom; 17] =
    [exo_abi::net::Atom { offset: 0, width: 0, flags: 0, mask: 0, value: 0 }; 17];
static mut RING: [u64; 9] = [0; 9];
/// The last filter installed (for removal), 0 if none.
static mut LAST_FILTER: u64 = 0;
static mut BINDINGS: [Binding; BIND_MAX as usize] = [Binding { va: 0, cap: 0, prot: 0 }; BIND_MAX as usize];

struct Fuzzer {
    rng: Rng,
    me: u64,
    foreign_cap: u64,
    other: u64,
    /// Owner capabilities of our pages, and the arena address each was
    /// last bound at.
    caps: Ring<256>,
    stale_caps: Ring<64>,
    children: Ring<{ MAX_ENVS }>,
    stale_envs: Ring<64>,
    calls: u64,
    untyped: u64,
    ok: u64,
}

impl Fuzzer {
    /// Make one call and judge its status.
    fn call(&mut self, n: u64, a: [u64; 6]) -> (Result<(), Error>, u64, u64) {
        // SAFETY: the arguments are built so that nothing the kernel
        // accepts can change this program's own code, data or stack:
        // bindings and protections of our address space stay in the arena,
        // handlers are registered only at addresses the kernel refuses (or
        // 0, unregistering), buffers the kernel writes are WRITE_BUF, and
        // Wait/Exit/killing ourselves are never chosen.
        let (s, r0, r1) = unsafe { sys::raw(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
        self.calls += 1;
        if s == 0 {
            self.ok += 1;
            return (Ok(()), r0, r1);
        }
        match Error::from_code(s) {
            Some(e) => (Err(e), r0, r1),
            None => {
                self.untyped += 1;
                if self.untyped <= 20 {
                    exos::println!("[fuzz] FAIL call {n} {a:x?}: untyped status {s:#x}");
                }
                (Err(Error::UnknownCall), r0, r1)
            }
        }
    }

    /// A call whose answer only needs to be typed.
    fn go(&mut self, n: u64, a: [u64; 6]) {
        let _ = self.call(n, a);
    }

    fn arena_va(&mut self) -> u64 {
        ARENA + self.rng.below(ARENA_PAGES) * 4096
    }

    /// An address for a pointer argument the kernel reads or writes.
    fn pointer(&mut self, buf: u64) -> u64 {
        let hostile = [
            0,
            KERNEL,
            TOP_PAGE,
            NON_CANONICAL,
            USER_END - 8,
            UAREA_VA,
            INFO_VA,
            selfmap::BASE,
            RESERVED_START,
        ];
        match self.rng.below(4) {
            0 => self.rng.pick(&hostile),
            1 => self.arena_va() + self.rng.below(4096),
            _ => buf + self.rng.below(64),
        }
    }

    /// A virtual address for bind/protect in OUR space: arena or refused.
    fn own_va(&mut self) -> u64 {
        let hostile =
            [0, 8, KERNEL, TOP_PAGE, TOP_PAGE - 15 * 4096, NON_CANONICAL, USER_END, RESERVED_START, INFO_VA];
        if self.rng.chance(80) { self.arena_va() } else { self.rng.pick(&hostile) }
    }

    fn length(&mut self) -> u64 {
        let pool =
            [0, 1, 7, 64, 4095, 4096, 4097, CONSOLE_MAX + 1, BIND_MAX, BIND_MAX + 1, 1 << 20, u64::MAX];
        self.rng.pick(&pool)
    }

    fn cap(&mut self) -> u64 {
        match self.rng.below(6) {
            0 | 1 => self.caps.any(&mut self.rng).unwrap_or(1),
            2 => self.stale_caps.any(&mut self.rng).unwrap_or(u64::MAX),
            3 => self.foreign_cap,
            4 => self.rng.pick(&[0, 1, u64::MAX, 1 << 24, exo_abi::CAP_KEEP]),
            _ => self.rng.next(),
        }
    }

    fn env(&mut self) -> u64 {
        match self.rng.below(6) {
            0 | 1 => self.children.any(&mut self.rng).unwrap_or(ENV_SELF),
            2 => self.stale_envs.any(&mut self.rng).unwrap_or(1),
            3 => self.other,
            4 => self.rng.pick(&[ENV_SELF, self.me, 1, u64::MAX, MAX_ENVS as u64]),
            _ => self.rng.next(),
        }
    }

    /// An environment to kill: never ourselves.
    fn victim(&mut self) -> u64 {
        let e = self.env();
        if e == ENV_SELF || e == self.me { self.other } else { e }
    }

    fn word(&mut self) -> u64 {
        match self.rng.below(4) {
            0 => self.rng.below(8),
            1 => self.rng.pick(&[u64::MAX, 1 << 32, 1 << 40, 1 << 63]),
            2 => self.length(),
            _ => self.rng.next(),
        }
    }

    /// Fill the first `n` binding entries: for our own space (`own`)
    /// only arena or refused addresses.
    fn bindings(&mut self, own: bool, n: usize) -> u64 {
        for i in 0..n {
            let va = if own || self.rng.chance(50) { self.own_va() } else { self.rng.next() & !0xfff };
            let cap = self.cap();
            let prot = if self.rng.chance(80) { self.rng.below(16) } else { self.rng.next() };
            // SAFETY: BINDINGS is only touched by this single-threaded
            // program, here and by the kernel reading it during a call.
            unsafe { (*core::ptr::addr_of_mut!(BINDINGS))[i] = Binding { va, cap, prot } };
        }
        core::ptr::addr_of!(BINDINGS) as u64
    }

    /// PredSet with random code (built from the format's operations, so a
    /// fair share verifies) and windows over our caps or forged ones; any
    /// predicate that verifies is removed again, so PredWait finds only
    /// the one it installs.
    fn pred_set(&mut self) {
        const OPS: [u8; 16] = [
            op::MOV_K,
            op::MOV,
            op::ADD,
            op::DIV,
            op::MOD | op::K,
            op::SHL | op::K,
            op::LD8,
            op::LD32,
            op::LD64,
            op::JA,
            op::JEQ,
            op::JNE | op::K,
            op::CALL,
            op::RET,
            op::RET,
            0x7f,
        ];
        let len = self.rng.pick(&[0, 1, 3, 8, 40, MAX_INSNS as u64, MAX_INSNS as u64 + 1, u64::MAX]);
        let n = (len as usize).min(MAX_INSNS);
        for slot in 0..n {
            let o = self.rng.pick(&OPS);
            let r = self.rng.next();
            let insn = Insn {
                op: o,
                dst: (r % 9) as u8,
                src: (r >> 8) as u8 % 5,
                off: ((r >> 16) % 40) as i16 - 2,
                imm: if self.rng.chance(80) { (r >> 32) as i32 % 8 } else { (r >> 32) as i32 },
                ..Insn::default()
            };
            // SAFETY: CODE is only touched by this single-threaded program,
            // here and by the kernel reading it during the call.
            unsafe { (*core::ptr::addr_of_mut!(CODE))[slot] = insn };
        }
        let nwin = self.rng.pick(&[0, 1, 2, 4, 5, u64::MAX]);
        for slot in 0..(nwin as usize).min(MAX_WINDOWS) {
            let w = Window {
                cap: self.cap(),
                offset: self.rng.pick(&[0, 8, 4088, 4095, 4096, u32::MAX as u64]) as u32,
                len: self.rng.pick(&[0, 1, 8, 64, 4096, u32::MAX as u64]) as u32,
            };
            // SAFETY: as for CODE.
            unsafe { (*core::ptr::addr_of_mut!(WINDOWS))[slot] = w };
        }
        let code = if self.rng.chance(90) { core::ptr::addr_of!(CODE) as u64 } else { self.pointer(0) };
        let wins = if self.rng.chance(90) { core::ptr::addr_of!(WINDOWS) as u64 } else { self.pointer(0) };
        let (r, why, _) = self.call(Call::PredSet as u64, [code, len, wins, nwin, 0, 0]);
        if r == Err(Error::BadCode) && Reject::from_code(why).is_none() {
            self.untyped += 1;
            exos::println!("[fuzz] FAIL PredSet refused with an unknown reason {why}");
        }
        let _ = sys::pred_set(&[], &[]);
    }

    /// One random call.
    fn one(&mut self) {
        let read_buf = core::ptr::addr_of!(READ_BUF) as u64;
        let write_buf = core::ptr::addr_of!(WRITE_BUF) as u64;
        if self.rng.chance(3) {
            // A number the ABI does not define.
            let r = self.rng.next();
            let n = self.rng.pick(&[25, 26, 31, 38, 63, 64, 1000, u64::MAX, r]);
            let a = [self.word(), self.word(), self.word(), self.word(), self.word(), self.word()];
            let (r, _, _) = self.call(n, a);
            if Call::from_number(n).is_none() && r != Err(Error::UnknownCall) {
                self.untyped += 1;
                exos::println!("[fuzz] FAIL unknown call {n:#x} answered {r:?}");
            }
            return;
        }
        // Every call but the two that would end or park us for good.
        let c = loop {
            let c = self.rng.pick(&Call::ALL);
            if !matches!(c, Call::Wait | Call::Exit) {
                break c;
            }
        };
        let n = c as u64;
        match c {
            Call::ConsoleWrite => {
                // Readable memory only from READ_BUF (dots; the arena, the
                // info page and the self-map hold binary data) and with a
                // short length, keeping the log small and readable; the
                // refused addresses get any length.
                let refused = [0, KERNEL, TOP_PAGE, NON_CANONICAL, USER_END - 8, ARENA - 4096];
                let (p, len) = if self.rng.chance(50) {
                    (read_buf + self.rng.below(8192), self.rng.below(4))
                } else {
                    (self.rng.pick(&refused), self.length())
                };
                if p >= read_buf && p < read_buf + 8192 {
                    self.rng.below(4)
                } else {
                    self.length()
                };
                self.go(n, [p, len, 0, 0, 0, 0]);
            }
            Call::PageAlloc => {
                let r = self.rng.next();
                let ppn = self.rng.pick(&[ANY_PAGE, ANY_PAGE, ANY_PAGE, 0, 0xa0, 0x100, 1 << 40, r]);
                if let (Ok(()), cap, _) = self.call(n, [ppn, 0, 0, 0, 0, 0]) {
                    self.remember_cap(cap);
                }
            }
            Call::PageFree | Call::CapRevoke => {
                let cap = self.cap();
                if let (Ok(()), _, _) = self.call(n, [cap, 0, 0, 0, 0, 0]) {
                    self.stale_caps.push(cap);
                }
            }
            Call::PageGrant => {
                let (cap, env, rights) = (self.cap(), self.env(), self.rng.pick(&[0, 1, 2, 3, 7, u64::MAX]));
                self.go(n, [cap, env, rights, 0, 0, 0]);
            }
            Call::PageTransfer => {
                let (cap, env) = (self.cap(), self.env());
                if let (Ok(()), _, _) = self.call(n, [cap, env, 0, 0, 0, 0]) {
                    self.stale_caps.push(cap);
                }
            }
            Call::Bind => {
                let env = self.env();
                let own = env == ENV_SELF || env == self.me;
                let count = self.rng.pick(&[0, 1, 1, 2, 8, BIND_MAX, BIND_MAX + 1, u64::MAX]);
                let list = if self.rng.chance(85) {
                    self.bindings(own, count.min(BIND_MAX) as usize)
                } else {
                    self.pointer(read_buf)
                };
                self.go(n, [env, list, count, 0, 0, 0]);
            }
            Call::SetHandler => {
                // Only entries the kernel refuses, or 0 (unregister).
                let entry = self.rng.pick(&[0, KERNEL, TOP_PAGE, NON_CANONICAL, USER_END, USER_END + 4096]);
                let (kind, stack) = (self.rng.pick(&[0, 1, 2, 3, u64::MAX]), self.pointer(write_buf));
                self.go(n, [kind, entry, stack, 0, 0, 0]);
            }
            Call::EnvCreate => {
                // Never every slice we own: with none left we would lose
                // the CPU for good as soon as another environment runs.
                let slices = self.rng.pick(&[0, 0, 1, 2, 64, 65, u64::MAX]);
                let own = exos::info_field!(slices);
                let slices = if slices < 64 && slices >= own { own.saturating_sub(1) } else { slices };
                let quota = self.rng.pick(&[0, 1, 16, 64, 1 << 31, u64::MAX]);
                if let (Ok(()), id, _) = self.call(n, [slices, quota, 0, 0, 0, 0]) {
                    self.children.push(id);
                }
            }
            Call::EnvStart => {
                let env = self.env();
                let (r1, r2) = (self.rng.next(), self.rng.next());
                let rip = self.rng.pick(&[0, 0x1000, ARENA, KERNEL, USER_END, r1]);
                let rsp = self.rng.pick(&[0, ARENA + 4096, USER_END, KERNEL, r2]);
                let (a0, a1) = (self.word(), self.word());
                self.go(n, [env, rip, rsp, a0, a1, 0]);
            }
            Call::EnvKill => {
                let env = self.victim();
                if let (Ok(()), _, _) = self.call(n, [env, 0, 0, 0, 0, 0]) {
                    self.stale_envs.push(env);
                }
            }
            Call::EnvReclaim => {
                let env = self.env();
                let pages = self.rng.pick(&[0, 1, 2, 100, u64::MAX]);
                let ticks = self.rng.pick(&[0, 1, 5, 1000, u64::MAX]);
                self.go(n, [env, pages, ticks, 0, 0, 0]);
            }
            Call::ProgramRead => {
                // READ_BUF starts with "exo-hello" (written in `run`).
                let name = self.pointer(read_buf);
                let name_len = if name == read_buf { 9 } else { self.length() };
                let offset = self.rng.pick(&[0, 1, 4096, 1 << 20, u64::MAX]);
                let buf = self.pointer(write_buf);
                let len = if buf >= write_buf && buf < write_buf + 8192 {
                    self.rng.below(8192 - (buf - write_buf))
                } else {
                    self.length()
                };
                self.go(n, [name, name_len, offset, buf, len, 0]);
            }
            Call::Protect => {
                let env = self.env();
                let own = env == ENV_SELF || env == self.me;
                let va = if own { self.own_va() } else { self.rng.next() };
                let pages = self.rng.pick(&[0, 1, 2, 64, 1 << 20, (1 << 20) + 1, u64::MAX]);
                // Our own arena never runs past its end into ExOS's regions.
                let pages = if own && va >= ARENA { pages.min(1 << 20) } else { pages };
                let prot = self.rng.below(16);
                self.go(n, [env, va, pages, prot, 0, 0]);
            }
            Call::Lookup => {
                let va = if self.rng.chance(50) { self.arena_va() } else { self.word() };
                self.go(n, [va, 0, 0, 0, 0, 0]);
            }
            Call::PredSet => self.pred_set(),
            Call::PredWait => {
                // Only ever sleep on a predicate that comes true by itself
                // (two ticks from now), so the fuzzer cannot park itself.
                let until = exos::info_field!(now) + 2;
                let code = [
                    asm::call(Helper::Now),
                    asm::jmp_k(op::JGT, 0, until as i32, 2),
                    asm::mov_k(0, 0),
                    asm::ret(),
                    asm::mov_k(0, 5),
                    asm::ret(),
                ];
                if sys::pred_set(&code, &[]).is_ok() {
                    let r = self.call(n, [0; 6]);
                    if r.0.is_err() || r.1 != 5 {
                        self.untyped += 1;
                        exos::println!("[fuzz] FAIL clock predicate answered {r:?}");
                    }
                }
            }
            Call::PctSync | Call::PctAsync => {
                let env = self.env();
                let a = [env, self.word(), self.word(), self.word(), self.word(), self.word()];
                self.go(n, a);
            }
            Call::Yield => {
                let env = if self.rng.chance(50) { YIELD_ANY } else { self.env() };
                self.go(n, [env, 0, 0, 0, 0, 0]);
            }
            Call::NetTransmit => {
                let nic = self.rng.pick(&[0, 1, 2, u64::MAX]);
                let cap = self.cap();
                let offset = self.rng.pick(&[0, 11, 12, 64, 2000, 4000, 4096, u64::MAX]);
                let len = self.rng.pick(&[0, 13, 14, 60, 1514, 1515, u64::MAX]);
                self.go(n, [nic, cap, offset, len, 0, 0]);
            }
            Call::NetFilterInstall => {
                let count = self.rng.pick(&[0, 1, 2, 5, 16, 17, u64::MAX]);
                for i in 0..17 {
                    let r = self.rng.next() & 0xffff_ffff;
                    let mask = self.rng.pick(&[0, 0xff, 0xffff, u64::from(u32::MAX), r]);
                    let a = exo_abi::net::Atom {
                        offset: self.rng.pick(&[0, 12, 14, 23, 30, 1510, 1513, 65535]) as u16,
                        width: self.rng.pick(&[0, 1, 2, 3, 4, 8]) as u8,
                        flags: self.rng.pick(&[0, 0, 1, 2]) as u8,
                        mask: mask as u32,
                        value: self.rng.below(4) as u32,
                    };
                    // SAFETY: ATOMS is only touched by this single-threaded
                    // program, here and by the kernel reading it during a call.
                    unsafe { (*core::ptr::addr_of_mut!(ATOMS))[i] = a };
                }
                let pages = self.rng.pick(&[0, 1, 2, 8, 9, u64::MAX]);
                for i in 0..9 {
                    let cap = self.cap();
                    // SAFETY: as for ATOMS.
                    unsafe { (*core::ptr::addr_of_mut!(RING))[i] = cap };
                }
                let atoms = if self.rng.chance(85) {
                    core::ptr::addr_of!(ATOMS) as u64
                } else {
                    self.pointer(read_buf)
                };
                let ring = if self.rng.chance(85) {
                    core::ptr::addr_of!(RING) as u64
                } else {
                    self.pointer(read_buf)
                };
                let nic = self.rng.pick(&[0, 0, 1, 2, u64::MAX]);
                if let (Ok(()), id, _) = self.call(n, [nic, atoms, count, ring, pages, 0]) {
                    // SAFETY: as for ATOMS.
                    unsafe { *core::ptr::addr_of_mut!(LAST_FILTER) = id };
                }
            }
            Call::NetFilterRemove => {
                // SAFETY: as for ATOMS.
                let last = unsafe { *core::ptr::addr_of!(LAST_FILTER) };
                let id = if self.rng.chance(50) { last } else { self.word() };
                self.go(n, [id, 0, 0, 0, 0, 0]);
            }
            Call::NetInfo | Call::NetPoll | Call::NetDemuxProbe => {
                let nic = self.rng.pick(&[0, 1, 2, u64::MAX]);
                let p = self.pointer(write_buf);
                let len = self.rng.pick(&[0, 14, 60, 1514, 1515, u64::MAX]);
                // NetInfo writes its statistics only into WRITE_BUF (or a
                // refused address); the probe only reads.
                let p = if c == Call::NetInfo && self.rng.chance(30) { 0 } else { p };
                self.go(n, [nic, p, len, 0, 0, 0]);
            }
            _ => {
                let a = [self.word(), self.cap(), self.env(), self.word(), self.word(), self.word()];
                self.go(n, a);
            }
        }
    }

    /// A new page of ours: remember it and (usually) bind it in the arena.
    fn remember_cap(&mut self, cap: u64) {
        self.caps.push(cap);
        if self.rng.chance(70) {
            let va = self.arena_va();
            // SAFETY: the binding is in the arena, which holds no data of ours.
            let _ = unsafe { sys::raw(Call::Bind as u64, ENV_SELF, self.one_binding(va, cap), 1, 0, 0, 0) };
            self.calls += 1;
        }
    }

    fn one_binding(&mut self, va: u64, cap: u64) -> u64 {
        // SAFETY: as in `bindings`.
        unsafe { (*core::ptr::addr_of_mut!(BINDINGS))[0] = Binding { va, cap, prot: 3 } };
        core::ptr::addr_of!(BINDINGS) as u64
    }

    /// Let go of everything: pages, children.
    fn release(&mut self) {
        let caps: [u64; 256] = self.caps.items;
        let n = self.caps.len;
        self.caps.take_all().for_each(drop);
        for &cap in &caps[..n] {
            // SAFETY: our pages are bound only in the arena.
            let _ = unsafe { sys::raw(Call::PageFree as u64, cap, 0, 0, 0, 0, 0) };
            self.calls += 1;
            self.stale_caps.push(cap);
        }
        let kids: [u64; MAX_ENVS] = self.children.items;
        let n = self.children.len;
        self.children.take_all().for_each(drop);
        for &id in &kids[..n] {
            let _ = sys::env_kill(exo_abi::EnvId(id));
            self.calls += 1;
            self.stale_envs.push(id);
        }
    }

    /// Exhaustion phase `which`, then let go of what it took.
    fn exhaust(&mut self, which: u64) {
        match which % 4 {
            0 => {
                // Frames (and capabilities): allocate until refused, make
                // calls while nothing is left, give everything back.
                let mut held = Held::new();
                while let (Ok(()), cap, _) = self.call(Call::PageAlloc as u64, [ANY_PAGE, 0, 0, 0, 0, 0]) {
                    if !held.push(cap) {
                        break;
                    }
                }
                for _ in 0..500 {
                    self.one();
                }
                self.free_held(&held);
            }
            1 => {
                // Kernel heap: page after page, each bound at many
                // addresses, until the kernel runs out of memory (or the
                // quota or the capability limit says no first).
                let mut held = Held::new();
                let mut binds = 0;
                'pages: while binds < 16_384
                    && let (Ok(()), cap, _) = self.call(Call::PageAlloc as u64, [ANY_PAGE, 0, 0, 0, 0, 0])
                {
                    if !held.push(cap) {
                        break;
                    }
                    let base = self.arena_va() & !(64 * 4096 - 1);
                    for i in 0..exo_abi::MAX_MAPPINGS_PER_CAP as u64 {
                        let list = self.one_binding(base + i * 4096, cap);
                        binds += 1;
                        match self.call(Call::Bind as u64, [ENV_SELF, list, 1, 0, 0, 0]).0 {
                            Ok(()) => {}
                            Err(Error::OutOfMemory | Error::QuotaExceeded) => break 'pages,
                            Err(_) => break,
                        }
                    }
                }
                for _ in 0..500 {
                    self.one();
                }
                self.free_held(&held);
            }
            2 => {
                // Children: create until refused, then make calls on them.
                for _ in 0..MAX_ENVS + 2 {
                    match self.call(Call::EnvCreate as u64, [0, 8, 0, 0, 0, 0]) {
                        (Ok(()), id, _) => self.children.push(id),
                        (Err(_), _, _) => break,
                    }
                }
                for _ in 0..500 {
                    self.one();
                }
            }
            _ => {
                // Slices: give all but one away to a child, then go on.
                let slices = exos::info_field!(slices).saturating_sub(1);
                if let (Ok(()), id, _) = self.call(Call::EnvCreate as u64, [slices, 16, 0, 0, 0, 0]) {
                    self.children.push(id);
                }
                for _ in 0..500 {
                    self.one();
                }
            }
        }
        self.release();
    }

    fn free_held(&mut self, held: &Held) {
        for &cap in held.all() {
            // SAFETY: our pages are bound only in the arena.
            let _ = unsafe { sys::raw(Call::PageFree as u64, cap, 0, 0, 0, 0, 0) };
            self.calls += 1;
        }
        if let Some(&last) = held.all().last() {
            self.stale_caps.push(last);
        }
    }
}

/// The capabilities an exhaustion phase took (as many as one environment
/// may hold), in a static array: too big for the stack.
static mut HELD: [u64; exo_abi::MAX_CAPS_PER_ENV] = [0; exo_abi::MAX_CAPS_PER_ENV];

/// The filled part of `HELD`; one phase at a time uses it.
struct Held {
    n: usize,
}

impl Held {
    fn new() -> Self {
        Self { n: 0 }
    }

    /// False when full.
    fn push(&mut self, cap: u64) -> bool {
        if self.n == exo_abi::MAX_CAPS_PER_ENV {
            return false;
        }
        // SAFETY: single-threaded, and only the phase's one `Held` uses HELD.
        unsafe { (*core::ptr::addr_of_mut!(HELD))[self.n] = cap };
        self.n += 1;
        true
    }

    fn all(&self) -> &[u64] {
        // SAFETY: as in `push`; the slice is read while no push happens.
        unsafe { &(&*core::ptr::addr_of!(HELD))[..self.n] }
    }
}

fn main(args: &str) -> u64 {
    let seed = arg_u64(args, "seed").unwrap_or(1);
    let total = arg_u64(args, "calls").unwrap_or(100_000);
    let phase = arg_u64(args, "phase").unwrap_or(10_000).max(1);
    let mut f = Fuzzer {
        // xorshift must not start at 0.
        rng: Rng(seed ^ 0x9e37_79b9_7f4a_7c15),
        me: sys::env_self().0,
        foreign_cap: arg_u64(args, "foreign_cap").unwrap_or(0),
        other: arg_u64(args, "other").unwrap_or(0),
        caps: Ring::new(),
        stale_caps: Ring::new(),
        children: Ring::new(),
        stale_envs: Ring::new(),
        calls: 0,
        untyped: 0,
        ok: 0,
    };
    // SAFETY: nothing else touches READ_BUF yet.
    unsafe { (&mut (*core::ptr::addr_of_mut!(READ_BUF)).0)[..9].copy_from_slice(b"exo-hello") };
    let mut phases = 0;
    while f.calls < total {
        if f.calls / phase > phases {
            f.exhaust(phases);
            phases += 1;
        }
        f.one();
    }
    f.release();
    let mut c = exo_user::Checks::new("fuzz");
    expect_eq!(c, "every answer typed", f.untyped, 0);
    exos::println!(
        "[fuzz] seed={seed}: {} calls ({} succeeded), {} exhaustion phases",
        f.calls,
        f.ok,
        phases
    );
    c.finish()
}

exos::entry!(main);
