//! spin-fuzz: kernel-spin's system-call fuzzer (ring 3), run by the kernel
//! test `spin::fuzz_system_calls` in every `cargo xtask test`.
//!
//! RDI = the seed of a xorshift64* generator; RSI = how many calls to make
//! in the low 32 bits (0: the heap-exhaustion mode, [`every_call_once`]),
//! a foreign semaphore handle in bits 32..48 and a foreign server handle
//! in bits 48..64 (another process's, live). Every call number, known and
//! unknown, gets arguments drawn from hostile pools (kernel-half,
//! non-canonical, unaligned and wrapping addresses, this process's own
//! mapped memory, huge lengths and counts, stale, foreign and random
//! handles), interleaved with exhaustion phases (thread ids, live threads,
//! semaphores, frames, server slots, integrated user threads, time
//! slices); the kernel test fills the kernel heap meanwhile.
//!
//! Every answer must be a status the ABI defines (0 or an `Error` code),
//! and a call naming kernel or non-canonical memory must fail; each
//! violation is printed. Exit code: the number of calls made if there was
//! no violation, else −(violations) (an exit code of −1000 − vector means
//! the kernel ended the fuzzer for a fault it should never have had).
//!
//! Some calls are steered so the fuzzer keeps running: it never exits but
//! at the end; new threads, servers and user threads start only at entry
//! points that end or return at once (or at refused addresses); a wait on
//! a semaphore is preceded by a signal; `vm_protect` touches only the
//! scratch area. Everything else is as hostile as the pools make it.
#![no_std]
#![no_main]

use core::arch::naked_asm;
use core::ptr::addr_of_mut;
use spin_user::{Error, Return, nr, println, prot};

/// Kernel-half, non-canonical and other refused addresses.
const HOSTILE: [u64; 10] = [
    0,
    8,
    0xffff_8000_0000_0000,
    0xffff_ffff_8000_0000,
    0xffff_ffff_ffff_f000,
    u64::MAX,
    0x0000_8000_0000_0000,
    0x8000_0000_0000_0000,
    0x0000_7fff_ffff_fff8,
    0x0000_7f80_0000_0000,
];
/// Counts and lengths: zero, small, at and past every limit, huge.
const COUNTS: [u64; 14] = [0, 1, 2, 3, 16, 255, 256, 1024, 1025, 4096, 4097, 1 << 20, 1 << 40, u64::MAX];
/// Where the scratch pages are (mapped at start; `vm_protect` goes here).
const SCRATCH: u64 = 0x4000_0000_0000;
const SCRATCH_PAGES: u64 = 16;
/// Where the frame-exhaustion phase maps.
const HOG: u64 = 0x5000_0000_0000;
/// Where random `vm_map`s land (any user address could; this keeps them
/// from wandering over the fuzzer's own image).
const WILD: u64 = 0x6000_0000_0000;

#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct Area([u8; 16 * 1024]);
/// Own memory for pointers (readable, writable; written only by the kernel).
static mut OWN: Area = Area([b'.'; 16 * 1024]);
/// The stack that new threads, servers and user threads are given (their
/// entries below use no stack).
static mut STACK: Area = Area([0; 16 * 1024]);

/// xorshift64*: small, fast, and any seed but 0 gives a full period.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// A new kernel thread's entry: `thread_exit` at once.
#[unsafe(naked)]
extern "C" fn thread_entry() -> ! {
    naked_asm!("mov eax, {n}", "syscall", "ud2", n = const nr::THREAD_EXIT)
}

/// A server entry: `xas_return(arg)` at once.
#[unsafe(naked)]
extern "C" fn server_entry() -> ! {
    naked_asm!("mov rdi, rdx", "mov eax, {n}", "syscall", "ud2", n = const nr::XAS_RETURN)
}

/// A user thread's entry: `ut_exit(0)` (wake thread 0, which is waiting or
/// joining, or runnable, whenever another thread runs).
#[unsafe(naked)]
extern "C" fn uthread_entry() -> ! {
    naked_asm!("xor edi, edi", "mov eax, {n}", "syscall", "ud2", n = const nr::UT_EXIT)
}

/// The raw system call: the status word as the kernel left it.
fn raw(n: u64, a: [u64; 6]) -> Return {
    spin_user::syscall_raw(n, a)
}

