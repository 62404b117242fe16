//! User processes (ring 0, trusted): loading programs from the ramdisk into
//! new address spaces, their threads, exit and reaping, and the trusted
//! operations behind `spin_interface::user::UserServices` (copying user
//! memory, redirecting a system call's return, registering where faults
//! are reflected). User exceptions themselves are in `uexc`.

use crate::imports;
use crate::strands::{self, MAX_STRANDS};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hal_logic::elfplan;
use shared_hal::memory::phys_to_virt;
use shared_hal::paging::{self, pte};
use shared_hal::trap::TrapFrame;
use spin::Mutex;
use spin_interface::KernelKey;
use spin_interface::abi::{self, Error};
use spin_interface::phys;
use spin_interface::strand;
use spin_interface::sync::{Condition, Mutex as BlockingMutex};
use spin_interface::threads::ThreadId;
use spin_interface::translation::{Context, Prot};
use spin_interface::user::{self, ResumePoint};

/// A process number: table slot in the low 8 bits, the slot's generation
/// above, so a number is never reused for a later process (extensions key
/// their per-process tables by it).
pub type Pid = u32;

struct Proc {
    /// Translation context number.
    ctx: u64,
    root: u64,
    /// Live threads whose home is this process.
    threads: u32,
    exit_code: Option<i64>,
    /// Asked to die: its threads end at their next timer tick in user mode.
    killed: bool,
    /// Killed by the kernel ([`kill`]), not ended by its own `exit`: the
    /// strands of other processes inside its space end too, and it takes
    /// no new cross-address-space calls. (A server that `exit`s after
    /// registering keeps serving: its space stays until it is reaped.)
    evicted: bool,
}

static PROCS: Mutex<Vec<Option<Proc>>> = Mutex::new(Vec::new());
/// Most processes at once (`Process::slot` is the table slot). One less
/// than the interface's bound: the low byte of a running strand's tag
/// (1 + pid) is then never 0 for a process, and tables indexed by it (see
/// [`tag_index`]) keep entry 0 for "no process".
pub const MAX_PROCS: usize = user::MAX_PROCESSES - 1;
/// The per-slot tables still have 256 entries (the last never used), so
/// indexing one by a pid's low byte needs no bounds check.
const SLOTS: usize = 256;

/// The index of `pid`'s entry in tables indexed by the low byte of the
/// running strand's tag (1 + pid): `slot + 1`, in 1..=255.
#[inline(always)]
pub fn tag_index(pid: Pid) -> usize {
    (pid as usize + 1) & 0xff
}

const _: () = assert!(MAX_PROCS < 256, "slot + 1 must fit the tag's low byte");
/// Each live process's page-table root, readable without the lock on the
/// cross-address-space path (0: no such process, or one that was killed:
/// it takes no more cross-address-space calls).
static ROOTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Each slot's generation (the high bits of its current Pid).
static GENS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];

/// The table slot of `pid`, if that process is the slot's current one.
#[inline]
fn slot(pid: Pid) -> Option<usize> {
    let s = (pid & 0xff) as usize;
    (GENS.get(s)?.load(Ordering::Acquire) == pid >> 8).then_some(s)
}

/// The table slot of a process that exists (no generation check).
#[inline(always)]
pub fn slot_index(pid: Pid) -> usize {
    (pid & 0xff) as usize
}

/// Each live process's Translation context number (valid while ROOTS is non-zero).
static CONTEXTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Per strand: 1 + the pid it belongs to. The pid whose address space it
/// runs in is its strand tag (`strands::set_space`): a cross-address-space
/// call moves the latter, never the former.
static HOME: [AtomicU32; MAX_STRANDS] = [const { AtomicU32::new(0) }; MAX_STRANDS];

/// Signalled whenever a process's last thread ends.
static FINISHED: BlockingMutex<u64> = BlockingMutex::new(0);
static FINISHED_CV: Condition = Condition::new();

/// How a new user thread starts.
#[derive(Clone, Copy)]
struct Start {
    pid: Pid,
    entry: u64,
    stack_top: u64,
    args: [u64; 2],
}

static STARTS: Mutex<Vec<Option<Start>>> = Mutex::new(Vec::new());
static RAMDISK: spin::Once<&'static [u8]> = spin::Once::new();
/// Exit code of a thread killed by a fault nobody handled: this minus the vector.
pub const KILLED: i64 = -1000;
/// Exit code of a process ended by [`kill`].
pub const KILLED_BY_KERNEL: i64 = -2000;

