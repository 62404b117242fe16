//! `cargo xtask bench --profile`: a deterministic cost profile of every
//! benchmark row. The TCG plugin in `xtask/profile-plugin` writes the
//! guest's event counters at every fenced clock read (`lfence; rdtsc;
//! lfence`); this module builds and loads it, pairs the reads into the
//! timed regions each result line reports, checks that the profile's
//! instruction count equals the benchmark's own, and turns the counts into
//! estimated cycles with the cost table [`COSTS`] (every constant cited).

use crate::bench::KernelResults;
use crate::env::{clean_cargo, root};
use anyhow::{Context, Result, bail};
use benchmarks::line::{self, Parsed};
use benchmarks::measure::Sample;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The plugin when profiling is on, and the reads file of the current run.
struct Active {
    plugin: PathBuf,
    out: Option<PathBuf>,
}

static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

/// Build the plugin and profile every following benchmark boot.
pub fn enable() -> Result<()> {
    let plugin = build_plugin()?;
    *ACTIVE.lock().expect("not poisoned") = Some(Active { plugin, out: None });
    Ok(())
}

/// Stop profiling (the boots after this run without the plugin).
pub fn disable() {
    *ACTIVE.lock().expect("not poisoned") = None;
}

pub fn enabled() -> bool {
    ACTIVE.lock().expect("not poisoned").is_some()
}

/// Build `xtask/profile-plugin` (its own workspace) and return the `.so`.
pub fn build_plugin() -> Result<PathBuf> {
    let dir = root().join("xtask/profile-plugin");
    let target = root().join("target/profile-plugin");
    let status = clean_cargo(&dir)
        .args(["build", "--quiet", "--release", "--target-dir"])
        .arg(&target)
        .status()
        .context("running cargo to build the profile plugin")?;
    if !status.success() {
        bail!("building xtask/profile-plugin failed (see the compiler output above)");
    }
    Ok(target.join("release/libprofile_plugin.so"))
}

/// The host unit tests of the plugin's model (`cargo xtask test`).
pub fn plugin_unit_tests() -> Result<std::process::Output> {
    clean_cargo(&root().join("xtask/profile-plugin"))
        .args(["test", "--quiet", "--release", "-p", "profile-model", "--target-dir"])
        .arg(root().join("target/profile-plugin"))
        .output()
        .context("running cargo test for the profile model")
}

/// Start a profiled boot of `system`: the reads go to target/bench/.
fn begin(system: &str) -> Option<PathBuf> {
    let mut active = ACTIVE.lock().expect("not poisoned");
    let a = active.as_mut()?;
    let out = root().join(format!("target/bench/profile-{system}.reads"));
    let _ = std::fs::create_dir_all(out.parent().expect("has parent"));
    let _ = std::fs::remove_file(&out);
    a.out = Some(out.clone());
    Some(out)
}

/// Extra QEMU arguments while a profiled boot is under way (the hook in
/// `qemu::command`).
pub fn qemu_args() -> Vec<String> {
    let active = ACTIVE.lock().expect("not poisoned");
    match active.as_ref() {
        Some(Active { plugin, out: Some(out) }) => {
            // QEMU's option syntax: ',' separates, ",," is a literal comma.
            let esc = |p: &Path| p.display().to_string().replace(',', ",,");
            vec!["-plugin".into(), format!("{},out={}", esc(plugin), esc(out))]
        }
        _ => Vec::new(),
    }
}

fn end() {
    if let Some(a) = ACTIVE.lock().expect("not poisoned").as_mut() {
        a.out = None;
    }
}

/// Before a benchmark boot of `system` (the hook in `bench::collect`):
/// under TCG, load the plugin for it when profiling is on.
pub fn before_boot(system: &str, spec: &crate::qemu::RunSpec) {
    end();
    if enabled() && spec.accel != crate::qemu::Accel::Kvm {
        let _ = begin(system);
    }
}