fn user_addr(a: u64) -> bool {
    (0x1000..0x0000_7f80_0000_0000).contains(&a)
}

struct Fuzz {
    rng: Rng,
    /// The statuses of the first calls (printed in the heap-exhaustion mode).
    first: [u8; 32],
    calls: u64,
    violations: u64,
    foreign_sem: u64,
    foreign_server: u64,
    /// Thread ids not yet joined.
    threads: [u64; 80],
    nthreads: usize,
    /// Ids joined already (stale).
    stale: [u64; 8],
    /// Integrated user threads not yet joined.
    uthreads: [u64; 70],
    nuthreads: usize,
    /// Handles this process got (semaphores, servers).
    sems: [u64; 70],
    nsems: usize,
    servers: [u64; 8],
    nservers: usize,
    /// Frames the exhaustion phase mapped (where the next chunk goes).
    hog_at: u64,
}

impl Fuzz {
    /// Make one call and check its answer.
    fn call(&mut self, n: u64, a: [u64; 6]) -> Return {
        let r = if matches!(n, nr::UT_SIGNAL_WAIT | nr::UT_JOIN | nr::UT_EXIT) {
            // May return into another user thread: the wrapper keeps our registers.
            spin_user::uthread::blocking(n, a[0])
        } else {
            raw(n, a)
        };
        if let Some(slot) = self.first.get_mut(self.calls as usize) {
            *slot = r.status.min(255) as u8;
        }
        self.calls += 1;
        let typed = r.status == 0 || Error::from_code(r.status).is_some();
        let refused_pointer = match n {
            nr::WRITE => a[1] != 0 && !user_addr(a[0]),
            nr::VM_MAP | nr::VM_PROTECT | nr::VM_DIRTY => !user_addr(a[0]),
            nr::VM_HANDLER => !(user_addr(a[0]) && user_addr(a[2])),
            _ => false,
        };
        let wrong = if !typed {
            Some("an untyped status")
        } else if n >= nr::COUNT && r.status != Error::UnknownCall.code() {
            Some("an unknown number answered other than UnknownCall")
        } else if refused_pointer && r.status == 0 {
            Some("a kernel or non-canonical address was accepted")
        } else {
            None
        };
        if let Some(why) = wrong {
            self.violations += 1;
            if self.violations <= 20 {
                println!("spin-fuzz: VIOLATION call {n} {a:x?} -> ({}, {:#x}): {why}", r.status, r.value);
            }
        }
        r
    }

    fn own(&mut self) -> u64 {
        let base = addr_of_mut!(OWN) as u64;
        base + self.rng.below(16 * 1024)
    }

    fn stack_top() -> u64 {
        addr_of_mut!(STACK) as u64 + 16 * 1024
    }

    /// An address from the pools.
    fn addr(&mut self) -> u64 {
        match self.rng.below(8) {
            0 | 1 => self.rng.pick(&HOSTILE),
            2 => self.own(),
            3 => Self::stack_top() - self.rng.below(4096),
            4 => SCRATCH + self.rng.below(SCRATCH_PAGES * 4096),
            5 => (self.rng.next() & 0x7fff_ffff_f000) | (self.rng.below(2) * self.rng.below(4096)),
            6 => WILD + (self.rng.below(1 << 20) << 12) + self.rng.below(2) * 8,
            _ => self.rng.next(),
        }
    }

    /// A handle from the pools: own, stale, foreign, small, random.
    fn handle(&mut self) -> u64 {
        match self.rng.below(9) {
            0 if self.nsems > 0 => self.sems[self.rng.below(self.nsems as u64) as usize],
            1 if self.nservers > 0 => self.servers[self.rng.below(self.nservers as u64) as usize],
            2 if self.nthreads > 0 => self.threads[self.rng.below(self.nthreads as u64) as usize],
            3 => self.rng.pick(&self.stale),
            4 => self.foreign_sem,
            5 => self.foreign_server,
            6 => self.rng.below(70),
            7 => self.rng.pick(&COUNTS),
            _ => self.rng.next(),
        }
    }

    /// Any word from any pool.
    fn word(&mut self) -> u64 {
        match self.rng.below(3) {
            0 => self.addr(),
            1 => self.rng.pick(&COUNTS),
            _ => self.handle(),
        }
    }

