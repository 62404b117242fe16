//! What is measured: every operation, by table, with its canonical name
//! (the `operation` field of the results JSON) and iteration counts.

/// The tables of BENCHMARKS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Baseline,
    ProtectedCommunication,
    ThreadManagement,
    VirtualMemory,
    Exceptions,
    Dispatcher,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Baseline,
        Table::ProtectedCommunication,
        Table::ThreadManagement,
        Table::VirtualMemory,
        Table::Exceptions,
        Table::Dispatcher,
    ];

    /// The `table` field of the results JSON.
    pub const fn id(self) -> &'static str {
        match self {
            Table::Baseline => "baseline",
            Table::ProtectedCommunication => "protected-communication",
            Table::ThreadManagement => "thread-management",
            Table::VirtualMemory => "virtual-memory",
            Table::Exceptions => "exceptions",
            Table::Dispatcher => "dispatcher",
        }
    }

    /// A heading for printed tables.
    pub const fn title(self) -> &'static str {
        match self {
            Table::Baseline => "Baselines",
            Table::ProtectedCommunication => "Protected communication (SPIN Table 2)",
            Table::ThreadManagement => "Thread management (SPIN Table 3)",
            Table::VirtualMemory => "Virtual memory (SPIN Table 4)",
            Table::Exceptions => "Exception dispatch (Aegis)",
            Table::Dispatcher => "Event dispatcher scaling (SPIN, OSDI 1996)",
        }
    }

    pub fn from_id(id: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.id() == id)
    }
}

/// One benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub table: Table,
    /// Canonical lower-case name, e.g. `"system call"`.
    pub name: &'static str,
    /// Iterations per run in a full benchmark run.
    pub iterations: u32,
    /// Iterations per run with `--quick`.
    pub quick_iterations: u32,
    /// What one iteration does (for tables and the report).
    pub what: &'static str,
}

/// Measured runs after the warm-up run.
pub const RUNS: u32 = 5;
/// Runs with `--quick`.
pub const QUICK_RUNS: u32 = 2;

const fn op(table: Table, name: &'static str, iterations: u32, what: &'static str) -> Op {
    Op { table, name, iterations, quick_iterations: if iterations < 10 { iterations } else { 10 }, what }
}

/// Pages per round of "appel2" (and per call of prot100/unprot100).
pub const APPEL2_PAGES: u32 = 100;

use Table::*;

/// Every operation, in table order.
pub const OPS: &[Op] = &[
    op(Baseline, "empty loop", 10_000, "one iteration of the measurement loop itself"),
    op(Baseline, "plain procedure call", 10_000, "call and return of a null procedure, not inlined"),
    op(
        ProtectedCommunication,
        "protected in-kernel call",
        10_000,
        "null call between two separately linked domains",
    ),
    op(ProtectedCommunication, "system call", 10_000, "null system call: user to kernel and back"),
    op(
        ProtectedCommunication,
        "cross-address-space call",
        2_000,
        "null call into another address space and back",
    ),
    op(ThreadManagement, "fork-join kernel", 500, "create, run and join a kernel thread"),
    op(
        ThreadManagement,
        "fork-join user layered",
        500,
        "fork-join with user threads layered on kernel threads",
    ),
    op(
        ThreadManagement,
        "fork-join user integrated",
        500,
        "fork-join with user threads integrated with the kernel",
    ),
    op(ThreadManagement, "ping-pong kernel", 1_000, "signal-and-block round trip between two kernel threads"),
    op(ThreadManagement, "ping-pong user layered", 1_000, "ping-pong between layered user threads"),
    op(ThreadManagement, "ping-pong user integrated", 1_000, "ping-pong between integrated user threads"),
    op(VirtualMemory, "dirty", 10_000, "query whether one page is dirty"),
    op(VirtualMemory, "fault", 1_000, "fault on a protected page, handler enables access, resume"),
    op(VirtualMemory, "trap", 1_000, "protection fault until the user handler starts"),
    op(VirtualMemory, "prot1", 1_000, "increase the protection of one page"),
    op(VirtualMemory, "prot100", 200, "increase the protection of 100 pages"),
    op(VirtualMemory, "unprot100", 200, "decrease the protection of 100 pages"),
    op(VirtualMemory, "appel1", 1_000, "fault, resolve, and protect another page in the handler"),
    // One iteration is one page: a round protects APPEL2_PAGES pages with one
    // call and then faults on each. Glue runs whole rounds (see `appel2_rounds`).
    Op {
        table: VirtualMemory,
        name: "appel2",
        iterations: 1_000,
        quick_iterations: APPEL2_PAGES,
        what: "protect 100 pages, fault on each, resolve in the handler (per page)",
    },
    op(Exceptions, "exception #ud", 1_000, "invalid opcode to the user handler and back"),
    op(Exceptions, "exception #bp", 1_000, "int3 to the user handler and back"),
    op(Exceptions, "exception #de", 1_000, "divide error to the user handler and back"),
    op(Exceptions, "exception #pf", 1_000, "page fault on a present page to the user handler and back"),
    op(Dispatcher, "raise 1 handler", 10_000, "raise an event with one handler"),
    op(Dispatcher, "raise 5 handlers", 10_000, "raise an event with five handlers"),
    op(Dispatcher, "raise 10 handlers", 5_000, "raise an event with ten handlers"),
    op(Dispatcher, "raise 50 handlers", 1_000, "raise an event with fifty handlers"),
    op(Dispatcher, "50 guards false", 1_000, "raise an event whose fifty guards all decline"),
];

