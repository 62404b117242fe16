//! `fork`, entirely at user level, with copy-on-write.
//!
//! The kernel has no fork: ExOS builds the child from the primitives.
//! For every page of its view the parent decides what the child gets:
//!
//! - pages of ExOS's private stacks: a fresh page (the child's own stacks);
//! - pages of shared-memory regions: nothing (not inherited);
//! - pages it owns: a read-only grant, bound at the same address in the
//!   child; in writable regions both sides mark the page copy-on-write and
//!   the parent's own binding becomes read-only (one `protect` per run of
//!   pages) — the first write on either side faults, and ExOS's fault path
//!   copies the page (or, if the other side no longer holds it, simply
//!   write-enables it: `vm::fault`);
//! - pages it holds only by a grant (it is itself a forked child): it may
//!   not pass those on, so the child gets a copy.
//!
//! The parent also writes the child's private pages — its runtime page
//! and its page records, with the child's capabilities — through a staging
//! window, gives them to the child, and starts it at a trampoline that
//! registers the exception entry before touching anything (every page it
//! could write is copy-on-write) and continues as if `fork` had returned
//! 0. The parent's reprotection is the snapshot: all of this runs on the
//! ExOS stack, so the parent writes no shared page until it is done.

use crate::private::{self, ForkInfo, Meta, RegionRec, Runtime, on_exos_stack, rt};
use crate::vm::{Kind, region, view};
use crate::{exception, sys};
use core::arch::naked_asm;
use exo_abi::layout::pte as bits;
use exo_abi::{ANY_PAGE, Binding, Call, Cap, EnvId, Error, HandlerKind, Prot, Rights};
use view::{PageRec, page};

/// Which side of a fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// The parent, with the child's id.
    Parent(EnvId),
    /// The child.
    Child,
}

/// Exit code of a child whose start-up failed.
pub const CHILD_START_FAILED: u64 = 0xf0;

/// Fork this environment: the child gets `slices` of our time slices and
/// `quota` of our page quota, a copy-on-write copy of our memory, and only
/// the thread that called `fork`. Errors leave the parent as it was.
pub fn fork(slices: u64, quota: u64) -> Result<Fork, Error> {
    if private::in_handler() {
        return Err(Error::BadState);
    }
    exception::ensure()?;
    // From now on view changes run on the ExOS stack (fork's own work
    // first of all: it must write no page it is sharing).
    rt().cow = 1;
    let _c = private::critical();
    if rt().nopreempt.load(core::sync::atomic::Ordering::SeqCst) != 1 {
        return Err(Error::BadState); // inside another critical section
    }
    let mut out = Out { slices, quota, status: 0, child: 0 };
    // SAFETY: exos_fork follows the C ABI; it returns 1 after `start` ran
    // (in the parent) and 0 in the child, where it was resumed with the
    // callee-saved registers and stack pointer it saved.
    let side = unsafe { exos_fork(&mut out) };
    if side == 0 {
        child_init();
        return Ok(Fork::Child);
    }
    match out.status {
        0 => Ok(Fork::Parent(EnvId(out.child))),
        s => Err(Error::from_status(s)),
    }
}

#[repr(C)]
struct Out {
    slices: u64,
    quota: u64,
    status: u64,
    child: u64,
}

/// Save what the child resumes with, then run `start` (on the ExOS stack).
#[unsafe(naked)]
unsafe extern "C" fn exos_fork(out: *mut Out) -> u64 {
    naked_asm!(
        "mov [{f} + {rbx}], rbx",
        "mov [{f} + {rbp}], rbp",
        "mov [{f} + {r12}], r12",
        "mov [{f} + {r13}], r13",
        "mov [{f} + {r14}], r14",
        "mov [{f} + {r15}], r15",
        "lea rax, [rsp + 8]",           // the child's RSP: as after our `ret`
        "mov [{f} + {rsp}], rax",
        "mov rax, [rsp]",               // the child's RIP: our return address
        "mov [{f} + {rip}], rax",
        "sub rsp, 8",                   // align for the call
        "call {start}",
        "add rsp, 8",
        "mov eax, 1",                   // the parent
        "ret",
        f = const private::off::FORK,
        rbx = const core::mem::offset_of!(ForkInfo, rbx),
        rbp = const core::mem::offset_of!(ForkInfo, rbp),
        r12 = const core::mem::offset_of!(ForkInfo, r12),
        r13 = const core::mem::offset_of!(ForkInfo, r13),
        r14 = const core::mem::offset_of!(ForkInfo, r14),
        r15 = const core::mem::offset_of!(ForkInfo, r15),
        rsp = const core::mem::offset_of!(ForkInfo, rsp),
        rip = const core::mem::offset_of!(ForkInfo, rip),
        start = sym start,
    )
}