    /// An entry point: one that ends at once, or a refused address.
    fn entry(&mut self, good: u64) -> u64 {
        if self.rng.below(2) == 0 { good } else { self.rng.pick(&HOSTILE) }
    }

    /// One fuzzed call of number `n`.
    fn one(&mut self, n: u64) {
        let mut a = [0u64; 6];
        for w in a.iter_mut() {
            *w = self.word();
        }
        match n {
            // Exits happen only at the end.
            nr::EXIT | nr::THREAD_EXIT => return,
            nr::WRITE => {
                // Output is real: point valid lengths at the dots.
                a[0] = self.addr();
                a[1] = if self.rng.below(2) == 0 { self.rng.below(16) } else { self.rng.pick(&COUNTS) };
                if user_addr(a[0]) && a[1] <= 4096 {
                    a[0] = if self.rng.below(2) == 0 { self.own() } else { a[0] };
                    a[1] %= 8;
                }
            }
            nr::XAS_REGISTER => a[0] = self.entry(server_entry as *const () as u64),
            nr::XAS_CALL => a[0] = self.handle(),
            nr::VM_MAP => {
                a[0] = self.addr();
                a[1] = self.rng.pick(&COUNTS);
                a[2] = self.rng.below(5);
            }
            nr::VM_PROTECT => {
                a[0] = if self.rng.below(2) == 0 {
                    SCRATCH + self.rng.below(SCRATCH_PAGES) * 4096
                } else {
                    self.rng.pick(&HOSTILE)
                };
                a[1] = self.rng.pick(&COUNTS);
                a[2] = self.rng.below(5);
            }
            nr::VM_DIRTY => a[0] = self.addr(),
            nr::VM_HANDLER => {
                for w in a.iter_mut().take(3) {
                    *w = self.addr();
                }
            }
            nr::THREAD_SPAWN => a[0] = self.entry(thread_entry as *const () as u64),
            nr::THREAD_JOIN => a[0] = self.handle(),
            nr::SEM_CREATE | nr::SEM_SIGNAL => a[0] = self.handle(),
            nr::SEM_WAIT => {
                a[0] = self.handle();
                // Never block: our own semaphore has a count to take.
                self.call(nr::SEM_SIGNAL, a);
            }
            nr::UT_FORK => a[0] = self.entry(uthread_entry as *const () as u64),
            nr::UT_SIGNAL_WAIT | nr::UT_JOIN | nr::UT_EXIT => a[0] = self.handle(),
            // It blocks until a datagram comes: never on a socket of ours
            // (handle 0 is none; spin-udp checks its typed errors).
            nr::UDP_RECV_FROM => a[0] = 0,
            _ => {}
        }
        let r = self.call(n, a);
        if r.status != 0 {
            return;
        }
        // Remember what we got, for later calls (and the cleanup).
        match n {
            nr::THREAD_SPAWN if self.nthreads < self.threads.len() => {
                self.threads[self.nthreads] = r.value;
                self.nthreads += 1;
            }
            nr::THREAD_JOIN => self.forget_thread(a[0]),
            nr::SEM_CREATE if self.nsems < self.sems.len() => {
                self.sems[self.nsems] = r.value;
                self.nsems += 1;
            }
            nr::XAS_REGISTER if self.nservers < self.servers.len() => {
                self.servers[self.nservers] = r.value;
                self.nservers += 1;
            }
            nr::UT_FORK if self.nuthreads < self.uthreads.len() => {
                self.uthreads[self.nuthreads] = r.value;
                self.nuthreads += 1;
            }
            nr::UT_JOIN => {
                if let Some(i) = self.uthreads[..self.nuthreads].iter().position(|&t| t == a[0]) {
                    self.nuthreads -= 1;
                    self.uthreads[i] = self.uthreads[self.nuthreads];
                }
            }
            _ => {}
        }
    }

    fn forget_thread(&mut self, t: u64) {
        if let Some(i) = self.threads[..self.nthreads].iter().position(|&x| x == t) {
            self.nthreads -= 1;
            self.threads[i] = self.threads[self.nthreads];
            let at = self.rng.below(self.stale.len() as u64) as usize;
            self.stale[at] = t;
        }
    }

