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
    Networking,
    DynamicExtensions,
    DownloadedCode,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Baseline,
        Table::ProtectedCommunication,
        Table::ThreadManagement,
        Table::VirtualMemory,
        Table::Exceptions,
        Table::Dispatcher,
        Table::Networking,
        Table::DynamicExtensions,
        Table::DownloadedCode,
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
            Table::Networking => "networking",
            Table::DynamicExtensions => "dynamic-extensions",
            Table::DownloadedCode => "downloaded-code",
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
            Table::Networking => "Networking (SPIN's protocol graph, Aegis's DPF and ASH)",
            Table::DynamicExtensions => "Dynamic extensions (SPIN's run-time linking)",
            Table::DownloadedCode => "Downloaded code (Aegis's ASH, Xok's wakeup predicates)",
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
    op(Baseline, "empty loop", 10_000, "one iteration of the measurement loop itself (nothing else)"),
    op(
        Baseline,
        "plain procedure call",
        10_000,
        "call and return of a null procedure in the same program, not inlined",
    ),
    op(
        ProtectedCommunication,
        "protected in-kernel call",
        10_000,
        "start: a null procedure exported by another separately linked domain, its import resolved; call it and return",
    ),
    op(
        ProtectedCommunication,
        "system call",
        10_000,
        "a null system call: user to kernel, run the (empty) call's procedure, back to user",
    ),
    op(
        ProtectedCommunication,
        "cross-address-space call",
        2_000,
        "start: a server address space waiting for calls; a null call into it and the return, no arguments or results",
    ),
    op(
        ThreadManagement,
        "fork-join kernel",
        500,
        "create a kernel thread running a null procedure, run it, and join it (the joiner learns it ended); stacks may be reused, as every system's thread package does",
    ),
    op(
        ThreadManagement,
        "fork-join user layered",
        500,
        "the same fork-join with a user-level thread package built on kernel threads through system calls",
    ),
    op(
        ThreadManagement,
        "fork-join user integrated",
        500,
        "the same fork-join with a user-level thread package integrated with the kernel's scheduling",
    ),
    op(
        ThreadManagement,
        "ping-pong kernel",
        1_000,
        "start: two kernel threads, one blocked; A signals B and blocks, B signals A and blocks: one round trip",
    ),
    op(ThreadManagement, "ping-pong user layered", 1_000, "the same round trip between layered user threads"),
    op(
        ThreadManagement,
        "ping-pong user integrated",
        1_000,
        "the same round trip between integrated user threads",
    ),
    op(
        VirtualMemory,
        "dirty",
        10_000,
        "start: a page written since it was mapped; ask whether it is dirty (the answer is checked: yes)",
    ),
    op(
        VirtualMemory,
        "fault",
        1_000,
        "start: a protected page; access it, the handler enables access, the access is retried and completes (the page is protected again untimed)",
    ),
    op(
        VirtualMemory,
        "trap",
        1_000,
        "start: a protected page; from the faulting access until the user handler starts (the clock stops in the handler)",
    ),
    op(
        VirtualMemory,
        "prot1",
        1_000,
        "start: a read-write page of a read-write region of 100 pages or more; make it read-only (1 page changed, checked)",
    ),
    op(
        VirtualMemory,
        "prot100",
        200,
        "start: a read-write region of 100 pages; make all 100 read-only in one call (100 changed, checked; restored untimed)",
    ),
    op(
        VirtualMemory,
        "unprot100",
        200,
        "start: a read-only region of 100 pages; make all 100 read-write in one call (100 changed, checked; re-protected untimed)",
    ),
    op(
        VirtualMemory,
        "appel1",
        1_000,
        "start: one of two pages protected; access it: the handler unprotects it and protects the other, which the next iteration accesses",
    ),
    // One iteration is one page: a round protects APPEL2_PAGES pages with one
    // call and then faults on each. Glue runs whole rounds (see `appel2_rounds`).
    Op {
        table: VirtualMemory,
        name: "appel2",
        iterations: 1_000,
        quick_iterations: APPEL2_PAGES,
        what: "start: 100 read-write pages; protect all 100 in one call, then access each: the handler unprotects it (per page)",
    },
    op(
        Exceptions,
        "exception #ud",
        1_000,
        "an invalid opcode, delivered to the user handler, which resumes after it",
    ),
    op(Exceptions, "exception #bp", 1_000, "an int3, delivered to the user handler, which resumes after it"),
    op(
        Exceptions,
        "exception #de",
        1_000,
        "a divide error, delivered to the user handler, which resumes after it",
    ),
    op(
        Exceptions,
        "exception #pf",
        1_000,
        "a write to a present read-only page, delivered to the user handler, which resumes after it (the page stays read-only)",
    ),
    op(Dispatcher, "raise 1 handler", 10_000, "raise an event with one installed handler, which runs"),
    op(
        Dispatcher,
        "raise 5 handlers",
        10_000,
        "raise an event with five installed handlers, all of which run",
    ),
    op(
        Dispatcher,
        "raise 10 handlers",
        5_000,
        "raise an event with ten installed handlers, all of which run",
    ),
    op(
        Dispatcher,
        "raise 50 handlers",
        1_000,
        "raise an event with fifty installed handlers, all of which run",
    ),
    op(
        Dispatcher,
        "50 guards false",
        1_000,
        "raise an event whose fifty guards all decline (no handler runs)",
    ),
    op(
        Networking,
        "udp round trip",
        200,
        "start: a client and a server at user level, each on its own NIC of one QEMU hub; the client sends a 64-byte UDP payload, the server receives it and sends it back, the client receives it (checked byte for byte)",
    ),
    op(
        Networking,
        "udp round trip, kernel echo",
        200,
        "the same round trip with the server side inside the kernel (an in-kernel echo): the client at user level sends, the kernel echoes, the client receives and checks",
    ),
    op(
        Networking,
        "packet demux, 1 endpoint",
        1_000,
        "start: 1 UDP endpoint installed; from a received frame to the choice of its receiving endpoint (the choice is checked)",
    ),
    op(
        Networking,
        "packet demux, 10 endpoints",
        1_000,
        "the same with 10 endpoints installed (distinct ports), the frame matching one of them",
    ),
    op(
        Networking,
        "packet demux, 100 endpoints",
        1_000,
        "the same with 100 endpoints installed (distinct ports), the frame matching one of them",
    ),
    op(
        DynamicExtensions,
        "load extension",
        3,
        "start: the hello extension's certified object in memory, not loaded; verify its certificate, link it against the interface, run its init: loaded (checked by calling it); unloaded untimed",
    ),
    op(
        DynamicExtensions,
        "unload extension",
        3,
        "start: the hello extension loaded at run time; unload it (checked: its import answers unbound); loaded again untimed",
    ),
    op(
        DynamicExtensions,
        "raise 1 handler, loaded",
        10_000,
        "as raise 1 handler, the handler in an extension loaded at run time from its certified object",
    ),
    op(
        DynamicExtensions,
        "protected in-kernel call, loaded",
        10_000,
        "as protected in-kernel call, the callee in an extension loaded at run time from its certified object",
    ),
    op(
        DownloadedCode,
        "handler download, 10 instructions",
        20,
        "start: nothing installed; download 10 instructions of verified code (verify, install; checked by running it once afterwards); removed untimed",
    ),
    op(DownloadedCode, "handler download, 100 instructions", 20, "the same with a 100-instruction handler"),
    op(
        DownloadedCode,
        "predicate wakeup",
        1_000,
        "start: a sleeper waiting on a predicate over a word it shares with a waker; the waker changes the word and gives up the processor, the sleeper wakes (the tag names the clause that held), acknowledges in a second word and waits again, and the waker runs again: one round (the acknowledgements are checked)",
    ),
];