/// Where the child starts: register the exception entry, then continue
/// where the parent called `exos_fork`, with 0. Writes no memory.
#[unsafe(naked)]
extern "C" fn exos_fork_child_start() {
    naked_asm!(
        "mov eax, {set_handler}",
        "mov edi, {exception}",
        "lea rsi, [rip + {xentry}]",
        "mov rdx, qword ptr [{xstack}]",
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "mov rbx, qword ptr [{f} + {rbx}]",
        "mov rbp, qword ptr [{f} + {rbp}]",
        "mov r12, qword ptr [{f} + {r12}]",
        "mov r13, qword ptr [{f} + {r13}]",
        "mov r14, qword ptr [{f} + {r14}]",
        "mov r15, qword ptr [{f} + {r15}]",
        "mov rsp, qword ptr [{f} + {rsp}]",
        "xor eax, eax",                 // fork returned 0: the child
        "jmp qword ptr [{f} + {rip}]",
        "2:",
        "mov eax, {exit}",
        "mov edi, {failed}",
        "syscall",
        "ud2",
        set_handler = const Call::SetHandler as u64,
        exception = const HandlerKind::Exception as u64,
        xentry = sym exception::exos_xentry,
        xstack = const private::off::XSTACK,
        f = const private::off::FORK,
        rbx = const core::mem::offset_of!(ForkInfo, rbx),
        rbp = const core::mem::offset_of!(ForkInfo, rbp),
        r12 = const core::mem::offset_of!(ForkInfo, r12),
        r13 = const core::mem::offset_of!(ForkInfo, r13),
        r14 = const core::mem::offset_of!(ForkInfo, r14),
        r15 = const core::mem::offset_of!(ForkInfo, r15),
        rsp = const core::mem::offset_of!(ForkInfo, rsp),
        rip = const core::mem::offset_of!(ForkInfo, rip),
        exit = const Call::Exit as u64,
        failed = const CHILD_START_FAILED,
    )
}

extern "C" fn start(out: &mut Out) {
    let (slices, quota) = (out.slices, out.quota);
    let r = on_exos_stack(|| build(slices, quota));
    match r {
        Ok(child) => out.child = child.0,
        Err(e) => out.status = e.code(),
    }
}

/// The first things the child does (copy-on-write faults work now).
fn child_init() {
    // Our private pages' capabilities are our own now: look them up.
    let r = rt();
    for m in r.meta[..r.nmeta as usize].iter_mut() {
        if let Ok((cap, _)) = sys::lookup(m.va) {
            m.cap = cap.0;
        }
    }
    let _ = crate::upcall::after_fork();
    let _ = crate::pct::after_fork();
    crate::thread::after_fork();
}

/// Bindings for the child, applied in batches.
struct ChildBinds {
    child: EnvId,
    list: [Binding; 64],
    n: usize,
}

