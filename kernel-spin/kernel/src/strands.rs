//! Strand contexts (ring 0, trusted): kernel stacks, the context switch,
//! and which address space and kernel entry stack go with each strand.
//! Thread packages reach this through `spin_interface::strand::StrandCore`.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use shared_hal::{context, gdt, paging};
use spin_interface::KernelKey;
use spin_interface::phys::MemError;
use spin_interface::strand;

/// Most strands alive at once (the interface's strand queues have a
/// link per strand).
pub const MAX_STRANDS: usize = spin_interface::strand::MAX_STRANDS;
/// Kernel stack per strand.
const STACK_SIZE: u64 = 16 * 1024;
/// Unmapped space below each stack: an overflow faults on it (a double
/// fault, since the page fault cannot be delivered on the full stack),
/// and `contain::on_double_fault` treats that like a panic of the code
/// that was running. Larger than a page, so a function frame that skips
/// ahead still lands in it (Rust probes frames above 4 KiB page by page).
const GUARD_SIZE: u64 = 16 * 1024;
/// Stacks live in the HAL's kernel scratch region from this offset, one
/// `GUARD_SIZE + STACK_SIZE` stride per slot (the HAL's self-tests use the
/// first few MiB).
const STACKS_OFFSET: u64 = 1 << 30;
const STRIDE: u64 = GUARD_SIZE + STACK_SIZE;

/// The guard area below slot `s`'s stack: `[start, end)`.
fn guard_of(s: usize) -> (u64, u64) {
    let start = paging::kernel_scratch_base() + STACKS_OFFSET + s as u64 * STRIDE;
    (start, start + GUARD_SIZE)
}

/// Whether `va` lies in the guard area of any strand's stack.
pub fn in_stack_guard(va: u64) -> bool {
    let base = paging::kernel_scratch_base() + STACKS_OFFSET;
    va.checked_sub(base).is_some_and(|off| off < MAX_STRANDS as u64 * STRIDE && off % STRIDE < GUARD_SIZE)
}

/// Map a stack for slot `s` above its guard; returns its top.
fn map_stack(s: usize) -> Result<u64, MemError> {
    let (_, bottom) = guard_of(s);
    let root = paging::kernel_root();
    let pages = STACK_SIZE / 4096;
    for p in 0..pages {
        let mapped = shared_hal::memory::alloc_zeroed_frame().and_then(|pa| {
            paging::map(root, bottom + p * 4096, pa, paging::pte::WRITABLE | paging::pte::NO_EXECUTE)
                .map_err(|_| {
                    let _ = shared_hal::memory::free_frame(pa);
                })
                .ok()
        });
        if mapped.is_none() {
            // Give back the pages mapped so far; the slot stays without a stack.
            for q in 0..p {
                if let Ok(pa) = paging::unmap(root, bottom + q * 4096) {
                    let _ = shared_hal::memory::free_frame(pa & paging::pte::ADDR);
                }
            }
            return Err(MemError::OutOfMemory);
        }
    }
    Ok(bottom + STACK_SIZE)
}

/// Per-strand state the switch needs; each field is written only by the
/// owner of the slot (create/destroy) or by `strand_switch` (`rsp`). 64 bytes,
/// so indexing is a shift.
#[repr(C, align(64))]
struct Slot {
    used: AtomicBool,
    /// Saved RSP while the strand is not running.
    rsp: AtomicU64,
    /// Top of the kernel stack (TSS.RSP0 and SYSCALL stack); 0 for the boot strand.
    top: AtomicU64,
    /// Page-table root to run with.
    root: AtomicU64,
    /// What runs in that address space, for the process module (1 + the
    /// process number; 0: the kernel's own), published in [`TAG`] while
    /// the strand runs.
    tag: AtomicU64,
    entry: AtomicUsize,
    arg: AtomicUsize,
    /// Top of the stack this slot owns (0: none yet). A slot keeps its
    /// stack when its strand is destroyed, so creating a strand allocates
    /// only the first time a slot is used (at most `MAX_STRANDS` stacks).
    stack: AtomicU64,
}

static SLOTS: [Slot; MAX_STRANDS] = [const {
    Slot {
        used: AtomicBool::new(false),
        rsp: AtomicU64::new(0),
        top: AtomicU64::new(0),
        root: AtomicU64::new(0),
        tag: AtomicU64::new(0),
        entry: AtomicUsize::new(0),
        arg: AtomicUsize::new(0),
        stack: AtomicU64::new(0),
    }
}; MAX_STRANDS];

const _: () = assert!(size_of::<Slot>() == 64);