/// After it: attribute the plugin's reads to the result lines of `system`
/// (empty when profiling is off). Under KVM a TCG plugin cannot run: the
/// measured boot ran without it, and a second boot of the same `spec` under
/// TCG `-icount shift=0` is profiled here, so the tables can show measured
/// cycles beside estimated ones. (No host here has hardware
/// virtualization: that path is untested.)
pub fn after_boot(
    system: &str,
    spec: &crate::qemu::RunSpec,
    outcome: &crate::qemu::Outcome,
) -> Result<BTreeMap<&'static str, RowProfile>> {
    use crate::qemu::{Accel, RunSpec, run_captured};
    end();
    if !enabled() {
        return Ok(BTreeMap::new());
    }
    let profiled = if spec.accel == Accel::Kvm {
        let _ = begin(system);
        let icount = RunSpec {
            boot: spec.boot,
            cmdline: spec.cmdline,
            accel: Accel::Icount,
            timeout: spec.timeout,
            gdb: false,
        };
        let run = run_captured(&icount, |_| {});
        end();
        run?.output
    } else {
        outcome.output.clone()
    };
    let out = root().join(format!("target/bench/profile-{system}.reads"));
    // A run QEMU did not finish (a timeout kills it before the plugin
    // flushes) leaves no complete file: no profiles, and the caller reports
    // the run's own failure.
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    if !text.trim_end().ends_with("end") {
        return Ok(BTreeMap::new());
    }
    let reads = parse_reads(&text)?;
    // Kept beside the reads, to re-attribute or inspect by hand.
    let _ = std::fs::write(out.with_extension("serial"), &profiled);
    Ok(attribute(system, &reads, &profiled))
}

/// Counter snapshots at one clock read, by the plugin's counter names.
#[derive(Clone, Debug)]
pub struct Read {
    /// Where the `rdtsc` is.
    pub pc: u64,
    pub at: Vec<u64>,
}

/// The plugin's counter names, in its order (the `names` header line).
/// Written out again rather than shared with `profile-model`: that crate is
/// GPL (QEMU's plugin interface) and xtask does not link it; `parse`
/// checks the plugin's header against this list, so the two cannot drift
/// unnoticed.
pub const NAMES: [&str; 14] = [
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

fn idx(name: &str) -> usize {
    NAMES.iter().position(|n| *n == name).expect("a counter name")
}

/// Parse the plugin's reads file; it must name the counters this module knows.
pub fn parse_reads(text: &str) -> Result<Vec<Read>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let names: Vec<&str> = header.strip_prefix("names ").unwrap_or_default().split(' ').collect();
    if names != NAMES {
        bail!("the profile plugin names other counters: {header:?}");
    }
    let mut reads = Vec::new();
    for l in lines {
        let Some(rest) = l.strip_prefix("read ") else { continue };
        let mut f = rest.split(' ');
        let pc = u64::from_str_radix(f.next().unwrap_or_default(), 16).context("a read's address")?;
        let at: Vec<u64> =
            f.map(|v| v.parse::<u64>()).collect::<Result<_, _>>().context("a read's counters")?;
        if at.len() != NAMES.len() {
            bail!("a read with {} counters: {l:?}", at.len());
        }
        reads.push(Read { pc, at });
    }
    Ok(reads)
}

/// The profile of one row: the counters over the run the median reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowProfile {
    pub iterations: u32,
    /// Counter totals over that run, in [`NAMES`] order.
    pub totals: Vec<u64>,
    /// Every run's instruction count equals the benchmark's own.
    pub exact: bool,
}

impl RowProfile {
    pub fn per_op(&self, name: &str) -> f64 {
        self.totals[idx(name)] as f64 / self.iterations.max(1) as f64
    }
}

