//! kernel-spin's ring-3 self-tests, hostile calls included: every system
//! call must validate every argument and answer a typed error, and nothing
//! this process does may crash the kernel. Prints `[test]` lines (the host
//! counts them); exits with the number of failures.
//!
//! Modes (RDI): 0 = the test suite (RSI = a cross-address-space server
//! handle, or 0); 1 = touch kernel memory with no handler (must be killed);
//! 2 = execute `ud2` with no handler (must be killed); 3 = call the
//! misbehaving system calls 22 (panics) and 23 (loops), exit code = the
//! number of unexpected answers; 4 = create a semaphore and exit with its
//! handle; 5 = signal the handle given in RSI (a dead process's: must be
//! refused), exit code 0 if refused; 6 = loop forever in user mode (the
//! kernel must preempt and kill it); 7 = use every facility that keeps
//! per-process state in an extension (a semaphore, an integrated user
//! thread, an xas server registration, a fault handler) and exit 0;
//! 8..=18: the hostile cases of [`hostile`] (exceptions ring 3 can raise
//! besides the common five, x87 state, threads blocked at exit or kill,
//! the per-process thread quota); 19 = the reflection checks alone (run
//! once with the inlined and once with the general reflection path);
//! 20 = register a cross-address-space server ([`visit_entry`]) and exit
//! with its handle; 21 = call the server in RSI with argument 0 (the
//! server loops: the call never returns, the thread must be ended);
//! 22 = call it with 5, exit code = the result (6) or −1; 23..=27 = the
//! instructions UMIP covers (`sgdt`, `sidt`, `sldt`, `smsw`, `str`): #GP
//! where the CPU has UMIP, else exit 0; 28 = the thread-id quota
//! ([`thread_records`]); 29 = take every thread id, semaphore, server slot and frame
//! the quotas allow, and exit ([`hog`]).
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};
use spin_user::trap::{self, raise};
use spin_user::{Error, TrapInfo, nr, println, prot, syscall};

type TestResult = Result<(), &'static str>;
type Test = fn() -> TestResult;

macro_rules! check {
    ($cond:expr, $why:expr) => {
        if !$cond {
            return Err($why);
        }
    };
}

const KERNEL_ADDR: u64 = 0xffff_8000_0000_1000;
const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
const UNMAPPED: u64 = 0x3000_0000;
const PAGES: u64 = 0x1000_0000;

static mut SERVER: u64 = 0;

fn null_call() -> TestResult {
    check!(spin_user::null() == Ok(0), "null() did not return Ok(0)");
    Ok(())
}

fn unknown_call_numbers() -> TestResult {
    for n in [22, 23, nr::COUNT, nr::COUNT + 1, 1000, 1 << 63, u64::MAX] {
        check!(
            syscall(n, [1, 2, 3, 4, 5, 6]) == Err(Error::UnknownCall),
            "an unknown call number was accepted"
        );
    }
    Ok(())
}

fn write_validates_pointers() -> TestResult {
    let msg = b"spin-usertests: hello from ring 3\n";
    check!(spin_user::write(msg) == Ok(msg.len() as u64), "valid write failed");
    let w = |p: u64, n: u64| syscall(nr::WRITE, [p, n, 0, 0, 0, 0]);
    check!(w(0, 5) == Err(Error::BadAddress), "null pointer accepted");
    check!(w(KERNEL_ADDR, 8) == Err(Error::BadAddress), "kernel pointer accepted");
    check!(w(NON_CANONICAL, 8) == Err(Error::BadAddress), "non-canonical pointer accepted");
    check!(w(u64::MAX - 3, 8) == Err(Error::BadAddress), "wrapping range accepted");
    check!(w(UNMAPPED, 8) == Err(Error::NotMapped), "unmapped pointer accepted");
    check!(w(msg.as_ptr() as u64, 1 << 40) == Err(Error::BadLength), "huge length accepted");
    check!(w(msg.as_ptr() as u64, 0) == Ok(0), "empty write failed");
    Ok(())
}

