//! ExOS's private memory: the runtime page and the metadata arrays, at
//! fixed addresses below 2 GiB (so the assembly resume paths can name
//! them with 32-bit absolute operands).
//!
//! Private pages are never shared copy-on-write: a forked child gets its
//! own, written by the parent (`crate::fork`). That is what makes them
//! safe to write from the exception handler, which must never write a
//! copy-on-write page (a fault inside the handler cannot be delivered:
//! the kernel kills the environment).
//!
//! Also here: **critical sections** (`nopreempt`). While one is open the
//! upcall handler neither switches user-level threads nor runs the
//! revocation policy; it leaves the work in `pending` and the section's
//! end does it. And the **ExOS stack**: code that changes ExOS's view of
//! the address space runs on it ([`on_exos_stack`]), so it never writes a
//! copy-on-write page (a thread's stack may be one) halfway through a
//! change the exception handler would then see. It is made when the
//! environment first forks (or is forked): before, no page is
//! copy-on-write and the caller's stack does as well.

use crate::sys;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_abi::layout::{Regs, UAREA_VA, UPCALL_VA, uoff, xoff};
use exo_abi::{ANY_PAGE, Binding, ENV_SELF, Error, Prot};

/// First address of the private area.
pub const BASE: u64 = 0x7800_0000;
/// One past its last address.
pub const END: u64 = 0x8000_0000;
/// The runtime page.
pub const RUNTIME_VA: u64 = BASE;
/// The growable metadata arrays (see `crate::vm::view`), each in a window.
pub const PAGES_VA: u64 = BASE + 0x0010_0000;
pub const SHARES_VA: u64 = BASE + 0x0100_0000;
pub const RETIRED_VA: u64 = BASE + 0x0120_0000;
pub const CANDIDATES_VA: u64 = BASE + 0x0140_0000;
/// Size of each array window.
pub const WINDOW: u64 = 0x0020_0000;
/// Where fork writes a child's private pages before giving them away.
pub const STAGING_VA: u64 = BASE + 0x0200_0000;
/// One page: where the copy-on-write path binds the fresh copy.
pub const COPY_VA: u64 = BASE + 0x0300_0000;
/// One page: the scratch window for loading programs and filling pages.
pub const FILL_VA: u64 = BASE + 0x0300_1000;

/// Most private pages (runtime page and array pages).
pub const MAX_META: usize = 96;
/// Most regions in the view.
pub const MAX_REGIONS: usize = 40;

/// A private page: where it is bound and the capability we own it by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Meta {
    pub va: u64,
    pub cap: u64,
}

/// A region of the view (see `crate::vm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RegionRec {
    pub start: u64,
    pub end: u64,
    /// The application's fault handler (a `vm::FaultHandler`), or 0.
    pub handler: u64,
    /// `vm::region` flag bits.
    pub flags: u32,
    /// `vm::Kind`.
    pub kind: u16,
    /// The most protection pages of the region may have (`Prot` bits).
    pub maxprot: u16,
}

/// What a forked child's start-up trampoline needs (`crate::fork`).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct ForkInfo {
    pub rbx: u64,
    pub rbp: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rsp: u64,
    pub rip: u64,
}

/// Lengths and capacities (in elements) of the metadata arrays.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct Array {
    pub len: u64,
    pub cap: u64,
}

/// The runtime page.
#[repr(C)]
pub struct Runtime {
    pub magic: u64,
    /// Critical-section depth.
    pub nopreempt: AtomicU64,
    /// Work the upcall handler deferred ([`PENDING_SWITCH`], [`PENDING_REVOKE`]).
    pub pending: AtomicU64,
    /// The upcall area's resume path jumps through this word.
    pub upcall_rip: u64,
    /// The context `thread::switch`'s resume sequence restores.
    pub resume: Regs,
    pub fork: ForkInfo,
    /// Top of the exception stack (0 = exception entry not registered).
    pub xstack: u64,
    /// Top of the ExOS stack (0 = not made yet).
    pub exos_stack: u64,
    /// A revocation request deferred by the upcall handler: pages wanted.
    pub revoke_wanted: u64,
    /// The pager's clock: scans so far.
    pub scans: u64,
    /// Repossessions already reconciled with the view.
    pub repossessed_seen: u64,
    /// Mapping sequence numbers (the pager's FIFO order).
    pub seq: u64,
    /// Next address `vm::map_anon` hands out, per kind of window.
    pub next_anon: u64,
    pub next_stack: u64,
    pub next_private_stack: u64,
    /// Non-zero once copy-on-write sharing exists (we forked, or were
    /// forked): from then on view changes run on the ExOS stack.
    pub cow: u64,
    /// Index of the region the last fault or protection change was in
    /// (a one-entry cache), and the same as a byte offset into `regions`
    /// (what the exception entry's fast path reads).
    pub last_region: u64,
    pub last_off: u64,
    /// Byte offset into `regions` of the region of the fault being
    /// handled, if it has no copy-on-write page (else `u64::MAX`): what
    /// `vm::Fault::protect` trusts.
    pub fault_off: u64,
    pub nregions: u64,
    pub pages: Array,
    pub shares: Array,
    pub retired: Array,
    pub candidates: Array,
    pub nmeta: u64,
    pub regions: [RegionRec; MAX_REGIONS],
    pub meta: [Meta; MAX_META],
}