/// The measurements' clock reads: maximal runs of reads with no console
/// output between them (as index ranges into the reads).
fn segments(reads: &[Read]) -> Vec<std::ops::Range<usize>> {
    let outs = idx("outs");
    let mut segs = Vec::new();
    let mut start = 0;
    for i in 1..=reads.len() {
        if i == reads.len() || reads[i].at[outs] != reads[i - 1].at[outs] {
            segs.push(start..i);
            start = i;
        }
    }
    segs
}

fn delta(a: &Read, b: &Read) -> Vec<u64> {
    a.at.iter().zip(&b.at).map(|(x, y)| y - x).collect()
}

/// Try `regions` (counter deltas of consecutive (start, end) read pairs) as
/// the timed regions of `sample`: (runs + 1) runs (the first a warm-up) of
/// k regions each. The run totals' min, median and max must equal the
/// sample's; the profile is then that of the median run.
fn fit(regions: &[Vec<u64>], sample: &Sample) -> Option<RowProfile> {
    let runs = sample.runs as usize + 1;
    if regions.is_empty() || !regions.len().is_multiple_of(runs) {
        return None;
    }
    let k = regions.len() / runs;
    let mut totals: Vec<Vec<u64>> = regions
        .chunks(k)
        .skip(1)
        .map(|run| (0..NAMES.len()).map(|c| run.iter().map(|r| r[c]).sum()).collect())
        .collect();
    totals.sort_by_key(|t| t[0]);
    let n = totals.len();
    let (min, max) = (totals[0][0], totals[n - 1][0]);
    let median_run = &totals[(n - 1) / 2];
    let median = if n % 2 == 1 {
        median_run[0]
    } else {
        let (a, b) = (totals[n / 2 - 1][0], totals[n / 2][0]);
        a / 2 + b / 2 + (a % 2 + b % 2) / 2
    };
    let exact = (min, median, max) == (sample.min, sample.median, sample.max);
    exact.then(|| RowProfile { iterations: sample.iterations, totals: median_run.clone(), exact })
}

/// Match the measured result (and extra) lines of `system` in `output`, in
/// order, to the timed regions in `reads`. Each line takes the first unused
/// run of read pairs, from the segment of the line before it on, that
/// reproduces its instruction counts exactly (a segment may hold several
/// measurements, e.g. a row and its extra, printed in either order; up to
/// four segments are joined for a measurement that late console output —
/// Linux's interrupt-driven UART — split). A row no regions reproduce gets
/// no profile.
pub fn attribute(system: &str, reads: &[Read], output: &str) -> BTreeMap<&'static str, RowProfile> {
    let segs = segments(reads);
    let mut used = vec![false; reads.len()];
    let mut next: usize = 0;
    let mut found = BTreeMap::new();
    for text in output.lines() {
        let (op, sample) = match line::parse(text) {
            Some(Ok(Parsed::Result { kernel, op, sample })) if kernel == system => (Some(op.name), sample),
            Some(Ok(Parsed::Extra { kernel, sample, .. })) if kernel == system => (None, sample),
            _ => continue,
        };
        let per = sample.runs as usize + 1;
        // A bounded search (a Linux segment can hold 60,000 reads): the
        // next few segments, at most eight left-out addresses, and a
        // measurement starts at a segment's first unused pair. Run totals of
        // instructions come from prefix sums; only a candidate whose
        // instruction figures match is fitted in full.
        'search: for s in next.saturating_sub(1)..segs.len().min(next + 8) {
            for j in 0..4.min(segs.len() - s) {
                let range = segs[s].start..segs[s + j].end;
                let mut pcs: Vec<Option<u64>> = reads[range.clone()].iter().map(|r| Some(r.pc)).collect();
                pcs.sort();
                pcs.dedup();
                pcs.truncate(8);
                pcs.insert(0, None);
                for skip in pcs {
                    let kept: Vec<usize> =
                        range.clone().filter(|&i| Some(reads[i].pc) != skip && !used[i]).collect();
                    let pairs: Vec<(usize, usize)> = kept.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                    let mut prefix = vec![0u64; pairs.len() + 1];
                    for (i, &(x, y)) in pairs.iter().enumerate() {
                        prefix[i + 1] = prefix[i] + (reads[y].at[0] - reads[x].at[0]);
                    }
                    let mut len = per;
                    while len <= pairs.len() {
                        let k = len / per;
                        let mut runs: Vec<u64> =
                            (1..per).map(|r| prefix[(r + 1) * k] - prefix[r * k]).collect();
                        runs.sort_unstable();
                        let quick = runs.first() == Some(&sample.min) && runs.last() == Some(&sample.max);
                        if quick {
                            let regions: Vec<Vec<u64>> =
                                pairs[..len].iter().map(|&(x, y)| delta(&reads[x], &reads[y])).collect();
                            if let Some(p) = fit(&regions, &sample) {
                                for &(x, y) in &pairs[..len] {
                                    used[x] = true;
                                    used[y] = true;
                                }
                                if let Some(op) = op {
                                    found.insert(op, p);
                                }
                                next = s + j;
                                break 'search;
                            }
                        }
                        len += per;
                    }
                }
            }
        }
    }
    found
}