/// Rounds of "appel2" for `iterations` pages (rounded up to whole rounds);
/// the glue reports `rounds * APPEL2_PAGES` iterations.
pub const fn appel2_rounds(iterations: u32) -> u32 {
    iterations.div_ceil(APPEL2_PAGES)
}

/// How a system's glue does a row where the choice matters to the number:
/// `(kernel, operation, note)`, printed beside the figure in the report.
pub const GLUE_NOTES: &[(&str, &str, &str)] = &[
    (
        "exo",
        "prot1",
        "iteration i raises page i of a 1024-page ExOS region (read-write until then); the run's pages are made read-write again after the clock stops; the kernel's count of changed pages is summed and checked",
    ),
    (
        "spin",
        "prot1",
        "iteration i raises page i of a 1000-page mapping (read-write until then); the pages are made read-write again after the clock stops; vm_protect's count of changed pages is summed and checked",
    ),
    (
        "exo",
        "prot100",
        "each timed call is followed by an untimed call undoing it (unprot100: preceded by), both through vm::protect; every timed call's count must be 100",
    ),
    (
        "spin",
        "prot100",
        "each timed call is followed by an untimed call undoing it (unprot100: preceded by); every timed call's count must be 100",
    ),
    (
        "linux",
        "prot1",
        "page 0 of a 100-page region that is its own mapping (unmapped guard pages either side): Linux keeps protection per mapping, so raising one page of a region splits it — the row is that real cost; the untimed restore merges it again. The same call on a page that is its own mapping is an extra line",
    ),
    (
        "linux",
        "prot100",
        "the whole 100-page region, its own mapping with guard gaps: no split or merge (unprot100 likewise); after each run's last timed call /proc/self/maps must show the change",
    ),
    (
        "linux",
        "fault",
        "the page is page 0 of the 100-page region (its own mapping): protecting it splits the mapping and the handler's mprotect merges it again, as for any application protecting single pages of a region (trap, appel1 and appel2 likewise)",
    ),
    (
        "linux",
        "dirty",
        "a pread of the page's /proc/self/pagemap entry walks from that page to the end of its 2 MiB window, so the page's place is fixed: the last page of an otherwise empty window (the walk covers only the page asked about); other places are extra lines",
    ),
    (
        "linux",
        "fork-join kernel",
        "pthread_create/join with one reused thread stack (pthread_attr_setstack), what glibc's stack cache gives every ordinary program; musl's default of a fresh stack per thread is an extra line",
    ),
    (
        "exo",
        "handler download, 10 instructions",
        "the code is a wakeup predicate (a load, additions, ret), downloaded with PredSet: the format and verifier message handlers will share",
    ),
    (
        "exo",
        "handler download, 100 instructions",
        "the code is a wakeup predicate (a load, 97 additions, a move, ret), downloaded with PredSet",
    ),
    (
        "exo",
        "predicate wakeup",
        "the sleeper owns no time slices: the waker's directed yield offers it the processor, and the kernel runs its predicate to decide",
    ),
    (
        "linux",
        "handler download, 10 instructions",
        "BPF_PROG_LOAD of a 10-instruction socket filter (a load, a move, additions, exit) as root: the eBPF verifier and the JIT; the descriptor is closed untimed",
    ),
    (
        "linux",
        "handler download, 100 instructions",
        "BPF_PROG_LOAD of the same program with 100 instructions",
    ),
    (
        "linux",
        "predicate wakeup",
        "Linux's way to sleep until a word changes is a futex: the waker stores, FUTEX_WAKE, and waits on the word for the sleeper's answer (the ping-pong kernel round trip, measured again here)",
    ),
    (
        "spin",
        "ping-pong user integrated",
        "each half is one uthreads system call that signals the partner and blocks (the package's interface has no lock or condition variable); the exo row and the kernel rows use a lock and condition variables, so this row has no lock operations in it",
    ),
];

