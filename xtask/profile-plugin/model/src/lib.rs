//! The pure part of the cost profile (`xtask/profile-plugin`): instruction classification from the
//! instruction's bytes, the simulated caches and TLBs, and the per-vCPU
//! event tracker. No QEMU types here, so it is unit-tested on the host.

/// What kind of instruction this is, as far as the profile cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Falls through to the next instruction.
    Plain,
    /// `lfence` (0F AE E8): the fences around the suite's clock reads.
    Lfence,
    /// `rdtsc` (0F 31).
    Rdtsc,
    /// A branch whose targets are known: fall-through and `target`.
    Direct { target: u64, falls_through: bool },
    /// `ret`, indirect `jmp`/`call`, far transfers: target unknown.
    Indirect,
    /// `syscall`, `sysret`, `sysenter`, `sysexit`, `iret`: an explicit
    /// privilege transition.
    Switch,
    /// `int n`, `int3`, `into`, `int1`: a delivery through the IDT, like an
    /// exception's.
    SoftInt,
    /// A `rep`/`repne` string instruction (one execution per iteration in TCG).
    RepString,
    /// `mov cr3, reg`: an address-space change (and, without PCID, a full
    /// non-global TLB flush).
    MovCr3,
    /// `mov cr4, reg` (a PGE toggle flushes everything).
    MovCr4,
    /// `invlpg m` or `invpcid`: one TLB invalidation.
    Invlpg,
    /// Port output (`out`, `outs`): the serial console.
    Out,
}

/// Classify an x86-64 instruction from its bytes; `vaddr` and the length
/// give direct branch targets.
pub fn classify(bytes: &[u8], vaddr: u64) -> Kind {
    let len = bytes.len() as u64;
    let next = vaddr.wrapping_add(len);
    let mut i = 0;
    let mut rep = false;
    let mut opsize = false;
    while i < bytes.len() {
        match bytes[i] {
            0xf2 | 0xf3 => rep = true,
            0x66 => opsize = true,
            0x67 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0xf0 => {}
            0x40..=0x4f => {
                i += 1;
                break;
            }
            _ => break,
        }
        i += 1;
    }
    let op = &bytes[i.min(bytes.len())..];
    let rel = |off: usize, size: usize| -> u64 {
        let mut v: i64 = 0;
        if op.len() >= off + size {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(&op[off..off + size]);
            v = i64::from_le_bytes(b);
            // sign-extend
            let shift = 64 - 8 * size as u32;
            v = (v << shift) >> shift;
        }
        next.wrapping_add(v as u64)
    };
    let modrm_reg = |m: u8| (m >> 3) & 7;
    match op {
        [] => Kind::Plain,
        [0x0f, 0xae, 0xe8, ..] => Kind::Lfence,
        [0x0f, 0x31, ..] => Kind::Rdtsc,
        [0x0f, 0x05, ..] | [0x0f, 0x07, ..] | [0x0f, 0x34, ..] | [0x0f, 0x35, ..] => Kind::Switch,
        [0xcf, ..] => Kind::Switch,
        [0xcd, ..] | [0xcc, ..] | [0xce, ..] | [0xf1, ..] => Kind::SoftInt,
        [0x0f, 0x22, m, ..] if modrm_reg(*m) == 3 => Kind::MovCr3,
        [0x0f, 0x22, m, ..] if modrm_reg(*m) == 4 => Kind::MovCr4,
        [0x0f, 0x01, m, ..] if modrm_reg(*m) == 7 && *m >> 6 != 3 => Kind::Invlpg,
        [0x0f, 0x38, 0x82, ..] if opsize => Kind::Invlpg,
        [0x70..=0x7f, ..] | [0xe0..=0xe3, ..] => Kind::Direct { target: rel(1, 1), falls_through: true },
        [0x0f, 0x80..=0x8f, ..] => {
            Kind::Direct { target: rel(2, if opsize { 2 } else { 4 }), falls_through: true }
        }
        [0xeb, ..] => Kind::Direct { target: rel(1, 1), falls_through: false },
        [0xe9, ..] => Kind::Direct { target: rel(1, if opsize { 2 } else { 4 }), falls_through: false },
        [0xe8, ..] => Kind::Direct { target: rel(1, 4), falls_through: false },
        [0xc3, ..] | [0xc2, ..] | [0xcb, ..] | [0xca, ..] | [0xea, ..] | [0x9a, ..] => Kind::Indirect,
        [0xff, m, ..] if (2..=5).contains(&modrm_reg(*m)) => Kind::Indirect,
        [0xa4..=0xa7, ..] | [0xaa..=0xaf, ..] | [0x6c..=0x6d, ..] if rep => Kind::RepString,
        [0x6e..=0x6f, ..] if rep => Kind::RepString,
        [0xe6 | 0xe7 | 0xee | 0xef | 0x6e | 0x6f, ..] => Kind::Out,
        _ => Kind::Plain,
    }
}

