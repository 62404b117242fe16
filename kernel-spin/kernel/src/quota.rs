//! Resource quotas for extension domains (ring 0, trusted): every heap
//! block and every frame an extension takes through the PhysAddr interface
//! is charged to the domain whose contained code took it (the innermost
//! recovery point's culprit on the running strand), and a domain may hold
//! at most [`DOMAIN_HEAP_QUOTA`] bytes of heap and [`DOMAIN_FRAME_QUOTA`]
//! frames. An extension that fills the heap or takes every frame therefore
//! takes only its share: its next allocation fails (a fallible one returns
//! an error, an infallible one panics and the domain is unloaded), and the
//! kernel and the other extensions keep theirs. Code outside any contained
//! call (the kernel, and system calls, which per-process quotas bound) is
//! charged to nobody. Inside the interface's own critical sections a heap
//! block is charged but never refused (a refusal there would panic where
//! the kernel cannot recover); the interface bounds what a domain can make
//! it allocate there (handlers per event and per domain).
//!
//! What an unloaded domain still holds stays allocated and charged to it:
//! other domains may hold references into it (handler tables, exported
//! objects), so it cannot be freed behind their backs. It is bounded by the
//! quotas.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use shared_hal::heap::Accounting;
use spin_interface::domain::DomainId;

/// Heap bytes one extension domain may hold (of the 8 MiB heap).
pub const DOMAIN_HEAP_QUOTA: usize = 1024 * 1024;
/// Frames one extension domain may hold through `phys::allocate` (16 MiB).
pub const DOMAIN_FRAME_QUOTA: usize = 4096;

/// Domains that hold something at one time (a slot is reused once its
/// domain holds nothing).
const SLOTS: usize = 64;

/// What each domain holds of one resource. Per slot: the domain number (0:
/// free) and the amount it holds; the tag kept with a charge is slot + 1.
struct Ledger {
    owner: [AtomicU32; SLOTS],
    used: [AtomicUsize; SLOTS],
}

impl Ledger {
    const fn new() -> Self {
        Self { owner: [const { AtomicU32::new(0) }; SLOTS], used: [const { AtomicUsize::new(0) }; SLOTS] }
    }

    /// The slot charged for `d`: its own, or a free one claimed now.
    fn slot_of(&self, d: DomainId) -> Option<usize> {
        let n = d.number();
        if let Some(i) = (0..SLOTS).find(|&i| self.owner[i].load(Ordering::Relaxed) == n) {
            return Some(i);
        }
        let i = (0..SLOTS).find(|&i| self.used[i].load(Ordering::Relaxed) == 0)?;
        self.owner[i].store(n, Ordering::Relaxed);
        Some(i)
    }

    /// Charge `amount` to whoever runs now: the tag (0: nobody), or `None`
    /// to refuse. `must` forbids refusing (the amount is charged anyway).
    fn charge(&self, amount: usize, limit: usize, must: bool) -> Option<u32> {
        let culprit = crate::contain::current_culprit();
        if culprit == DomainId::KERNEL {
            return Some(0);
        }
        let Some(i) = self.slot_of(culprit) else {
            // Every slot in use by a domain holding something: charge
            // nobody rather than refuse where refusing is not allowed.
            return must.then_some(0);
        };
        let used = self.used[i].load(Ordering::Relaxed);
        if !must && used.saturating_add(amount) > limit {
            return None;
        }
        self.used[i].store(used + amount, Ordering::Relaxed);
        Some(i as u32 + 1)
    }

    fn credit(&self, tag: u32, amount: usize) {
        if let Some(used) = (tag as usize).checked_sub(1).and_then(|i| self.used.get(i)) {
            used.store(used.load(Ordering::Relaxed).saturating_sub(amount), Ordering::Relaxed);
        }
    }

    fn used_by(&self, d: DomainId) -> usize {
        (0..SLOTS)
            .find(|&i| {
                self.owner[i].load(Ordering::Relaxed) == d.number()
                    && self.used[i].load(Ordering::Relaxed) > 0
            })
            .map_or(0, |i| self.used[i].load(Ordering::Relaxed))
    }
}

static HEAP: Ledger = Ledger::new();
static FRAMES: Ledger = Ledger::new();

/// The tag of each frame handed out through PhysAddr (frames of the first
/// 1 GiB; a frame above it is charged to nobody).
static FRAME_TAGS: [AtomicU8; 1 << 18] = [const { AtomicU8::new(0) }; 1 << 18];

struct HeapQuotas;

impl Accounting for HeapQuotas {
    fn charge(&self, bytes: usize) -> Option<u32> {
        HEAP.charge(bytes, DOMAIN_HEAP_QUOTA, spin_interface::contain::in_critical())
    }

    fn credit(&self, tag: u32, bytes: usize) {
        HEAP.credit(tag, bytes)
    }
}

/// Heap bytes charged to domain `d` now.
pub fn heap_used_by(d: DomainId) -> usize {
    HEAP.used_by(d)
}

/// Frames charged to domain `d` now.
pub fn frames_used_by(d: DomainId) -> usize {
    FRAMES.used_by(d)
}

/// Charge one frame, about to be handed out at `pa`, to whoever runs now;
/// false to refuse it.
pub fn charge_frame(pa: u64) -> bool {
    let Some(tag) = FRAMES.charge(1, DOMAIN_FRAME_QUOTA, false) else { return false };
    match FRAME_TAGS.get((pa >> 12) as usize) {
        // A tag still there: the frame left PhysAddr (into a page table)
        // and came back to the allocator another way; its old holder no
        // longer has it.
        Some(slot) => FRAMES.credit(u32::from(slot.swap(tag as u8, Ordering::Relaxed)), 1),
        None => FRAMES.credit(tag, 1),
    }
    true
}

/// The frame at `pa` came back (or left PhysAddr's hands for good).
pub fn credit_frame(pa: u64) {
    if let Some(slot) = FRAME_TAGS.get((pa >> 12) as usize) {
        FRAMES.credit(u32::from(slot.swap(0, Ordering::Relaxed)), 1);
    }
}

/// Start charging (at boot, before the first extension loads).
pub fn install() {
    shared_hal::heap::set_accounting(&HeapQuotas);
}
