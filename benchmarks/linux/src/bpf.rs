//! eBPF, Linux's downloaded code: loading a program (`BPF_PROG_LOAD`, the
//! verifier and the JIT included) is the counterpart of downloading a
//! verified handler or predicate into the exokernel.

use benchmarks::measure::{measure_runs, rdtsc};
use benchmarks::suite::Outcome;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high one
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | src << 4, off, imm }
}

/// `n` instructions, the shape of the exokernel's: a load (the packet's
/// length from the `__sk_buff`), a move, n-3 additions, exit.
fn program(n: usize) -> Vec<Insn> {
    let mut p = vec![insn(0x61, 2, 1, 0, 0), insn(0xbf, 0, 2, 0, 0)]; // r2 = skb->len; r0 = r2
    p.extend((0..n - 3).map(|_| insn(0x07, 0, 0, 0, 1))); // r0 += 1
    p.push(insn(0x95, 0, 0, 0, 0)); // exit
    p
}

/// `union bpf_attr` for BPF_PROG_LOAD (the fields up to the log buffer;
/// the rest zero).
#[repr(C)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    rest: [u8; 80],
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN.
#[repr(C)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    rest: [u8; 88],
}

fn load(p: &[Insn]) -> i64 {
    let attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: p.len() as u32,
        insns: p.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        rest: [0; 80],
    };
    // SAFETY: the attribute block and the instructions it points to live
    // across the call; the kernel only reads them.
    unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &attr as *const LoadAttr, size_of::<LoadAttr>()) }
}

/// Run program `fd` once on a 64-byte frame: its result.
fn test_run(fd: i64) -> u32 {
    let data = [0u8; 64];
    let mut attr = TestAttr {
        prog_fd: fd as u32,
        retval: 0,
        data_size_in: data.len() as u32,
        data_size_out: 0,
        data_in: data.as_ptr() as u64,
        data_out: 0,
        repeat: 1,
        duration: 0,
        rest: [0; 88],
    };
    // SAFETY: as in `load`; the kernel writes only `retval` and `duration`
    // of the attribute block, which we own mutably.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, &mut attr as *mut TestAttr, size_of::<TestAttr>())
    };
    assert_eq!(r, 0, "BPF_PROG_TEST_RUN: {}", std::io::Error::last_os_error());
    attr.retval
}

fn close(fd: i64) {
    // SAFETY: `fd` is a descriptor this program owns and no longer uses.
    unsafe { libc::close(fd as i32) };
}

/// "handler download, N instructions": one timed BPF_PROG_LOAD per
/// iteration, the descriptor closed untimed; then the program is run once
/// and must add N-3 to what the 3-instruction program returns.
pub fn download(n: usize, iters: u32, runs: u32) -> Outcome {
    let probe = load(&program(3));
    if probe < 0 {
        return Outcome::NotApplicable("BPF_PROG_LOAD refused (no eBPF in this kernel, or not root)");
    }
    let base = test_run(probe);
    close(probe);
    let p = program(n);
    let sample = measure_runs(iters, runs, || {
        let mut total = 0;
        for _ in 0..iters {
            let t0 = rdtsc();
            let fd = load(&p);
            total += rdtsc() - t0;
            assert!(fd >= 0, "BPF_PROG_LOAD: {}", std::io::Error::last_os_error());
            close(fd);
        }
        total
    });
    let fd = load(&p);
    assert!(fd >= 0, "BPF_PROG_LOAD: {}", std::io::Error::last_os_error());
    assert_eq!(test_run(fd), base + n as u32 - 3, "the loaded program computes its result");
    close(fd);
    Outcome::Measured(sample)
}