const _: () = assert!(core::mem::size_of::<Runtime>() <= 4096);
const _: () = assert!(END <= 0x8000_0000, "the resume paths use 32-bit absolute addresses");

/// `Runtime::magic` once the page is set up.
pub const MAGIC: u64 = 0x4578_4f53_7276_0001;
/// A thread switch was due when a critical section was open.
pub const PENDING_SWITCH: u64 = 1;
/// A revocation request arrived when a critical section was open.
pub const PENDING_REVOKE: u64 = 2;

/// Offsets for the assembly.
pub mod off {
    use super::*;
    use core::mem::offset_of;
    pub const NOPREEMPT: u64 = RUNTIME_VA + offset_of!(Runtime, nopreempt) as u64;
    pub const UPCALL_RIP: u64 = RUNTIME_VA + offset_of!(Runtime, upcall_rip) as u64;
    pub const RESUME: u64 = RUNTIME_VA + offset_of!(Runtime, resume) as u64;
    pub const FORK: u64 = RUNTIME_VA + offset_of!(Runtime, fork) as u64;
    pub const XSTACK: u64 = RUNTIME_VA + offset_of!(Runtime, xstack) as u64;
}

/// The runtime page. Exists from `init` on (the first thing `_start` does).
#[inline(always)]
pub fn rt() -> &'static mut Runtime {
    // SAFETY: the runtime page is bound read-write at RUNTIME_VA for the
    // environment's whole life from `init` on (and a forked child starts
    // with its own); one CPU, and code that changes a field other code
    // may change at the same time does so inside a critical section or
    // through an atomic.
    unsafe { &mut *(RUNTIME_VA as *mut Runtime) }
}

/// Allocate a page and bind it read-write at private address `va`,
/// recording it as a private page.
pub fn map_meta(va: u64) -> Result<(), Error> {
    let r = rt();
    if r.nmeta as usize >= MAX_META {
        return Err(Error::Limit);
    }
    let (cap, _) = sys::page_alloc(ANY_PAGE)?;
    bind_private(va, cap.0)?;
    r.meta[r.nmeta as usize] = Meta { va, cap: cap.0 };
    r.nmeta += 1;
    Ok(())
}

fn bind_private(va: u64, cap: u64) -> Result<(), Error> {
    // SAFETY: private addresses hold nothing of the program's; `va` is a
    // new page of the area.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va, cap, prot: Prot::RW.0 }]) };
    if r.is_err() {
        // SAFETY: the page was never bound: nothing refers to it.
        let _ = unsafe { sys::page_free(exo_abi::Cap(cap)) };
    }
    r
}

/// Set up the runtime page (first thing at start-up; not in a forked
/// child, whose parent wrote it).
pub fn init() -> Result<(), Error> {
    let (cap, _) = sys::page_alloc(ANY_PAGE)?;
    bind_private(RUNTIME_VA, cap.0)?;
    let r = rt();
    r.meta[0] = Meta { va: RUNTIME_VA, cap: cap.0 };
    r.nmeta = 1;
    r.next_anon = crate::mem::ANON_BASE;
    r.next_stack = crate::mem::THREAD_STACKS;
    r.next_private_stack = crate::mem::STACKS_BASE;
    r.fault_off = u64::MAX;
    r.magic = MAGIC;
    Ok(())
}

/// Grow a metadata array by one page; returns the new capacity.
pub fn grow(base: u64, a: &mut Array, elem: usize) -> Result<(), Error> {
    let per_page = (4096 / elem) as u64;
    let pages = a.cap / per_page;
    if (pages + 1) * 4096 > WINDOW {
        return Err(Error::Limit);
    }
    map_meta(base + pages * 4096)?;
    a.cap += per_page;
    Ok(())
}