/// Why a program could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    NoRamdisk,
    NoSuchProgram,
    BadElf(elfplan::ElfError),
    Memory(phys::MemError),
    NoThread,
}

fn current_strand() -> usize {
    strand::current().index()
}

/// The process whose address space the current strand runs in.
#[inline(always)]
pub fn current_pid() -> Option<Pid> {
    (strands::current_tag() as u32).checked_sub(1)
}

/// The context number of a live process (the running one, typically).
#[inline(always)]
pub fn context_of(pid: Pid) -> u64 {
    CONTEXTS[slot_index(pid)].load(Ordering::Relaxed)
}

fn with_proc<R>(pid: Pid, f: impl FnOnce(&mut Proc) -> R) -> Option<R> {
    let s = slot(pid)?;
    PROCS.lock().get_mut(s).and_then(Option::as_mut).map(f)
}

fn key() -> &'static KernelKey {
    crate::key()
}

/// If the current strand is executing a system call of a process, the top
/// of its kernel stack (where the entry stub saved the user state).
pub fn in_syscall() -> Option<u64> {
    // Not a guess from "has a process": an exception, interrupt or fault
    // event from ring 3 must never be taken for a system call.
    current_pid()?;
    let top = strands::stack_top(current_strand());
    // A strand without a stack of its own (the boot strand) is in no
    // system call, whatever the tag says.
    (top != 0 && crate::sysentry::in_progress(top)).then_some(top)
}

/// Remember the ramdisk (at boot).
pub fn set_ramdisk(r: Option<&'static [u8]>) {
    if let Some(r) = r {
        RAMDISK.call_once(|| r);
    }
}

/// The boot archive, if the loader gave one.
pub fn ramdisk() -> Option<&'static [u8]> {
    RAMDISK.get().copied()
}

/// Load `name` from the ramdisk into a new process and start its main
/// thread with RDI, RSI = `args`.
pub fn spawn(name: &str, args: [u64; 2]) -> Result<Pid, SpawnError> {
    crate::sysentry::install(key());
    let disk = RAMDISK.get().ok_or(SpawnError::NoRamdisk)?;
    let archive = hal_logic::ramdisk::Archive::parse(disk).map_err(|_| SpawnError::NoRamdisk)?;
    let file = archive.get(name).ok_or(SpawnError::NoSuchProgram)?;
    let plan = elfplan::plan(file).map_err(SpawnError::BadElf)?;
    let ctx = Context::create().map_err(SpawnError::Memory)?;
    let load = || -> Result<(), phys::MemError> {
        for seg in &plan.segments {
            let prot = if seg.writable { Prot::ReadWrite } else { Prot::Read };
            for i in 0..seg.pages {
                let va = seg.page_start + i * 4096;
                let page = phys::allocate()?;
                // The part of the file that lands on this page.
                let lo = seg.copy_to.max(va);
                let hi = (seg.copy_to + seg.file_len).min(va + 4096);
                if lo < hi {
                    let from = (seg.file_offset + (lo - seg.copy_to)) as usize;
                    page.write((lo - va) as usize, &file[from..from + (hi - lo) as usize])?;
                }
                ctx.map(va, page, prot).map_err(|(e, _)| e)?;
            }
        }
        let stack_pages = abi::layout::STACK_PAGES;
        for i in 0..stack_pages {
            let va = abi::layout::STACK_TOP - (stack_pages - i) * 4096;
            ctx.map(va, phys::allocate()?, Prot::ReadWrite).map_err(|(e, _)| e)?;
        }
        Ok(())
    };
    if let Err(e) = load() {
        let _ = ctx.destroy();
        return Err(SpawnError::Memory(e));
    }
    let root = crate::spaces::root_of(ctx.id()).map_err(SpawnError::Memory)?;
    // Extensions see this context through `UserServices`: only the kernel
    // may destroy it (when the process is reaped).
    crate::spaces::pin(ctx.id());
    let pid = {
        let mut procs = PROCS.lock();
        let slot = procs.iter().position(Option::is_none).unwrap_or(procs.len());
        if slot >= MAX_PROCS {
            drop(procs);
            let _ = ctx.destroy();
            return Err(SpawnError::Memory(phys::MemError::OutOfMemory));
        }
        if slot == procs.len() {
            if procs.try_reserve(1).is_err() {
                drop(procs);
                let _ = ctx.destroy();
                return Err(SpawnError::Memory(phys::MemError::OutOfMemory));
            }
            procs.push(None);
        }
        procs[slot] =
            Some(Proc { ctx: ctx.id(), root, threads: 0, exit_code: None, killed: false, evicted: false });
        let generation = GENS[slot].load(Ordering::Relaxed).wrapping_add(1) & 0x00ff_ffff;
        GENS[slot].store(generation, Ordering::Release);
        CONTEXTS[slot].store(ctx.id(), Ordering::Release);
        let pid = slot as Pid | generation << 8;
        crate::uexc::forget(pid);
        ROOTS[slot].store(root, Ordering::Release);
        pid
    };
    if start_thread(pid, plan.entry, abi::layout::STACK_TOP, args).is_err() {
        reap(pid);
        return Err(SpawnError::NoThread);
    }
    Ok(pid)
}