fn vm_validates_arguments() -> TestResult {
    check!(
        spin_user::vm_map(PAGES + 1, 1, prot::READ_WRITE) == Err(Error::Unaligned),
        "unaligned map accepted"
    );
    check!(spin_user::vm_map(PAGES, 0, prot::READ_WRITE) == Err(Error::BadLength), "zero pages accepted");
    check!(
        spin_user::vm_map(PAGES, 1 << 40, prot::READ_WRITE) == Err(Error::BadLength),
        "huge count accepted"
    );
    check!(
        spin_user::vm_map(PAGES, 5000, prot::READ_WRITE) == Err(Error::BadLength),
        "over-limit count accepted"
    );
    check!(
        spin_user::vm_map(KERNEL_ADDR & !4095, 1, prot::READ_WRITE) == Err(Error::BadAddress),
        "kernel range accepted"
    );
    check!(
        spin_user::vm_map(NON_CANONICAL, 1, prot::READ_WRITE) == Err(Error::BadAddress),
        "non-canonical range accepted"
    );
    check!(spin_user::vm_map(PAGES, 1, 77) == Err(Error::BadArgument), "unknown protection accepted");
    check!(
        spin_user::vm_protect(UNMAPPED, 1, prot::READ) == Err(Error::NotMapped),
        "protecting unmapped pages accepted"
    );
    check!(
        spin_user::vm_dirty(KERNEL_ADDR) == Err(Error::BadAddress),
        "dirty query of a kernel page accepted"
    );
    check!(
        spin_user::vm_dirty(UNMAPPED) == Err(Error::NotMapped),
        "dirty query of an unmapped page accepted"
    );
    check!(
        syscall(nr::VM_HANDLER, [0, 0x10_0000, 0x10_0000, 0, 0, 0]) == Err(Error::BadAddress),
        "null handler accepted"
    );
    check!(
        syscall(nr::VM_HANDLER, [0x20_0000, 0x10_0000, KERNEL_ADDR, 0, 0, 0]) == Err(Error::BadAddress),
        "kernel info area accepted"
    );
    Ok(())
}

fn vm_map_dirty_protect() -> TestResult {
    check!(spin_user::vm_map(PAGES, 2, prot::READ_WRITE) == Ok(0), "map failed");
    check!(spin_user::vm_map(PAGES + 4096, 1, prot::READ_WRITE) == Err(Error::Busy), "double map accepted");
    check!(spin_user::vm_dirty(PAGES) == Ok(0), "fresh page is dirty");
    raise::write_byte(PAGES + 10);
    check!(spin_user::vm_dirty(PAGES + 10) == Ok(1), "written page is not dirty");
    check!(spin_user::vm_dirty(PAGES + 4096) == Ok(0), "untouched page is dirty");
    check!(
        spin_user::vm_protect(PAGES, 2, prot::READ) == Ok(2),
        "protect failed (or did not count 2 changed)"
    );
    check!(spin_user::vm_protect(PAGES, 2, prot::READ) == Ok(0), "protecting again counted a change");
    check!(raise::read_byte(PAGES + 10) == 1, "read back after protect");
    check!(spin_user::vm_protect(PAGES, 2, prot::READ_WRITE) == Ok(2), "unprotect failed");
    Ok(())
}

/// What the handler saw last, and how it should resolve the fault.
static LAST_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_ADDR: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);

fn handler(t: &mut TrapInfo) {
    FAULTS.fetch_add(1, Ordering::SeqCst);
    LAST_VECTOR.store(t.vector, Ordering::SeqCst);
    LAST_ADDR.store(t.addr, Ordering::SeqCst);
    match t.vector {
        6 => t.rip += 2,         // ud2
        0 => t.rip += 3,         // div rcx
        1 => t.rflags &= !0x100, // single step: a trap, RIP is past the instruction; stop stepping
        7 => t.rip += 2,         // fninit (x87 is off: #NM)
        3 => {}                  // int3: RIP is already past it
        14 if t.addr >= PAGES && t.addr < PAGES + 2 * 4096 => {
            // Resolve: give access back and retry the instruction.
            let _ = spin_user::vm_protect(t.addr & !4095, 1, prot::READ_WRITE);
        }
        _ => t.rip += 3, // the 3-byte write of raise::write_byte elsewhere
    }
}

fn faults_are_reflected_and_resumed() -> TestResult {
    check!(trap::install(handler) == Ok(0), "handler registration failed");
    check!(spin_user::vm_protect(PAGES, 1, prot::NONE) == Ok(1), "protect none failed");
    let before = FAULTS.load(Ordering::SeqCst);
    let v = raise::read_byte(PAGES + 10);
    check!(FAULTS.load(Ordering::SeqCst) == before + 1, "no fault was reflected");
    check!(
        LAST_VECTOR.load(Ordering::SeqCst) == 14 && LAST_ADDR.load(Ordering::SeqCst) == PAGES + 10,
        "wrong fault info"
    );
    check!(v == 1, "the faulting read did not complete after the handler resolved it");
    Ok(())
}

fn exceptions_reach_the_handler_and_resume() -> TestResult {
    let cases: [(u64, fn()); 6] = [
        (1, single_step_one_instruction),
        (7, x87_instruction),
        (6, raise::invalid_opcode),
        (3, raise::breakpoint),
        (0, raise::divide_error),
        (14, || raise::write_byte(0x20_0000)), // our own code page: present, read-only
    ];
    for (vector, f) in cases {
        let before = FAULTS.load(Ordering::SeqCst);
        f();
        check!(FAULTS.load(Ordering::SeqCst) == before + 1, "exception not delivered exactly once");
        check!(LAST_VECTOR.load(Ordering::SeqCst) == vector, "wrong vector delivered");
    }
    Ok(())
}

