//! The ring-3 half of kernel-spin's benchmarks: rows that start in a user
//! process (system call, cross-address-space call, virtual memory,
//! exceptions, layered user threads). The kernel's benchmark glue starts
//! this program once per operation with RDI = operation index (bits 0–7),
//! iterations (bits 8–39) and runs (bits 40–47), RSI = a server handle; the
//! program measures with the shared `benchmarks::measure` loop and hands
//! the sample back with `bench_report`. Exit code 0 = measured, 1 = this
//! operation is not one of ours.
#![no_std]
#![no_main]

use benchmarks::measure::{Sample, measure, measure_runs, rdtsc};
use core::arch::naked_asm;
use core::mem::offset_of;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};
use spin_user::trap::{self, raise};
use spin_user::uthread;
use spin_user::{TrapInfo, exit, nr, prot, syscall};

const PAGES: u64 = 0x1000_0000;
const PAGE: u64 = 4096;

/// TSC when the fault was raised ("trap"), and the sum of trap latencies.
static T0: AtomicU64 = AtomicU64::new(0);
static TRAP_TICKS: AtomicU64 = AtomicU64::new(0);

/// The "trap" handler, a minimal entry (as the exokernel's benchmark
/// installs): it stops the clock first thing (after parking the two
/// registers `rdtsc` clobbers), adds the latency, skips the 2-byte read
/// and resumes. The kernel left every register but RIP, RSP, RFLAGS and
/// RDI in place; those are in the record RDI points to.
#[unsafe(naked)]
unsafe extern "C" fn trap_entry() {
    naked_asm!(
        "mov [rdi + {rax}], rax",
        "mov [rdi + {rdx}], rdx",
        "lfence",
        "rdtsc", // the handler has started: stop the clock
        "lfence",
        "shl rdx, 32",
        "or rax, rdx",
        "sub rax, qword ptr [rip + {t0}]",
        "add qword ptr [rip + {sum}], rax",
        "mov rax, [rdi + {rax}]",
        "mov rdx, [rdi + {rdx}]",
        "add qword ptr [rdi + {rip}], 2", // past the read
        "mov rsp, [rdi + {rsp}]",
        "push qword ptr [rdi + {rip}]",
        "push qword ptr [rdi + {rflags}]",
        "mov rdi, [rdi + {rdi}]",
        "popfq",
        "ret",
        t0 = sym T0,
        sum = sym TRAP_TICKS,
        rax = const offset_of!(TrapInfo, rax),
        rdx = const offset_of!(TrapInfo, rdx),
        rip = const offset_of!(TrapInfo, rip),
        rsp = const offset_of!(TrapInfo, rsp),
        rflags = const offset_of!(TrapInfo, rflags),
        rdi = const offset_of!(TrapInfo, rdi),
    )
}

/// A minimal exception-row handler entry: skip the `$len`-byte faulting
/// instruction and resume (RIP, RSP, RFLAGS, RDI from the record; every
/// other register is still the interrupted one).
macro_rules! skip_entry {
    ($name:ident, $len:literal) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!(
                concat!(".if ", $len),
                concat!("add qword ptr [rdi + {rip}], ", $len),
                ".endif",
                "mov rsp, [rdi + {rsp}]",
                "push qword ptr [rdi + {rip}]",
                "push qword ptr [rdi + {rflags}]",
                "mov rdi, [rdi + {rdi}]",
                "popfq",
                "ret",
                rip = const offset_of!(TrapInfo, rip),
                rsp = const offset_of!(TrapInfo, rsp),
                rflags = const offset_of!(TrapInfo, rflags),
                rdi = const offset_of!(TrapInfo, rdi),
            )
        }
    };
}

skip_entry!(skip_ud2, "2"); // ud2
skip_entry!(skip_int3, "0"); // int3 is a trap: RIP is already past it
skip_entry!(skip_div, "3"); // div rcx
skip_entry!(skip_write, "3"); // mov byte ptr [rax], 1

/// "fault" and "appel2": give access back and retry the instruction.
fn unprotect_handler(t: &mut TrapInfo) {
    let _ = spin_user::vm_protect(t.addr & !4095, 1, prot::READ_WRITE);
}

