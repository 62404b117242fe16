//! Thin wrappers over the Linux calls the glue needs, and the ways PID 1
//! ends the virtual machine.

use std::ffi::CString;

/// `getpid` through a raw `syscall` instruction: no libc wrapper, no errno.
#[inline(always)]
pub fn raw_getpid() -> i64 {
    let ret: i64;
    // SAFETY: system call 39 (getpid) has no arguments and no side effects;
    // the kernel clobbers RCX and R11, declared here.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") 39i64 => ret, lateout("rcx") _, lateout("r11") _,
                         options(nostack, preserves_flags))
    };
    ret
}

/// TSC ticks per second, measured against CLOCK_MONOTONIC over 50 ms.
pub fn tsc_hz() -> u64 {
    let t0 = std::time::Instant::now();
    let c0 = benchmarks::measure::rdtsc();
    while t0.elapsed() < std::time::Duration::from_millis(50) {}
    let c1 = benchmarks::measure::rdtsc();
    ((c1 - c0) as f64 / t0.elapsed().as_secs_f64()) as u64
}

/// `fork()`, exiting on failure (nothing sensible to do without it).
pub fn fork() -> libc::pid_t {
    // SAFETY: called while single-threaded (the suite joins its threads).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("bench-linux: fork failed");
        exit_now(1);
    }
    pid
}

/// Wait for `child`; true if it exited with status 0.
pub fn wait_ok(child: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    let r = unsafe { libc::waitpid(child, &mut status, 0) };
    r == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// `_exit` without running destructors (for forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: ends the process.
    unsafe { libc::_exit(code) }
}

/// Mount procfs on /proc (needed for /proc/self/pagemap and /proc/cmdline).
pub fn mount_proc() {
    let _ = std::fs::create_dir_all("/proc");
    let (src, target, fstype) = (CString::new("proc"), CString::new("/proc"), CString::new("proc"));
    let (Ok(src), Ok(target), Ok(fstype)) = (src, target, fstype) else { return };
    // SAFETY: valid NUL-terminated strings; no data argument.
    unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
}

/// End the virtual machine: isa-debug-exit (status 33 success / 35 failure,
/// the same codes our kernels use); power off if the port is unavailable.
pub fn end_machine(ok: bool) -> ! {
    let value: u32 = if ok { 0x10 } else { 0x11 };
    // SAFETY: ioperm grants this process (root, PID 1) the 4 ports of the
    // exit device; `out` to it ends QEMU. If ioperm fails we never execute `out`.
    unsafe {
        if libc::ioperm(0xf4, 4, 1) == 0 {
            core::arch::asm!("out dx, eax", in("dx") 0xf4u16, in("eax") value, options(nomem, nostack));
        }
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    exit_now(if ok { 0 } else { 1 })
}

/// Anonymous read-write memory of `pages` pages.
pub fn map_pages(pages: usize) -> *mut u8 {
    // SAFETY: anonymous private mapping; checked for failure below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            pages * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED, "mmap failed");
    p as *mut u8
}

/// Anonymous read-write memory of `pages` pages that is its own mapping:
/// one unmapped page on each side (a guard gap), so Linux cannot merge it
/// with a neighbour, and an `mprotect` of all of it never splits one.
/// Freed with `unmap_pages(p, pages)`.
pub fn map_region(pages: usize) -> *mut u8 {
    let outer = map_pages(pages + 2);
    // SAFETY: the first and last page of a mapping we own, not used afterwards.
    unsafe {
        libc::munmap(outer as *mut libc::c_void, 4096);
        libc::munmap(outer.add((pages + 1) * 4096) as *mut libc::c_void, 4096);
    }
    outer.wrapping_add(4096)
}

/// One anonymous read-write page at page `index` (0..512) of a 2 MiB
/// window whose other pages are unmapped: a chosen place, since what
/// some queries cost depends on it (a `/proc/self/pagemap` read walks
/// from its page to the end of the page's 2 MiB window).
pub fn map_page_in_window(index: usize) -> *mut u8 {
    const WINDOW: usize = 2 << 20;
    assert!(index < 512);
    // SAFETY: reserve twice the window to find an aligned one inside,
    // then give the reservation back; only this thread maps memory.
    let base = unsafe {
        let r = libc::mmap(
            std::ptr::null_mut(),
            2 * WINDOW,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(r != libc::MAP_FAILED, "mmap failed");
        libc::munmap(r, 2 * WINDOW);
        (r as usize).next_multiple_of(WINDOW)
    };
    // SAFETY: a fixed address in the range just given back; NOREPLACE
    // fails rather than replace anything that was mapped there since.
    let p = unsafe {
        libc::mmap(
            (base + index * 4096) as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    assert!(p as usize == base + index * 4096, "mmap at a fixed place failed");
    p as *mut u8
}

/// Whether every page of `pages` from `p` is mapped with the protection
/// `writable` names, as /proc/self/maps says: how the glue checks that a
/// timed `mprotect` changed what it should (it reports no count).
pub fn has_protection(p: *mut u8, pages: usize, writable: bool) -> bool {
    let (start, end) = (p as usize, p as usize + pages * 4096);
    let want = if writable { "rw" } else { "r-" };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return false };
    let mut covered = start;
    for line in maps.lines() {
        if covered >= end {
            break;
        }
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        if a <= covered && covered < b {
            if !perms.starts_with(want) {
                return false;
            }
            covered = b;
        }
    }
    covered >= end
}

/// Unmap memory from `map_pages`.
pub fn unmap_pages(p: *mut u8, pages: usize) {
    // SAFETY: `p` came from `map_pages(pages)` and is not used afterwards.
    unsafe { libc::munmap(p as *mut libc::c_void, pages * 4096) };
}

/// `mprotect` a page range; true if it succeeded.
#[inline(always)]
pub fn protect(p: *mut u8, pages: usize, writable: bool) -> bool {
    let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    // SAFETY: the range lies in a mapping this process owns; changing its
    // protection cannot break memory safety of Rust code, which only touches
    // it through raw pointers in the glue.
    unsafe { libc::mprotect(p as *mut libc::c_void, pages * 4096, prot) == 0 }
}

/// A signal handler with the SA_SIGINFO signature.
pub type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Install `handler` for `signal`.
pub fn on_signal(signal: libc::c_int, handler: Handler) {
    // SAFETY: a zeroed sigaction is valid; we fill in the handler and flags.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(signal, &sa, std::ptr::null_mut());
    }
}

/// Restore the default action for `signal`.
pub fn default_signal(signal: libc::c_int) {
    // SAFETY: SIG_DFL is always a valid disposition.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// Index of RIP in `mcontext_t::gregs` on x86-64 Linux (glibc and musl).
pub const REG_RIP: usize = 16;

/// Advance the interrupted context's RIP by `bytes` (skip the faulting instruction).
///
/// # Safety
/// `ctx` must be the `ucontext_t` pointer the kernel passed to a SA_SIGINFO handler.
pub unsafe fn skip_instruction(ctx: *mut libc::c_void, bytes: u64) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let uc = ctx as *mut libc::ucontext_t;
        (*uc).uc_mcontext.gregs[REG_RIP] += bytes as i64;
    }
}