/// Set TF: the CPU traps (#DB) after the instruction following `popfq`.
fn single_step_one_instruction() {
    // SAFETY: only RFLAGS.TF changes; the handler clears it again.
    unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop") };
}

/// An x87 instruction (2 bytes): the kernel turned x87 off, so #NM.
fn x87_instruction() {
    // SAFETY: it faults before touching anything.
    unsafe { core::arch::asm!("fninit") };
}

static RAW_HITS: AtomicU64 = AtomicU64::new(0);

/// A raw entry: count, skip the 2-byte `ud2`, resume. It touches only
/// RDI (restored from the record) and the flags (restored by `popfq`).
#[unsafe(naked)]
unsafe extern "C" fn raw_skip_ud2() {
    core::arch::naked_asm!(
        "lock inc qword ptr [rip + {hits}]",
        "add qword ptr [rdi + {rip}], 2",
        "mov rsp, [rdi + {rsp}]",
        "push qword ptr [rdi + {rip}]",
        "push qword ptr [rdi + {rflags}]",
        "mov rdi, [rdi + {rdi}]",
        "popfq",
        "ret",
        hits = sym RAW_HITS,
        rip = const core::mem::offset_of!(TrapInfo, rip),
        rsp = const core::mem::offset_of!(TrapInfo, rsp),
        rflags = const core::mem::offset_of!(TrapInfo, rflags),
        rdi = const core::mem::offset_of!(TrapInfo, rdi),
    )
}

static QUIET_HITS: AtomicU64 = AtomicU64::new(0);
/// A page for a `TrapInfo` area that only the kernel writes.
const QUIET_PAGE: u64 = 0x5000_0000;
#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct QuietStack([u8; 4096]);
static mut QUIET_STACK: QuietStack = QuietStack([0; 4096]);

/// A raw entry that never writes its record: count, resume after the
/// `int3` (RIP is already past it).
#[unsafe(naked)]
unsafe extern "C" fn quiet_resume() {
    core::arch::naked_asm!(
        "lock inc qword ptr [rip + {hits}]",
        "mov rsp, [rdi + {rsp}]",
        "push qword ptr [rdi + {rip}]",
        "push qword ptr [rdi + {rflags}]",
        "mov rdi, [rdi + {rdi}]",
        "popfq",
        "ret",
        hits = sym QUIET_HITS,
        rip = const core::mem::offset_of!(TrapInfo, rip),
        rsp = const core::mem::offset_of!(TrapInfo, rsp),
        rflags = const core::mem::offset_of!(TrapInfo, rflags),
        rdi = const core::mem::offset_of!(TrapInfo, rdi),
    )
}

/// The kernel's write of the `TrapInfo` record is a write to the page:
/// a clean page holding the area reads dirty after a reflected #BP whose
/// handler only reads the record.
fn trap_info_page_is_dirty_after_reflection() -> TestResult {
    check!(spin_user::vm_map(QUIET_PAGE, 1, prot::READ_WRITE) == Ok(0), "map failed");
    check!(spin_user::vm_dirty(QUIET_PAGE) == Ok(0), "fresh page is dirty");
    let top = addr_of_mut!(QUIET_STACK) as u64 + 4096;
    let entry = quiet_resume as *const () as u64;
    check!(syscall(nr::VM_HANDLER, [entry, top, QUIET_PAGE + 64, 0, 0, 0]) == Ok(0), "registration failed");
    check!(spin_user::vm_dirty(QUIET_PAGE) == Ok(0), "registering dirtied the page");
    let before = QUIET_HITS.load(Ordering::SeqCst);
    raise::breakpoint();
    check!(QUIET_HITS.load(Ordering::SeqCst) == before + 1, "the entry did not run exactly once");
    check!(spin_user::vm_dirty(QUIET_PAGE) == Ok(1), "the written TrapInfo page reads clean");
    check!(trap::install(handler) == Ok(0), "could not reinstall the Rust handler");
    Ok(())
}

