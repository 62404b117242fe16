//! The timing loop, shared by every benchmark on every kernel, in ring 0 or
//! ring 3 (it needs only `rdtsc`, which both kernels leave enabled for user
//! code).
//!
//! One *run* times `iterations` calls of the operation between two fenced
//! TSC reads. A warm-up run comes first and is discarded; then `runs` runs
//! are timed and summarised by min, median and max of the run totals. The
//! host divides by `iterations` for the per-operation figure, which
//! therefore includes the loop's own increment-compare-branch (the "empty
//! loop" row shows how much that is).

use crate::stats;

/// Most runs a sample can hold.
pub const MAX_RUNS: usize = 16;

/// The outcome of measuring one operation: run totals in TSC ticks
/// (instructions under TCG `-icount shift=0`, cycles under KVM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub runs: u32,
    pub iterations: u32,
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

/// Read the TSC between `lfence`s: earlier instructions finish before the
/// read, later ones do not start before it.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc and lfence only read the counter; both kernels leave
    // CR4.TSD clear, so this is allowed in ring 3 as well.
    unsafe {
        core::arch::asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi,
                         options(nomem, nostack, preserves_flags))
    };
    ((hi as u64) << 32) | lo as u64
}

/// Time `f` for `iterations` iterations, `runs` times after one warm-up run.
#[inline(always)]
pub fn measure(iterations: u32, runs: u32, mut f: impl FnMut()) -> Sample {
    measure_runs(iterations, runs, || {
        let start = rdtsc();
        for _ in 0..iterations {
            f();
            // An empty asm statement is opaque to the optimiser (it may have
            // side effects), so the loop survives even when `f` does
            // nothing, and it costs no instructions.
            // SAFETY: emits no instructions.
            unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
        }
        rdtsc() - start
    })
}

/// Summarise `runs` runs (after one warm-up) of `one_run`, which performs
/// `iterations` iterations and returns the ticks they took. For operations
/// whose timed region is not a simple call, e.g. "trap", where the clock
/// stops inside the fault handler.
pub fn measure_runs(iterations: u32, runs: u32, mut one_run: impl FnMut() -> u64) -> Sample {
    let runs = (runs as usize).clamp(1, MAX_RUNS);
    let _ = one_run();
    let mut totals = [0u64; MAX_RUNS];
    for t in totals.iter_mut().take(runs) {
        *t = one_run();
    }
    let (min, median, max) = stats::summarize(&mut totals[..runs]);
    Sample { runs: runs as u32, iterations, min, median, max }
}
