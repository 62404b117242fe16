//! The basic system calls of user processes (ring 0, safe Rust): null,
//! exit, write, yield, and the kernel threads and semaphores that the
//! "layered" user-thread package is built on.
//!
//! Each call is a handler installed on its member of the SystemCall event
//! family. Every argument is an allegation from user space: pointers are
//! range-checked and copied through `UserServices` (which checks the
//! mapping), handles are looked up in tables that record the owning
//! process, so another process's handle is refused with `BadHandle`.
//!
//! What one process may hold here is bounded by spin-abi's quotas (thread
//! ids not yet joined, semaphores: `Limit` past them), and no call
//! allocates infallibly: semaphores are preallocated, tables grow by
//! `try_reserve` (`NoMemory` when the heap is full).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use spin_interface::abi::{Error, MAX_SEMAPHORES_PER_PROCESS, MAX_THREAD_RECORDS_PER_PROCESS, Return, nr};
use spin_interface::sync::{Condition, Mutex, Once, SpinLock};
use spin_interface::threads::{ThreadError, ThreadId};
use spin_interface::user::{self, Process, SYSTEM_CALLS, SyscallArgs, UserServices};
use spin_interface::{ExportTable, Extension, Import, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("syscalls", init);

static USER: Once<&'static UserServices> = Once::new();
static JOIN: Import<ThreadId, Result<(), ThreadError>> = Import::new("Threads", "join");
static YIELD: Import<(), ()> = Import::new("Threads", "yield");

fn user() -> &'static UserServices {
    USER.get().expect("set in init")
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static UserServices = ctx.lookup("kernel", "Trusted.User", "services")?;
    USER.call_once(|| services);
    ctx.resolve("threads", &[&JOIN, &YIELD])?;
    let me = ctx.identity();
    let calls: [(u64, Handler); 10] = [
        (nr::NULL, null),
        (nr::EXIT, exit),
        (nr::WRITE, write),
        (nr::YIELD, yield_now),
        (nr::THREAD_SPAWN, thread_spawn),
        (nr::THREAD_JOIN, thread_join),
        (nr::THREAD_EXIT, thread_exit),
        (nr::SEM_CREATE, sem_create),
        (nr::SEM_SIGNAL, sem_signal),
        (nr::SEM_WAIT, sem_wait),
    ];
    for (n, handler) in calls {
        SYSTEM_CALLS[n as usize].install(me, handler, None)?;
    }
    user::PROCESS_REAPED.install(me, reaped, None)?;
    user::PROCESS_KILLED.install(me, killed, None)?;
    Ok(ExportTable::new().procedure("Syscalls", "semaphores", semaphores))
}

/// How many semaphores exist (tests check reaping frees them).
fn semaphores(_: ()) -> usize {
    OWNERS.lock().iter().filter(|s| s.is_some()).count()
}

/// A process ended: forget its threads and free its semaphores (their
/// slots are reused; a stale handle names a slot whose owner differs).
/// Nothing here allocates: reaping must work with the heap full.
fn reaped(p: Process) {
    {
        let mut threads = THREADS.lock();
        let mut joining = JOINING.lock();
        joining.retain(|(_, t)| !threads.iter().any(|(x, o)| x == t && *o == p));
        threads.retain(|(_, o)| *o != p);
        // The last process gone: give the tables' memory back too.
        if threads.is_empty() {
            *threads = Vec::new();
        }
        if joining.is_empty() {
            *joining = Vec::new();
        }
    }
    for (i, sem) in SEMS.iter().enumerate() {
        if OWNERS.lock()[i] == Some(p) {
            // No thread is inside it: the process's threads have all
            // ended, and no other process may name it.
            *sem.count.lock() = 0;
            OWNERS.lock()[i] = None;
        }
    }
}

/// A process was asked to end: wake its threads waiting on its
/// semaphores, so that they see it and end (see `sem_wait`).
fn killed(p: Process) {
    for (i, sem) in SEMS.iter().enumerate() {
        if OWNERS.lock()[i] == Some(p) {
            // Under the semaphore's lock: a waiter between its check and its
            // wait cannot miss this (and on one CPU it cannot be there anyway).
            let _held = sem.count.lock();
            sem.nonzero.broadcast();
        }
    }
}

