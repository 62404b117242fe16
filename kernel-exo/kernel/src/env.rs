//! Environments: creation, starting, the info page, and teardown.
//!
//! An environment is a ring-3 context with its own PML4 (kernel half
//! shared, PML4 slot 255 the read-only self-map), two kernel-owned pages
//! mapped at fixed addresses (the user area and the info page), the
//! capabilities it holds, a page quota, and slots in the slice vector.
//! Its run state is one of: not started; *running* (it is
//! `fast::envtab::current()`); *ready* (the kernel holds its saved context
//! in `ctx`); *waiting* (no context: only a PCT or an upcall enters it);
//! ended (a record kept until the parent reaps it).

use crate::fast::envtab;
use crate::kernel::Kernel;
use alloc::vec::Vec;
use exo_abi::layout::{EnvInfo, INFO_VA, REPOSSESS_MAX, UAREA_VA, UPCALL_OFFSET, UpcallArea};
use exo_abi::{EnvStatus, Error};
use exo_logic::revoke::Request;
use shared_hal::memory::{self, phys_to_virt};
use shared_hal::paging::{self, pte};
use shared_hal::trap::TrapFrame;

/// Where an environment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    NotStarted,
    Started,
    /// Ended; the status and detail `env_status` reports.
    Ended(EnvStatus, u64),
}

pub struct Env {
    pub id: u64,
    /// The parent's id; 0 for environments the kernel created.
    pub parent: u64,
    /// Physical address of the PML4.
    pub root: u64,
    /// Physical addresses of the user-area page and the info page.
    pub uarea: u64,
    pub info: u64,
    pub life: Life,
    /// The saved context of a ready environment.
    pub ctx: Option<TrapFrame>,
    /// Capabilities held, in the order they were acquired.
    pub caps: Vec<u64>,
    /// Page quota, and what counts against it: pages owned plus the
    /// page-table pages of its bindings.
    pub quota: u64,
    pub used: u64,
    /// Upcall entry point and stack (0 = none).
    pub upcall_entry: u64,
    pub upcall_stack: u64,
    /// Outstanding revocation request.
    pub revoke: Option<Request>,
    /// The revocation upcall has not been delivered yet.
    pub revoke_upcall_pending: bool,
    /// Slices still to be skipped as a penalty.
    pub skip: u64,
    pub penalties: u64,
    pub slice_upcalls: u64,
    /// Pages repossessed in total.
    pub repossessed: u64,
    /// The downloaded wakeup predicate, and whether the environment sleeps
    /// on it (its saved context then resumes only when it holds).
    pub pred: Option<crate::wakeup::Predicate>,
    pub sleeping: bool,
}

impl Env {
    /// The user area's upcall part, through the kernel's physical window.
    pub fn upcall_area(&self) -> *mut UpcallArea {
        (phys_to_virt(self.uarea) + UPCALL_OFFSET) as *mut UpcallArea
    }

    fn info_ptr(&self) -> *mut EnvInfo {
        phys_to_virt(self.info) as *mut EnvInfo
    }

    pub fn is_live(&self) -> bool {
        self.life == Life::Started || self.life == Life::NotStarted
    }
}

/// Why an environment is being ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub status: EnvStatus,
    pub detail: u64,
}