/// Open a critical section (they nest). See the module documentation.
#[inline(always)]
pub fn enter() {
    rt().nopreempt.fetch_add(1, SeqCst);
}

/// Close a critical section; the outermost one does deferred work.
#[inline(always)]
pub fn exit() {
    let r = rt();
    if r.nopreempt.fetch_sub(1, SeqCst) == 1 && r.pending.load(SeqCst) != 0 {
        run_pending();
    }
}

/// A critical section that closes when dropped.
pub struct Critical(());

/// Open a critical section for the lifetime of the guard.
#[inline(always)]
pub fn critical() -> Critical {
    enter();
    Critical(())
}

impl Drop for Critical {
    #[inline(always)]
    fn drop(&mut self) {
        exit();
    }
}

/// Whether the code running now is a handler (exception or upcall), not
/// a thread: deferred work waits for thread context.
#[inline]
pub fn in_handler() -> bool {
    // SAFETY: the user area is mapped for the environment's life; the
    // busy words are read as hints.
    unsafe {
        core::ptr::read_volatile((UAREA_VA + xoff::BUSY as u64) as *const u64) != 0
            || core::ptr::read_volatile((UPCALL_VA + uoff::BUSY as u64) as *const u64) != 0
    }
}

#[cold]
fn run_pending() {
    if in_handler() {
        return; // a thread's critical section will, or the next slice end
    }
    let p = rt().pending.swap(0, SeqCst);
    if p & PENDING_REVOKE != 0 {
        let wanted = core::mem::take(&mut rt().revoke_wanted);
        crate::pager::on_revoke(wanted);
    }
    if p & PENDING_SWITCH != 0 {
        crate::thread::yield_now();
    }
}

/// Pages of the ExOS stack.
const EXOS_STACK_PAGES: u64 = 4;

/// Whether `rsp` is on one of ExOS's private stacks (exception, upcall,
/// PCT, scheduler and ExOS stacks all live in the private-stack window).
pub fn on_private_stack() -> bool {
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    (crate::mem::STACKS_BASE..crate::mem::STACKS_END).contains(&rsp)
}

/// Run `f` on the ExOS stack (directly if already on a private stack),
/// inside a critical section. `f` must not block.
pub fn on_exos_stack<R, F: FnOnce() -> R>(f: F) -> R {
    let _c = critical();
    // Before any fork no page is copy-on-write: this stack is as good.
    if rt().cow == 0 || on_private_stack() {
        return f();
    }
    if rt().exos_stack == 0 {
        match crate::vm::new_private_stack_locked(EXOS_STACK_PAGES) {
            Ok(top) => rt().exos_stack = top,
            // Without one, run here: correct unless a copy-on-write page
            // of this stack is written in the middle (see the module doc).
            Err(_) => return f(),
        }
    }
    // The closure goes in, the result comes out, through this slot on the
    // caller's stack: written once before `f` runs and once after.
    let mut slot: (Option<F>, Option<R>) = (Some(f), None);
    extern "C" fn trampoline<R, F: FnOnce() -> R>(p: *mut u8) {
        // SAFETY: `p` is the `slot` below, alive until the call returns.
        let slot = unsafe { &mut *(p as *mut (Option<F>, Option<R>)) };
        if let Some(f) = slot.0.take() {
            slot.1 = Some(f());
        }
    }
    // SAFETY: the ExOS stack is private, mapped, and unused now (we are in
    // a critical section, and nested calls run directly, above).
    unsafe {
        exos_call_on_stack(
            &mut slot as *mut _ as *mut u8,
            trampoline::<R, F> as *const () as u64,
            rt().exos_stack,
        )
    };
    match slot.1 {
        Some(r) => r,
        None => unreachable!("the trampoline always stores the result"),
    }
}

unsafe extern "C" {
    fn exos_call_on_stack(arg: *mut u8, f: u64, stack_top: u64);
}

core::arch::global_asm!(
    ".globl exos_call_on_stack",
    "exos_call_on_stack:",
    "push rbp",
    "mov rbp, rsp", // the caller's stack, restored below
    "mov rsp, rdx", // the ExOS stack (16-byte aligned top)
    "call rsi",     // f(arg): RDI is already arg
    "mov rsp, rbp",
    "pop rbp",
    "ret",
);