/// The kernel half of the canonical address space.
pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// A set-associative cache with LRU replacement, tags only.
#[derive(Clone, Debug)]
pub struct Cache {
    sets: usize,
    ways: usize,
    line_shift: u32,
    /// `sets * ways` tags (line address + 1; 0 = empty); each set ordered
    /// most recently used first.
    tags: Vec<u64>,
}

impl Cache {
    /// `size` bytes, `ways`-way, `line` bytes per line (powers of two sets).
    pub fn new(size: usize, ways: usize, line: usize) -> Cache {
        let sets = size / line / ways;
        assert!(sets.is_power_of_two() && line.is_power_of_two());
        Cache { sets, ways, line_shift: line.trailing_zeros(), tags: vec![0; sets * ways] }
    }

    /// Touch the line holding `addr`; true on a miss (the line is filled).
    pub fn access(&mut self, addr: u64) -> bool {
        let line = addr >> self.line_shift;
        let set = (line as usize) & (self.sets - 1);
        let ways = &mut self.tags[set * self.ways..(set + 1) * self.ways];
        let tag = line + 1;
        match ways.iter().position(|&t| t == tag) {
            Some(p) => {
                ways[..=p].rotate_right(1);
                false
            }
            None => {
                ways.rotate_right(1);
                ways[0] = tag;
                true
            }
        }
    }

    /// Drop everything.
    pub fn flush(&mut self) {
        self.tags.iter_mut().for_each(|t| *t = 0);
    }
}

/// The simulated core: sizes of Intel's Golden Cove (Alder Lake P-core):
/// L1i 32 KiB 8-way, L1d 48 KiB 12-way, L2 1.25 MiB 10-way, 64-byte lines;
/// first-level TLBs of 64 (data) and 128 (instruction) 4 KiB entries,
/// modelled fully associative LRU and flushed by every CR3 write (the
/// kernels use no PCID; global pages are not modelled).
pub struct Hierarchy {
    pub l1i: Cache,
    pub l1d: Cache,
    pub l2: Cache,
    pub itlb: Cache,
    pub dtlb: Cache,
}

impl Default for Hierarchy {
    fn default() -> Self {
        Hierarchy {
            l1i: Cache::new(32 << 10, 8, 64),
            l1d: Cache::new(48 << 10, 12, 64),
            l2: Cache::new(1280 << 10, 10, 64),
            // A TLB as a one-set cache of 4 KiB "lines".
            itlb: Cache::new(128 << 12, 128, 4096),
            dtlb: Cache::new(64 << 12, 64, 4096),
        }
    }
}

/// Cumulative event counters, in the order of [`Counters::NAMES`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub instructions: u64,
    pub rep_iterations: u64,
    pub privilege_switches: u64,
    pub cr3_writes: u64,
    pub tlb_flushes: u64,
    pub loads: u64,
    pub stores: u64,
    pub l1i_misses: u64,
    pub l1d_misses: u64,
    pub l2_misses: u64,
    pub itlb_misses: u64,
    pub dtlb_misses: u64,
    /// Exception and interrupt deliveries (a subset of `privilege_switches`).
    pub deliveries: u64,
    /// Port output instructions (the console), to separate measurements.
    pub outs: u64,
}

impl Counters {
    pub const NAMES: [&'static str; 14] = [
        "instructions",
        "rep_iterations",
        "privilege_switches",
        "cr3_writes",
        "tlb_flushes",
        "loads",
        "stores",
        "l1i_misses",
        "l1d_misses",
        "l2_misses",
        "itlb_misses",
        "dtlb_misses",
        "deliveries",
        "outs",
    ];

    pub fn values(&self) -> [u64; 14] {
        [
            self.instructions,
            self.rep_iterations,
            self.privilege_switches,
            self.cr3_writes,
            self.tlb_flushes,
            self.loads,
            self.stores,
            self.l1i_misses,
            self.l1d_misses,
            self.l2_misses,
            self.itlb_misses,
            self.dtlb_misses,
            self.deliveries,
            self.outs,
        ]
    }
}

/// What the tracker knows about one translated instruction.
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    pub vaddr: u64,
    /// Where its bytes are (host address of guest RAM: a fixed offset from
    /// the guest-physical address inside QEMU's one RAM block).
    pub fetch: u64,
    pub len: u64,
    pub kind: Kind,
    /// The last instruction of its translation block.
    pub last_in_tb: bool,
}