/// One constant of the cost model, with where it comes from.
pub struct Cost {
    pub name: &'static str,
    pub cycles: f64,
    pub source: &'static str,
}

/// The cost table, for one named modern core: Intel Golden Cove (the
/// Alder Lake / Sapphire Rapids performance core), whose cache sizes the
/// plugin simulates.
pub const COSTS: [Cost; 8] = [
    Cost {
        name: "instruction",
        cycles: 0.25,
        source: "Golden Cove sustains 4 or more simple integer instructions per cycle (6-wide \
                 decode/rename; reciprocal throughput 0.2-0.25 for ALU ops, mov, push/pop and \
                 predicted branches in Agner Fog, Instruction tables, Alder Lake P section); \
                 dependent chains and serialising instructions (lfence, mov cr*) are slower, so \
                 this is a lower bound, and the sensitivity line doubles it",
    },
    Cost {
        name: "rep iteration",
        cycles: 0.25,
        source: "fast-string rep movs/stos move 16-64 bytes per cycle once started (Intel 64 \
                 and IA-32 Optimization Reference Manual, section 3.7.6 'Enhanced REP MOVSB and \
                 STOSB'); an iteration here moves 1-8 bytes",
    },
    Cost {
        name: "syscall, sysret, iretq, int (each)",
        cycles: 50.0,
        source: "a user-kernel round trip through syscall/sysret costs about 100 cycles of \
                 mode switching on recent Intel cores without KPTI (Soares and Stumm, FlexSC, \
                 OSDI 2010, measured about 150 cycles on Nehalem; later cores are faster): half \
                 per direction",
    },
    Cost {
        name: "exception or interrupt delivery",
        cycles: 250.0,
        source: "microcoded IDT delivery (gate and segment checks, stack switch, frame push) is \
                 several times a syscall: about 250 cycles for delivery of #PF/#BP to a minimal \
                 handler on Skylake-class cores (Belay et al., Dune, OSDI 2012, report \
                 hardware exception round trips of a few hundred cycles)",
    },
    Cost {
        name: "CR3 write (no PCID)",
        cycles: 200.0,
        source: "mov to CR3 is serialising and flushes the non-global TLB entries; about \
                 200 cycles before the refills (Intel SDM vol. 3A 4.10.4.1 for the flush; \
                 cost as measured for KPTI's CR3 switch in the 2018 Meltdown-mitigation \
                 analyses, e.g. Gregg, 'KPTI/KAISER Meltdown Initial Performance Regressions')",
    },
    Cost {
        name: "TLB miss (page walk)",
        cycles: 30.0,
        source: "a first-level TLB miss that misses the STLB walks four levels, mostly hitting \
                 the paging-structure caches and L1/L2: about 20-40 cycles (Intel \
                 Optimization Reference Manual, 'TLB' sections; Bhattacharjee, 'Large-reach \
                 memory management unit caches', MICRO 2013); invlpg is charged as one walk",
    },
    Cost {
        name: "L1 miss, L2 hit",
        cycles: 15.0,
        source: "Golden Cove L2 load-to-use latency 15 cycles (Intel Optimization Reference \
                 Manual, Golden Cove microarchitecture, cache latencies)",
    },
    Cost {
        name: "L2 miss",
        cycles: 60.0,
        source: "served from the shared L3 (the benchmarks' working sets are small): about 60 \
                 cycles on Alder Lake's ring (Chips and Cheese, 'Golden Cove's Lopsided \
                 Vector Register File' latency measurements); a DRAM miss would cost ~400",
    },
];

