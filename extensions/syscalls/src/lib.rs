//! The basic system calls of user processes (ring 0, safe Rust): null,
//! exit, write, yield, and the kernel threads and semaphores that the
//! "layered" user-thread package is built on.
//!
//! Each call is a handler installed on its member of the SystemCall event
//! family. Every argument is an allegation from user space: pointers are
//! range-checked and copied through `UserServices` (which checks the
//! mapping), handles are looked up in tables that record the owning
//! process, so another process's handle is refused with `BadHandle`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use spin_interface::abi::{Error, Return, nr};
use spin_interface::sync::{Condition, Mutex, Once, SpinLock};
use spin_interface::threads::{ThreadError, ThreadId};
use spin_interface::user::{self, Process, SYSTEM_CALLS, SyscallArgs, UserServices};
use spin_interface::{ExportTable, Extension, Import, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension { name: "syscalls", init };

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
    SEMAPHORES.lock().iter().filter(|s| s.is_some()).count()
}

/// A process ended: forget its threads and free its semaphores (their
/// slots are reused; a stale handle names a slot whose owner differs).
fn reaped(p: Process) {
    let gone: Vec<ThreadId> = THREADS.lock().iter().filter(|(_, o)| *o == p).map(|(t, _)| *t).collect();
    JOINING.lock().retain(|(_, t)| !gone.contains(t));
    THREADS.lock().retain(|(_, o)| *o != p);
    let dead: Vec<Arc<Semaphore>> = {
        let mut s = SEMAPHORES.lock();
        s.iter_mut()
            .filter(|x| x.as_ref().is_some_and(|(o, _)| *o == p))
            .filter_map(|x| x.take())
            .map(|(_, sem)| sem)
            .collect()
    };
    drop(dead); // freed after the lock is released
}

/// A process was asked to end: wake its threads waiting on its
/// semaphores, so that they see it and end (see `sem_wait`).
fn killed(p: Process) {
    let mine: Vec<Arc<Semaphore>> = SEMAPHORES
        .lock()
        .iter()
        .filter_map(|x| x.as_ref().filter(|(o, _)| *o == p).map(|(_, sem)| sem.clone()))
        .collect();
    for sem in mine {
        // Under the semaphore's lock: a waiter between its check and its
        // wait cannot miss this (and on one CPU it cannot be there anyway).
        let _held = sem.count.lock();
        sem.nonzero.broadcast();
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

/// Threads spawned by processes: (thread, owner).
static THREADS: SpinLock<Vec<(ThreadId, Process)>> = SpinLock::new(Vec::new());

fn thread_spawn(a: SyscallArgs) -> Return {
    let [entry, stack_top, arg, ..] = a.0;
    let run = || {
        let p = current()?;
        let t = user().spawn_thread(p, entry, stack_top, arg)?;
        THREADS.lock().push((t, p));
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
            Ok(Ok(())) => {}
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

/// A semaphore and the process that owns it.
type Owned = (Process, Arc<Semaphore>);

/// Semaphores by handle − 1; `None` is a free slot.
static SEMAPHORES: SpinLock<Vec<Option<Owned>>> = SpinLock::new(Vec::new());
/// Most semaphores in the system.
const MAX_SEMAPHORES: usize = 1024;

fn sem_create(_: SyscallArgs) -> Return {
    let run = || {
        let p = current()?;
        let sem = Arc::new(Semaphore { count: Mutex::new(0), nonzero: Condition::new() });
        let mut s = SEMAPHORES.lock();
        let slot = match s.iter().position(Option::is_none) {
            Some(i) => i,
            None if s.len() < MAX_SEMAPHORES => {
                s.push(None);
                s.len() - 1
            }
            None => return Err(Error::NoMemory),
        };
        s[slot] = Some((p, sem));
        Ok(slot as u64 + 1)
    };
    run().into()
}

fn semaphore(handle: u64) -> Result<Arc<Semaphore>, Error> {
    let p = current()?;
    let s = SEMAPHORES.lock();
    let i = handle.checked_sub(1).ok_or(Error::BadHandle)? as usize;
    match s.get(i) {
        Some(Some((owner, sem))) if *owner == p => Ok(sem.clone()),
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
    // The lock guard and the semaphore reference are dropped: a thread of
    // a killed process may end here without leaking either.
    user().end_if_killed();
    r.into()
}