/// "appel1": resolve this page and protect the other of the pair.
fn appel1_handler(t: &mut TrapInfo) {
    let page = t.addr & !4095;
    let other = if page == PAGES { PAGES + PAGE } else { PAGES };
    let _ = spin_user::vm_protect(page, 1, prot::READ_WRITE);
    let _ = spin_user::vm_protect(other, 1, prot::NONE);
}

fn map(pages: u64, p: u64) {
    if spin_user::vm_map(PAGES, pages, p).is_err() {
        exit(2);
    }
}

const STACK_SIZE: usize = 16 * 1024;
#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

fn stack_top() -> u64 {
    addr_of_mut!(STACK) as u64 + STACK_SIZE as u64
}

extern "C" fn null_thread(_: u64) -> ! {
    spin_user::thread_exit()
}

extern "C" fn ut_null(_: u64) -> ! {
    uthread::exit(None)
}

extern "C" fn ut_ponger(_: u64) -> ! {
    while STOP.load(Ordering::Relaxed) == 0 {
        let _ = uthread::signal_wait(0);
    }
    uthread::exit(Some(0))
}

static PING: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicU64 = AtomicU64::new(0);

extern "C" fn ponger(_: u64) -> ! {
    loop {
        let _ = spin_user::sem_wait(PING.load(Ordering::Relaxed));
        if STOP.load(Ordering::Relaxed) != 0 {
            spin_user::thread_exit();
        }
        let _ = spin_user::sem_signal(PONG.load(Ordering::Relaxed));
    }
}

/// [`benchmarks::defs::check_changed`] for the row called `name`.
fn check_changed(name: &str, calls: u64, changed: u64) {
    let op = benchmarks::defs::op_named(name).expect("a benchmark operation");
    benchmarks::defs::check_changed(op, calls, changed);
}