/// Estimated cycles by cause, with every constant multiplied by `scale[i]`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    pub instructions: f64,
    pub switches: f64,
    pub address_space: f64,
    pub misses: f64,
}

impl Estimate {
    pub fn total(&self) -> f64 {
        self.instructions + self.switches + self.address_space + self.misses
    }
}

/// Per-operation estimate of `p` under the cost table scaled by `scale`.
pub fn estimate(p: &RowProfile, scale: &[f64; 8]) -> Estimate {
    let v = |n: &str| p.per_op(n);
    let c = |i: usize| COSTS[i].cycles * scale[i];
    let rep = v("rep_iterations");
    let deliveries = v("deliveries");
    let explicit = v("privilege_switches") - deliveries;
    let cr3 = v("cr3_writes");
    let other_flushes = v("tlb_flushes") - cr3;
    Estimate {
        instructions: (v("instructions") - rep) * c(0) + rep * c(1),
        switches: explicit * c(2) + deliveries * c(3),
        address_space: cr3 * c(4) + (other_flushes + v("itlb_misses") + v("dtlb_misses")) * c(5),
        misses: (v("l1i_misses") + v("l1d_misses")) * c(6) + v("l2_misses") * c(7),
    }
}

pub const UNIT: [f64; 8] = [1.0; 8];

/// The `"profile"` object of a result row in latest.json (per operation).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProfileJson {
    pub instructions: f64,
    pub rep_iterations: f64,
    pub privilege_switches: f64,
    pub cr3_writes: f64,
    pub tlb_flushes: f64,
    pub loads: f64,
    pub stores: f64,
    pub l1i_misses: f64,
    pub l1d_misses: f64,
    pub l2_misses: f64,
    pub est_cycles: f64,
    /// Exception and interrupt deliveries (part of `privilege_switches`).
    pub deliveries: f64,
    pub itlb_misses: f64,
    pub dtlb_misses: f64,
    /// Estimated cycles by cause: instructions, switches, address space, misses.
    pub est_by_cause: [f64; 4],
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn json(p: &RowProfile) -> ProfileJson {
    let e = estimate(p, &UNIT);
    let v = |n: &str| r2(p.per_op(n));
    ProfileJson {
        instructions: v("instructions"),
        rep_iterations: v("rep_iterations"),
        privilege_switches: v("privilege_switches"),
        cr3_writes: v("cr3_writes"),
        tlb_flushes: v("tlb_flushes"),
        loads: v("loads"),
        stores: v("stores"),
        l1i_misses: v("l1i_misses"),
        l1d_misses: v("l1d_misses"),
        l2_misses: v("l2_misses"),
        est_cycles: r2(e.total()),
        deliveries: v("deliveries"),
        itlb_misses: v("itlb_misses"),
        dtlb_misses: v("dtlb_misses"),
        est_by_cause: [r2(e.instructions), r2(e.switches), r2(e.address_space), r2(e.misses)],
    }
}