/// Rounds of "appel2" for `iterations` pages (rounded up to whole rounds);
/// the glue reports `rounds * APPEL2_PAGES` iterations.
pub const fn appel2_rounds(iterations: u32) -> u32 {
    iterations.div_ceil(APPEL2_PAGES)
}

/// The operation with this canonical name.
pub fn op_named(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == name)
}

/// Which operations to run and how long, from the kernel command line
/// (`quick`, `only=<table id or operation>`; `_` stands for a space in
/// `only`, since the command line is split on spaces).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings<'a> {
    pub quick: bool,
    pub only: Option<&'a str>,
}

impl Settings<'_> {
    /// Whether `op` is selected.
    pub fn wants(&self, op: &Op) -> bool {
        match self.only {
            None => true,
            Some(sel) => sel == op.table.id() || names_match(sel, op.name),
        }
    }

    pub fn iterations(&self, op: &Op) -> u32 {
        if self.quick { op.quick_iterations } else { op.iterations }
    }

    pub fn runs(&self) -> u32 {
        if self.quick { QUICK_RUNS } else { RUNS }
    }
}

/// Compare a command-line selector (with `_` for spaces) with an operation name.
pub fn names_match(selector: &str, name: &str) -> bool {
    selector.len() == name.len()
        && selector.bytes().zip(name.bytes()).all(|(s, n)| s == n || (s == b'_' && n == b' '))
}

/// Encode an operation name or table id for the kernel command line.
pub fn encode_selector(text: &str, out: &mut [u8]) -> usize {
    let mut n = 0;
    for (slot, b) in out.iter_mut().zip(text.bytes()) {
        *slot = if b == b' ' { b'_' } else { b };
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lower_case() {
        for (i, a) in OPS.iter().enumerate() {
            assert_eq!(a.name, a.name.to_lowercase());
            assert!(!a.name.contains('|') && !a.name.contains('_'));
            for b in &OPS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
        // Every table has at least one operation.
        for t in Table::ALL {
            assert!(OPS.iter().any(|o| o.table == t), "{t:?}");
            assert_eq!(Table::from_id(t.id()), Some(t));
        }
    }

    #[test]
    fn selection() {
        let s = Settings { quick: true, only: Some("system_call") };
        assert!(s.wants(op_named("system call").unwrap()));
        assert!(!s.wants(op_named("prot1").unwrap()));
        let t = Settings { quick: false, only: Some("virtual-memory") };
        assert!(t.wants(op_named("appel2").unwrap()));
        assert!(!t.wants(op_named("system call").unwrap()));
        assert_eq!(s.iterations(op_named("system call").unwrap()), 10);
        assert_eq!(t.iterations(op_named("system call").unwrap()), 10_000);
        let mut buf = [0u8; 32];
        let n = encode_selector("raise 5 handlers", &mut buf);
        assert_eq!(&buf[..n], b"raise_5_handlers");
    }
}
