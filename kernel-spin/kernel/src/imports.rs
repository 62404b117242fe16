//! What the kernel core itself imports from extensions: the thread
//! package's interface (processes and tests need threads) and the bench
//! extension's null procedure. Bound at boot by Resolve, like any importer.

use spin_interface::domain::ImportSlot;
use spin_interface::phys::MemError;
use spin_interface::threads::{ForkArgs, ThreadError, ThreadId};
use spin_interface::translation::Context;
use spin_interface::{Domain, Identity, Import, KernelKey};

pub static FORK: Import<ForkArgs, Result<ThreadId, ThreadError>> = Import::new("Threads", "fork");
pub static JOIN: Import<ThreadId, Result<(), ThreadError>> = Import::new("Threads", "join");
pub static EXIT: Import<(), ()> = Import::new("Threads", "exit");
pub static YIELD: Import<(), ()> = Import::new("Threads", "yield");
/// The far side of the "protected in-kernel call" benchmark.
pub static BENCH_NULL: Import<(), ()> = Import::new("Bench", "null");
/// What the last user benchmark program reported (runs, iterations, min, median, max).
pub static BENCH_TAKE: Import<(), Option<[u64; 5]>> = Import::new("Bench", "take_report");

/// The *dirty* query from an extension: is page `va` of an address space written?
pub static BENCH_DIRTY: Import<(Context, u64), Result<bool, MemError>> = Import::new("Bench", "dirty");

/// Bind the imports (the boot extensions are loaded).
pub fn resolve(key: &KernelKey) {
    let me = Identity::kernel(key);
    let threads: &[&'static dyn ImportSlot] = &[&FORK, &JOIN, &EXIT, &YIELD];
    for (domain, slots) in [("threads", threads), ("bench", &[&BENCH_NULL, &BENCH_TAKE, &BENCH_DIRTY])] {
        let bound = Domain::named(domain).and_then(|d| d.resolve(me, slots));
        assert_eq!(bound, Ok(slots.len()), "resolving the kernel's imports from {domain}");
    }
}

/// Fork a kernel thread running `entry(arg)`.
pub fn fork(entry: fn(usize), arg: usize) -> Result<ThreadId, ThreadError> {
    // The kernel's own threads: charged to the kernel, never aborted.
    let me = spin_interface::contain::Charge::kernel(crate::key());
    FORK.call((me, entry, arg)).unwrap_or(Err(ThreadError::NoResources))
}

/// Wait for a thread to finish.
pub fn join(t: ThreadId) -> Result<(), ThreadError> {
    JOIN.call(t).unwrap_or(Err(ThreadError::NoSuchThread))
}