fn fmt(x: f64) -> String {
    if x >= 100.0 || x == x.round() { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// The second set of tables: events per operation, estimated cycles, and
/// exo/linux, spin/linux ratios in both currencies; then the cost table
/// and the sensitivity line.
pub fn markdown(all: &BTreeMap<&'static str, KernelResults>, measured_cycles: bool) -> String {
    let mut md = String::new();
    let systems: Vec<&str> = ["exo", "spin", "linux"].into_iter().filter(|s| all.contains_key(s)).collect();
    let profile = |s: &str, op: &str| all.get(s).and_then(|r| r.profiles.get(op));
    let _ = writeln!(md, "## Cost profile (TCG plugin, per operation)\n");
    let _ = writeln!(
        md,
        "Counted by `xtask/profile-plugin` between the same fenced `rdtsc` reads the figures above \
         come from (the median run); its instruction count equals the benchmark's. Switches: \
         syscall/sysret/iretq/int and exception or interrupt deliveries (deliveries in brackets). \
         Caches: L1i 32 KiB 8-way, L1d 48 KiB 12-way, L2 1.25 MiB 10-way, 64-byte lines, LRU, \
         physically indexed (Golden Cove sizes), cold at boot; TLBs 128 (i) and 64 (d) entries, \
         flushed by CR3 writes.\n"
    );
    let _ = writeln!(
        md,
        "| operation | system | instructions | rep iter. | switches | CR3 | TLB flushes | loads | stores | L1i miss | L1d miss | L2 miss | TLB miss | est. cycles |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut missing = Vec::new();
    for op in benchmarks::OPS {
        for s in &systems {
            let measured = all.get(s).and_then(|r| r.ops.get(op.name)).is_some_and(|c| c.is_ok());
            let Some(p) = profile(s, op.name) else {
                if measured {
                    missing.push(format!("{} on {s}", op.name));
                }
                continue;
            };
            let v = |n: &str| fmt(p.per_op(n));
            let _ = writeln!(
                md,
                "| {} | {s} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                op.name,
                v("instructions"),
                v("rep_iterations"),
                v("privilege_switches"),
                v("deliveries"),
                v("cr3_writes"),
                v("tlb_flushes"),
                v("loads"),
                v("stores"),
                v("l1i_misses"),
                v("l1d_misses"),
                v("l2_misses"),
                fmt(p.per_op("itlb_misses") + p.per_op("dtlb_misses")),
                fmt(estimate(p, &UNIT).total()),
            );
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(
            md,
            "\nNo profile (timed regions not found with equal instruction counts): {}.",
            missing.join(", ")
        );
    }
    let _ = writeln!(md, "\n### Estimated cycles against Linux\n");
    let _ = writeln!(
        md,
        "| operation | exo est. | spin est. | linux est. | exo/linux est. (instr.) | spin/linux est. (instr.) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for op in benchmarks::OPS {
        let est = |s: &str| profile(s, op.name).map(|p| estimate(p, &UNIT).total());
        let ins = |s: &str| profile(s, op.name).map(|p| p.per_op("instructions"));
        if ["exo", "spin", "linux"].iter().all(|s| est(s).is_none()) {
            continue;
        }
        let cell = |x: Option<f64>| x.map_or("—".into(), fmt);
        let ratio = |s: &str| match (est(s), est("linux"), ins(s), ins("linux")) {
            (Some(a), Some(b), Some(ia), Some(ib)) if b > 0.0 && ib > 0.0 => {
                format!("{:.3} ({:.3})", a / b, ia / ib)
            }
            _ => "—".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            op.name,
            cell(est("exo")),
            cell(est("spin")),
            cell(est("linux")),
            ratio("exo"),
            ratio("spin")
        );
    }
    if measured_cycles {
        // `--accel kvm --profile` (untested: no host here has VT-x/AMD-V).
        let _ = writeln!(md, "\n### Measured cycles (KVM) beside estimated cycles\n");
        let _ =
            writeln!(md, "| operation | system | measured cycles | estimated cycles |\n|---|---|---|---|");
        for op in benchmarks::OPS {
            for s in &systems {
                let (Some(p), Some(Ok(m))) =
                    (profile(s, op.name), all.get(s).and_then(|r| r.ops.get(op.name)))
                else {
                    continue;
                };
                let measured = m.median as f64 / m.iterations.max(1) as f64;
                let _ = writeln!(
                    md,
                    "| {} | {s} | {} | {} |",
                    op.name,
                    fmt(measured),
                    fmt(estimate(p, &UNIT).total())
                );
            }
        }
    }
    let _ = writeln!(md, "\n### The cost model\n");
    let _ = writeln!(md, "| event | cycles | source |\n|---|---|---|");
    for c in &COSTS {
        let _ = writeln!(md, "| {} | {} | {} |", c.name, c.cycles, c.source);
    }
    let _ = writeln!(md, "\n{}", sensitivity(all));
    md
}

/// Which pairwise orderings of the systems (per row, in estimated cycles)
/// change when one constant at a time is halved or doubled.
pub fn sensitivity(all: &BTreeMap<&'static str, KernelResults>) -> String {
    let systems = ["exo", "spin", "linux"];
    let mut changes = Vec::new();
    let mut compared = 0;
    for op in benchmarks::OPS {
        let ps: Vec<(&str, &RowProfile)> =
            systems.iter().filter_map(|s| Some((*s, all.get(s)?.profiles.get(op.name)?))).collect();
        for (i, (a, pa)) in ps.iter().enumerate() {
            for (b, pb) in &ps[i + 1..] {
                compared += 1;
                let base = estimate(pa, &UNIT).total() < estimate(pb, &UNIT).total();
                for (c, cost) in COSTS.iter().enumerate() {
                    for f in [0.5, 2.0] {
                        let mut scale = UNIT;
                        scale[c] = f;
                        if (estimate(pa, &scale).total() < estimate(pb, &scale).total()) != base {
                            changes.push(format!("{} {a} vs {b} with {} ×{f}", op.name, cost.name));
                        }
                    }
                }
            }
        }
    }
    if compared == 0 {
        return "Sensitivity: no row was profiled on two systems.".into();
    }
    // Halving or doubling every constant at once scales every estimate
    // alike, so no ratio (and no verdict) can move; one at a time can.
    if changes.is_empty() {
        format!(
            "Sensitivity: every constant halved or doubled (all together, or one at a time) leaves \
             the order of the systems unchanged on all {compared} profiled comparisons."
        )
    } else {
        format!(
            "Sensitivity: halving or doubling all constants together changes no ratio; one at a time, \
             {} of {compared} comparisons change order: {}.",
            changes.len(),
            changes.join("; ")
        )
    }
}

/// The in-QEMU test (`cargo xtask test --filter profile`): on `kernel`,
/// the rows of two tables in quick mode, profiled twice. Every measured row
/// must have a profile whose instruction count is the benchmark's own
/// (median run total), and the two boots must give identical profiles.
pub fn self_test(
    report: &mut crate::test::Report,
    kernel: crate::Kernel,
    image: &Path,
    accel: crate::qemu::Accel,
    timeout: std::time::Duration,
) {
    let name = format!("{}/profile_counts_equal_the_benchmarks_and_repeat", kernel.name());
    let result = (|| -> Result<()> {
        enable()?;
        let mut boots = Vec::new();
        for table in ["protected-communication", "exceptions", "protected-communication"] {
            let opts = crate::bench::BenchOptions { quick: true, only: Some(table.into()) };
            boots.push(crate::bench::collect_kernel(kernel, image, accel, timeout, &opts, |_| {})?);
        }
        let mut checked = 0;
        for r in &boots[..2] {
            for (op, cell) in &r.ops {
                let Ok(sample) = cell else { continue };
                let p = r.profiles.get(op).with_context(|| format!("{op}: no profile"))?;
                let counted = p.totals[idx("instructions")];
                if counted != sample.median || !p.exact {
                    bail!("{op}: the profile counts {counted} instructions, the benchmark {}", sample.median);
                }
                checked += 1;
            }
        }
        if checked < 4 {
            bail!("only {checked} rows measured");
        }
        if boots[0].profiles != boots[2].profiles {
            bail!("two boots gave different profiles:\n{:?}\n{:?}", boots[0].profiles, boots[2].profiles);
        }
        Ok(())
    })();
    disable();
    match result {
        Ok(()) => report.pass(&name),
        Err(e) => report.fail(&name, format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pc: u64, instructions: u64, outs: u64) -> Read {
        let mut at = vec![0; NAMES.len()];
        at[0] = instructions;
        at[idx("outs")] = outs;
        at[idx("loads")] = instructions / 2;
        Read { pc, at }
    }

    #[test]
    fn pairs_reads_into_runs_and_checks_the_counts() {
        // boot noise, then a measurement of 2 runs (plus warm-up) of 10
        // iterations, 100 instructions each, then a console line.
        let reads = vec![
            read(1, 0, 0),
            read(2, 5, 1),
            read(3, 1000, 2),
            read(4, 1101, 2),
            read(3, 1200, 2),
            read(4, 1300, 2),
            read(3, 1400, 2),
            read(4, 1500, 2),
        ];
        let output = "noise\n@bench|v1|exo|baseline|empty loop|2|10|100|100|100\n";
        let found = attribute("exo", &reads, output);
        let p = found.get("empty loop").expect("attributed");
        assert!(p.exact);
        assert_eq!(p.per_op("instructions"), 10.0);
        assert_eq!(p.per_op("loads"), 5.0);
        // A benchmark figure the regions do not reproduce gets no profile.
        let output = "@bench|v1|exo|baseline|empty loop|2|10|99|100|100\n";
        assert!(attribute("exo", &reads, output).is_empty());
    }

    #[test]
    fn a_clock_read_that_ends_no_region_is_left_out() {
        // Each iteration: start (pc 3), a read in a fault handler (pc 9), end (pc 4).
        let mut reads = Vec::new();
        let mut t = 1000;
        for _ in 0..3 {
            reads.push(read(3, t, 0));
            reads.push(read(9, t + 40, 0));
            reads.push(read(4, t + 100, 0));
            t += 500;
        }
        let output = "@bench|v1|linux|virtual-memory|fault|2|1|100|100|100\n";
        let found = attribute("linux", &reads, output);
        assert_eq!(found.get("fault").map(|p| p.per_op("instructions")), Some(100.0));
    }

    /// Re-attribute the files a profiled bench left in target/bench (by
    /// hand: `cargo test -p xtask -- --ignored reattribute --nocapture`).
    #[test]
    #[ignore]
    fn reattribute() {
        for system in ["exo", "spin", "linux"] {
            let dir = root().join("target/bench");
            let (Ok(r), Ok(o)) = (
                std::fs::read_to_string(dir.join(format!("profile-{system}.reads"))),
                std::fs::read_to_string(dir.join(format!("profile-{system}.serial"))),
            ) else {
                continue;
            };
            let found = attribute(system, &parse_reads(&r).unwrap(), &o);
            println!("{system}: {:?}", found.keys().collect::<Vec<_>>());
            for (op, p) in &found {
                println!("  {system} | {op} | {}", serde_json::to_string(&json(p)).unwrap());
            }
        }
    }

    #[test]
    fn every_cost_is_cited_and_estimates_add_up() {
        assert!(COSTS.iter().all(|c| c.source.len() > 40 && c.cycles > 0.0));
        let mut totals = vec![0; NAMES.len()];
        totals[0] = 100;
        totals[idx("privilege_switches")] = 2;
        let p = RowProfile { iterations: 1, totals, exact: true };
        let e = estimate(&p, &UNIT);
        assert_eq!(e.instructions, 25.0);
        assert_eq!(e.switches, 100.0);
        assert_eq!(e.total(), 125.0);
    }
}