/// The glue note for `op` on `kernel`, if there is one.
pub fn glue_note(kernel: &str, op: &str) -> Option<&'static str> {
    GLUE_NOTES.iter().find(|(k, o, _)| *k == kernel && *o == op).map(|(_, _, n)| *n)
}

/// How many pages one timed call of a protection row must change: the
/// kernels report it (exo: `Protect`'s result, spin: `vm_protect`'s),
/// and the glue checks it with [`check_changed`].
pub fn pages_changed(op: &Op) -> Option<u64> {
    match op.name {
        "prot1" => Some(1),
        "prot100" | "unprot100" => Some(APPEL2_PAGES as u64),
        _ => None,
    }
}

/// Fail loudly (a panic: the kernel prints no number for the row and the
/// host reports the run as unfinished) unless `calls` timed calls of `op`
/// changed exactly `calls × pages_changed(op)` pages: a loop that sets
/// pages to the protection they already have is a defect, not a result.
pub fn check_changed(op: &Op, calls: u64, changed: u64) {
    let want = calls * pages_changed(op).unwrap_or(0);
    assert!(
        changed == want,
        "benchmark {:?}: {calls} timed calls changed {changed} pages, the definition says {want}",
        op.name
    );
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
    fn glue_notes_name_real_operations() {
        for (k, op, _) in GLUE_NOTES {
            assert!(["exo", "spin", "linux"].contains(k) && op_named(op).is_some(), "{k} {op}");
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
