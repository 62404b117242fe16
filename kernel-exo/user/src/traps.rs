//! A recording exception handler for the test environments: it counts
//! exceptions, keeps the last one's details, and resumes either after the
//! faulting instruction (`arm(skip)`), at a chosen address
//! (`arm_resume_at`), or after letting a fixer repair the cause.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use exo_abi::Error;
use exo_abi::layout::ExceptionArea;
use exos::exception::{self, Resolution};

static COUNT: AtomicU64 = AtomicU64::new(0);
static SKIP: AtomicU64 = AtomicU64::new(0);
/// Where to resume instead (0 = after skipping).
pub static RESUME_AT: AtomicU64 = AtomicU64::new(0);
static FIXER: AtomicUsize = AtomicUsize::new(0);
static LAST: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// What the last exception looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub count: u64,
    pub trapno: u64,
    pub error: u64,
    pub addr: u64,
    pub rip: u64,
}

fn handler(area: &mut ExceptionArea) -> Resolution {
    COUNT.fetch_add(1, SeqCst);
    for (slot, v) in LAST.iter().zip([area.trapno, area.error, area.addr, area.rip]) {
        slot.store(v, SeqCst);
    }
    match FIXER.load(SeqCst) {
        0 => {}
        f => {
            // SAFETY: only `set_fixer` stores non-zero values, and they are fixers.
            let fix = unsafe { core::mem::transmute::<usize, Fixer>(f) };
            if fix(area) {
                return Resolution::Resume; // as the fixer left it (e.g. retry)
            }
        }
    }
    match RESUME_AT.swap(0, SeqCst) {
        0 => area.rip += SKIP.load(SeqCst),
        at => area.rip = at,
    }
    Resolution::Resume
}

/// Install the recording handler.
pub fn install() -> Result<(), Error> {
    exception::install(handler)
}

/// Expect an exception at an instruction `skip` bytes long (0 for traps
/// such as `int3`, which already point past themselves).
pub fn arm(skip: u64) {
    SKIP.store(skip, SeqCst);
}

/// A fixer repairs the cause (or edits the saved state) and returns true
/// to resume as it left the area, or false to fall back to skipping.
pub type Fixer = fn(&mut ExceptionArea) -> bool;

/// Let `fix` try first.
pub fn set_fixer(fix: Option<Fixer>) {
    FIXER.store(fix.map_or(0, |f| f as usize), SeqCst);
}

/// The last exception seen.
pub fn last() -> Seen {
    let l = |i: usize| LAST[i].load(SeqCst);
    Seen { count: COUNT.load(SeqCst), trapno: l(0), error: l(1), addr: l(2), rip: l(3) }
}