/// Create an environment owned by `parent` (0 = the kernel) with `slices`
/// time slices and a page quota of `quota`. For a child, both come out of
/// the parent's own; the kernel's environments get free slices.
pub fn create(k: &mut Kernel, parent: u64, slices: u64, quota: u64) -> Result<usize, Error> {
    if slices > exo_abi::SLICE_SLOTS as u64 || quota > u32::MAX as u64 {
        return Err(Error::BadArgument);
    }
    let slices = slices as usize;
    // Check everything that can fail before taking anything.
    let parent_slot = if parent == 0 {
        if k.slices.free() < slices {
            return Err(Error::Limit);
        }
        None
    } else {
        let p = k.env_index(parent)?;
        let pe = k.env(p);
        if k.slices.count(p) < slices {
            return Err(Error::Limit);
        }
        if pe.quota - pe.used < quota {
            return Err(Error::QuotaExceeded);
        }
        Some(p)
    };
    if k.envs.len() >= exo_abi::MAX_ENVS {
        return Err(Error::Limit);
    }
    let frames = Frames::allocate().ok_or(Error::OutOfMemory)?;
    let env = Env {
        id: 0,
        parent,
        root: frames.root,
        uarea: frames.uarea,
        info: frames.info,
        life: Life::NotStarted,
        ctx: None,
        caps: Vec::new(),
        quota,
        used: 0,
        upcall_entry: 0,
        upcall_stack: 0,
        revoke: None,
        revoke_upcall_pending: false,
        skip: 0,
        penalties: 0,
        slice_upcalls: 0,
        repossessed: 0,
        pred: None,
        sleeping: false,
    };
    let Ok(id) = k.envs.insert(env) else {
        frames.release();
        return Err(Error::Limit);
    };
    let i = crate::kernel::EnvTable::index_of(id);
    k.env_mut(i).id = id;
    match parent_slot {
        Some(p) => {
            k.slices.transfer(p, i, slices).expect("counted above");
            k.env_mut(p).quota -= quota;
            publish(k, p);
        }
        None => k.slices.assign(i, slices).expect("counted above"),
    }
    let fe = envtab::slot(i);
    use core::sync::atomic::Ordering::Relaxed;
    fe.cr3.store(frames.root, Relaxed);
    fe.uarea.store(phys_to_virt(frames.uarea), Relaxed);
    fe.id.store(id, Relaxed);
    publish(k, i);
    Ok(i)
}

/// The kernel-owned frames of a new address space.
struct Frames {
    root: u64,
    uarea: u64,
    info: u64,
}

impl Frames {
    fn allocate() -> Option<Frames> {
        let root = paging::new_user_root()?;
        crate::pt::install_selfmap(root);
        // Take both before judging either: whichever one was had must go
        // back if the other was not.
        let (uarea, info) = (memory::alloc_zeroed_frame(), memory::alloc_zeroed_frame());
        let (Some(uarea), Some(info)) = (uarea, info) else {
            for pa in [uarea, info].into_iter().flatten() {
                memory::free_frame(pa).expect("allocated just now");
            }
            paging::free_user_root(root);
            return None;
        };
        let f = Frames { root, uarea, info };
        let ok = paging::map(root, UAREA_VA, uarea, pte::USER | pte::WRITABLE | pte::NO_EXECUTE).is_ok()
            && paging::map(root, INFO_VA, info, pte::USER | pte::NO_EXECUTE).is_ok();
        if !ok {
            f.release();
            return None;
        }
        Some(f)
    }

    fn release(self) {
        for pa in [self.uarea, self.info] {
            if memory::free_frame(pa).is_err() {
                log::error!("kernel-exo: area frame {pa:#x} was not allocated");
            }
        }
        paging::free_user_root(self.root);
    }
}

/// Rewrite the header of environment `i`'s info page from the kernel's
/// records (the repossession vector is appended to separately).
pub fn publish(k: &Kernel, i: usize) {
    let e = k.env(i);
    let p = e.info_ptr();
    let fields = [
        (core::mem::offset_of!(EnvInfo, id), e.id),
        (core::mem::offset_of!(EnvInfo, parent), e.parent),
        (core::mem::offset_of!(EnvInfo, tsc_hz), k.tsc_hz),
        (core::mem::offset_of!(EnvInfo, timer_hz), k.timer_hz),
        (core::mem::offset_of!(EnvInfo, now), k.ticks),
        (core::mem::offset_of!(EnvInfo, slices), k.slices.count(i) as u64),
        (core::mem::offset_of!(EnvInfo, page_quota), e.quota),
        (core::mem::offset_of!(EnvInfo, pages_used), e.used),
        (core::mem::offset_of!(EnvInfo, revoke_wanted), e.revoke.map_or(0, |r| r.wanted)),
        (core::mem::offset_of!(EnvInfo, revoke_returned), e.revoke.map_or(0, |r| r.returned)),
        (core::mem::offset_of!(EnvInfo, revoke_deadline), e.revoke.map_or(0, |r| r.deadline)),
        (core::mem::offset_of!(EnvInfo, penalties), e.penalties),
        (core::mem::offset_of!(EnvInfo, slice_upcalls), e.slice_upcalls),
        (core::mem::offset_of!(EnvInfo, repossessed_count), e.repossessed),
    ];
    for (offset, value) in fields {
        // SAFETY: `info` is a kernel-owned frame reached through the
        // physical window and `offset` is a u64 field of the EnvInfo it
        // holds; the environment can only read the page.
        unsafe { ((p as *mut u8).add(offset) as *mut u64).write_volatile(value) };
    }
}