/// The root currently in CR3 (saves reading CR3 on every switch).
static LOADED_ROOT: AtomicU64 = AtomicU64::new(0);
/// The running strand's tag (see `Slot::tag`): one load tells the fast
/// paths which process is running, without indexing per-strand tables
/// (the exception stubs read its low byte, see `uexc`).
pub(crate) static TAG: AtomicU64 = AtomicU64::new(0);

/// The page-table root loaded now.
#[inline(always)]
pub fn loaded_root() -> u64 {
    LOADED_ROOT.load(Ordering::Relaxed)
}

/// Load the kernel's own root now if `root` is loaded (an address space
/// is about to be destroyed). No strand may still name `root`: the process
/// module destroys a process's space only when no strand is tagged with it
/// ([`any_tagged`]; its own threads have ended and every visiting strand
/// has left or ended), so only a running kernel strand can have it loaded.
pub fn unload_root(root: u64) {
    if LOADED_ROOT.load(Ordering::Relaxed) == root {
        let k = paging::kernel_root();
        LOADED_ROOT.store(k, Ordering::Relaxed);
        // SAFETY: the kernel root maps the whole kernel half, like every root.
        unsafe { shared_hal::cpu::set_cr3(k) };
    }
}

/// Whether a live strand is tagged `tag` (runs, or will run when resumed,
/// in that process's address space). A scan of the strand table: for
/// reaping, not for fast paths.
pub fn any_tagged(tag: u64) -> bool {
    SLOTS.iter().any(|s| s.used.load(Ordering::Acquire) && s.tag.load(Ordering::Relaxed) == tag)
}

/// The running strand's tag (1 + its process number, or 0).
#[inline(always)]
pub fn current_tag() -> u64 {
    TAG.load(Ordering::Relaxed)
}

fn claim_slot() -> Option<usize> {
    SLOTS
        .iter()
        .position(|s| s.used.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok())
}

/// First code a new strand runs: call its entry function.
extern "C" fn strand_start(slot: usize) -> ! {
    let s = &SLOTS[slot];
    let entry = s.entry.load(Ordering::Acquire);
    // SAFETY: `create` stored a `fn(usize)` here before the strand could run.
    let entry: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(entry) };
    entry(s.arg.load(Ordering::Acquire));
    panic!("strand {slot} returned from its entry function (a thread package must end it)");
}

/// Run strand `s` with address space `root`, tagged `tag`, from now on
/// (and load both now if `s` is the running strand, which `running` says).
pub fn set_space(s: usize, root: u64, tag: u64, running: bool) {
    SLOTS[s].root.store(root, Ordering::Relaxed);
    SLOTS[s].tag.store(tag, Ordering::Relaxed);
    if running {
        if TAG.swap(tag, Ordering::Relaxed) == 0 && tag != 0 {
            // It may enter ring 3 from now on: see `strand_switch`.
            gdt::set_kernel_stack(SLOTS[s].top.load(Ordering::Relaxed));
        }
        if LOADED_ROOT.load(Ordering::Relaxed) != root {
            LOADED_ROOT.store(root, Ordering::Relaxed);
            // SAFETY: every root made by `paging::new_user_root` shares the kernel half.
            unsafe { shared_hal::cpu::set_cr3(root) };
        }
    }
}

/// [`set_space`] for the running strand when it already runs a process
/// (in a system call: its tag is non-zero, so its kernel stack is already
/// the entry stack) and moves to another (`tag` non-zero): the
/// cross-address-space call's step, without the checks `set_space` needs.
#[inline(always)]
pub fn move_running(root: u64, tag: u64) {
    debug_assert!(TAG.load(Ordering::Relaxed) != 0 && tag != 0);
    // The running strand's number is below MAX_STRANDS (a power of two):
    // the mask only spares a bounds check.
    const _: () = assert!(MAX_STRANDS.is_power_of_two());
    let s = &SLOTS[strand::current().index() & (MAX_STRANDS - 1)];
    s.root.store(root, Ordering::Relaxed);
    s.tag.store(tag, Ordering::Relaxed);
    TAG.store(tag, Ordering::Relaxed);
    if LOADED_ROOT.load(Ordering::Relaxed) != root {
        LOADED_ROOT.store(root, Ordering::Relaxed);
        // SAFETY: every root made by `paging::new_user_root` shares the kernel half.
        unsafe { shared_hal::cpu::set_cr3(root) };
    }
}

