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
//! | `ut_join(id)` | wait until thread `id` exits (returns at once if it has) |
//! | `ut_exit(target)` | end the current thread (not thread 0), signalling `target` (or no one: `u64::MAX`) |
//!
//! A wait with nothing else runnable answers `BadState` instead of
//! blocking (the process would deadlock).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use spin_interface::abi::{Error, Return, nr};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::user::{Process, SYSTEM_CALLS, SyscallArgs, UserResume, UserServices, check_user_range};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension { name: "uthreads", init };

static USER: Once<&'static UserServices> = Once::new();

/// Most user threads per process.
const MAX_THREADS: usize = 64;
/// `ut_exit`'s "signal no one".
const NO_ONE: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Runnable,
    /// In `ut_signal_wait`.
    Waiting,
    /// In `ut_join` for this thread.
    Joining(usize),
    Done,
}

#[derive(Clone, Copy)]
struct Thread {
    state: State,
    /// Where it resumes (meaningless while running).
    resume: UserResume,
    /// RDX when it resumes (the argument of a new thread, else 0).
    value: u64,
}

/// One process's threads.
struct Package {
    process: Process,
    threads: Vec<Option<Thread>>,
    current: usize,
    runnable: VecDeque<usize>,
}

static PACKAGES: SpinLock<Vec<Package>> = SpinLock::new(Vec::new());

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
    Ok(ExportTable::new())
}

/// Run `f` on the current process's package (made on first use, with the
/// caller as thread 0).
fn with_package<R>(f: impl FnOnce(&mut Package) -> Result<R, Error>) -> Result<R, Error> {
    let u = user();
    let process = u.current_process().ok_or(Error::BadState)?;
    let mut all = PACKAGES.lock();
    let index = match all.iter().position(|p| p.process == process) {
        Some(i) => i,
        None => {
            // A new package: drop those of processes that no longer exist.
            all.retain(|p| u.context(p.process).is_some());
            let main = Thread { state: State::Running, resume: UserResume::default(), value: 0 };
            let mut threads = Vec::with_capacity(8);
            threads.push(Some(main));
            all.push(Package { process, threads, current: 0, runnable: VecDeque::with_capacity(8) });
            all.len() - 1
        }
    };
    f(&mut all[index])
}

impl Package {
    fn thread(&mut self, id: u64) -> Result<&mut Thread, Error> {
        self.threads.get_mut(id as usize).and_then(Option::as_mut).ok_or(Error::BadHandle)
    }

    fn wake(&mut self, id: usize) {
        if let Some(Some(t)) = self.threads.get_mut(id)
            && (t.state == State::Waiting || t.state == State::Joining(usize::MAX))
        {
            t.state = State::Runnable;
            t.value = 0;
            self.runnable.push_back(id);
        }
    }

    /// Leave the current thread in `state` and make the system call return
    /// into the next runnable thread. Returns that thread's RDX value.
    fn switch(&mut self, state: State) -> Result<u64, Error> {
        let next = *self.runnable.front().ok_or(Error::BadState)?;
        let t = self.threads[next].as_mut().ok_or(Error::BadState)?;
        let (rip, rsp, value) = (t.resume.rip, t.resume.rsp, t.value);
        // One kernel call: the system call now returns into `next` (same
        // address space), and we learn where the current thread resumes.
        let (resume, _) = user().transfer(self.process, rip, rsp)?;
        self.runnable.pop_front();
        if let Some(Some(t)) = self.threads.get_mut(next) {
            t.state = State::Running;
        }
        if let Some(Some(t)) = self.threads.get_mut(self.current) {
            t.state = state;
            t.resume = resume;
        }
        self.current = next;
        Ok(value)
    }
}

fn fork(a: SyscallArgs) -> Return {
    let [entry, stack_top, arg, ..] = a.0;
    let run = || {
        check_user_range(entry, 1)?;
        check_user_range(stack_top.checked_sub(8).ok_or(Error::BadAddress)?, 8)?;
        let flags = user().syscall_resume().rflags;
        with_package(|p| {
            let t = Thread {
                state: State::Runnable,
                resume: UserResume { rip: entry, rsp: stack_top - 8, rflags: flags },
                value: arg,
            };
            let id = match p.threads.iter().position(Option::is_none) {
                Some(i) => i,
                None if p.threads.len() < MAX_THREADS => {
                    p.threads.push(None);
                    p.threads.len() - 1
                }
                None => return Err(Error::NoMemory),
            };
            p.threads[id] = Some(t);
            p.runnable.push_back(id);
            Ok(id as u64)
        })
    };
    run().into()
}

fn signal_wait(a: SyscallArgs) -> Return {
    let target = a.0[0];
    with_package(|p| {
        p.thread(target)?;
        p.wake(target as usize);
        if p.runnable.is_empty() {
            return Err(Error::BadState);
        }
        p.switch(State::Waiting)
    })
    .into()
}

fn join(a: SyscallArgs) -> Return {
    let id = a.0[0];
    with_package(|p| {
        if id as usize == p.current {
            return Err(Error::BadState);
        }
        if p.thread(id)?.state == State::Done {
            p.threads[id as usize] = None;
            return Ok(0);
        }
        p.switch(State::Joining(id as usize))
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
        let mut joined = false;
        for j in 0..p.threads.len() {
            if let Some(Some(t)) = p.threads.get_mut(j)
                && t.state == State::Joining(me)
            {
                t.state = State::Joining(usize::MAX);
                joined = true;
                p.wake(j);
            }
        }
        if target != NO_ONE {
            p.wake(target as usize);
        }
        let value = p.switch(State::Done)?;
        if joined {
            // The joiner's `ut_join` returns now: the thread is consumed.
            p.threads[me] = None;
        }
        Ok(value)
    })
    .into()
}
