//! User exceptions (ring 0, trusted): kernel-spin's own entry stubs for the
//! exceptions ring 3 can raise (#DE, #BP, #UD, #GP, #PF), the fault events
//! they raise, and reflection to the handler a process registered. The
//! stubs' assembly is in the child module `stubs` (`uexc/stubs.rs`).
//!
//! # The fast path: an inlined reflecting handler
//!
//! Each fault raises an event (a page fault one of the Translation events,
//! chosen by the faulting address and the error code; the others
//! `User.Exception`). When that event's lone handler is the interface's
//! standard [`translation::reflect`] — the VM extension installs it — the
//! stub does not enter Rust at all: like SPIN's dispatcher inlining a small
//! handler into the raise, it compares the event's entry word with
//! `reflect` and performs the reflection itself, with three scratch
//! registers and interrupts off (about 45 instructions for #UD, 50 for #PF):
//!
//! 1. the process's reflection record, by the low byte of the running
//!    strand's tag (1 + pid; record 0 is "no process" and never valid);
//! 2. the page-table entry that maps its `TrapInfo` area, found once at
//!    registration, must still be present, user and writable (a `not`
//!    and a `test`: the three low bits of `!entry` are zero only if all
//!    three are set); the area's kernel address is the frame plus the
//!    physical-window offset plus the area's offset in its page; the
//!    entry gets its accessed and dirty bits, as a write by the process
//!    would set them (the kernel writes through the physical window,
//!    which leaves the process's entry untouched, and `vm_dirty` reads it);
//! 3. write vector, error code, address, RIP, RSP, RFLAGS and RDI there,
//!    point the interrupt frame at the handler entry and its stack with
//!    RFLAGS = IF, load RDI = the area's user address, and `iretq`.
//!
//! Every other register still holds the interrupted value (the contract
//! in `spin_abi::TrapInfo`). Anything else — another handler, several
//! handlers, no registration, an area no longer writable, a page fault on
//! a kernel or non-canonical address — takes the general path below, which
//! decides the same way and kills where the fast path could not deliver.
//!
//! # The general path
//!
//! The stub pushes a zero error code where the CPU pushes none, the
//! vector, and the nine registers Rust code may clobber (the callee-saved
//! ones survive the call untouched), clears DF (ring 3 may have set it)
//! and calls [`user_exception`] with the frame. That raises the fault
//! event with interrupts enabled (so the timer can stop a runaway
//! handler): with one unguarded handler, a load, a test and an indirect
//! call. The handler decides: `Handled` (resume the faulting instruction),
//! `Reflect` (continue in the process's registered handler, as above) or
//! `Kill`. An exception in kernel mode goes to the HAL's generic stub
//! (and from there to a panic report).
//!
//! # Containment
//!
//! While a fault event runs, [`IN_FAULT`] names the event on the strand.
//! A panic in its (lone) handler, or the timer seeing it run past the
//! budget, unloads the handler's extension and ends the faulting thread
//! with [`KILLED_HANDLER_FAULT`] − vector; events with several handlers
//! are raised contained. The inlined handler runs no extension code.

mod stubs;

pub(crate) use stubs::common;
use stubs::{stub_bp, stub_de, stub_gp, stub_pf, stub_ud};

use crate::process::{self, Pid};
use crate::strands::{self, MAX_STRANDS};
use core::arch::asm;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use shared_hal::idt::{self, Dpl};
use shared_hal::memory::phys_offset;
use shared_hal::paging::pte;
use shared_hal::trap::{self, TrapFrame, vector};
use spin_interface::KernelKey;
use spin_interface::abi::{Error, TrapInfo};
use spin_interface::domain::DomainId;
use spin_interface::strand;
use spin_interface::translation::{self, Context, FaultAction, FaultInfo};
use spin_interface::user::{self, Process};

/// Exit code of a thread whose fault handler faulted: this minus the vector.
pub const KILLED_HANDLER_FAULT: i64 = -3000;