/// A clock read: a fenced `rdtsc` (`lfence; rdtsc; lfence`), with the
/// counters as they were when it executed.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    pub pc: u64,
    pub at: Counters,
}

/// The per-vCPU event tracker.
#[derive(Default)]
pub struct Tracker {
    pub c: Counters,
    pub mem: Hierarchy,
    prev: Option<Insn>,
    /// A `rdtsc` after an `lfence`, waiting for the `lfence` after it.
    pending: Option<Read>,
    /// Entry points reached by a delivery (learned; IDT stubs are reached no other way).
    entries: std::collections::HashSet<u64>,
}

impl Tracker {
    /// An instruction is about to execute; returns a completed clock read.
    pub fn exec(&mut self, insn: &Insn) -> Option<Read> {
        let mut done = None;
        if let Some(prev) = self.prev {
            let replay = prev.vaddr == insn.vaddr
                && prev.kind != Kind::RepString
                && !matches!(prev.kind, Kind::Direct { target, .. } if target == insn.vaddr);
            if replay {
                // TCG re-executes an instruction that did I/O in the middle
                // of a block (icount): it retires once.
                self.c.instructions -= 1;
                self.undo_kind(&prev);
            } else {
                let fall = prev.vaddr.wrapping_add(prev.len) == insn.vaddr;
                let delivered = match prev.kind {
                    Kind::Switch | Kind::SoftInt => false,
                    Kind::Direct { target, falls_through } => {
                        !(target == insn.vaddr || falls_through && fall)
                    }
                    Kind::Indirect => {
                        (prev.vaddr < KERNEL_HALF && insn.vaddr >= KERNEL_HALF)
                            || self.entries.contains(&insn.vaddr)
                    }
                    Kind::RepString => !(fall || prev.vaddr == insn.vaddr),
                    _ => !fall,
                };
                if delivered {
                    self.c.deliveries += 1;
                    self.c.privilege_switches += 1;
                    self.entries.insert(insn.vaddr);
                    // A fault in the middle of a block: the instruction did
                    // not retire (it runs again after the handler).
                    let non_branch = !matches!(prev.kind, Kind::Direct { .. } | Kind::Indirect);
                    if non_branch && !prev.last_in_tb {
                        self.c.instructions -= 1;
                        self.undo_kind(&prev);
                    }
                }
            }
            if let Some(read) = self.pending.take()
                && insn.kind == Kind::Lfence
            {
                done = Some(read);
            }
        }
        if insn.kind == Kind::Rdtsc && self.prev.is_some_and(|p| p.kind == Kind::Lfence) {
            self.pending = Some(Read { pc: insn.vaddr, at: self.c });
        }
        self.c.instructions += 1;
        match insn.kind {
            Kind::RepString if self.prev.is_some_and(|p| p.vaddr == insn.vaddr) => self.c.rep_iterations += 1,
            Kind::Switch => self.c.privilege_switches += 1,
            Kind::SoftInt => {
                self.c.privilege_switches += 1;
                self.c.deliveries += 1;
            }
            Kind::MovCr3 => {
                self.c.cr3_writes += 1;
                self.c.tlb_flushes += 1;
                self.mem.itlb.flush();
                self.mem.dtlb.flush();
            }
            Kind::MovCr4 => {
                self.c.tlb_flushes += 1;
                self.mem.itlb.flush();
                self.mem.dtlb.flush();
            }
            Kind::Invlpg => self.c.tlb_flushes += 1,
            Kind::Out => self.c.outs += 1,
            _ => {}
        }
        // Instruction fetch: every line the instruction's bytes touch.
        let first = insn.fetch >> 6;
        let last = (insn.fetch + insn.len.max(1) - 1) >> 6;
        for line in first..=last {
            if self.mem.l1i.access(line << 6) {
                self.c.l1i_misses += 1;
                if self.mem.l2.access(line << 6) {
                    self.c.l2_misses += 1;
                }
            }
        }
        if self.mem.itlb.access(insn.vaddr) {
            self.c.itlb_misses += 1;
        }
        self.prev = Some(*insn);
        done
    }

    /// Take back the counts of an instruction that did not retire (its
    /// cache and TLB effects stay: the hardware fetched it too).
    fn undo_kind(&mut self, insn: &Insn) {
        match insn.kind {
            Kind::Switch => self.c.privilege_switches -= 1,
            Kind::SoftInt => {
                self.c.privilege_switches -= 1;
                self.c.deliveries -= 1;
            }
            Kind::MovCr3 => {
                self.c.cr3_writes -= 1;
                self.c.tlb_flushes -= 1;
            }
            Kind::MovCr4 | Kind::Invlpg => self.c.tlb_flushes -= 1,
            Kind::Out => self.c.outs -= 1,
            _ => {}
        }
    }

