//! The environment descriptors the assembly fast paths read: one 128-byte,
//! cache-line-aligned record per environment slot, and a pointer to the
//! running environment's record.
//!
//! The exception stubs and the PCT path in [`super::syscall`] reach
//! everything they need through [`CURRENT`] and these records, without a
//! lock and without calling Rust. The rest of the kernel keeps them in
//! step with its own environment table (`crate::env`); the PCT path also
//! writes `waiting`, `donated` and [`CURRENT`] itself, so for those three
//! the records here are the only copy.
//!
//! Concurrency: one CPU, and every reader and writer runs with interrupts
//! disabled, so plain (relaxed atomic) loads and stores are enough; the
//! atomics make the sharing with assembly explicit and keep Rust safe.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exo_abi::MAX_ENVS;

/// One environment as the fast paths see it.
#[repr(C, align(64))]
pub struct FastEnv {
    /// The environment's id; 0 when the slot holds no live environment.
    pub id: AtomicU64,
    /// Physical address of its PML4 (the CR3 value).
    pub cr3: AtomicU64,
    /// PCT entry point (0 = none registered).
    pub pct_entry: AtomicU64,
    /// Kernel virtual address of its user area (exception + upcall areas).
    pub uarea: AtomicU64,
    /// Exception handler entry point (0 = none registered).
    pub xhandler: AtomicU64,
    /// Exception handler stack top.
    pub xstack: AtomicU64,
    /// 1 when the environment is waiting: it has no saved context and can
    /// only be entered through its PCT entry or an upcall.
    pub waiting: AtomicU64,
    /// Address of the record of the environment this one's time slices are
    /// donated to (synchronous PCT), or 0.
    pub donated: AtomicU64,
    /// The last-level page table the last protection change used: the
    /// 2 MiB region it covers as a [`crate::bind::LeafCache`] tag (0 =
    /// none) and the table's kernel address. Page tables are freed only
    /// when the environment ends (and [`clear`] empties this then), so
    /// the cache never goes stale. Read by `fast::protect`.
    pub leaf_tag: AtomicU64,
    pub leaf_table: AtomicU64,
    _pad: [u64; 6],
}

const _: () = assert!(core::mem::size_of::<FastEnv>() == 1 << off::SHIFT);
const _: () = assert!(MAX_ENVS.is_power_of_two());

/// Field offsets for the assembly.
pub mod off {
    use super::*;
    pub const ID: usize = offset_of!(FastEnv, id);
    pub const CR3: usize = offset_of!(FastEnv, cr3);
    pub const PCT_ENTRY: usize = offset_of!(FastEnv, pct_entry);
    pub const UAREA: usize = offset_of!(FastEnv, uarea);
    pub const XHANDLER: usize = offset_of!(FastEnv, xhandler);
    pub const XSTACK: usize = offset_of!(FastEnv, xstack);
    pub const WAITING: usize = offset_of!(FastEnv, waiting);
    pub const DONATED: usize = offset_of!(FastEnv, donated);
    pub const LEAF_TAG: usize = offset_of!(FastEnv, leaf_tag);
    pub const LEAF_TABLE: usize = offset_of!(FastEnv, leaf_table);
    /// log2 of the record size, for indexing.
    pub const SHIFT: usize = 7;
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below, copied, never shared
const EMPTY: FastEnv = FastEnv {
    id: AtomicU64::new(0),
    cr3: AtomicU64::new(0),
    pct_entry: AtomicU64::new(0),
    uarea: AtomicU64::new(0),
    xhandler: AtomicU64::new(0),
    xstack: AtomicU64::new(0),
    waiting: AtomicU64::new(0),
    donated: AtomicU64::new(0),
    leaf_tag: AtomicU64::new(0),
    leaf_table: AtomicU64::new(0),
    _pad: [0; 6],
};

/// One record per environment slot, indexed by the slot bits of the id.
pub static FAST_ENVS: [FastEnv; MAX_ENVS] = [EMPTY; MAX_ENVS];

/// Address of the running environment's record; 0 while the kernel runs
/// no environment (the monitor, or idle).
pub static CURRENT: AtomicU64 = AtomicU64::new(0);

/// The record of slot `slot`.
pub fn slot(slot: usize) -> &'static FastEnv {
    &FAST_ENVS[slot]
}

fn address(slot: usize) -> u64 {
    &FAST_ENVS[slot] as *const FastEnv as u64
}

/// Slot index of a record address (as stored in `CURRENT` and `donated`).
fn index_of(addr: u64) -> Option<usize> {
    let base = address(0);
    if addr < base {
        return None;
    }
    let i = ((addr - base) >> off::SHIFT) as usize;
    (i < MAX_ENVS && address(i) == addr).then_some(i)
}

/// The running environment's slot.
#[inline]
pub fn current() -> Option<usize> {
    // Only the kernel writes CURRENT, always a record address or 0.
    match CURRENT.load(Relaxed) {
        0 => None,
        addr => Some(((addr - address(0)) >> off::SHIFT) as usize),
    }
}

/// Make `slot` the running environment (or none).
pub fn set_current(slot: Option<usize>) {
    CURRENT.store(slot.map_or(0, address), Relaxed);
}

/// The slot `slot`'s time slices are donated to.
pub fn donated(slot: usize) -> Option<usize> {
    index_of(FAST_ENVS[slot].donated.load(Relaxed))
}

pub fn set_waiting(slot: usize, waiting: bool) {
    FAST_ENVS[slot].waiting.store(waiting as u64, Relaxed);
}

/// Clear a record when its environment ends, and every donation to it.
pub fn clear(slot: usize) {
    let e = &FAST_ENVS[slot];
    let fields = [
        &e.id,
        &e.cr3,
        &e.pct_entry,
        &e.uarea,
        &e.xhandler,
        &e.xstack,
        &e.waiting,
        &e.donated,
        &e.leaf_tag,
        &e.leaf_table,
    ];
    for f in fields {
        f.store(0, Relaxed);
    }
    let me = address(slot);
    for other in FAST_ENVS.iter() {
        let _ = other.donated.compare_exchange(me, 0, Relaxed, Relaxed);
    }
}
