//! The pager: how ExOS answers the kernel's revocation requests.
//!
//! The exokernel asks ("return N pages within T ticks") and leaves the
//! choice to the library OS. ExOS first frees pages it no longer needs
//! itself (pages retired after a copy-on-write), then asks the active
//! [`Policy`] to choose among the *candidates*: the pages of regions the
//! application declared reclaimable (`vm::Mapping::reclaimable`), which
//! may be dropped because their contents can be recomputed (a later
//! access maps a zeroed page). Pages anything else still needs — code,
//! stacks, heap, ExOS's own memory, pages a forked child shares — are
//! never candidates.
//!
//! If the request is not met by the deadline, the kernel's abort protocol
//! takes pages of its own choosing and lists them in the repossession
//! vector of the info page; [`reconcile`] brings the view up to date
//! from it (the fault path calls it when it finds a recorded page
//! missing), so the environment keeps running.
//!
//! # Writing a policy
//!
//! A policy is a type implementing [`Policy`] in its own file under
//! `pager/policies/`, registered with one line in the `policies!` list in
//! `pager/policies/mod.rs`. Every registered policy is run through the
//! revocation scenarios by the test `exo::exos_pager_every_policy`.

pub mod policies;

use crate::private::{self, rt};
use crate::vm::{region, view};
use crate::{info, sys};
use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use exo_abi::layout::{REPOSSESS_MAX, pte as bits};
use exo_abi::{Cap, Prot};
pub use policies::POLICIES;

/// A page a policy may choose.
#[derive(Debug)]
#[repr(C)]
pub struct Candidate {
    /// Its address.
    pub va: u64,
    /// Mapping order: larger is newer (wraps after 2^32 mappings).
    pub seq: u32,
    /// Scans of [`scan`] since it was last seen accessed.
    pub age: u16,
    /// Written since it was mapped (its contents would be lost).
    pub dirty: bool,
    /// Accessed since the last scan.
    pub accessed: bool,
    taken: Cell<bool>,
    _pad: [u8; 15],
}

const _: () = assert!(4096 % core::mem::size_of::<Candidate>() == 0);

/// Where a policy puts its choices.
pub struct Choice<'a> {
    candidates: &'a [Candidate],
    wanted: usize,
    taken: usize,
}

impl Choice<'_> {
    /// Choose candidate `i`. False if `i` is out of range, already chosen,
    /// or enough pages are chosen already.
    pub fn take(&mut self, i: usize) -> bool {
        if self.taken >= self.wanted {
            return false;
        }
        match self.candidates.get(i) {
            Some(c) if !c.taken.get() => {
                c.taken.set(true);
                self.taken += 1;
                true
            }
            _ => false,
        }
    }

    /// Pages still to choose.
    pub fn remaining(&self) -> usize {
        self.wanted - self.taken
    }

    /// Whether candidate `i` is chosen already.
    pub fn is_taken(&self, i: usize) -> bool {
        self.candidates.get(i).is_some_and(|c| c.taken.get())
    }
}

/// A revocation policy: which pages to give back.
pub trait Policy: Sync {
    /// A short name (used to select it).
    fn name(&self) -> &'static str;
    /// Choose up to `choice.remaining()` of `candidates` with
    /// `choice.take(i)`. Runs in the upcall handler: it must not allocate,
    /// block or take long (the kernel's deadline runs meanwhile).
    fn choose(&self, candidates: &[Candidate], choice: &mut Choice);
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static DISABLED: AtomicUsize = AtomicUsize::new(0);

/// Why a pager request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagerError {
    /// No registered policy has this name.
    NoSuchPolicy,
    /// The upcall entry could not be registered.
    Kernel(exo_abi::Error),
}

/// Answer revocation requests with the registered policy named `name`
/// (and take revocation upcalls from now on).
pub fn use_policy(name: &str) -> Result<(), PagerError> {
    let i = POLICIES.iter().position(|p| p.name() == name).ok_or(PagerError::NoSuchPolicy)?;
    ACTIVE.store(i, Relaxed);
    DISABLED.store(0, Relaxed);
    crate::upcall::ensure().map_err(PagerError::Kernel)
}