    /// A load or store of `size` bytes at `vaddr`, physical `phys` (None for MMIO).
    pub fn mem(&mut self, vaddr: u64, phys: Option<u64>, size: u64, store: bool) {
        if store {
            self.c.stores += 1;
        } else {
            self.c.loads += 1;
        }
        if self.mem.dtlb.access(vaddr) {
            self.c.dtlb_misses += 1;
        }
        let Some(phys) = phys else { return };
        let first = phys >> 6;
        let last = (phys + size.max(1) - 1) >> 6;
        for line in first..=last {
            if self.mem.l1d.access(line << 6) {
                self.c.l1d_misses += 1;
                if self.mem.l2.access(line << 6) {
                    self.c.l2_misses += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_instructions_that_matter() {
        assert_eq!(classify(&[0x0f, 0xae, 0xe8], 0), Kind::Lfence);
        assert_eq!(classify(&[0x0f, 0x31], 0), Kind::Rdtsc);
        assert_eq!(classify(&[0x0f, 0x05], 0), Kind::Switch);
        assert_eq!(classify(&[0x48, 0x0f, 0x07], 0), Kind::Switch);
        assert_eq!(classify(&[0x48, 0xcf], 0), Kind::Switch);
        assert_eq!(classify(&[0xcc], 0), Kind::SoftInt);
        assert_eq!(classify(&[0xcd, 0x80], 0), Kind::SoftInt);
        assert_eq!(classify(&[0x0f, 0x22, 0xd8], 0), Kind::MovCr3); // mov cr3, rax
        assert_eq!(classify(&[0x0f, 0x01, 0x38], 0), Kind::Invlpg); // invlpg [rax]
        assert_eq!(classify(&[0x0f, 0x01, 0xf9], 0), Kind::Plain); // rdtscp
        assert_eq!(classify(&[0xf3, 0xaa], 0), Kind::RepString);
        assert_eq!(classify(&[0xf3, 0x48, 0xab], 0), Kind::RepString);
        assert_eq!(classify(&[0xaa], 0), Kind::Plain);
        assert_eq!(classify(&[0xee], 0), Kind::Out);
        assert_eq!(classify(&[0x75, 0xfe], 0x100), Kind::Direct { target: 0x100, falls_through: true });
        assert_eq!(
            classify(&[0xe8, 0x10, 0, 0, 0], 0x100),
            Kind::Direct { target: 0x115, falls_through: false }
        );
        assert_eq!(classify(&[0xc3], 0), Kind::Indirect);
        assert_eq!(classify(&[0xff, 0xe0], 0), Kind::Indirect); // jmp rax
    }

    #[test]
    fn lru_cache_hits_and_evicts() {
        let mut c = Cache::new(2 * 64 * 2, 2, 64); // 2 sets, 2 ways
        assert!(c.access(0));
        assert!(!c.access(8));
        assert!(c.access(128)); // same set, second way
        assert!(!c.access(0));
        assert!(c.access(256)); // evicts 128 (LRU)
        assert!(!c.access(0));
        assert!(c.access(128));
        c.flush();
        assert!(c.access(0));
    }

    fn insn(vaddr: u64, bytes: &[u8]) -> Insn {
        Insn { vaddr, fetch: vaddr, len: bytes.len() as u64, kind: classify(bytes, vaddr), last_in_tb: false }
    }

    #[test]
    fn clock_reads_and_deliveries() {
        let mut t = Tracker::default();
        let lf = [0x0f, 0xae, 0xe8];
        assert!(t.exec(&insn(0x1000, &lf)).is_none());
        assert!(t.exec(&insn(0x1003, &[0x0f, 0x31])).is_none());
        let r = t.exec(&insn(0x1005, &lf)).expect("a read");
        assert_eq!((r.pc, r.at.instructions), (0x1003, 1));
        // A load at 0x1008 faults in mid-block: handler in the kernel half.
        t.exec(&insn(0x1008, &[0x8a, 0x00]));
        t.exec(&insn(KERNEL_HALF + 0x40, &[0x90]));
        assert_eq!(t.c.deliveries, 1);
        assert_eq!(t.c.instructions, 4); // the faulting load did not retire
        // rep stosb: three iterations, two of them repeats.
        let rep = [0xf3, 0xaa];
        for _ in 0..3 {
            t.exec(&insn(0x2000, &rep));
        }
        t.exec(&insn(0x2002, &[0x90]));
        assert_eq!(t.c.rep_iterations, 2);
        assert_eq!(t.c.deliveries, 2); // the jump to 0x2000 from the kernel half
    }
}