fn start_thread(pid: Pid, entry: u64, stack_top: u64, args: [u64; 2]) -> Result<ThreadId, Error> {
    let idx = {
        let mut starts = STARTS.lock();
        let slot = match starts.iter().position(Option::is_none) {
            Some(i) => i,
            // Reachable from `thread_spawn`: growing the table may fail.
            None => {
                starts.try_reserve(1).map_err(|_| Error::NoMemory)?;
                starts.push(None);
                starts.len() - 1
            }
        };
        starts[slot] = Some(Start { pid, entry, stack_top, args });
        slot
    };
    let counted = with_proc(pid, |p| {
        if p.killed {
            return Err(Error::BadState); // asked to end: no new threads
        }
        if p.threads >= abi::MAX_THREADS_PER_PROCESS {
            return Err(Error::Limit); // no process can take every kernel thread
        }
        p.threads += 1;
        Ok(())
    });
    if let Err(e) = counted.unwrap_or(Err(Error::BadHandle)) {
        STARTS.lock()[idx] = None;
        return Err(e);
    }
    imports::fork(user_main, idx).map_err(|_| {
        STARTS.lock()[idx] = None;
        with_proc(pid, |p| p.threads -= 1);
        Error::NoMemory
    })
}

/// A user thread's first kernel code: enter ring 3.
fn user_main(start: usize) {
    let s = STARTS.lock()[start].take().expect("a start record for every user thread");
    let me = current_strand();
    let Some(root) = with_proc(s.pid, |p| p.root) else {
        return; // the process was reaped before the thread ran
    };
    HOME[me].store(s.pid + 1, Ordering::Relaxed);
    strands::set_space(me, root, s.pid as u64 + 1, true);
    let mut frame = TrapFrame::new_user(s.entry, s.stack_top - 8);
    frame.rdi = s.args[0];
    frame.rsi = s.args[1];
    shared_hal::cpu::disable_interrupts();
    // SAFETY: a ring-3 frame at a user entry point, in the address space
    // just loaded; the strand's kernel stack is TSS.RSP0.
    unsafe { shared_hal::trap::enter(&frame) }
}

/// End the current thread (see `UserServices::exit_current`).
pub fn exit_current(code: Option<i64>) -> ! {
    let me = current_strand();
    if let Some(pid) = HOME[me].load(Ordering::Relaxed).checked_sub(1) {
        let last = with_proc(pid, |p| {
            if p.exit_code.is_none() {
                p.exit_code = code;
            }
            p.threads -= 1;
            p.threads == 0
        });
        HOME[me].store(0, Ordering::Relaxed);
        // Out of whatever space it ran in (its own, or a server's during a
        // cross-address-space call): that space may now be reaped.
        strands::set_space(me, paging::kernel_root(), 0, true);
        // Extensions drop what they kept for the strand (calls it was in).
        let _ = user::THREAD_ENDED.event(key()).raise_contained(strand::current());
        if last == Some(true) {
            *FINISHED.lock() += 1;
            FINISHED_CV.broadcast();
        }
    }
    let _ = imports::EXIT.call(());
    unreachable!("the thread package resumed a finished thread");
}