/// Ignore revocation requests (the kernel then repossesses pages itself
/// at the deadline; ExOS reconciles its view afterwards).
pub fn disable() {
    DISABLED.store(1, Relaxed);
}

/// The active policy.
pub fn active() -> &'static dyn Policy {
    POLICIES[ACTIVE.load(Relaxed).min(POLICIES.len() - 1)]
}

/// Pages the kernel still wants from us.
fn owed() -> u64 {
    let wanted = crate::info_field!(revoke_wanted);
    wanted.saturating_sub(crate::info_field!(revoke_returned))
}

/// What the last revocation did (for tests and curious programs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Pages the request asked for when the pager ran.
    pub owed: u64,
    /// Retired pages freed.
    pub retired: u64,
    /// Candidates offered to the policy.
    pub candidates: u64,
    /// Pages the policy chose (and ExOS freed).
    pub chosen: u64,
}

static mut LAST: Report = Report { owed: 0, retired: 0, candidates: 0, chosen: 0 };

/// What the last revocation did.
pub fn last_report() -> Report {
    // SAFETY: written only by `on_revoke`, inside a critical section.
    unsafe { *core::ptr::addr_of!(LAST) }
}

/// Answer a revocation request (from the upcall handler, or deferred to
/// the end of a critical section).
pub(crate) fn on_revoke(_wanted: u64) {
    if DISABLED.load(Relaxed) != 0 {
        return;
    }
    private::on_exos_stack(|| {
        reconcile();
        let mut report = Report { owed: owed(), ..Report::default() };
        if report.owed == 0 {
            return;
        }
        report.retired = view::collect_retired();
        let need = owed();
        if need > 0 {
            let n = gather();
            report.candidates = n as u64;
            // SAFETY: `gather` wrote `n` candidates there.
            let cands = unsafe { core::slice::from_raw_parts(private::CANDIDATES_VA as *const Candidate, n) };
            let mut choice = Choice { candidates: cands, wanted: need as usize, taken: 0 };
            active().choose(cands, &mut choice);
            for c in cands.iter().filter(|c| c.taken.get()) {
                if let Ok(i) = view::find(c.va) {
                    let rec = view::pages()[i];
                    view::remove(i);
                    // SAFETY: a reclaimable page: the application agreed it
                    // may disappear (a later access maps a zeroed page).
                    if unsafe { sys::page_free(Cap(rec.cap)) }.is_ok() {
                        report.chosen += 1;
                    }
                }
            }
        }
        // SAFETY: inside a critical section (on_exos_stack).
        unsafe { *core::ptr::addr_of_mut!(LAST) = report };
    })
}

/// Write the candidates into the private candidate array; returns how many.
fn gather() -> usize {
    let mut n = 0;
    let regs = view::regions();
    for g in regs.iter().filter(|g| g.flags & region::RECLAIMABLE != 0) {
        let mut i = match view::find(g.start) {
            Ok(i) | Err(i) => i,
        };
        while i < view::pages().len() && view::pages()[i].va < g.end {
            let r = view::pages()[i];
            i += 1;
            if r.flags & view::page::OWNED == 0 || view::shared(r.ppn) {
                continue; // a grant, or shared with a child: still needed elsewhere
            }
            let Some(e) = view::pte(r.va) else { continue };
            let a = &mut rt().candidates;
            if n as u64 == a.cap
                && private::grow(private::CANDIDATES_VA, a, core::mem::size_of::<Candidate>()).is_err()
            {
                return n;
            }
            let c = Candidate {
                va: r.va,
                seq: r.seq,
                age: r.age,
                dirty: e & bits::DIRTY != 0 || r.flags & view::page::DIRTY != 0,
                accessed: e & bits::ACCESSED != 0,
                taken: Cell::new(false),
                _pad: [0; 15],
            };
            // SAFETY: within the array's capacity, private memory.
            unsafe { (private::CANDIDATES_VA as *mut Candidate).add(n).write(c) };
            n += 1;
        }
    }
    n
}