    /// Join every thread id we hold (they all end at once).
    fn join_all(&mut self) {
        while self.nthreads > 0 {
            let t = self.threads[self.nthreads - 1];
            let r = self.call(nr::THREAD_JOIN, [t, 0, 0, 0, 0, 0]);
            if r.status != 0 {
                self.violations += 1;
                println!("spin-fuzz: VIOLATION join of own thread {t:#x} -> {}", r.status);
            }
            self.forget_thread(t);
        }
    }

    /// Join every user thread we forked.
    fn ut_join_all(&mut self) {
        while self.nuthreads > 0 {
            self.nuthreads -= 1;
            let t = self.uthreads[self.nuthreads];
            self.call(nr::UT_JOIN, [t, 0, 0, 0, 0, 0]);
        }
    }

    /// Take a resource with `step` until refused: by its quota (`Limit`),
    /// or for want of memory while the kernel test holds the heap
    /// (`NoMemory`). Never refused within `most` steps is a violation.
    fn until_limit(&mut self, what: &str, most: usize, mut step: impl FnMut(&mut Self) -> Return) {
        for _ in 0..most {
            let r = step(self);
            if r.status == Error::Limit.code() || r.status == Error::NoMemory.code() {
                return;
            }
        }
        self.violations += 1;
        println!("spin-fuzz: VIOLATION {what}: no Limit after {most} calls");
    }

    /// The exhaustion phases, one after another.
    fn exhaust(&mut self) {
        // Thread ids: spawn (they end at once, unjoined) until refused.
        let entry = thread_entry as *const () as u64;
        self.until_limit("thread ids", 400, |f| {
            let r = f.call(nr::THREAD_SPAWN, [entry, Self::stack_top(), 0, 0, 0, 0]);
            if r.status == 0 && f.nthreads < f.threads.len() {
                f.threads[f.nthreads] = r.value;
                f.nthreads += 1;
            }
            f.call(nr::YIELD, [0; 6]);
            r
        });
        self.join_all();
        // Live threads: spawn without letting them run.
        self.until_limit("live threads", 100, |f| {
            let r = f.call(nr::THREAD_SPAWN, [entry, Self::stack_top(), 0, 0, 0, 0]);
            if r.status == 0 && f.nthreads < f.threads.len() {
                f.threads[f.nthreads] = r.value;
                f.nthreads += 1;
            }
            r
        });
        self.join_all();
        // Semaphores (there is no way to free them: kept until the end).
        self.until_limit("semaphores", 2000, |f| {
            let r = f.call(nr::SEM_CREATE, [0; 6]);
            if r.status == 0 && f.nsems < f.sems.len() {
                f.sems[f.nsems] = r.value;
                f.nsems += 1;
            }
            r
        });
        // Server slots.
        let server = server_entry as *const () as u64;
        self.until_limit("servers", 100, |f| {
            let r = f.call(nr::XAS_REGISTER, [server, Self::stack_top(), 0, 0, 0, 0]);
            if r.status == 0 && f.nservers < f.servers.len() {
                f.servers[f.nservers] = r.value;
                f.nservers += 1;
            }
            r
        });
        // Frames: ever smaller chunks until even one page is refused.
        let mut chunk = 1024;
        while chunk > 0 {
            let r = self.call(nr::VM_MAP, [self.hog_at, chunk, prot::READ_WRITE, 0, 0, 0]);
            match Error::from_code(r.status) {
                None => self.hog_at += chunk * 4096,
                Some(Error::Limit) => chunk /= 2,
                Some(_) => chunk /= 2, // NoMemory while the kernel test holds the heap
            }
        }
        // Integrated user threads: fork until refused, then join them all.
        let ut = uthread_entry as *const () as u64;
        self.until_limit("user threads", 100, |f| {
            let r = f.call(nr::UT_FORK, [ut, Self::stack_top(), 0, 0, 0, 0]);
            if r.status == 0 && f.nuthreads < f.uthreads.len() {
                f.uthreads[f.nuthreads] = r.value;
                f.nuthreads += 1;
            }
            r
        });
        self.ut_join_all();
        // A time slice or two in user mode: the kernel must take the CPU back.
        for i in 0..200_000u64 {
            core::hint::black_box(i);
        }
    }
}