/// A system-call handler.
type Handler = fn(SyscallArgs) -> Return;

fn current() -> Result<Process, Error> {
    user().current_process().ok_or(Error::BadState)
}

/// `null()`: the cheapest possible system call.
fn null(_: SyscallArgs) -> Return {
    Return::ok(0)
}

/// `exit(code)`: the whole process ends (see `UserServices::exit_process`).
fn exit(a: SyscallArgs) -> Return {
    user().exit_process(a.0[0] as i64)
}

fn thread_exit(_: SyscallArgs) -> Return {
    user().exit_current(None)
}

/// Most bytes one `write` may print.
const MAX_WRITE: u64 = 4096;

fn write(a: SyscallArgs) -> Return {
    let [ptr, len, ..] = a.0;
    if len > MAX_WRITE {
        return Return::err(Error::BadLength);
    }
    if let Err(e) = spin_interface::user::check_user_range(ptr, len.max(1)) {
        return Return::err(e);
    }
    let mut buf = [0u8; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        if let Err(e) = user().copy_from_user(ptr + done, &mut buf[..n]) {
            return Return::err(e);
        }
        user().console_write(&buf[..n]);
        done += n as u64;
    }
    Return::ok(len)
}

fn yield_now(_: SyscallArgs) -> Return {
    let _ = YIELD.call(());
    user().end_if_killed();
    Return::ok(0)
}

/// Thread ids handed to processes and not yet joined: (thread, owner).
/// At most `MAX_THREAD_RECORDS_PER_PROCESS` per process, so a process
/// that spawns and never joins is refused (`Limit`) instead of growing
/// this table until the heap is gone.
static THREADS: SpinLock<Vec<(ThreadId, Process)>> = SpinLock::new(Vec::new());

fn thread_spawn(a: SyscallArgs) -> Return {
    let [entry, stack_top, arg, ..] = a.0;
    let run = || {
        let p = current()?;
        {
            let mut threads = THREADS.lock();
            if threads.iter().filter(|(_, o)| *o == p).count() >= MAX_THREAD_RECORDS_PER_PROCESS {
                return Err(Error::Limit);
            }
            // Room for the record first: a thread we could not record
            // could never be joined.
            threads.try_reserve(1).map_err(|_| Error::NoMemory)?;
        }
        let t = user().spawn_thread(p, entry, stack_top, arg)?;
        let mut threads = THREADS.lock();
        // Reserved above (the kernel is not preempted; should a strand
        // have run in between and taken the room, try once more: a thread
        // left unrecorded still ends, it just cannot be joined).
        if threads.try_reserve(1).is_ok() {
            threads.push((t, p));
        }
        Ok(t.0)
    };
    run().into()
}

/// Joins in progress: (the joining thread's strand index, its target).
/// A thread package's thread id carries its strand index in the low bits.
static JOINING: SpinLock<Vec<(usize, ThreadId)>> = SpinLock::new(Vec::new());

fn strand_of(t: ThreadId) -> usize {
    (t.0 & 0xffff_ffff) as usize
}

/// Record that the current strand joins `t`, unless that could never end:
/// `t` already has a joiner (`Busy`: only one would be woken), or `t` is,
/// through a chain of joins, joining the current strand (`BadState`: a
/// cycle no kill could break). Every join chain then ends at a thread that
/// a kill does end (in user mode, or woken from a semaphore).
fn begin_join(t: ThreadId) -> Result<(), Error> {
    let me = spin_interface::strand::current().index();
    let mut joining = JOINING.lock();
    if joining.iter().any(|(_, x)| *x == t) {
        return Err(Error::Busy);
    }
    let mut at = t;
    // Each live strand joins at most one thread: the chain is finite.
    for _ in 0..=joining.len() {
        if strand_of(at) == me {
            return Err(Error::BadState);
        }
        match joining.iter().find(|(j, _)| *j == strand_of(at)) {
            Some((_, next)) => at = *next,
            None => break,
        }
    }
    joining.try_reserve(1).map_err(|_| Error::NoMemory)?;
    joining.push((me, t));
    Ok(())
}

