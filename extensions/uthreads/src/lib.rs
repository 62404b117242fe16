//! Integrated user-level threads (ring 0, safe Rust): SPIN's "user
//! integrated" thread package, whose scheduling lives in an extension.
//!
//! A user thread here is only a saved user context (RIP, RSP, RFLAGS) in
//! the extension's table; it has no kernel stack and no strand. All user
//! threads of a process run on the process's strand: a call that blocks
//! one of them saves where its system call would return and makes the
//! call return into the next runnable one instead (the registers the
//! kernel does not restore are saved by the user-side wrapper on the
//! thread's own stack). Thread 0 is the thread that first used the
//! package.
//!
//! | call | does |
//! |---|---|
//! | `ut_fork(entry, stack_top, arg)` | a new runnable thread entered at `entry`, RSP = `stack_top` − 8, RDX = `arg`; returns its id |
//! | `ut_signal_wait(target)` | make `target` runnable if it waits, then wait for a signal |
//! | `ut_join(id)` | wait until thread `id` exits (returns at once if it has; one joiner per thread, `Busy` for a second) |
//! | `ut_exit(target)` | end the current thread (not thread 0), signalling `target` (or no one: `u64::MAX`) |
//!
//! A wait with nothing else runnable answers `BadState` instead of
//! blocking (the process would deadlock).
//!
//! # The switch path
//!
//! Each process's package sits at its `Process::slot` in a fixed table (a
//! boxed package per process that uses threads, dropped when the process
//! is reaped); threads are a fixed array and the run queue a ring of
//! thread numbers, so a switch allocates nothing and searches nothing:
//! one lock, a few loads and stores, and one kernel call
//! (`UserServices::exchange_resume`) that makes the system call return
//! into the next thread and says where the current one resumes.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use spin_interface::abi::{Error, Return, nr};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::user::{
    self, MAX_PROCESSES, Process, ResumePoint, SYSTEM_CALLS, SyscallArgs, UserServices,
};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("uthreads", init);

static USER: Once<&'static UserServices> = Once::new();

/// Most user threads per process (`Limit` past it).
const MAX_THREADS: usize = spin_interface::abi::MAX_UTHREADS_PER_PROCESS;
/// `ut_exit`'s "signal no one".
const NO_ONE: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Runnable,
    /// In `ut_signal_wait`.
    Waiting,
    /// In `ut_join` for a thread ...
    Joining,
    /// ... which has exited: runnable once woken.
    Joined,
    Done,
}

/// "Nobody joins this thread."
const NOBODY: u8 = u8::MAX;

#[derive(Clone, Copy)]
struct Thread {
    state: State,
    /// The thread waiting in `ut_join` for this one, or [`NOBODY`].
    joiner: u8,
    /// Where it resumes (while running: where it entered the package).
    resume: ResumePoint,
    /// RDX when it resumes (the argument of a new thread, else 0).
    value: u64,
}

/// One process's threads.
struct Package {
    process: Process,
    threads: [Option<Thread>; MAX_THREADS],
    current: u8,
    /// Runnable threads, oldest first: a ring of `len` numbers from `head`.
    queue: [u8; MAX_THREADS],
    head: u8,
    len: u8,
}

/// A package on the heap. An array of one, because that is what a
/// fallible allocation in safe Rust gives (`Vec::try_reserve_exact`, then
/// `Box<[T]>` into `Box<[T; 1]>`); indexing it costs nothing.
type Boxed = Box<[Package; 1]>;

/// Packages by `Process::slot`.
static PACKAGES: SpinLock<[Option<Boxed>; MAX_PROCESSES]> = SpinLock::new([const { None }; MAX_PROCESSES]);

fn user() -> &'static UserServices {
    USER.get().expect("set in init")
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static UserServices = ctx.lookup("kernel", "Trusted.User", "services")?;
    USER.call_once(|| services);
    let me = ctx.identity();
    SYSTEM_CALLS[nr::UT_FORK as usize].install(me, fork, None)?;
    SYSTEM_CALLS[nr::UT_SIGNAL_WAIT as usize].install(me, signal_wait, None)?;
    SYSTEM_CALLS[nr::UT_JOIN as usize].install(me, join, None)?;
    SYSTEM_CALLS[nr::UT_EXIT as usize].install(me, exit, None)?;
    user::PROCESS_REAPED.install(me, reaped, None)?;
    Ok(ExportTable::new().procedure("Uthreads", "packages", packages))
}

/// How many processes have a package (tests check reaping frees them).
fn packages(_: ()) -> usize {
    PACKAGES.lock().iter().filter(|p| p.is_some()).count()
}

/// A process ended: drop its package.
fn reaped(p: Process) {
    let dead = {
        let mut all = PACKAGES.lock();
        match all.get_mut(p.slot()) {
            Some(slot) if slot.as_ref().is_some_and(|pkg| pkg[0].process == p) => slot.take(),
            _ => None,
        }
    };
    drop(dead); // freed after the lock is released
}

/// Run `f` on the current process's package (made on first use, with the
/// caller as thread 0).
#[inline(always)]
fn with_package<R>(f: impl FnOnce(&mut Package) -> Result<R, Error>) -> Result<R, Error> {
    let process = user().current_process().ok_or(Error::BadState)?;
    let mut all = PACKAGES.lock();
    let slot = all.get_mut(process.slot()).ok_or(Error::BadState)?;
    // One call of `f`, so that it is inlined here (the switch path).
    let pkg = match slot {
        Some(pkg) if pkg[0].process == process => pkg,
        // None, or a package a reaped process left (if it was never told).
        _ => slot.insert(new_package(process, user().syscall_resume_point()?)?),
    };
    f(&mut pkg[0])
}

