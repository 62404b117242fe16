//! The kernel-thread package (ring 0, safe Rust): threads on strands.
//!
//! It handles `Checkpoint` (nothing to save for kernel threads) and
//! `Resume` (switch to the given strand with the `StrandCore` capability,
//! which the kernel grants only to thread packages), and exports the
//! `Threads` interface (see `spin_interface::threads`): `fork`, `join`,
//! `exit`, `yield`. A finished thread's stack is reclaimed by the next
//! `fork` (it cannot be freed while the thread still runs on it). Thread
//! records sit in a fixed table indexed by strand (no allocation, no
//! growth checks); finished strands wait in a strand queue.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::contain::{self, Charge};
use spin_interface::strand::{self, MAX_STRANDS, Strand, StrandCore, StrandQueue};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::threads::{ForkArgs, INTERFACE, ThreadError, ThreadId};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("threads", init);

static CORE: Once<&'static StrandCore> = Once::new();

/// One thread, indexed by its strand.
#[derive(Clone, Copy)]
struct Thread {
    generation: u32,
    /// Who answers for the thread's body.
    charge: Charge,
    entry: fn(usize),
    arg: usize,
    done: bool,
    joiner: Option<Strand>,
}

static THREADS: SpinLock<[Option<Thread>; MAX_STRANDS]> = SpinLock::new([None; MAX_STRANDS]);
/// Finished strands whose stacks can be freed once someone else runs.
static ZOMBIES: StrandQueue = StrandQueue::new();
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn core() -> &'static StrandCore {
    CORE.get().expect("set in init")
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let core: &'static StrandCore = ctx.lookup("kernel", "Trusted.Strand", "core")?;
    CORE.call_once(|| core);
    // The code running now (the boot thread) becomes the first strand.
    let boot = core.adopt_current();
    if let Some(slot) = THREADS.lock().get_mut(boot.index()) {
        let charge = ctx.charge(); // never used: the boot thread was not forked
        *slot = Some(Thread { generation: 0, charge, entry: noop, arg: 0, done: false, joiner: None });
    }
    strand::CHECKPOINT.install(ctx.identity(), on_checkpoint, None)?;
    strand::RESUME.install(ctx.identity(), on_resume, None)?;
    Ok(ExportTable::new()
        .procedure(INTERFACE, "fork", fork)
        .procedure(INTERFACE, "join", join)
        .procedure(INTERFACE, "exit", exit)
        .procedure(INTERFACE, "yield", yield_now))
}

fn noop(_: usize) {}

/// Nothing to save for a kernel thread: the context switch in `Resume`
/// saves its registers on its own stack.
fn on_checkpoint(_: Strand) {}

/// Switch from the running strand (the scheduler raises `Resume` while
/// still on it, right after `Checkpoint`) to `next`.
fn on_resume(next: Strand) {
    core().switch_to(next);
}

/// Free the stacks of finished threads. A zombie has switched away for
/// good by the time anyone else runs (a uniprocessor), so every one in
/// the queue can go.
fn reap() {
    while let Some(dead) = ZOMBIES.pop() {
        core().destroy(dead);
    }
}

fn thread_main(_: usize) {
    let me = strand::current();
    let (charge, entry, arg) = {
        let t = THREADS.lock();
        let th = t.get(me.index()).copied().flatten().expect("a thread record for every forked strand");
        (th.charge, th.entry, th.arg)
    };
    // Charged to the forker: a body that panics, overflows or hogs the CPU
    // unloads it, and the thread ends here like one that returned.
    let _ = contain::run_thread(charge, || entry(arg));
    exit(());
}

fn fork((charge, entry, arg): ForkArgs) -> Result<ThreadId, ThreadError> {
    if !ZOMBIES.is_empty() {
        reap();
    }
    let s = core().create(thread_main, 0).map_err(|_| ThreadError::NoResources)?;
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed) as u32;
    match THREADS.lock().get_mut(s.index()) {
        Some(slot) => *slot = Some(Thread { generation, charge, entry, arg, done: false, joiner: None }),
        None => {
            core().destroy(s);
            return Err(ThreadError::NoResources);
        }
    }
    core().unblock(s);
    Ok(ThreadId(((generation as u64) << 32) | s.index() as u64))
}

fn join(id: ThreadId) -> Result<(), ThreadError> {
    let index = (id.0 & 0xffff_ffff) as usize;
    let generation = (id.0 >> 32) as u32;
    let me = strand::current();
    if index == me.index() {
        return Err(ThreadError::SelfJoin);
    }
    loop {
        let done = {
            let mut t = THREADS.lock();
            match t.get_mut(index).and_then(|x| x.as_mut()) {
                Some(th) if th.generation == generation && generation != 0 => {
                    if th.done {
                        t[index] = None;
                        true
                    } else {
                        th.joiner = Some(me);
                        false
                    }
                }
                _ => return Err(ThreadError::NoSuchThread),
            }
        };
        if done {
            return Ok(());
        }
        strand::block_current();
    }
}

fn exit(_: ()) {
    let me = strand::current();
    let joiner = {
        let mut t = THREADS.lock();
        match t.get_mut(me.index()).and_then(|x| x.as_mut()) {
            Some(th) => {
                th.done = true;
                th.joiner.take()
            }
            None => None,
        }
    };
    ZOMBIES.push_current();
    if let Some(j) = joiner {
        core().unblock(j);
    }
    // Leave the CPU for good. Nobody should unblock a finished strand, but
    // the strand events can be raised by anyone: if it is resumed, it
    // blocks again.
    loop {
        strand::block_current();
    }
}

fn yield_now(_: ()) {
    let me = strand::current();
    core().unblock(me);
    strand::block_current();
}