/// Ask process `pid` to end, with exit code [`KILLED_BY_KERNEL`] unless
/// one is recorded already: threads in user mode end at their next timer
/// tick there; threads blocked in an extension are woken by
/// `User.ProcessKilled` and end when they see the flag. The same goes for
/// other processes' threads inside its address space (clients in a
/// cross-address-space call): they end too, recording
/// [`KILLED_BY_KERNEL`] for their own process unless it has an exit code
/// (SPIN's migrating thread dies with the server it is in). From now on
/// the process takes no new cross-address-space calls (`BadHandle`).
/// Returns whether the process exists.
pub fn kill(pid: Pid) -> bool {
    if with_proc(pid, |p| p.evicted = true).is_none() {
        return false;
    }
    ROOTS[slot_index(pid)].store(0, Ordering::Release);
    end_process(pid, KILLED_BY_KERNEL)
}

/// Ask process `pid`'s own threads to end (see [`kill`]), recording
/// `code` unless an exit code is recorded already.
fn end_process(pid: Pid, code: i64) -> bool {
    let first = with_proc(pid, |p| {
        p.exit_code.get_or_insert(code);
        !core::mem::replace(&mut p.killed, true)
    });
    if first == Some(true) {
        // Contained: a faulting handler is unloaded, the others still run.
        let _ = user::PROCESS_KILLED.event(key()).raise_contained(user::Process::from_number(key(), pid));
    }
    first.is_some()
}

/// Whether the current strand must end: its own process (its home) has
/// been asked to end, or the one whose address space it is in (a server
/// it called into) has been killed by the kernel.
fn current_killed() -> bool {
    let home = HOME[current_strand()].load(Ordering::Relaxed).checked_sub(1);
    let here = current_pid();
    let ask = |p: Option<Pid>, f: fn(&Proc) -> bool| p.and_then(|p| with_proc(p, |p| f(p))).unwrap_or(false);
    // At home (the usual case) one lookup: an evicted process is killed too.
    ask(home, |p| p.killed) || (here != home && ask(here, |p| p.evicted))
}

/// The timer interrupted user code: end the thread if it must end (see
/// [`current_killed`]), otherwise give the CPU to the next runnable strand
/// (time slicing; user code holds no kernel locks, so switching here is
/// safe).
pub fn on_user_tick() {
    if current_killed() {
        exit_current(Some(KILLED_BY_KERNEL));
    }
    let _ = imports::YIELD.call(());
    if current_killed() {
        exit_current(Some(KILLED_BY_KERNEL));
    }
}

/// Wait until every thread of `pid` has ended; returns its exit code.
pub fn wait(pid: Pid) -> Option<i64> {
    let mut g = FINISHED.lock();
    loop {
        match with_proc(pid, |p| (p.threads, p.exit_code)) {
            None => return None,
            Some((0, code)) => return Some(code.unwrap_or(0)),
            Some(_) => g = FINISHED_CV.wait(g),
        }
    }
}

/// Whether every thread of `pid` has ended (or it does not exist): what
/// [`wait`] waits for, without blocking.
pub fn finished(pid: Pid) -> bool {
    with_proc(pid, |p| p.threads == 0).unwrap_or(true)
}

/// Whether a strand runs (or will run when resumed) in `pid`'s address
/// space: one of its own threads, or a visitor in a cross-address-space
/// call.
pub fn occupied(pid: Pid) -> bool {
    strands::any_tagged(pid as u64 + 1)
}

/// Free a finished process's address space and everything mapped in it.
/// Refused (false) while the process has live threads, or while another
/// process's strand is inside its space (a cross-address-space call in
/// progress): reaping then would leave that strand running on freed page
/// tables. Kill the process to make such visitors end (see [`kill`]), then
/// reap again once they have.
pub fn reap(pid: Pid) -> bool {
    let Some(s) = slot(pid) else { return false };
    let p = {
        let mut procs = PROCS.lock();
        match procs.get_mut(s) {
            // The kernel is not preempted: no strand can enter the space
            // between this check and the removal of ROOTS below.
            Some(slot @ Some(_)) if slot.as_ref().is_some_and(|p| p.threads == 0) && !occupied(pid) => {
                slot.take()
            }
            _ => None,
        }
    };
    match p {
        Some(p) => {
            // Nothing may point into the address space once it is gone.
            crate::uexc::forget(pid);
            ROOTS[s].store(0, Ordering::Release);
            crate::spaces::destroy_pinned(p.ctx);
            // Extensions drop what they kept for it (a faulting handler is
            // unloaded; the others still run).
            let _ = user::PROCESS_REAPED.event(key()).raise_contained(user::Process::from_number(key(), pid));
            true
        }
        None => false,
    }
}