/// A new package, or `NoMemory` if the heap has no room for it.
#[cold]
#[inline(never)]
fn new_package(process: Process, here: ResumePoint) -> Result<Boxed, Error> {
    let mut threads = [None; MAX_THREADS];
    threads[0] = Some(Thread { state: State::Running, joiner: NOBODY, resume: here, value: 0 });
    let mut one = Vec::new();
    one.try_reserve_exact(1).map_err(|_| Error::NoMemory)?;
    one.push(Package { process, threads, current: 0, queue: [0; MAX_THREADS], head: 0, len: 0 });
    one.into_boxed_slice().try_into().map_err(|_| Error::NoMemory)
}

impl Package {
    fn thread(&mut self, id: u64) -> Result<&mut Thread, Error> {
        self.threads.get_mut(id as usize).and_then(Option::as_mut).ok_or(Error::BadHandle)
    }

    /// Queue thread `id` (runnable now; a thread is queued once at most,
    /// since only a non-runnable thread is made runnable).
    #[inline(always)]
    fn push(&mut self, id: u8) {
        let at = (self.head as usize + self.len as usize) % MAX_THREADS;
        self.queue[at] = id;
        self.len += 1;
    }

    /// Make thread `id` runnable if it waits for a signal (or for a
    /// thread that has exited).
    #[inline(always)]
    fn wake(&mut self, id: usize) {
        if let Some(Some(t)) = self.threads.get_mut(id)
            && (t.state == State::Waiting || t.state == State::Joined)
        {
            t.state = State::Runnable;
            t.value = 0;
            self.push(id as u8);
        }
    }

    /// Leave the current thread in `state` and make the system call return
    /// into the next runnable thread. Returns that thread's RDX value.
    #[inline(always)]
    fn switch(&mut self, state: State) -> Result<u64, Error> {
        if self.len == 0 {
            return Err(Error::BadState);
        }
        let next = self.queue[self.head as usize] as usize;
        let value = self.switch_to(next, state)?;
        self.head = ((self.head as usize + 1) % MAX_THREADS) as u8;
        self.len -= 1;
        Ok(value)
    }

    /// Leave the current thread in `state` and make the system call return
    /// into thread `next` (runnable, not queued).
    #[inline(always)]
    fn switch_to(&mut self, next: usize, state: State) -> Result<u64, Error> {
        let Some(Some(t)) = self.threads.get_mut(next) else { return Err(Error::BadState) };
        // One kernel call: the system call now returns into `next`, and we
        // learn where the current thread resumes.
        // (`t.resume` was checked when it was made, so this checks nothing.)
        let resume = user().exchange_resume(t.resume)?;
        t.state = State::Running;
        let value = t.value;
        if let Some(Some(me)) = self.threads.get_mut(self.current as usize) {
            me.state = state;
            me.resume = resume;
        }
        self.current = next as u8;
        Ok(value)
    }
}

fn fork(a: SyscallArgs) -> Return {
    let [entry, stack_top, arg, ..] = a.0;
    let run = || {
        // Entered as if called: RSP = stack top − 8. The one check is the
        // resume point's (RIP a user address, the 8 bytes below RSP user
        // space); a stack top below 8 wraps and fails it.
        let start = ResumePoint::new(entry, stack_top.wrapping_sub(8))?;
        with_package(|p| {
            let id = p.threads.iter().position(Option::is_none).ok_or(Error::Limit)?;
            p.threads[id] =
                Some(Thread { state: State::Runnable, joiner: NOBODY, resume: start, value: arg });
            p.push(id as u8);
            Ok(id as u64)
        })
    };
    run().into()
}

fn signal_wait(a: SyscallArgs) -> Return {
    let target = a.0[0];
    with_package(|p| {
        let idle = p.len == 0;
        let t = p.thread(target)?;
        if idle && t.state == State::Waiting {
            // The common hand-off: nobody else is runnable, so the woken
            // thread runs next; skip the queue.
            t.value = 0;
            return p.switch_to(target as usize, State::Waiting);
        }
        p.wake(target as usize);
        p.switch(State::Waiting)
    })
    .into()
}

fn join(a: SyscallArgs) -> Return {
    let id = a.0[0];
    with_package(|p| {
        if id == p.current as u64 {
            return Err(Error::BadState);
        }
        let me = p.current;
        let t = p.thread(id)?;
        if t.state == State::Done {
            p.threads[id as usize] = None;
            return Ok(0);
        }
        if t.joiner != NOBODY {
            return Err(Error::Busy);
        }
        t.joiner = me;
        p.switch(State::Joining)
    })
    .into()
}

fn exit(a: SyscallArgs) -> Return {
    let target = a.0[0];
    with_package(|p| {
        let me = p.current;
        if me == 0 {
            return Err(Error::BadState);
        }
        // Wake whoever joins us, and the thread we were asked to signal.
        let joiner = p.threads[me as usize].map_or(NOBODY, |t| t.joiner);
        let joined = joiner != NOBODY;
        if let Some(Some(j)) = p.threads.get_mut(joiner as usize) {
            j.state = State::Joined;
            p.wake(joiner as usize);
        }
        if target != NO_ONE {
            p.wake(target as usize);
        }
        let value = p.switch(State::Done)?;
        if joined {
            // The joiner's `ut_join` returns now: the thread is consumed.
            p.threads[me as usize] = None;
        }
        Ok(value)
    })
    .into()
}