/// Lowest address of the stack slot `s` owns (0: none yet).
pub fn stack_bottom(s: usize) -> u64 {
    match SLOTS[s].stack.load(Ordering::Relaxed) {
        0 => 0,
        top => top - STACK_SIZE,
    }
}

/// Top of strand `s`'s kernel stack.
pub fn stack_top(s: usize) -> u64 {
    SLOTS[s].top.load(Ordering::Relaxed)
}

fn strand_create(entry: fn(usize), arg: usize) -> Result<u32, MemError> {
    let slot = claim_slot().ok_or(MemError::OutOfMemory)?;
    let s = &SLOTS[slot];
    let stack = match s.stack.load(Ordering::Relaxed) {
        0 => {
            // The slot's first strand: its stack lives as long as the kernel.
            let top = match map_stack(slot) {
                Ok(top) => top,
                Err(e) => {
                    s.used.store(false, Ordering::Release);
                    return Err(e);
                }
            };
            s.stack.store(top, Ordering::Relaxed);
            top
        }
        top => top,
    };
    s.entry.store(entry as usize, Ordering::Release);
    s.arg.store(arg, Ordering::Release);
    s.top.store(stack, Ordering::Relaxed);
    s.root.store(paging::kernel_root(), Ordering::Relaxed);
    s.tag.store(0, Ordering::Relaxed);
    // SAFETY: `stack` is the 16-byte aligned top of a 16 KiB stack owned
    // by this slot until `destroy`.
    let rsp = unsafe { context::prepare_stack(stack, strand_start, slot) };
    s.rsp.store(rsp, Ordering::Release);
    Ok(slot as u32)
}

fn strand_adopt_current() -> u32 {
    let slot = claim_slot().expect("a free strand slot at boot");
    let root = shared_hal::cpu::cr3() & paging::pte::ADDR;
    SLOTS[slot].root.store(root, Ordering::Relaxed);
    LOADED_ROOT.store(root, Ordering::Relaxed);
    slot as u32
}

#[inline]
fn strand_switch(from: u32, to: u32) {
    let (Some(prev), Some(next)) = (SLOTS.get(from as usize), SLOTS.get(to as usize)) else {
        return;
    };
    // A plain load and store: one CPU, and interrupts never switch strands.
    SWITCHES.store(SWITCHES.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    let tag = next.tag.load(Ordering::Relaxed);
    TAG.store(tag, Ordering::Relaxed);
    if tag != 0 {
        // Traps and system calls from ring 3 land on the strand's own
        // stack. Only strands of processes enter ring 3 (and a strand
        // that gets a process sets it in `set_space`), so kernel
        // threads skip this.
        gdt::set_kernel_stack(next.top.load(Ordering::Relaxed));
    }
    let root = next.root.load(Ordering::Relaxed);
    if LOADED_ROOT.load(Ordering::Relaxed) != root {
        LOADED_ROOT.store(root, Ordering::Relaxed);
        // SAFETY: every root shares the kernel half with the boot root.
        unsafe { shared_hal::cpu::set_cr3(root) };
    }
    // SAFETY: `from` is the running strand (its slot receives the RSP);
    // `to` holds an RSP saved by `context::switch` or made by `prepare_stack`, on
    // a stack its slot owns.
    unsafe { context::switch(prev.rsp.as_ptr(), next.rsp.load(Ordering::Acquire)) };
    // Back on `from`: if the domain whose contained call it was in has
    // been unloaded meanwhile, that call ends here (none of its code runs
    // again). One load and a test (of "was any domain ever unloaded").
    crate::contain::after_resume();
}

/// Strand switches so far (containment tells a thread that keeps the CPU
/// from one that gives it up now and then).
static SWITCHES: AtomicU64 = AtomicU64::new(0);

/// Strand switches so far.
pub fn switches() -> u64 {
    SWITCHES.load(Ordering::Relaxed)
}

fn strand_destroy(s: u32) {
    // The stack stays with the slot for its next strand.
    if let Some(slot) = SLOTS.get(s as usize) {
        slot.top.store(0, Ordering::Relaxed);
        slot.used.store(false, Ordering::Release);
    }
}

/// The kernel's strand procedures, bound into the interface at boot.
static CORE: strand::Core = strand::Core {
    create: strand_create,
    adopt_current: strand_adopt_current,
    switch: strand_switch,
    destroy: strand_destroy,
};

/// Install the strand implementation.
pub fn install(key: &KernelKey) {
    strand::install(key, &CORE);
}

/// Live strands (for leak checks in tests).
pub fn live() -> usize {
    SLOTS.iter().filter(|s| s.used.load(Ordering::Relaxed)).count()
}