/// What the stubs save, lowest address first: the nine caller-saved
/// registers, then the vector and error code (pushed by the stub; a zero
/// where the CPU pushes none), then the CPU's interrupt frame.
#[repr(C)]
pub struct ExcFrame {
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// 16 words: the CPU aligned RSP to 16 before its pushes, so RSP is
/// 16-aligned again at the stub's `call`.
const _: () = assert!(size_of::<ExcFrame>() == 128);

/// The fault event running on each strand (null: none).
static IN_FAULT: [AtomicPtr<FaultEvent>; MAX_STRANDS] = [const { AtomicPtr::new(null_mut()) }; MAX_STRANDS];

type FaultEvent = spin_interface::KernelEvent<FaultInfo, FaultAction>;

/// Where a process's faults are reflected. 64 bytes, so indexing is a
/// shift.
#[repr(C, align(64))]
struct Reflection {
    entry: AtomicU64,
    /// The registered stack top − 8 (the handler is entered as if called).
    rsp: AtomicU64,
    /// The user address of the `TrapInfo` area.
    info: AtomicU64,
    /// The kernel address of the page-table entry that maps the area, or
    /// of [`NO_PTE`] (never valid) when the process registered nothing.
    pte: AtomicPtr<u64>,
    /// The physical-window offset plus the area's offset in its page:
    /// added to the frame address, the area's kernel address.
    window: AtomicU64,
}

/// A page-table entry that is never present: the `pte` of every record
/// without a registration, so the stubs need no separate test.
static NO_PTE: AtomicU64 = AtomicU64::new(0);

/// The reflection records, indexed by `process::tag_index` (the low byte
/// of the running strand's tag, 1 + pid); record 0 belongs to no process.
static REFLECT: [Reflection; 256] = [const {
    Reflection {
        entry: AtomicU64::new(0),
        rsp: AtomicU64::new(0),
        info: AtomicU64::new(0),
        pte: AtomicPtr::new(NO_PTE.as_ptr()),
        window: AtomicU64::new(0),
    }
}; 256];

const _: () = assert!(size_of::<Reflection>() == 64, "the stubs index records with shl 6");

/// The HAL's generic stubs, for exceptions in kernel mode.
static GENERIC: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
const VECTORS: [u8; 5] = [
    vector::DIVIDE_ERROR,
    vector::BREAKPOINT,
    vector::INVALID_OPCODE,
    vector::GENERAL_PROTECTION,
    vector::PAGE_FAULT,
];

/// Enable interrupts (a full compiler barrier, unlike the HAL's helper:
/// the `IN_FAULT` store must happen first).
#[inline(always)]
fn sti() {
    // SAFETY: the IDT is loaded; the kernel's interrupt handlers may run here.
    unsafe { asm!("sti", options(nostack, preserves_flags)) }
}

#[inline(always)]
fn cli() {
    // SAFETY: clearing IF cannot break memory safety.
    unsafe { asm!("cli", options(nostack, preserves_flags)) }
}

/// The event a user page fault raises.
#[inline(always)]
fn page_fault_event(error: u64, addr: u64) -> &'static FaultEvent {
    if user::check_user_range(addr, 1).is_err() {
        &translation::BAD_ADDRESS
    } else if error & 1 != 0 {
        &translation::PROTECTION_FAULT
    } else {
        &translation::PAGE_NOT_PRESENT
    }
}

/// A ring-3 exception: raise its event and act on the handler's decision.
extern "sysv64" fn user_exception(f: &mut ExcFrame) {
    let Some(pid) = process::current_pid() else { no_process() };
    let (vector, error) = (f.vector, f.error);
    let (event, addr) = if vector == 14 {
        let addr = shared_hal::cpu::cr2();
        (page_fault_event(error, addr), addr)
    } else {
        (&user::EXCEPTION, 0)
    };
    let key = crate::key();
    let info = FaultInfo {
        process: Process::from_number(key, pid),
        context: Context::from_id(key, process::context_of(pid)),
        vector,
        error,
        addr,
        rip: f.rip,
    };
    let running = &IN_FAULT[strand::current().index()];
    crate::sysentry::SYSCALLS.fetch_add(1, Ordering::Relaxed); // the timer sees a new kernel entry
    running.store(event as *const FaultEvent as *mut FaultEvent, Ordering::Relaxed);
    sti();
    // One handler: a direct call, which the panic path and the timer
    // attribute to its owner through `IN_FAULT`. Several: contained.
    let action = event.event(key).raise_attributed(info);
    cli();
    running.store(null_mut(), Ordering::Relaxed);
    match action {
        Ok(FaultAction::Handled) => {}
        Ok(FaultAction::Reflect) if reflect(f, pid, addr) => {}
        Ok(_) => kill(f, pid, addr),
        Err(_) => process::exit_current(Some(KILLED_HANDLER_FAULT - vector as i64)),
    }
}

