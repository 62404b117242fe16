//! The report's Markdown: prose around tables and verdicts, with every
//! number taken from the results file or `benchmarks::published`.

use super::Results;
use super::verdicts::{Claim, Verdict};
use benchmarks::Table;
use benchmarks::published::for_operation;
use std::fmt::Write;

fn num(x: f64) -> String {
    if x >= 1000.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

fn cell(r: &Results, kernel: &str, op: &str, notes: &mut Vec<String>) -> String {
    match r.row(kernel, op) {
        None => "—".into(),
        Some(row) => match row.median {
            Some(m) => match (row.min, row.max) {
                (Some(lo), Some(hi)) if lo != hi => format!("{} [{}–{}]", num(m), num(lo), num(hi)),
                _ => num(m),
            },
            None => {
                notes.push(format!("{kernel}, {op}: {}", row.note.as_deref().unwrap_or("no reason given")));
                format!("n/a ({})", notes.len())
            }
        },
    }
}

fn published(op: &str) -> (String, String) {
    let ps: Vec<_> = for_operation(op).collect();
    if ps.is_empty() {
        return ("—".into(), "—".into());
    }
    let us = ps.iter().map(|p| format!("{} {}", p.system, p.micros)).collect::<Vec<_>>().join("; ");
    let cyc = ps.iter().map(|p| format!("{} {:.0}", p.system, p.cycles())).collect::<Vec<_>>().join("; ");
    (us, cyc)
}

const DESIGNS: &str = "\
Both kernels answer the same question — how can applications change how the operating
system manages resources without giving up protection or speed? — and both boot on the
same hardware layer (`shared-hal`), so the differences below come from the designs.

**kernel-exo** follows MIT's Aegis/Xok. The kernel *protects* and does not *manage*: it
exposes physical page numbers, lets an environment ask for specific pages, and checks
ownership only when a mapping is bound (a *secure binding*); after that the MMU enforces
it on every access. Page faults and other exceptions go straight back to the environment's
own handler in ring 3, which resumes the faulting code itself; control passes between
environments by *protected control transfer*, which changes address space and program
counter and donates the time slice, nothing more. Everything a programmer thinks of as
\"the operating system\" — virtual memory policy, fork, IPC, threads — is the library OS,
ExOS, linked into each application.

**kernel-spin** follows SPIN. Extensions are Rust crates linked into the kernel's own
address space and run in ring 0; they are forbidden from using `unsafe`, can name only
the extension interface, and can use only the capabilities (typed references whose
constructors are private to the kernel) they were handed. The protection boundary between
an extension and the kernel is therefore the type system: crossing it is a procedure call.
Extensions react to *events* (typed procedure signatures) through a dispatcher with
guards; system calls from ring-3 processes are events too.
";

const LANGUAGE_PROTECTS: &str = "\
**What the language protects, and what it does not.** kernel-spin's boundary holds only as
far as the compiler and the build enforce it, so both are checked, not assumed. The
trusted build compiles each extension with `-F unsafe_code` forced on the command line,
admits no dependency but the extension interface (identified by package and path through
`cargo metadata`; no build script or procedural macro anywhere in its graph), rejects
unmangled symbols and unusual sections in its object code, and rejects, in the crate as
rustc expanded it, attributes the lint lets through (`#[unsafe(naked)]`,
`#[target_feature]`) and the type shapes of rustc's open soundness hole rust-lang/rust#25860
(lifetime extension through implied bounds of nested references, the \"cve-rs\" family).
SPIN trusted its Modula-3 compiler; we trust rustc in the same way, knowing it has holes:
the check is conservative and covers the known exploit family, not every future one.
At run time the kernel contains what safe code can still do — panic, overflow its stack
(every strand stack has an unmapped guard), loop, exhaust its heap quota (1 MiB per
domain), fork threads that do any of these — by unloading the culprit and failing the raise
that reached it; the kernel, not the extension, names each domain and grants its
authority; a panic is charged to the domain whose code panicked (the compiler's record of the
panic's location names its crate), not to an innocent caller. What it does not contain
yet: an overrun or overflow is charged to the innermost contained call even when another
domain's procedure was running inside it (the cross-domain call stays a plain procedure
call, as in SPIN, and records no domain), a blocking lock held by aborted code, and code of an unloaded domain still reachable through its running threads and
exported objects. The exokernel needs none of this: its extensions are ring-3 programs
behind the MMU.
";

const LIMITS: &str = "\
- **Instructions are not time.** Under `-icount shift=0` every guest instruction costs one
  tick, whatever it is. A `syscall`, an `iretq`, a `mov cr3` or a TLB miss costs the same as
  an `add`. The real cost of privilege transitions, address-space switches and cache and TLB
  misses — exactly what the exokernel and SPIN papers argued about — is invisible here;
  only the *number of instructions on each path* is measured. The published figures are
  time (µs) on 1995 hardware; the cycle column (µs × MHz) makes them clock-independent, but
  an Alpha or MIPS cycle is not an x86 instruction. Compare ratios and orders of magnitude,
  not absolute values.
- **Same machine, different ISA.** The papers ran on a 133 MHz Alpha (SPIN) and a 25 MHz
  MIPS DECstation (Aegis); Aegis counted 18 MIPS instructions for exception dispatch. x86-64
  exception entry pushes a frame in microcode and `iretq` pops it: one instruction each.
- **The baseline is modern Linux,** not DEC OSF/1 or Ultrix: a 2020s kernel with page-table
  isolation, speculative-execution mitigations and many more features on every path. Its
  figures include interrupts and scheduling noise (a few percent run to run); ours are
  exact and repeat bit for bit.
- **Loop overhead is included** in every figure (the *empty loop* row shows how much).
- **A `rep` string instruction counts once per iteration.** Under icount, `rep stosb` over a
  4 KiB page counts 4,096 instructions (`rep stosq`, 512) while a page-table reload, a TLB
  flush or an `xsave` counts one. Rows that zero or copy pages are therefore overstated
  against rows that switch address spaces. In exo's and spin's binaries the only `rep`
  instructions are in `memcpy`/`memset`/`memmove` and three copy loops, and their call sites
  (read from the disassembly) are creation, loading, console and page-allocation paths that
  no timed region runs once warmed up (strands and ExOS threads are recycled, pages are
  mapped before the clock starts): their rows carry no `rep` counts. On Linux the rows that
  fault in fresh pages carry them: each page a fresh thread stack touches is cleared with
  `rep stosb` (4,096 counts per page), part of why musl's fresh-stack fork-join (an extra
  line) costs about 42,600 instructions more than the row's reused stack; process
  fork + wait copies and clears pages the same way. We have not counted these events per
  row (that needs a TCG plugin); the figures above are totals.
";

/// The "for courses" section. Every path it names is checked to exist by a
/// unit test, so the exercises cannot silently rot.
pub const COURSES: &str = "\
Three exercises, each with the files to touch and a test that says whether it works.
Run a single test with `cargo xtask test --filter <name>`.

### 1. Write a SPIN extension with a guard

Write an extension that handles the `Hello.greeted` event (defined by
`extensions/hello/src/lib.rs`, the README's worked example) **only for even numbers**,
answering half the number; the event sums its handlers' answers, so `Hello.greet(n)`
must return `(n + 1) + n / 2` for even `n` and `n + 1` for odd `n`. Do it with a
dispatcher *guard*, not an `if` in the handler: the point is that the kernel evaluates
the guard and never calls your handler for odd numbers.

- Files: your crate `extensions/evens/src/lib.rs` (a reference solution ships there;
  teachers delete its body), `extensions/evens/Cargo.toml`, and its registration in
  `kernel-spin/kernel/src/loader.rs` (`BOOT_EXTENSIONS`) and `kernel-spin/kernel/Cargo.toml`.
- Check: `cargo xtask test --filter evens` runs the build check (the crate is compiled
  with `unsafe` forbidden by the build and may depend only on the extension interface) and
  `spin::exercise_guarded_extension` (greetings 0..20, and the handler must have seen
  exactly the ten even ones).
- Going further: make the guard depend on state the extension keeps; install the handler
  on an event whose definer refuses you and read the error.

### 2. Write an ExOS pager policy

When the exokernel asks an environment to give pages back, ExOS — not the kernel —
chooses which. Write a policy that picks victims your own way (for example: prefer pages
whose accessed bit is clear, read from the page-table self-map; or second-chance).

- Files: a new `kernel-exo/exos/src/pager/policies/<name>.rs` implementing the `Policy`
  trait (see `kernel-exo/exos/src/pager/policies/clean_lru.rs` and
  `kernel-exo/exos/src/pager/policies/fifo.rs`), and one line in the `policies!` list of
  `kernel-exo/exos/src/pager/policies/mod.rs`.
- Check: `cargo xtask test --filter exos_pager_every_policy` runs the revocation scenario
  against every registered policy: the right number of pages comes back, only
  reclaimable pages go, ExOS's view matches the page tables, the environment keeps
  running, nothing leaks.
- Going further: compare policies by how many pages a workload touches again after
  losing them (README: \"Write your own pager in ExOS\").

### 3. Add a benchmark row to both kernels

Pick an operation the papers did not measure — a directed `yield` to yourself, or a
zero-length pipe write — and add it to the suite so that `cargo xtask bench` prints it
for exo, spin and Linux.

- Files: the definition in `benchmarks/src/defs.rs` (`OPS`), a budget for exo and spin in
  `benchmarks/src/budgets.rs` (a budget declares that a kernel must measure the row), and
  the glue: `kernel-exo/user/src/bin/bench/main.rs` (the exokernel's benchmark
  environment), `kernel-spin/kernel/src/bench.rs` or `kernel-spin/user/src/bin/spin-ubench.rs`,
  and `benchmarks/linux/src/glue.rs`.
- Check: `cargo xtask test --filter bench_quick` fails until every system reports the new
  row and both kernels measure it (not `n/a`); then `cargo xtask bench --only <row>` shows
  your numbers.
";

/// The whole report.
pub fn report(r: &Results, claims: &[Claim]) -> String {
    let f = &r.file;
    let mut md = String::new();
    let _ = writeln!(md, "# Two kernels, one machine: reproducing the SPIN and Exokernel microbenchmarks\n");
    let _ = writeln!(
        md,
        "*Generated by `cargo xtask paper` from `target/bench/latest.json` (git {}); do not edit by hand.*\n",
        f.git
    );
    let _ = writeln!(md, "## Summary\n");
    let count = |v: Verdict| claims.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        md,
        "Of the papers' {} claims we test, reproduced: {}; borderline (the evidence is within 10 % \
         of the claim's threshold, on either side): {}; not reproduced: {}; not comparable with the \
         numbers we have: {}. Each claim's threshold is fixed in its test, before \
         any number; details and evidence are in [the verdicts](#the-papers-claims).\n",
        claims.len(),
        count(Verdict::Reproduced),
        count(Verdict::Borderline),
        count(Verdict::NotReproduced),
        count(Verdict::NotComparable)
    );
    let _ = writeln!(md, "| paper | claim | verdict |\n|---|---|---|");
    for c in claims {
        let _ = writeln!(md, "| {} | {} | **{}** |", c.paper, c.claim, c.verdict.label());
    }
    let _ = writeln!(md, "\n## The two designs\n\n{DESIGNS}\n{LANGUAGE_PROTECTS}");
    let _ = writeln!(md, "![Where each kernel draws its protection boundary](figures/boundaries.svg)\n");

    let _ = writeln!(md, "## Method\n");
    let iters: Vec<u32> = f.results.iter().filter(|x| x.median.is_some()).map(|x| x.iterations).collect();
    let runs: Vec<u32> = f.results.iter().filter(|x| x.median.is_some()).map(|x| x.runs).collect();
    let _ = writeln!(
        md,
        "- Machine: QEMU `{}` (`-machine pc`, 256 MiB, one CPU), the same definition for every system; \
         host CPU {}.\n- Accelerator: **{}**; unit: **{} per operation**; guest TSC {} Hz.\n\
         - Each operation: one warm-up run, then {} runs of {} to {} iterations between two \
         `lfence`-fenced `rdtsc` reads; the figure is the median over runs of (run total / iterations), \
         with [min–max] where runs differ.\n- The benchmark definitions live once in `benchmarks/`; \
         each system contributes only glue (`kernel-*/kernel/src/bench.rs`, `benchmarks/linux`).\n\
         - Every iteration does the definition's work from its stated start state, and the glue \
         checks it: the protection rows sum the pages each timed call changed, as the kernels \
         report them (Linux: /proc/self/maps after each run), and a run that changed fewer fails \
         instead of printing a number; where a system's glue makes a choice that matters, the \
         note under the table says so, with the alternatives as \"also measured\" lines.\n\
         - Both kernels are built the same way: release, one optimization unit (fat LTO, one codegen \
         unit), the stable compiler pinned in `rust-toolchain.toml`.\n",
        f.qemu,
        f.host_cpu,
        f.accel,
        f.unit,
        f.tsc_hz,
        runs.iter().max().copied().unwrap_or(0),
        iters.iter().min().copied().unwrap_or(0),
        iters.iter().max().copied().unwrap_or(0),
    );
    if let Some(image) = &r.linux_guest {
        let _ = writeln!(
            md,
            "- The Linux baseline boots `{image}` (Debian's `linux-image-amd64` unless \
             `--linux-kernel` named another) with our static musl benchmark program as `/init`, \
             address-space randomization off (`norandmaps`), as on the papers' systems.\n"
        );
    }
    let _ = writeln!(md, "### What this measurement does and does not capture\n\n{LIMITS}");

    let kernels = r.kernels();
    for table in Table::ALL {
        let _ = writeln!(md, "## {}\n", table.title());
        let mut header = String::from("| operation |");
        for k in &kernels {
            let _ = write!(header, " {k} |");
        }
        header.push_str(" published (µs) | published (cycles) |");
        let _ = writeln!(md, "{header}\n|{}", "---|".repeat(kernels.len() + 3));
        let mut notes = Vec::new();
        for op in benchmarks::OPS.iter().filter(|o| o.table == table) {
            let mut row = format!("| {} |", op.name);
            for k in &kernels {
                let _ = write!(row, " {} |", cell(r, k, op.name, &mut notes));
            }
            let (us, cyc) = published(op.name);
            let _ = writeln!(md, "{row} {us} | {cyc} |");
        }
        let _ = writeln!(
            md,
            "\nWhat one iteration does, and how each system's glue does it where that matters:\n"
        );
        for op in benchmarks::OPS.iter().filter(|o| o.table == table) {
            let _ = writeln!(md, "- **{}**: {}.", op.name, op.what);
            for k in &kernels {
                if let Some(n) = benchmarks::defs::glue_note(k, op.name) {
                    let _ = writeln!(md, "  - {k}: {n}.");
                }
            }
            for (_, line) in r.extras.iter().filter(|(o, _)| o == op.name) {
                let _ = writeln!(md, "  - also measured, {line}");
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(md);
            for (i, n) in notes.iter().enumerate() {
                let _ = writeln!(md, "({}) {n}  ", i + 1);
            }
        }
        let _ = writeln!(md, "\n![{}](figures/{}.svg)\n", table.title(), table.id());
    }

    let _ = writeln!(md, "## The papers' claims\n");
    for c in claims {
        let _ = writeln!(
            md,
            "### {} — {}\n\n> {}\n\n*Test:* {}\n\n*Evidence:* {}\n",
            c.paper,
            c.verdict.label(),
            c.claim,
            c.test,
            c.evidence
        );
    }
    let _ = writeln!(md, "## For courses\n\n{COURSES}");
    md
}