impl ChildBinds {
    fn push(&mut self, b: Binding) -> Result<(), Error> {
        self.list[self.n] = b;
        self.n += 1;
        if self.n == self.list.len() { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> Result<(), Error> {
        let n = core::mem::take(&mut self.n);
        if n == 0 {
            return Ok(());
        }
        sys::bind_child(self.child, &self.list[..n]).1
    }
}

/// The child's records, written into staging pages.
struct Staged {
    /// Records written.
    n: usize,
    /// Staging pages bound (page 0 is the runtime page).
    pages: usize,
    caps: [u64; private::MAX_META],
}

const PER_PAGE: usize = 4096 / core::mem::size_of::<PageRec>();

impl Staged {
    fn page(&mut self, k: usize) -> Result<u64, Error> {
        let va = private::STAGING_VA + k as u64 * 4096;
        while self.pages <= k {
            if self.pages == private::MAX_META {
                return Err(Error::Limit);
            }
            let (cap, _) = sys::page_alloc(ANY_PAGE)?;
            let at = private::STAGING_VA + self.pages as u64 * 4096;
            // SAFETY: the staging window is private and used only by fork.
            let (_, r) =
                unsafe { sys::bind(exo_abi::ENV_SELF, &[Binding { va: at, cap: cap.0, prot: Prot::RW.0 }]) };
            if let Err(e) = r {
                // SAFETY: never bound.
                let _ = unsafe { sys::page_free(cap) };
                return Err(e);
            }
            self.caps[self.pages] = cap.0;
            self.pages += 1;
        }
        Ok(va)
    }

    /// Append the child's record `r` (they come in address order).
    fn record(&mut self, r: PageRec) -> Result<(), Error> {
        let k = 1 + self.n / PER_PAGE;
        let base = self.page(k)?;
        // SAFETY: the staging page is bound read-write and private.
        unsafe { (base as *mut PageRec).add(self.n % PER_PAGE).write(r) };
        self.n += 1;
        Ok(())
    }

    /// Free whatever was staged (fork failed).
    fn discard(&self) {
        for cap in &self.caps[..self.pages] {
            // SAFETY: staging pages hold nothing anyone uses.
            let _ = unsafe { sys::page_free(Cap(*cap)) };
        }
    }
}

/// Give a fresh page (filled by `fill` through the fill window) to the
/// child; returns the child's capability and the page number.
fn give_page(child: EnvId, fill: impl FnOnce(&mut [u8; 4096])) -> Result<(u64, u64), Error> {
    let (cap, ppn) = sys::page_alloc(ANY_PAGE)?;
    // SAFETY: the fill window is private, one page, used one page at a time.
    let (_, r) = unsafe {
        sys::bind(exo_abi::ENV_SELF, &[Binding { va: private::FILL_VA, cap: cap.0, prot: Prot::RW.0 }])
    };
    if let Err(e) = r {
        // SAFETY: never bound.
        let _ = unsafe { sys::page_free(cap) };
        return Err(e);
    }
    // SAFETY: bound read-write just now.
    fill(unsafe { &mut *(private::FILL_VA as *mut [u8; 4096]) });
    // SAFETY: the page leaves our address space (its binding is broken).
    let theirs = unsafe { sys::page_transfer(cap, child) };
    if theirs.is_err() {
        // SAFETY: still ours; nothing refers to it.
        let _ = unsafe { sys::page_free(cap) };
    }
    Ok((theirs?.0, ppn))
}

fn prot_of(e: u64) -> u64 {
    let mut p = Prot::READ.0;
    if e & bits::WRITABLE != 0 {
        p |= Prot::WRITE.0;
    }
    if e & bits::NO_EXECUTE == 0 {
        p |= Prot::EXEC.0;
    }
    p
}

fn build(slices: u64, quota: u64) -> Result<EnvId, Error> {
    crate::pager::reconcile();
    view::collect_retired();
    let child = sys::env_create(slices, quota)?;
    let mut staged = Staged { n: 0, pages: 0, caps: [0; private::MAX_META] };
    match build_into(child, &mut staged) {
        Ok(()) => Ok(child),
        Err(e) => {
            staged.discard();
            let _ = sys::env_kill(child);
            Err(e)
        }
    }
}

fn build_into(child: EnvId, staged: &mut Staged) -> Result<(), Error> {
    staged.page(0)?; // the runtime page first
    let mut binds = ChildBinds { child, list: [Binding::default(); 64], n: 0 };
    // Parent pages that become read-only (runs are protected together).
    let mut ro_run: Option<(u64, u64, u64)> = None; // start, end, prot
    let mut i = 0;
    while i < view::pages().len() {
        let r = view::pages()[i];
        i += 1;
        let Some(g) = view::region_of(r.va).map(|g| view::regions()[g]) else { continue };
        let Some(e) = view::pte(r.va) else { continue };
        if g.flags & region::NOFORK != 0 || g.kind == Kind::Shared as u16 {
            continue;
        }
        let prot_now = prot_of(e);
        if g.flags & region::FRESH != 0 {
            let (cap, ppn) = give_page(child, |_| {})?;
            binds.push(Binding { va: r.va, cap, prot: Prot::RW.0 })?;
            staged.record(PageRec { cap, ppn, flags: page::OWNED, ..r })?;
            continue;
        }
        let writable_region = g.maxprot as u64 & Prot::WRITE.0 != 0;
        if r.flags & page::OWNED == 0 {
            // Held by a grant: the child gets a copy of its own.
            let mut prot = prot_now;
            if r.flags & page::COW != 0 && r.flags & page::APP_RO == 0 {
                prot |= Prot::WRITE.0;
            }
            // SAFETY: `r.va` is bound readable (present).
            let src = unsafe { &*(r.va as *const [u8; 4096]) };
            let (cap, ppn) = give_page(child, |p| p.copy_from_slice(src))?;
            binds.push(Binding { va: r.va, cap, prot })?;
            staged.record(PageRec { cap, ppn, flags: page::OWNED | (r.flags & page::DIRTY), ..r })?;
            continue;
        }
        let grant = sys::page_grant(Cap(r.cap), child, Rights::READ)?;
        view::add_share(view::Share { ppn: r.ppn, grant: grant.0 })?;
        binds.push(Binding { va: r.va, cap: grant.0, prot: prot_now & !Prot::WRITE.0 })?;
        let mut flags = r.flags & page::DIRTY;
        if writable_region {
            flags |= page::COW;
            let app_ro = (r.flags & page::COW != 0 && r.flags & page::APP_RO != 0)
                || (r.flags & page::COW == 0 && e & bits::WRITABLE == 0);
            if app_ro {
                flags |= page::APP_RO;
            }
            view::pages()[i - 1].flags |= page::COW | (flags & page::APP_RO);
            if e & bits::WRITABLE != 0 {
                let p = prot_now & !Prot::WRITE.0;
                ro_run = match ro_run {
                    Some((s, end, q)) if end == r.va && q == p => Some((s, end + 4096, q)),
                    other => {
                        if let Some((s, end, q)) = other {
                            protect_parent(s, end, q)?;
                        }
                        Some((r.va, r.va + 4096, p))
                    }
                };
            }
        }
        staged.record(PageRec { cap: grant.0, flags, ..r })?;
    }
    binds.flush()?;
    if let Some((s, end, q)) = ro_run {
        protect_parent(s, end, q)?;
    }
    // From here on the parent's writable pages are read-only: the snapshot.
    view::regions_changed();
    for g in view::regions().iter_mut() {
        if g.maxprot as u64 & Prot::WRITE.0 != 0 && g.flags & region::FRESH == 0 {
            g.flags |= region::HAS_COW;
        }
    }
    write_runtime(staged)?;
    // Give the staged pages away and bind them in the child.
    for k in 0..staged.pages {
        // SAFETY: staging pages leave our address space; nothing refers to them.
        let theirs = unsafe { sys::page_transfer(Cap(staged.caps[k]), child) }?;
        staged.caps[k] = 0;
        let va = if k == 0 { private::RUNTIME_VA } else { private::PAGES_VA + (k as u64 - 1) * 4096 };
        binds.push(Binding { va, cap: theirs.0, prot: Prot::RW.0 })?;
    }
    staged.pages = 0;
    binds.flush()?;
    sys::env_start(child, exos_fork_child_start as *const () as u64, 0, 0, 0)
}

fn protect_parent(start: u64, end: u64, prot: u64) -> Result<(), Error> {
    // SAFETY: the pages become read-only; the next write to one faults and
    // the copy-on-write path resolves it (the exception entry is registered).
    let (_, r) = unsafe { sys::protect(exo_abi::ENV_SELF, start, (end - start) / 4096, Prot(prot)) };
    r
}

/// The child's runtime page: ours, adjusted.
fn write_runtime(staged: &mut Staged) -> Result<(), Error> {
    let record_pages = staged.n.div_ceil(PER_PAGE).max(1);
    for k in 1..=record_pages {
        staged.page(k)?;
    }
    let child = private::STAGING_VA as *mut Runtime;
    // SAFETY: staging page 0 is bound read-write; the runtime page is plain
    // data, copied whole and then adjusted field by field.
    unsafe {
        core::ptr::copy_nonoverlapping(private::RUNTIME_VA as *const Runtime, child, 1);
        let c = &mut *child;
        c.nopreempt.store(1, core::sync::atomic::Ordering::SeqCst); // it resumes inside fork's section
        c.pending.store(0, core::sync::atomic::Ordering::SeqCst);
        c.revoke_wanted = 0;
        c.repossessed_seen = 0;
        c.last_region = 0;
        c.last_off = 0;
        c.fault_off = u64::MAX;
        c.pages = private::Array { len: staged.n as u64, cap: (record_pages * PER_PAGE) as u64 };
        c.shares = private::Array::default();
        c.retired = private::Array::default();
        c.candidates = private::Array::default();
        // Its private pages: the runtime page and the record pages (their
        // capabilities are looked up by the child).
        c.meta = [Meta::default(); private::MAX_META];
        c.meta[0] = Meta { va: private::RUNTIME_VA, cap: 0 };
        for k in 0..record_pages {
            c.meta[1 + k] = Meta { va: private::PAGES_VA + k as u64 * 4096, cap: 0 };
        }
        c.nmeta = 1 + record_pages as u64;
        // Regions: not the shared ones.
        let mut n = 0;
        let mut regions = [RegionRec::default(); private::MAX_REGIONS];
        for g in view::regions().iter() {
            if g.flags & region::NOFORK == 0 && g.kind != Kind::Shared as u16 {
                regions[n] = *g;
                n += 1;
            }
        }
        c.regions = regions;
        c.nregions = n as u64;
    }
    Ok(())
}