/// The reflection contract: the kernel changes only RIP, RSP, RFLAGS and
/// RDI (all in the record), so a raw entry that restores those resumes
/// with every other register intact.
fn raw_entry_sees_registers_intact() -> TestResult {
    check!(trap::install_entry(raw_skip_ud2) == Ok(0), "raw entry registration failed");
    let before = RAW_HITS.load(Ordering::SeqCst);
    let mut out = [0u64; 14];
    // SAFETY: loads known values, raises #UD (the entry skips the ud2 and
    // resumes right after it), and stores every register to `out`.
    unsafe {
        core::arch::asm!(
            "push rbx", "push rbp",
            "mov rax, 0x1001", "mov rbx, 0x1002", "mov rcx, 0x1003", "mov rdx, 0x1004",
            "mov rsi, 0x1005", "mov rbp, 0x1006", "mov r8, 0x1007", "mov r9, 0x1008",
            "mov r10, 0x1009", "mov r11, 0x100a", "mov r12, 0x100b", "mov r13, 0x100c",
            "mov r14, 0x100d",
            "push rdi",
            "mov rdi, 0x100e",
            "ud2",
            "mov r15, rdi",
            "pop rdi",
            "mov [rdi], rax", "mov [rdi + 8], rbx", "mov [rdi + 16], rcx", "mov [rdi + 24], rdx",
            "mov [rdi + 32], rsi", "mov [rdi + 40], rbp", "mov [rdi + 48], r8", "mov [rdi + 56], r9",
            "mov [rdi + 64], r10", "mov [rdi + 72], r11", "mov [rdi + 80], r12", "mov [rdi + 88], r13",
            "mov [rdi + 96], r14", "mov [rdi + 104], r15",
            "pop rbp", "pop rbx",
            in("rdi") out.as_mut_ptr(),
            out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _, out("r8") _, out("r9") _,
            out("r10") _, out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    let want = [
        0x1001, 0x1002, 0x1003, 0x1004, 0x1005, 0x1006, 0x1007, 0x1008, 0x1009, 0x100a, 0x100b, 0x100c,
        0x100d, 0x100e,
    ];
    check!(RAW_HITS.load(Ordering::SeqCst) == before + 1, "the raw entry did not run exactly once");
    check!(out == want, "a register changed across the reflected exception");
    check!(trap::install(handler) == Ok(0), "could not reinstall the Rust handler");
    Ok(())
}

fn foreign_and_bogus_handles() -> TestResult {
    check!(spin_user::xas_call(999, 0) == Err(Error::BadHandle), "bogus server accepted");
    check!(spin_user::xas_call(0, 0) == Err(Error::BadHandle), "server 0 accepted");
    check!(syscall(nr::XAS_RETURN, [0; 6]) == Err(Error::BadState), "return outside a call accepted");
    check!(
        syscall(nr::XAS_REGISTER, [KERNEL_ADDR, 0x10_0000, 0, 0, 0, 0]) == Err(Error::BadAddress),
        "kernel entry accepted"
    );
    // Stacks whose resume RSP (top − 8), or the 8 bytes below it, are not
    // user space: none registers a server or forks a user thread.
    let entry = ut_quick as *const () as u64;
    for top in [0, 8, 16, KERNEL_ADDR, NON_CANONICAL + 8, u64::MAX] {
        for call in [nr::XAS_REGISTER, nr::UT_FORK] {
            check!(
                syscall(call, [entry, top, 0, 0, 0, 0]) == Err(Error::BadAddress),
                "bad stack top accepted"
            );
        }
    }
    check!(spin_user::thread_join(12345) == Err(Error::BadHandle), "bogus thread accepted");
    check!(spin_user::sem_signal(777) == Err(Error::BadHandle), "bogus semaphore accepted");
    check!(spin_user::sem_wait(0) == Err(Error::BadHandle), "semaphore 0 accepted");
    check!(
        syscall(nr::THREAD_SPAWN, [KERNEL_ADDR, 0x10_0000, 0, 0, 0, 0]) == Err(Error::BadAddress),
        "kernel thread entry accepted"
    );
    Ok(())
}

static SEM: AtomicU64 = AtomicU64::new(0);
static WORK: AtomicU64 = AtomicU64::new(0);
const THREAD_STACK: usize = 16 * 1024;
#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct Stack([u8; THREAD_STACK]);
static mut THREAD_STACK_MEM: Stack = Stack([0; THREAD_STACK]);

extern "C" fn worker(arg: u64) -> ! {
    WORK.fetch_add(arg, Ordering::SeqCst);
    let _ = spin_user::sem_signal(SEM.load(Ordering::SeqCst));
    spin_user::thread_exit()
}

fn layered_threads_and_semaphores() -> TestResult {
    let s = spin_user::sem_create().map_err(|_| "sem_create failed")?;
    SEM.store(s, Ordering::SeqCst);
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    let t = spin_user::thread_spawn(worker, top, 42).map_err(|_| "thread_spawn failed")?;
    check!(spin_user::sem_wait(s) == Ok(0), "sem_wait failed");
    check!(WORK.load(Ordering::SeqCst) == 42, "the thread did not run");
    check!(spin_user::thread_join(t) == Ok(0), "join failed");
    check!(spin_user::thread_join(t) == Err(Error::BadHandle), "second join accepted");
    Ok(())
}

static UT_LOG: AtomicU64 = AtomicU64::new(0);

extern "C" fn ut_worker(arg: u64) -> ! {
    // Runs on its own stack, inside this process, without a kernel thread.
    UT_LOG.fetch_add(arg, Ordering::SeqCst);
    let _ = spin_user::uthread::signal_wait(0); // back to the main thread
    UT_LOG.fetch_add(100, Ordering::SeqCst);
    spin_user::uthread::exit(Some(0)) // signal the main thread
}

fn integrated_user_threads() -> TestResult {
    use spin_user::uthread;
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    let t = uthread::fork(ut_worker, top, 5).map_err(|_| "ut_fork failed")?;
    // Switch to the worker and back with values in two callee-saved
    // registers: the wrapper must hand them back intact.
    let (status, r12, r13): (u64, u64, u64);
    // SAFETY: calls the wrapper like a C function (all caller-saved
    // registers clobbered) with R12/R13 set, and reads them afterwards.
    unsafe {
        core::arch::asm!(
            "mov r12, 0x1212",
            "mov r13, 0x1313",
            "call {f}",
            "mov r14, r12",
            "mov r15, r13",
            f = sym uthread::blocking,
            out("r14") r12,
            out("r15") r13,
            inout("rdi") nr::UT_SIGNAL_WAIT => _,
            inout("rsi") t => _,
            out("rax") status,
            out("r12") _,
            out("r13") _,
            clobber_abi("C"),
        )
    };
    check!(status == 0, "signal_wait failed");
    check!((r12, r13) == (0x1212, 0x1313), "callee-saved registers were not preserved across the switch");
    check!(UT_LOG.load(Ordering::SeqCst) == 5, "the user thread did not run first half");
    check!(uthread::signal_wait(t) == Ok(0), "second signal_wait failed");
    check!(UT_LOG.load(Ordering::SeqCst) == 105, "the user thread did not finish");
    check!(uthread::join(t) == Ok(0), "ut_join of a finished thread failed");
    check!(uthread::join(t) == Err(Error::BadHandle), "joined a consumed thread");
    check!(uthread::join(9999) == Err(Error::BadHandle), "bogus thread accepted");
    check!(uthread::signal_wait(0) == Err(Error::BadState), "waiting alone must not block");
    check!(syscall(nr::UT_EXIT, [0; 6]) == Err(Error::BadState), "the main thread cannot ut_exit");
    Ok(())
}

fn cross_address_space_call() -> TestResult {
    // SAFETY: written once at start, before the tests run.
    let server = unsafe { SERVER };
    check!(server != 0, "no server handle was passed");
    let mine = 7u64;
    for i in 0..10 {
        check!(spin_user::xas_call(server, i) == Ok(2 * i + 1), "wrong result from the server");
    }
    check!(mine == 7, "our memory changed");
    Ok(())
}

extern "C" fn ut_quick(_: u64) -> ! {
    spin_user::uthread::exit(Some(0))
}

/// Mode 7: leave state in every extension that keeps some per process.
fn keep_state_and_exit() -> i64 {
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    let ok = spin_user::sem_create().is_ok()
        && spin_user::uthread::fork(ut_quick, top, 0).is_ok_and(|t| spin_user::uthread::join(t).is_ok())
        && syscall(nr::XAS_REGISTER, [ut_quick as *const () as u64, top, 0, 0, 0, 0]).is_ok()
        && trap::install(handler).is_ok();
    if ok { 0 } else { 1 }
}

/// Mode 19: the reflection tests alone (the kernel runs them with and
/// without the inlined reflecting handler); failures are counted, and
/// printed as plain lines (not test lines: mode 0 reports these tests).
fn reflection_checks() -> i64 {
    let tests: [(&str, Test); 5] = [
        ("vm_map_dirty_protect", vm_map_dirty_protect),
        ("faults_are_reflected_and_resumed", faults_are_reflected_and_resumed),
        ("exceptions_reach_the_handler_and_resume", exceptions_reach_the_handler_and_resume),
        ("raw_entry_sees_registers_intact", raw_entry_sees_registers_intact),
        ("trap_info_page_is_dirty_after_reflection", trap_info_page_is_dirty_after_reflection),
    ];
    let mut failed = 0;
    for (name, t) in tests {
        if let Err(why) = t() {
            println!("spin-usertests: reflection check {name} failed: {why}");
            failed += 1;
        }
    }
    failed
}

fn run(name: &str, t: fn() -> TestResult) -> u32 {
    println!("[test] start spin-user::{name}");
    match t() {
        Ok(()) => {
            println!("[test] ok spin-user::{name}");
            0
        }
        Err(why) => {
            println!("[test] FAIL spin-user::{name}: {why}");
            1
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn _start(mode: u64, server: u64) -> ! {
    match mode {
        1 => {
            // SAFETY: a deliberate access to kernel memory, with no handler.
            let _ = unsafe { core::ptr::read_volatile(KERNEL_ADDR as *const u64) };
        }
        2 => raise::invalid_opcode(),
        _ => {}
    };
    if mode == 3 {
        let want = [Err(Error::ExtensionFault), Err(Error::UnknownCall)];
        let mut wrong = 0;
        for n in [22, 23] {
            for w in want {
                let got = syscall(n, [1, 2, 3, 4, 5, 6]);
                if got != w {
                    println!("spin-usertests: call {n} answered {got:?}, expected {w:?}");
                    wrong += 1;
                }
            }
        }
        if spin_user::null() != Ok(0) {
            wrong += 1;
        }
        spin_user::exit(wrong);
    }
    if mode == 6 {
        loop {
            core::hint::spin_loop();
        }
    }
    if mode == 4 {
        spin_user::exit(spin_user::sem_create().map_or(-1, |h| h as i64));
    }
    if mode == 7 {
        spin_user::exit(keep_state_and_exit());
    }
    if mode == 19 {
        spin_user::exit(reflection_checks());
    }
    if mode == 20 {
        let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
        let r = syscall(nr::XAS_REGISTER, [visit_entry as *const () as u64, top, 0, 0, 0, 0]);
        spin_user::exit(r.map_or(-1, |h| h as i64));
    }
    if mode == 21 || mode == 22 {
        let r = spin_user::xas_call(server, if mode == 21 { 0 } else { 5 });
        spin_user::exit(r.map_or(-1, |v| v as i64));
    }
    if mode == 5 {
        let refused = spin_user::sem_signal(server) == Err(Error::BadHandle);
        spin_user::exit(if refused { 0 } else { 1 });
    }
    if (23..=29).contains(&mode) {
        spin_user::exit(quotas_and_umip(mode));
    }
    if mode >= 8 {
        spin_user::exit(hostile(mode));
    }
    if mode != 0 {
        println!("spin-usertests: survived a fault that should have killed it");
        spin_user::exit(-5);
    }
    // SAFETY: single-threaded at this point.
    unsafe { SERVER = server };
    let tests: [(&str, Test); 13] = [
        ("null_call", null_call),
        ("unknown_call_numbers", unknown_call_numbers),
        ("write_validates_pointers", write_validates_pointers),
        ("vm_validates_arguments", vm_validates_arguments),
        ("vm_map_dirty_protect", vm_map_dirty_protect),
        ("faults_are_reflected_and_resumed", faults_are_reflected_and_resumed),
        ("exceptions_reach_the_handler_and_resume", exceptions_reach_the_handler_and_resume),
        ("raw_entry_sees_registers_intact", raw_entry_sees_registers_intact),
        ("trap_info_page_is_dirty_after_reflection", trap_info_page_is_dirty_after_reflection),
        ("foreign_and_bogus_handles", foreign_and_bogus_handles),
        ("layered_threads_and_semaphores", layered_threads_and_semaphores),
        ("integrated_user_threads", integrated_user_threads),
        ("cross_address_space_call", cross_address_space_call),
    ];
    let failed: u32 = tests.iter().map(|(n, t)| run(n, *t)).sum();
    spin_user::exit(failed as i64)
}

/// Mode 20's service: argument 0 keeps the calling strand in this address
/// space forever; any other `arg` returns `arg + 1`.
extern "C" fn visit(arg: u64) -> u64 {
    if arg == 0 {
        loop {
            core::hint::spin_loop();
        }
    }
    arg + 1
}

/// Mode 20's server entry: RDX = the caller's argument; ends the call
/// with `xas_return(visit(arg))`.
#[unsafe(naked)]
extern "C" fn visit_entry() -> ! {
    core::arch::naked_asm!(
        "mov rdi, rdx",
        "call {visit}",
        "mov rdi, rax",
        "mov eax, {ret}",
        "syscall",
        "ud2",
        visit = sym visit,
        ret = const nr::XAS_RETURN,
    )
}

/// A thread that waits on `SEM` forever (its stack: 1 KiB per `arg`).
extern "C" fn blocker(_: u64) -> ! {
    let _ = spin_user::sem_wait(SEM.load(Ordering::SeqCst));
    spin_user::thread_exit()
}

/// Start thread `n` of [`blocker`]s, each on its own 1 KiB of the thread stack.
fn spawn_blocker(n: u64) -> Result<u64, Error> {
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    spin_user::thread_spawn(blocker, top - n * 1024, n)
}

/// Modes 8..=18; the exit code, where the mode is not meant to be killed.
fn hostile(mode: u64) -> i64 {
    match mode {
        // #DB from TF (no handler registered): the kernel must end us.
        // SAFETY: faults on purpose, in this process only; nothing relies on it.
        8 => unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq", "nop", "nop") },
        // #DB from ICEBP (int1), which no gate DPL stops.
        // SAFETY: faults on purpose, in this process only; nothing relies on it.
        9 => unsafe { core::arch::asm!(".byte 0xf1") },
        // #SS: a push through a non-canonical RSP.
        // SAFETY: faults on purpose, in this process only; nothing relies on it.
        10 => unsafe { core::arch::asm!("mov rsp, {x}", "push rax", x = in(reg) NON_CANONICAL) },
        // Leave a secret on the x87 stack and exit.
        // SAFETY: faults on purpose, in this process only; nothing relies on it.
        11 => unsafe {
            let secret: u64 = 0x5ec7e7;
            core::arch::asm!("fninit", "fild qword ptr [{p}]", p = in(reg) &secret);
            return 1;
        },
        // Read what the x87 stack holds (another process's secret, if x87 were on).
        // SAFETY: faults on purpose, in this process only; nothing relies on it.
        12 => unsafe {
            let mut out: u64 = 0;
            core::arch::asm!("fistp qword ptr [{p}]", p = in(reg) &mut out);
            return out as i64;
        },
        // An SSE instruction (xorps xmm0, xmm0): SSE is off, so #UD.
        // SAFETY: faults on purpose, in this process only; nothing relies on it.
        16 => unsafe { core::arch::asm!(".byte 0x0f, 0x57, 0xc0") },
        // A thread blocked forever, then `exit(5)` from the main thread:
        // the whole process must end.
        13 | 14 => {
            let Ok(s) = spin_user::sem_create() else { return -1 };
            SEM.store(s, Ordering::SeqCst);
            if spawn_blocker(1).is_err() {
                return -2;
            }
            if mode == 13 {
                return 5;
            }
            // 14: block as well; only a kill can end us.
            let _ = spin_user::sem_wait(s);
            return -3;
        }
        // Spawn blocked threads until refused: the quota, then exit.
        15 => {
            let Ok(s) = spin_user::sem_create() else { return -1 };
            SEM.store(s, Ordering::SeqCst);
            let mut n = 0;
            while n < 64 {
                match spawn_blocker(n + 1) {
                    Ok(_) => n += 1,
                    Err(Error::Limit) => return n as i64,
                    Err(_) => return -2,
                }
            }
            return -3;
        }
        17 => return join_cycle(),
        18 => return join_twice(),
        _ => return -4,
    }
    -5 // survived a fault that should have ended it
}

/// Thread ids for the join modes (index = the spawn argument), and flags.
static TIDS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static JOIN_RESULTS: AtomicU64 = AtomicU64::new(0);
static JOINING_NOW: AtomicU64 = AtomicU64::new(0);

fn yield_until(flag: &AtomicU64) {
    while flag.load(Ordering::SeqCst) == 0 {
        let _ = syscall(nr::YIELD, [0; 6]);
    }
}

/// Threads 1 and 2 join each other; each adds its join's outcome (Ok: 0,
/// BadState: 1, else 10) and signals `SEM`.
extern "C" fn cycle_joiner(me: u64) -> ! {
    let other = &TIDS[(3 - me) as usize];
    yield_until(other);
    let r = spin_user::thread_join(other.load(Ordering::SeqCst));
    JOIN_RESULTS.fetch_add(
        match r {
            Ok(_) => 0,
            Err(Error::BadState) => 1,
            Err(_) => 10,
        },
        Ordering::SeqCst,
    );
    let _ = spin_user::sem_signal(SEM.load(Ordering::SeqCst));
    spin_user::thread_exit()
}

/// Mode 17: a join cycle must be refused (exit 1: one join refused, the
/// other completed), or both threads would wait for ever.
fn join_cycle() -> i64 {
    let Ok(s) = spin_user::sem_create() else { return -1 };
    SEM.store(s, Ordering::SeqCst);
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    for me in 1..=2u64 {
        match spin_user::thread_spawn(cycle_joiner, top - me * 4096, me) {
            Ok(t) => TIDS[me as usize].store(t, Ordering::SeqCst),
            Err(_) => return -2,
        }
    }
    for _ in 0..2 {
        let _ = spin_user::sem_wait(s);
    }
    JOIN_RESULTS.load(Ordering::SeqCst) as i64
}

/// Joins thread 1 (a blocker), announcing it first.
extern "C" fn first_joiner(_: u64) -> ! {
    JOINING_NOW.store(1, Ordering::SeqCst);
    let _ = spin_user::thread_join(TIDS[1].load(Ordering::SeqCst));
    spin_user::thread_exit()
}

/// Mode 18: a second join of a thread already being joined is refused
/// with `Busy` (exit 0), or only one joiner would ever be woken.
fn join_twice() -> i64 {
    let Ok(s) = spin_user::sem_create() else { return -1 };
    SEM.store(s, Ordering::SeqCst);
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    let Ok(blocked) = spawn_blocker(1) else { return -2 };
    TIDS[1].store(blocked, Ordering::SeqCst);
    if spin_user::thread_spawn(first_joiner, top - 2 * 4096, 0).is_err() {
        return -3;
    }
    yield_until(&JOINING_NOW);
    for _ in 0..3 {
        let _ = syscall(nr::YIELD, [0; 6]); // let it block in its join
    }
    let second = spin_user::thread_join(blocked);
    let _ = spin_user::sem_signal(s); // the blocker ends, the first join returns
    if second == Err(Error::Busy) { 0 } else { 1 }
}

/// Modes 23..=29 (see the file's documentation).
fn quotas_and_umip(mode: u64) -> i64 {
    let mut table = [0u8; 16];
    let p = table.as_mut_ptr();
    // Each stores to `table` or a register only; with UMIP on, each
    // faults (#GP) in this process, which has no handler: it ends.
    match mode {
        // SAFETY: writes 10 bytes of `table`.
        23 => unsafe { core::arch::asm!("sgdt [{p}]", p = in(reg) p) },
        // SAFETY: writes 10 bytes of `table`.
        24 => unsafe { core::arch::asm!("sidt [{p}]", p = in(reg) p) },
        // SAFETY: writes a scratch register.
        25 => unsafe { core::arch::asm!("sldt {x:x}", x = out(reg) _) },
        // SAFETY: writes a scratch register.
        26 => unsafe { core::arch::asm!("smsw {x:e}", x = out(reg) _) },
        // SAFETY: writes a scratch register.
        27 => unsafe { core::arch::asm!("str {x:x}", x = out(reg) _) },
        28 => return thread_records(),
        _ => return hog(),
    }
    core::hint::black_box(table);
    0
}

/// Threads [`quick`] has started.
static QUICK: AtomicU64 = AtomicU64::new(0);

extern "C" fn quick(_: u64) -> ! {
    QUICK.fetch_add(1, Ordering::SeqCst);
    spin_user::thread_exit()
}

/// Mode 28: spawn threads that end at once and never join them: the
/// kernel keeps each id until it is joined, so past
/// `MAX_THREAD_RECORDS_PER_PROCESS` the spawn answers `Limit` (before
/// the quota the table grew until the heap was gone). Then every id is
/// joined (even those whose strand a later thread took), and a spawn
/// works again. Exit code: how many spawns succeeded, or negative.
fn thread_records() -> i64 {
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    let mut ids = [0u64; 2 * spin_abi::MAX_THREAD_RECORDS_PER_PROCESS];
    let mut n = 0;
    loop {
        if n == ids.len() {
            return -3; // never refused
        }
        match spin_user::thread_spawn(quick, top, 0) {
            Ok(t) => ids[n] = t,
            Err(Error::Limit) => break,
            Err(_) => return -2,
        }
        n += 1;
        // Let it end before the next (only one thread runs on the stack).
        while QUICK.load(Ordering::SeqCst) < n as u64 {
            let _ = syscall(nr::YIELD, [0; 6]);
        }
    }
    for &t in &ids[..n] {
        if spin_user::thread_join(t).is_err() {
            return -4;
        }
    }
    match spin_user::thread_spawn(quick, top, 0).and_then(spin_user::thread_join) {
        Ok(_) => n as i64,
        Err(_) => -5,
    }
}

/// Mode 29: take thread ids (never joined), semaphores, server
/// registrations and `vm_map` frames until each quota answers `Limit`,
/// and exit with them held (they go when the kernel reaps us): 0 if each
/// stopped at its quota, else which did not (1 semaphores, 2 servers,
/// 4 frames, 8 thread ids).
fn hog() -> i64 {
    let mut wrong = 0;
    let top = addr_of_mut!(THREAD_STACK_MEM) as u64 + THREAD_STACK as u64;
    let mut threads = 0;
    while spin_user::thread_spawn(quick, top, 0).is_ok() {
        threads += 1;
        while QUICK.load(Ordering::SeqCst) < threads {
            let _ = syscall(nr::YIELD, [0; 6]);
        }
    }
    if threads != spin_abi::MAX_THREAD_RECORDS_PER_PROCESS as u64 {
        wrong |= 8;
    }
    let mut sems = 0;
    while spin_user::sem_create().is_ok() {
        sems += 1;
    }
    if sems != spin_abi::MAX_SEMAPHORES_PER_PROCESS || spin_user::sem_create() != Err(Error::Limit) {
        wrong |= 1;
    }
    let register = || syscall(nr::XAS_REGISTER, [visit_entry as *const () as u64, top, 0, 0, 0, 0]);
    let mut servers = 0;
    while register().is_ok() {
        servers += 1;
    }
    if servers != spin_abi::MAX_SERVERS_PER_PROCESS || register() != Err(Error::Limit) {
        wrong |= 2;
    }
    // Map ever smaller chunks until even one page is refused.
    let (mut at, mut chunk, mut pages) = (0x5000_0000u64, 256u64, 0u64);
    while chunk > 0 {
        match spin_user::vm_map(at, chunk, prot::READ_WRITE) {
            Ok(_) => {
                at += chunk * 4096;
                pages += chunk;
            }
            Err(Error::Limit) => chunk /= 2,
            Err(_) => return -1,
        }
    }
    let quota = spin_abi::MAX_FRAMES_PER_PROCESS;
    if pages > quota || pages < quota - 64 {
        wrong |= 4;
    }
    wrong
}
