//! Heap quotas for extension domains (ring 0, trusted): every heap block
//! is charged to the domain whose contained code allocated it (the
//! innermost recovery point's culprit on the running strand), and a
//! domain may hold at most [`DOMAIN_HEAP_QUOTA`] bytes. An extension that
//! fills the heap therefore fills only its share: its next allocation
//! fails (a fallible one returns an error, an infallible one panics and
//! the domain is unloaded), and the kernel and the other extensions keep
//! their memory. Code outside any contained call (the kernel, and system
//! calls, which per-process quotas bound) is charged to nobody. Inside the
//! interface's own critical sections an allocation is charged but never
//! refused (a refusal there would panic where the kernel cannot recover).
//!
//! What an unloaded domain still holds stays allocated and charged to it:
//! other domains may hold references into it (handler tables, exported
//! objects), so it cannot be freed behind their backs. It is bounded by the
//! quota.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use shared_hal::heap::Accounting;
use spin_interface::domain::DomainId;

/// Heap bytes one extension domain may hold (of the 8 MiB heap).
pub const DOMAIN_HEAP_QUOTA: usize = 1024 * 1024;

/// Domains that hold heap at one time (a slot is reused once its domain
/// holds nothing).
const SLOTS: usize = 64;

/// Per slot: the domain number (0: free) and the bytes it holds. The tag a
/// block carries is its slot + 1.
static OWNER: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
static USED: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// The slot charged for `d`: its own, or a free one claimed now.
fn slot_of(d: DomainId) -> Option<usize> {
    let n = d.number();
    if let Some(i) = (0..SLOTS).find(|&i| OWNER[i].load(Ordering::Relaxed) == n) {
        return Some(i);
    }
    let i = (0..SLOTS).find(|&i| USED[i].load(Ordering::Relaxed) == 0)?;
    OWNER[i].store(n, Ordering::Relaxed);
    Some(i)
}

struct Quotas;

impl Accounting for Quotas {
    fn charge(&self, bytes: usize) -> Option<u32> {
        let culprit = crate::contain::current_culprit();
        if culprit == DomainId::KERNEL {
            return Some(0);
        }
        let must_succeed = spin_interface::contain::in_critical();
        let Some(i) = slot_of(culprit) else {
            // Every slot in use by a domain holding memory: charge nobody
            // rather than refuse where refusing is not allowed.
            return must_succeed.then_some(0);
        };
        let used = USED[i].load(Ordering::Relaxed);
        if !must_succeed && used.saturating_add(bytes) > DOMAIN_HEAP_QUOTA {
            return None;
        }
        USED[i].store(used + bytes, Ordering::Relaxed);
        Some(i as u32 + 1)
    }

    fn credit(&self, tag: u32, bytes: usize) {
        if let Some(used) = (tag as usize).checked_sub(1).and_then(|i| USED.get(i)) {
            used.store(used.load(Ordering::Relaxed).saturating_sub(bytes), Ordering::Relaxed);
        }
    }
}

/// Heap bytes charged to domain `d` now.
pub fn used_by(d: DomainId) -> usize {
    (0..SLOTS)
        .find(|&i| OWNER[i].load(Ordering::Relaxed) == d.number() && USED[i].load(Ordering::Relaxed) > 0)
        .map_or(0, |i| USED[i].load(Ordering::Relaxed))
}

/// Start charging (at boot, before the first extension loads).
pub fn install() {
    shared_hal::heap::set_accounting(&Quotas);
}