/// Spawn, wait, reap: run a program to completion and return its exit code.
pub fn run(name: &str, args: [u64; 2]) -> Result<i64, SpawnError> {
    let pid = spawn(name, args)?;
    let code = wait(pid).unwrap_or(i64::MIN);
    reap(pid);
    Ok(code)
}

/// Check that `[va, va+len)` is mapped with user access (and writable if
/// `write`), then call `f(kernel pointer, chunk length)` page by page.
fn each_user_chunk(va: u64, len: usize, write: bool, mut f: impl FnMut(*mut u8, usize)) -> Result<(), Error> {
    let pid = current_pid().ok_or(Error::BadState)?;
    let root = with_proc(pid, |p| p.root).ok_or(Error::BadState)?;
    let need = pte::USER | if write { pte::WRITABLE } else { 0 };
    // Check every page first, so a failure copies nothing.
    let end = va + len as u64;
    let mut page = va & !4095;
    while page < end {
        let e = paging::entry(root, page).ok_or(Error::NotMapped)?;
        if e & need != need {
            return Err(Error::BadAddress);
        }
        page += 4096;
    }
    let mut at = va;
    while at < end {
        let e = paging::entry(root, at & !4095).ok_or(Error::NotMapped)?;
        let chunk = ((4096 - (at & 4095)).min(end - at)) as usize;
        f((phys_to_virt(e & pte::ADDR) + (at & 4095)) as *mut u8, chunk);
        at += chunk as u64;
    }
    Ok(())
}

/// Where the current system call's saved user RSP, RIP and RFLAGS are:
/// the top of the entry stack, which is the running strand's kernel stack
/// (a strand in a system call has a process, and switching to such a
/// strand sets the entry stack; see `strands::strand_switch`).
#[inline(always)]
fn saved_resume() -> *mut u64 {
    shared_hal::syscall::ENTRY_STACK.load(Ordering::Relaxed).wrapping_sub(24) as *mut u64
}

/// [`saved_resume`], if the current strand is in a system call of a
/// process. A fault handler (or an interrupt from ring 3) is not: the top
/// of the stack then holds an interrupt frame, which these words would
/// corrupt. The two are told apart by the word below the saved RFLAGS:
/// the system-call stub's call number (below `COUNT`: no handler runs for
/// another) or the interrupt frame's user CS (not below `COUNT`).
#[inline(always)]
fn syscall_frame() -> Result<*mut u64, Error> {
    syscall_frame_for(strands::current_tag())
}

/// [`syscall_frame`] for a caller that has read the running strand's tag.
#[inline(always)]
fn syscall_frame_for(tag: u64) -> Result<*mut u64, Error> {
    const _: () = assert!(shared_hal::gdt::USER_CS as u64 >= abi::nr::COUNT);
    let s = saved_resume();
    // SAFETY: a strand with a process has a kernel stack whose top is the
    // entry stack (see `saved_resume`); the word read is inside it.
    if tag as u32 == 0 || unsafe { s.sub(1).read() } >= abi::nr::COUNT {
        return Err(Error::BadState);
    }
    Ok(s)
}

fn core_current_process() -> Option<u32> {
    current_pid()
}

#[inline]
fn core_current_context() -> Option<u64> {
    // The running process exists: no generation or liveness check.
    current_pid().map(context_of)
}

fn core_exit_process(code: i64) -> ! {
    if let Some(pid) = HOME[current_strand()].load(Ordering::Relaxed).checked_sub(1) {
        end_process(pid, code);
    }
    exit_current(Some(code))
}

fn core_context_of(p: u32) -> Option<u64> {
    let s = slot(p)?;
    let live = ROOTS[s].load(Ordering::Acquire) != 0;
    live.then(|| CONTEXTS[s].load(Ordering::Acquire))
}

fn copy_from_user(va: u64, buf: &mut [u8]) -> Result<(), Error> {
    let mut done = 0;
    each_user_chunk(va, buf.len(), false, |p, n| {
        // SAFETY: `p` is `n` mapped bytes of a user page seen through the
        // physical window; `buf[done..done + n]` is ours.
        unsafe { core::ptr::copy_nonoverlapping(p, buf[done..].as_mut_ptr(), n) };
        done += n;
    })
}