/// One tick of the pager's clock over the reclaimable pages: age the ones
/// not accessed since the last scan, remember which were written, and
/// clear the hardware bits so the next scan sees fresh ones.
pub fn scan() {
    private::on_exos_stack(|| {
        rt().scans += 1;
        // Room for every candidate now, so that answering a request never
        // has to map a page.
        let mut reclaimable = 0;
        for g in view::regions().iter().filter(|g| g.flags & region::RECLAIMABLE != 0) {
            reclaimable += view::pages().iter().filter(|r| (g.start..g.end).contains(&r.va)).count() as u64;
        }
        let a = &mut rt().candidates;
        while a.cap < reclaimable {
            if private::grow(private::CANDIDATES_VA, a, core::mem::size_of::<Candidate>()).is_err() {
                break;
            }
        }
        let regs = view::regions();
        for g in regs.iter().filter(|g| g.flags & region::RECLAIMABLE != 0) {
            let mut i = match view::find(g.start) {
                Ok(i) | Err(i) => i,
            };
            while i < view::pages().len() && view::pages()[i].va < g.end {
                let r = &mut view::pages()[i];
                i += 1;
                let Some(e) = view::pte(r.va) else { continue };
                if e & bits::ACCESSED != 0 {
                    r.age = 0;
                } else {
                    r.age = r.age.saturating_add(1);
                }
                if e & bits::DIRTY != 0 {
                    r.flags |= view::page::DIRTY;
                }
                if e & (bits::ACCESSED | bits::DIRTY) != 0 {
                    let mut prot = Prot::READ.0 | Prot::CLEAR_AD.0;
                    if e & bits::WRITABLE != 0 {
                        prot |= Prot::WRITE.0;
                    }
                    if e & bits::NO_EXECUTE == 0 {
                        prot |= Prot::EXEC.0;
                    }
                    // SAFETY: the same protection, only the hardware bits cleared.
                    let _ = unsafe { sys::protect(exo_abi::ENV_SELF, r.va, 1, Prot(prot)) };
                }
            }
        }
    })
}

/// Bring the view up to date with the pages the kernel repossessed (the
/// info page's repossession vector); returns how many were new.
pub fn reconcile() -> u64 {
    let info = info::get();
    let n = crate::info_field!(repossessed_count);
    let seen = rt().repossessed_seen;
    if n == seen {
        return 0;
    }
    let _c = private::critical();
    let mut lost_needed = 0;
    if n as usize <= REPOSSESS_MAX {
        for k in seen as usize..n as usize {
            // SAFETY: the info page is the kernel's record, read freshly.
            let ppn = unsafe { core::ptr::read_volatile(&info.repossessed[k]) };
            if let Some(i) = view::pages().iter().position(|r| r.ppn == ppn) {
                lost_needed += forget(i);
            }
        }
    } else {
        // The vector overflowed: check every record against the tables.
        let mut i = 0;
        while i < view::pages().len() {
            let r = view::pages()[i];
            if view::pte(r.va).is_some_and(|e| e & bits::ADDR == r.ppn << 12) {
                i += 1;
            } else {
                lost_needed += forget(i);
            }
        }
    }
    rt().repossessed_seen = n;
    if lost_needed > 0 {
        crate::println!(
            "[exos] environment {:#x}: the kernel repossessed {lost_needed} page(s) outside reclaimable regions",
            info.id
        );
    }
    n - seen
}

/// Forget record `i` (its page is gone); 1 if its region needed it.
fn forget(i: usize) -> u64 {
    let r = view::pages()[i];
    view::remove(i);
    let needed = view::region_of(r.va)
        .is_none_or(|g| view::regions()[g].flags & (region::RECLAIMABLE | region::ZERO_FILL) == 0);
    needed as u64
}