#[cold]
#[inline(never)]
fn no_process() -> ! {
    panic!("a user-mode exception on a strand without a process");
}

/// Nobody handled the fault: end the thread.
#[cold]
#[inline(never)]
fn kill(f: &ExcFrame, pid: Pid, addr: u64) -> ! {
    log::warn!(
        "kernel-spin: process {pid} killed by unhandled {} at rip {:#x} (addr {addr:#x})",
        trap::exception_name(f.vector),
        f.rip
    );
    process::exit_current(Some(process::KILLED - f.vector as i64))
}

/// Continue the process in its registered handler: write the registers
/// reflection changes, and the fault, into its `TrapInfo`; point the
/// frame at the handler. False if it registered none or the area is no
/// longer mapped user-writable. (The stubs do the same in assembly.)
#[inline(always)]
fn reflect(f: &mut ExcFrame, pid: Pid, addr: u64) -> bool {
    let r = &REFLECT[process::tag_index(pid)];
    let pte_ptr = r.pte.load(Ordering::Relaxed);
    // SAFETY: `register` stored the address of the entry mapping the area
    // in a last-level table of this process's address space, or it is
    // `NO_PTE`. `pid` is the running strand's tag, which names a live
    // process (`process::reap` refuses while any strand is tagged with
    // it), so that space and its tables are live; reaping calls `forget`
    // before destroying them, and a new process in the slot starts with
    // the record reset.
    let e = unsafe { pte_ptr.read_volatile() };
    const NEED: u64 = pte::PRESENT | pte::USER | pte::WRITABLE;
    if e & NEED != NEED {
        return false;
    }
    // The record is written through the physical window below, which
    // leaves this entry as it was: mark the page accessed and dirty, as
    // the process's own write would (`vm_dirty` reads this entry).
    // SAFETY: as above; only the two bits the CPU itself sets change.
    unsafe { pte_ptr.write_volatile(e | pte::ACCESSED | pte::DIRTY) };
    let dst = ((e & pte::ADDR) + r.window.load(Ordering::Relaxed)) as *mut TrapInfo;
    // SAFETY: `dst` is a `TrapInfo` inside one user-writable page of the
    // current process (checked 8-aligned and not crossing a page at
    // registration), seen through the physical window; user memory holds
    // no kernel invariants.
    unsafe {
        (&raw mut (*dst).vector).write(f.vector);
        (&raw mut (*dst).error).write(f.error);
        (&raw mut (*dst).addr).write(addr);
        (&raw mut (*dst).rip).write(f.rip);
        (&raw mut (*dst).rsp).write(f.rsp);
        (&raw mut (*dst).rflags).write(f.rflags);
        (&raw mut (*dst).rdi).write(f.rdi);
    }
    f.rip = r.entry.load(Ordering::Relaxed);
    f.rsp = r.rsp.load(Ordering::Relaxed);
    f.rdi = r.info.load(Ordering::Relaxed);
    f.rflags = 0x202; // IF, nothing else (no TF, no DF)
    true
}