fn copy_to_user(va: u64, data: &[u8]) -> Result<(), Error> {
    let mut done = 0;
    each_user_chunk(va, data.len(), true, |p, n| {
        // SAFETY: as in `copy_from_user`, in the other direction.
        unsafe { core::ptr::copy_nonoverlapping(data[done..].as_ptr(), p, n) };
        done += n;
    })
}

fn syscall_resume() -> Result<ResumePoint, Error> {
    let s = syscall_frame()?;
    // SAFETY: during a system call the entry stub saved RFLAGS, RIP and
    // RSP (upward) at the top of the current strand's kernel stack.
    unsafe { Ok(ResumePoint::from_saved(key(), s.add(1).read(), s.add(2).read())) }
}

/// The resume words of the current system call, `[RFLAGS, RIP, RSP]`.
#[inline(always)]
fn swap_resume(s: *mut u64, to: ResumePoint) -> ResumePoint {
    // SAFETY: `s` is the current system call's saved RFLAGS, RIP and RSP
    // (see `syscall_resume`); `to` was checked when it was made (or is
    // where a system call of ring 3 would have returned).
    unsafe {
        let old = ResumePoint::from_saved(key(), s.add(1).read(), s.add(2).read());
        s.add(1).write(to.rip());
        s.add(2).write(to.rsp());
        old
    }
}

fn transfer(p: u32, to: ResumePoint) -> Result<(ResumePoint, u32), Error> {
    let root = live_root(p)?;
    // One read of the tag: whether the strand runs a process (checked
    // here), and which (1 + pid).
    let tag = strands::current_tag();
    let s = syscall_frame_for(tag)?;
    let old = swap_resume(s, to);
    strands::move_running(root, p as u64 + 1);
    Ok((old, (tag as u32).wrapping_sub(1)))
}

/// [`transfer`] without handing back the point left.
fn move_to(p: u32, to: ResumePoint) -> Result<(), Error> {
    let root = live_root(p)?;
    let s = syscall_frame_for(strands::current_tag())?;
    // SAFETY: `s` is the current system call's saved RFLAGS, RIP and RSP
    // (see `syscall_resume`); `to` was checked when it was made.
    unsafe {
        s.add(1).write(to.rip());
        s.add(2).write(to.rsp());
    }
    strands::move_running(root, p as u64 + 1);
    Ok(())
}

/// The page-table root of live process `p` (`BadHandle` for a stale or
/// reaped handle: its root is gone).
#[inline(always)]
fn live_root(p: u32) -> Result<u64, Error> {
    match slot(p).map_or(0, |s| ROOTS[s].load(Ordering::Acquire)) {
        0 => Err(Error::BadHandle),
        root => Ok(root),
    }
}

fn exchange_resume(to: ResumePoint) -> Result<ResumePoint, Error> {
    Ok(swap_resume(syscall_frame()?, to))
}

fn set_fault_handler(entry: u64, stack_top: u64, info: u64) -> Result<(), Error> {
    crate::uexc::register(entry, stack_top, info)
}

fn core_spawn_thread(p: u32, entry: u64, stack_top: u64, arg: u64) -> Result<ThreadId, Error> {
    start_thread(p, entry, stack_top, [arg, 0])
}

/// Print user bytes, invalid UTF-8 as U+FFFD, without allocating (a
/// `write` must work with the heap full).
fn console_write(bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        shared_hal::serial::write_fmt(format_args!("{}", chunk.valid()));
        if !chunk.invalid().is_empty() {
            shared_hal::serial::write_fmt(format_args!("\u{fffd}"));
        }
    }
}

/// The kernel's process procedures, bound into the interface at boot.
static CORE: user::Core = user::Core {
    current_process: core_current_process,
    context_of: core_context_of,
    current_context: core_current_context,
    exit_current,
    exit_process: core_exit_process,
    killed: current_killed,
    copy_from_user,
    copy_to_user,
    syscall_resume,
    transfer,
    move_to,
    exchange_resume,
    set_fault_handler,
    spawn_thread: core_spawn_thread,
    console_write,
};

/// Install the process implementation.
pub fn install(key: &KernelKey, ramdisk: Option<&'static [u8]>) {
    set_ramdisk(ramdisk);
    user::install(key, &CORE);
}

/// Processes that still exist (for leak checks).
pub fn live() -> usize {
    PROCS.lock().iter().filter(|p| p.is_some()).count()
}