fn measure_op(name: &str, iters: u32, runs: u32, server: u64) -> Option<Sample> {
    let install_handler = |h: trap::Handler| {
        if trap::install(h).is_err() {
            exit(3);
        }
    };
    let install_entry = |e: unsafe extern "C" fn()| {
        if trap::install_entry(e).is_err() {
            exit(3);
        }
    };
    Some(match name {
        "system call" => measure(iters, runs, || {
            let _ = spin_user::null();
        }),
        "cross-address-space call" => measure(iters, runs, || {
            let _ = spin_user::xas_call(server, 0);
        }),
        "dirty" => {
            map(1, prot::READ_WRITE);
            raise::write_byte(PAGES);
            assert!(spin_user::vm_dirty(PAGES) == Ok(1), "dirty: the written page must read as dirty");
            measure(iters, runs, || {
                let _ = spin_user::vm_dirty(PAGES);
            })
        }
        "prot1" => {
            // Iteration i raises page i (read-write until then) to
            // read-only; the run's pages are made read-write again after
            // the clock stops.
            let n = iters as u64;
            map(n.max(100), prot::READ_WRITE);
            let mut changed = 0;
            let s = measure_runs(iters, runs, || {
                let mut c = 0; // a local, so the loop keeps it in a register
                let t0 = rdtsc();
                for i in 0..n {
                    c += spin_user::vm_protect(PAGES + i * PAGE, 1, prot::READ).unwrap_or(0);
                }
                let t = rdtsc() - t0;
                changed += c;
                let _ = spin_user::vm_protect(PAGES, n, prot::READ_WRITE);
                t
            });
            check_changed(name, n * (s.runs as u64 + 1), changed);
            s
        }
        "prot100" | "unprot100" => {
            // One call each way per iteration, only one of them timed.
            let (timed, undo) = if name == "prot100" {
                (prot::READ, prot::READ_WRITE)
            } else {
                (prot::READ_WRITE, prot::READ)
            };
            map(100, undo);
            let mut changed = 0;
            let s = measure_runs(iters, runs, || {
                let mut total = 0;
                for _ in 0..iters {
                    let t0 = rdtsc();
                    let c = spin_user::vm_protect(PAGES, 100, timed).unwrap_or(0);
                    total += rdtsc() - t0;
                    changed += c;
                    let _ = spin_user::vm_protect(PAGES, 100, undo);
                }
                total
            });
            check_changed(name, iters as u64 * (s.runs as u64 + 1), changed);
            s
        }
        "trap" => {
            install_entry(trap_entry);
            map(1, prot::NONE);
            measure_runs(iters, runs, || {
                TRAP_TICKS.store(0, Ordering::Relaxed);
                for _ in 0..iters {
                    T0.store(rdtsc(), Ordering::Relaxed);
                    raise::read_byte(PAGES);
                }
                TRAP_TICKS.load(Ordering::Relaxed)
            })
        }
        "fault" => {
            install_handler(unprotect_handler);
            map(1, prot::NONE);
            measure_runs(iters, runs, || {
                let mut total = 0;
                for _ in 0..iters {
                    let t0 = rdtsc();
                    raise::read_byte(PAGES);
                    total += rdtsc() - t0;
                    let _ = spin_user::vm_protect(PAGES, 1, prot::NONE);
                }
                total
            })
        }
        "appel1" => {
            install_handler(appel1_handler);
            map(2, prot::READ_WRITE);
            let _ = spin_user::vm_protect(PAGES, 1, prot::NONE);
            let mut next = PAGES;
            measure(iters, runs, || {
                raise::read_byte(next);
                next ^= PAGES ^ (PAGES + PAGE);
            })
        }
        "appel2" => {
            install_handler(unprotect_handler);
            map(100, prot::READ_WRITE);
            let s = measure(iters, runs, || {
                let _ = spin_user::vm_protect(PAGES, 100, prot::NONE);
                for i in 0..100 {
                    raise::read_byte(PAGES + i * PAGE);
                }
            });
            // Per page: each iteration protected and faulted on 100 pages.
            Sample { iterations: s.iterations * 100, ..s }
        }
        "exception #ud" | "exception #bp" | "exception #de" | "exception #pf" => {
            map(1, prot::READ);
            install_entry(match name {
                "exception #ud" => skip_ud2,
                "exception #bp" => skip_int3,
                "exception #de" => skip_div,
                _ => skip_write,
            });
            match name {
                "exception #ud" => measure(iters, runs, raise::invalid_opcode),
                "exception #bp" => measure(iters, runs, raise::breakpoint),
                "exception #de" => measure(iters, runs, raise::divide_error),
                _ => measure(iters, runs, || raise::write_byte(PAGES)),
            }
        }
        "fork-join user layered" => measure(iters, runs, || {
            if let Ok(t) = spin_user::thread_spawn(null_thread, stack_top(), 0) {
                let _ = spin_user::thread_join(t);
            }
        }),
        "ping-pong user layered" => {
            let (Ok(ping), Ok(pong)) = (spin_user::sem_create(), spin_user::sem_create()) else { exit(4) };
            PING.store(ping, Ordering::Relaxed);
            PONG.store(pong, Ordering::Relaxed);
            let Ok(t) = spin_user::thread_spawn(ponger, stack_top(), 0) else { exit(4) };
            let s = measure(iters, runs, || {
                let _ = spin_user::sem_signal(ping);
                let _ = spin_user::sem_wait(pong);
            });
            STOP.store(1, Ordering::Relaxed);
            let _ = spin_user::sem_signal(ping);
            let _ = spin_user::thread_join(t);
            s
        }
        "fork-join user integrated" => measure(iters, runs, || {
            if let Ok(t) = uthread::fork(ut_null, stack_top(), 0) {
                let _ = uthread::join(t);
            }
        }),
        "ping-pong user integrated" => {
            let Ok(b) = uthread::fork(ut_ponger, stack_top(), 0) else { exit(4) };
            let s = measure(iters, runs, || {
                let _ = uthread::signal_wait(b);
            });
            STOP.store(1, Ordering::Relaxed);
            let _ = uthread::signal_wait(b);
            let _ = uthread::join(b);
            s
        }
        _ => return None,
    })
}

#[unsafe(no_mangle)]
extern "C" fn _start(spec: u64, server: u64) -> ! {
    let Some(op) = benchmarks::OPS.get((spec & 0xff) as usize) else { exit(1) };
    let iters = ((spec >> 8) & 0xffff_ffff) as u32;
    let runs = ((spec >> 40) & 0xff) as u32;
    match measure_op(op.name, iters, runs, server) {
        Some(s) => {
            let a = [s.runs as u64, s.iterations as u64, s.min, s.median, s.max, 0];
            let _ = syscall(nr::BENCH_REPORT, a);
            exit(0)
        }
        None => exit(1),
    }
}