/// Heap-exhaustion mode: each call once, with arguments that would
/// succeed (so the calls that allocate try to), while the kernel test
/// holds the whole heap. Every answer must be typed.
fn every_call_once(f: &mut Fuzz) {
    let top = Fuzz::stack_top();
    let own = addr_of_mut!(OWN) as u64;
    f.call(nr::NULL, [0; 6]);
    f.call(nr::WRITE, [own, 4, 0, 0, 0, 0]);
    f.call(nr::YIELD, [0; 6]);
    let server = f.call(nr::XAS_REGISTER, [server_entry as *const () as u64, top, 0, 0, 0, 0]);
    f.call(nr::XAS_CALL, [server.value, 7, 0, 0, 0, 0]);
    f.call(nr::XAS_RETURN, [0; 6]);
    f.call(nr::VM_MAP, [WILD, 4, prot::READ_WRITE, 0, 0, 0]);
    f.call(nr::VM_PROTECT, [WILD, 4, prot::READ, 0, 0, 0]);
    f.call(nr::VM_DIRTY, [WILD, 0, 0, 0, 0, 0]);
    f.call(nr::VM_HANDLER, [server_entry as *const () as u64, top, own, 0, 0, 0]);
    let t = f.call(nr::THREAD_SPAWN, [thread_entry as *const () as u64, top, 0, 0, 0, 0]);
    if t.status == 0 {
        f.call(nr::THREAD_JOIN, [t.value, 0, 0, 0, 0, 0]);
    } else {
        f.call(nr::THREAD_JOIN, [1, 0, 0, 0, 0, 0]);
    }
    let s = f.call(nr::SEM_CREATE, [0; 6]);
    f.call(nr::SEM_SIGNAL, [s.value, 0, 0, 0, 0, 0]);
    f.call(nr::SEM_WAIT, [if s.status == 0 { s.value } else { 0 }, 0, 0, 0, 0, 0]);
    let u = f.call(nr::UT_FORK, [uthread_entry as *const () as u64, top, 0, 0, 0, 0]);
    f.call(nr::UT_SIGNAL_WAIT, [u.value, 0, 0, 0, 0, 0]);
    f.call(nr::UT_EXIT, [0; 6]);
    f.call(nr::UT_JOIN, [u.value, 0, 0, 0, 0, 0]);
    f.call(nr::BENCH_REPORT, [1, 1, 1, 1, 1, 0]);
    for n in [22, 23, nr::COUNT, u64::MAX] {
        f.call(n, [0; 6]);
    }
    // The evidence: which calls succeeded (0) and which were refused how.
    println!("spin-fuzz: every call once, statuses {:?}", &f.first[..f.calls as usize]);
}

#[unsafe(no_mangle)]
extern "C" fn _start(seed: u64, packed: u64) -> ! {
    let calls = packed & 0xffff_ffff;
    let mut f = Fuzz {
        rng: Rng(seed | 1),
        first: [0; 32],
        calls: 0,
        violations: 0,
        foreign_sem: (packed >> 32) & 0xffff,
        foreign_server: packed >> 48,
        threads: [0; 80],
        nthreads: 0,
        stale: [0; 8],
        uthreads: [0; 70],
        nuthreads: 0,
        sems: [0; 70],
        nsems: 0,
        servers: [0; 8],
        nservers: 0,
        hog_at: HOG,
    };
    if calls == 0 {
        every_call_once(&mut f);
    } else {
        let _ = spin_user::vm_map(SCRATCH, SCRATCH_PAGES, prot::READ_WRITE);
        // The phases first (so a short run covers them too), then every
        // fifth of the run.
        f.exhaust();
        let phase = (calls / 5).max(1);
        let mut next = phase;
        while f.calls < calls {
            if f.calls >= next {
                f.exhaust();
                next += phase;
            }
            // Every number, some unknown ones, more often the known ones.
            let n = match f.rng.below(16) {
                0 => f.rng.pick(&[nr::COUNT, nr::COUNT + 1, 1000, 1 << 32, u64::MAX, 22, 23]),
                1 => f.rng.next() | 1 << 40, // never a known number
                _ => f.rng.below(nr::COUNT),
            };
            f.one(n);
        }
        f.join_all();
        f.ut_join_all();
    }
    println!("spin-fuzz: seed={seed} calls={} violations={}", f.calls, f.violations);
    spin_user::exit(if f.violations == 0 { f.calls as i64 } else { -(f.violations as i64) })
}