fn thread_join(a: SyscallArgs) -> Return {
    let run = || {
        let p = current()?;
        let t = ThreadId(a.0[0]);
        if !THREADS.lock().iter().any(|(x, o)| *x == t && *o == p) {
            return Err(Error::BadHandle);
        }
        begin_join(t)?;
        let joined = JOIN.call(t);
        JOINING.lock().retain(|(_, x)| *x != t);
        match joined {
            // `NoSuchThread` for a thread we recorded: it ended, and the
            // thread package gave its record to a later thread on the same
            // strand. It is joined all the same (before, this answered
            // `BadHandle` and the id stayed recorded until the process
            // was reaped).
            Ok(Ok(()) | Err(ThreadError::NoSuchThread)) => {}
            Ok(Err(ThreadError::SelfJoin)) => return Err(Error::BadState),
            _ => return Err(Error::BadHandle),
        }
        THREADS.lock().retain(|(x, _)| *x != t);
        Ok(0)
    };
    let r = run();
    // The join may have waited for a thread that ended because the
    // process was killed: then this one ends too (nothing is held here).
    user().end_if_killed();
    r.into()
}

/// A counting semaphore: a lock and a condition variable.
struct Semaphore {
    count: Mutex<u64>,
    nonzero: Condition,
}

/// Most semaphores in the system.
const MAX_SEMAPHORES: usize = 1024;
/// The semaphores, by handle − 1: preallocated, so creating one allocates
/// nothing (it cannot fail for want of heap) and a wait holds a plain
/// reference. A slot is free for reuse once its owner is reaped: no
/// thread is inside it then (see `reaped`).
static SEMS: [Semaphore; MAX_SEMAPHORES] =
    [const { Semaphore { count: Mutex::new(0), nonzero: Condition::new() } }; MAX_SEMAPHORES];
/// Who owns each semaphore (`None`: a free slot).
static OWNERS: SpinLock<[Option<Process>; MAX_SEMAPHORES]> = SpinLock::new([None; MAX_SEMAPHORES]);

fn sem_create(_: SyscallArgs) -> Return {
    let run = || {
        let p = current()?;
        let mut owners = OWNERS.lock();
        if owners.iter().filter(|o| **o == Some(p)).count() >= MAX_SEMAPHORES_PER_PROCESS {
            return Err(Error::Limit);
        }
        let slot = owners.iter().position(Option::is_none).ok_or(Error::NoMemory)?;
        owners[slot] = Some(p);
        Ok(slot as u64 + 1)
    };
    run().into()
}

fn semaphore(handle: u64) -> Result<&'static Semaphore, Error> {
    let p = current()?;
    let i = handle.checked_sub(1).ok_or(Error::BadHandle)? as usize;
    match (OWNERS.lock().get(i), SEMS.get(i)) {
        (Some(Some(owner)), Some(sem)) if *owner == p => Ok(sem),
        _ => Err(Error::BadHandle),
    }
}

fn sem_signal(a: SyscallArgs) -> Return {
    let run = || {
        let sem = semaphore(a.0[0])?;
        *sem.count.lock() += 1;
        sem.nonzero.signal();
        Ok(0)
    };
    run().into()
}

fn sem_wait(a: SyscallArgs) -> Return {
    let run = || {
        let sem = semaphore(a.0[0])?;
        let mut c = sem.count.lock();
        while *c == 0 {
            if user().killed() {
                // Woken by `killed`: give up (the caller ends below).
                return Err(Error::BadState);
            }
            c = sem.nonzero.wait(c);
        }
        *c -= 1;
        Ok(0)
    };
    let r = run();
    // The lock guard is dropped: a thread of a killed process may end
    // here without leaking it.
    user().end_if_killed();
    r.into()
}