/// Refresh the `now` field of environment `i`'s info page.
pub fn touch_clock(k: &Kernel, i: usize) {
    let e = k.env(i);
    // SAFETY: as in `publish`: one word of the kernel-owned info page.
    unsafe { core::ptr::write_volatile(&mut (*e.info_ptr()).now, k.ticks) };
}

/// Append a repossessed page number to the environment's vector.
pub fn record_repossessed(k: &mut Kernel, i: usize, ppn: u64) {
    let e = k.env_mut(i);
    let n = e.repossessed as usize;
    e.repossessed += 1;
    if n < REPOSSESS_MAX {
        // SAFETY: as in `publish`; `n` is within the vector.
        unsafe { (*e.info_ptr()).repossessed[n] = ppn };
    }
}

/// Start a not-yet-started environment at `rip` with stack `rsp` and
/// RDI/RSI = `a0`/`a1`.
pub fn start(k: &mut Kernel, i: usize, rip: u64, rsp: u64, a0: u64, a1: u64) -> Result<(), Error> {
    use exo_abi::layout::{USER_END, USER_START};
    if !(USER_START..USER_END).contains(&rip) || rsp > USER_END {
        return Err(Error::BadAddress);
    }
    let e = k.env_mut(i);
    if e.life != Life::NotStarted {
        return Err(Error::BadState);
    }
    let mut f = TrapFrame::new_user(rip, rsp);
    f.rdi = a0;
    f.rsi = a1;
    e.ctx = Some(f);
    e.life = Life::Started;
    Ok(())
}

/// Whether `ancestor` is a (strict) ancestor of the environment `id`.
pub fn is_ancestor(k: &Kernel, ancestor: u64, id: u64) -> bool {
    let mut cur = id;
    for _ in 0..exo_abi::MAX_ENVS {
        let Ok(i) = k.env_index(cur) else { return false };
        let p = k.env(i).parent;
        if p == 0 {
            return false;
        }
        if p == ancestor {
            return true;
        }
        cur = p;
    }
    false
}

/// End environment `i`: kill its descendants, free every page, capability
/// and page table it holds, give its slices and quota back to its parent,
/// and leave a record for the parent (or none, if the parent is gone).
pub fn destroy(k: &mut Kernel, i: usize, ending: Ending) {
    let id = k.env(i).id;
    if !k.env(i).is_live() {
        return;
    }
    // Descendants first: their resources may be grants of ours. (A fixed
    // array: teardown must not depend on the heap.)
    let mut children = [0usize; exo_abi::MAX_ENVS];
    let mut n = 0;
    for c in k.env_slots() {
        if k.env(c).parent == id {
            children[n] = c;
            n += 1;
        }
    }
    for &c in &children[..n] {
        destroy(k, c, Ending { status: EnvStatus::Killed, detail: 0 });
        reap(k, c);
    }
    if envtab::current() == Some(i) {
        envtab::set_current(None);
        // SAFETY: the kernel root maps the kernel exactly as every
        // environment's root does.
        unsafe { shared_hal::cpu::set_cr3(paging::kernel_root()) };
    }
    envtab::clear(i);
    crate::net::release_env(id);
    crate::pages::release_all(k, i);
    let e = k.env_mut(i);
    e.life = Life::Ended(ending.status, ending.detail);
    e.ctx = None;
    e.revoke = None;
    e.revoke_upcall_pending = false;
    e.pred = None;
    e.sleeping = false;
    let (root, uarea, info, quota, parent) = (e.root, e.uarea, e.info, e.quota, e.parent);
    Frames { root, uarea, info }.release();
    let parent_slot =
        (parent != 0).then(|| k.env_index(parent).ok()).flatten().filter(|&p| k.env(p).is_live());
    k.slices.give_all(i, parent_slot);
    if let Some(p) = parent_slot {
        k.env_mut(p).quota += quota;
        publish(k, p);
    }
    if parent != 0 && parent_slot.is_none() {
        reap(k, i);
    }
}

/// Remove the record of an ended environment.
pub fn reap(k: &mut Kernel, i: usize) {
    if let Some(id) = k.envs.handle_at(i)
        && !k.env(i).is_live()
    {
        let _ = k.envs.remove(id);
    }
}