/// Register where the current process's faults are reflected (the
/// interface checked the ranges and the area's alignment). The area must
/// be mapped user-writable now.
pub fn register(entry: u64, stack_top: u64, info: u64) -> Result<(), Error> {
    let pid = process::current_pid().ok_or(Error::BadState)?;
    let slot = crate::spaces::pte_slot(process::context_of(pid), info).ok_or(Error::NotMapped)?;
    // SAFETY: `pte_slot` returns an entry of a live table of this space.
    let e = unsafe { slot.read_volatile() };
    if e & pte::PRESENT == 0 {
        return Err(Error::NotMapped);
    }
    if e & (pte::USER | pte::WRITABLE) != pte::USER | pte::WRITABLE {
        return Err(Error::BadAddress);
    }
    let r = &REFLECT[process::tag_index(pid)];
    r.entry.store(entry, Ordering::Relaxed);
    r.rsp.store(stack_top - 8, Ordering::Relaxed);
    r.info.store(info, Ordering::Relaxed);
    r.window.store(phys_offset() + (info & 4095), Ordering::Relaxed);
    r.pte.store(slot, Ordering::Relaxed);
    Ok(())
}

/// Drop a process's registration (before its address space goes, and
/// when its slot is reused).
pub fn forget(pid: Pid) {
    let r = &REFLECT[process::tag_index(pid)];
    r.pte.store(NO_PTE.as_ptr(), Ordering::Relaxed);
    r.entry.store(0, Ordering::Relaxed);
}

/// The fault event running on the current strand, if any.
fn current_fault() -> Option<&'static FaultEvent> {
    let p = IN_FAULT[strand::current().index()].load(Ordering::Relaxed);
    // SAFETY: only `user_exception` stores here, from `&'static` events.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The extension whose handler the running fault event calls (the lone
/// handler's owner: events with several handlers are raised contained).
pub fn culprit() -> Option<DomainId> {
    current_fault().map(|e| e.lone_owner())
}

/// End the faulting thread whose handler faulted (called from the panic
/// path, or entered by an aborted frame). Never returns.
pub extern "sysv64" fn handler_failed() -> ! {
    let me = strand::current().index();
    IN_FAULT[me].store(null_mut(), Ordering::Relaxed);
    // The stub's frame sits at the top of this strand's kernel stack.
    let top = strands::stack_top(me);
    // SAFETY: a user exception is being handled on this strand, so its
    // `ExcFrame` occupies the top 128 bytes of the stack.
    let vector = unsafe { (*((top - size_of::<ExcFrame>() as u64) as *const ExcFrame)).vector };
    process::exit_current(Some(KILLED_HANDLER_FAULT - vector as i64))
}

/// Make an interrupted fault handler's frame end its thread when the
/// interrupt returns: resume in [`handler_failed`] on the stack just
/// below the exception frame, interrupts off.
pub fn abort_frame(frame: &mut TrapFrame) {
    let top = strands::stack_top(strand::current().index());
    // As if called: RSP ≡ 8 (mod 16) at the first instruction.
    frame.rsp = top - size_of::<ExcFrame>() as u64 - 8;
    frame.rip = handler_failed as *const () as u64;
    frame.rflags &= !trap::RFLAGS_IF;
}

/// An exception in kernel mode reached through the generic stub: a bug.
pub(crate) fn kernel_exception(frame: &mut TrapFrame) {
    panic!(
        "{} in kernel mode: rip={:#x} error={:#x} cr2={:#x}",
        trap::exception_name(frame.vector),
        frame.rip,
        frame.error_code,
        shared_hal::cpu::cr2()
    );
}

/// Point the user-exception vectors at the stubs (once, when the first
/// process starts: the HAL's self-tests use the generic paths before).
pub fn install(_key: &KernelKey) {
    let stubs: [extern "C" fn(); 5] = [stub_de, stub_bp, stub_ud, stub_gp, stub_pf];
    for (k, (v, s)) in VECTORS.iter().zip(stubs).enumerate() {
        GENERIC[k].store(trap::stub_address(*v), Ordering::Relaxed);
        trap::set_handler(*v, kernel_exception);
        // SAFETY: `s` is an exception entry stub that handles both rings;
        // ring 3 may raise #BP with int3, so that gate is DPL 3.
        unsafe {
            idt::set_gate(
                *v,
                s as *const () as u64,
                if *v == vector::BREAKPOINT { Dpl::User } else { Dpl::Kernel },
                0,
            )
        };
    }
}
