//! System-call wrappers: one raw entry point and a typed wrapper per call.
//!
//! The register convention is `exo_abi`'s (RAX = number / status, RDI,
//! RSI, RDX, R10, R8, R9 = arguments, RDX and R8 = results). Wrappers for
//! calls that change this environment's own memory map or control flow
//! are `unsafe`; the rest cannot break the program's memory safety.

use core::arch::asm;
use exo_abi::{Binding, Call, Cap, ENV_SELF, EnvId, EnvStatus, Error, HandlerKind, Prot, Rights};

/// What a call returned: status, result 0, result 1.
pub type Raw = (u64, u64, u64);

/// Make system call `n` with six arguments.
///
/// # Safety
/// Depending on `n` the call may rebind this environment's memory or
/// transfer control away; the caller answers for the consequences (the
/// typed wrappers below are the safe way in).
#[inline(always)]
pub unsafe fn raw(n: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> Raw {
    let (status, r0, r1);
    // SAFETY: `syscall` clobbers RCX and R11 and (per the ABI) zeroes or
    // rewrites the argument registers, all declared here; the stack is not
    // touched. What the call itself does is the caller's obligation.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => status,
            inlateout("rdi") a0 => _,
            inlateout("rsi") a1 => _,
            inlateout("rdx") a2 => r0,
            inlateout("r10") a3 => _,
            inlateout("r8") a4 => r1,
            inlateout("r9") a5 => _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        )
    };
    (status, r0, r1)
}

/// A call that cannot affect this program's memory or control flow.
#[inline(always)]
fn call(c: Call, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> Result<(u64, u64), Error> {
    // SAFETY: used only for the calls listed as safe in this module.
    let (s, r0, r1) = unsafe { raw(c as u64, a0, a1, a2, a3, a4, 0) };
    Error::check(s).map(|()| (r0, r1))
}

/// The null system call: no arguments, no result.
#[inline(always)]
pub fn null() {
    // SAFETY: Null does nothing; the registers the ABI lets the kernel
    // change are declared clobbered (none is an argument, so the compiler
    // has nothing to set up but RAX).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") Call::Null as u64 => _,
            out("rdi") _, out("rsi") _, out("rdx") _, out("r10") _, out("r8") _, out("r9") _,
            out("rcx") _, out("r11") _,
            options(nostack),
        )
    };
}

/// Write bytes to the console (at most `CONSOLE_MAX` per call).
pub fn console_write(bytes: &[u8]) -> Result<(), Error> {
    call(Call::ConsoleWrite, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0).map(|_| ())
}

/// This environment's id.
pub fn env_self() -> EnvId {
    EnvId(call(Call::EnvSelf, 0, 0, 0, 0, 0).map_or(0, |r| r.0))
}

/// Allocate physical page `ppn` (or any with `exo_abi::ANY_PAGE`):
/// returns the owner capability and the page number.
pub fn page_alloc(ppn: u64) -> Result<(Cap, u64), Error> {
    call(Call::PageAlloc, ppn, 0, 0, 0, 0).map(|(c, p)| (Cap(c), p))
}

/// Free an owned page.
///
/// # Safety
/// Every binding of the page (here and wherever it was granted) is broken:
/// no live reference may point into it.
pub unsafe fn page_free(cap: Cap) -> Result<(), Error> {
    call(Call::PageFree, cap.0, 0, 0, 0, 0).map(|_| ())
}

/// Grant an owned page to `to`; the new capability is `to`'s.
pub fn page_grant(cap: Cap, to: EnvId, rights: Rights) -> Result<Cap, Error> {
    call(Call::PageGrant, cap.0, to.0, rights.0, 0, 0).map(|(c, _)| Cap(c))
}

/// Give an owned page to a child or the parent.
///
/// # Safety
/// As for [`page_free`]: this environment's bindings of it are broken.
pub unsafe fn page_transfer(cap: Cap, to: EnvId) -> Result<Cap, Error> {
    call(Call::PageTransfer, cap.0, to.0, 0, 0, 0).map(|(c, _)| Cap(c))
}

/// Drop a grant we hold, or take back one we gave.
///
/// # Safety
/// Bindings made with the capability are broken.
pub unsafe fn cap_revoke(cap: Cap) -> Result<(), Error> {
    call(Call::CapRevoke, cap.0, 0, 0, 0, 0).map(|_| ())
}

/// Page number and rights of a capability.
pub fn cap_info(cap: Cap) -> Result<(u64, Rights), Error> {
    call(Call::CapInfo, cap.0, 0, 0, 0, 0).map(|(p, r)| (p, Rights(r)))
}

/// The capability the page bound at `va` (in our own address space) was
/// bound with, and its page number.
pub fn lookup(va: u64) -> Result<(Cap, u64), Error> {
    call(Call::Lookup, va, 0, 0, 0, 0).map(|(c, p)| (Cap(c), p))
}

/// Apply bindings to `env`'s address space (`ENV_SELF` or a descendant).
/// Returns how many were applied before an error, with the error.
///
/// # Safety
/// Rebinding or unbinding pages of this environment changes memory under
/// the program: no live reference may point into a page whose binding
/// changes. (Binding into another environment is safe for us.)
pub unsafe fn bind(env: u64, list: &[Binding]) -> (u64, Result<(), Error>) {
    // SAFETY: the caller upholds the contract above.
    let (s, applied, _) =
        unsafe { raw(Call::Bind as u64, env, list.as_ptr() as u64, list.len() as u64, 0, 0, 0) };
    (applied, Error::check(s))
}

/// Change the protection of `pages` pages bound from `va` on in `env`'s
/// address space (`ENV_SELF` or a descendant). Returns how many entries
/// changed (a page that already had `prot` does not count), or, with an
/// error, how many pages were reprotected before it.
///
/// # Safety
/// As for [`bind`]: no live reference may rely on access this removes.
#[inline(always)]
pub unsafe fn protect(env: u64, va: u64, pages: u64, prot: Prot) -> (u64, Result<(), Error>) {
    let (s, done);
    // SAFETY: as in `raw`, with the four arguments Protect takes (the
    // kernel returns R8 as result 1 and zeroes the other argument
    // registers, all declared clobbered); the caller upholds the rest.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") Call::Protect as u64 => s,
            inlateout("rdi") env => _,
            inlateout("rsi") va => _,
            inlateout("rdx") pages => done,
            inlateout("r10") prot.0 => _,
            out("r8") _, out("r9") _, out("rcx") _, out("r11") _,
            options(nostack),
        )
    };
    (done, Error::check(s))
}

/// Bind into a descendant's address space.
pub fn bind_child(child: EnvId, list: &[Binding]) -> (u64, Result<(), Error>) {
    if child.0 == ENV_SELF {
        return (0, Err(Error::BadArgument));
    }
    // SAFETY: the bindings change another address space, not ours.
    unsafe { bind(child.0, list) }
}

/// Register an entry point.
///
/// # Safety
/// The kernel will transfer control to `entry` (on `stack`) following the
/// ABI's convention for `kind`; both must be ready for that.
pub unsafe fn set_handler(kind: HandlerKind, entry: u64, stack: u64) -> Result<(), Error> {
    call(Call::SetHandler, kind as u64, entry, stack, 0, 0).map(|_| ())
}

/// Create a child with `slices` of our time slices and `quota` of our pages.
pub fn env_create(slices: u64, quota: u64) -> Result<EnvId, Error> {
    call(Call::EnvCreate, slices, quota, 0, 0, 0).map(|(id, _)| EnvId(id))
}

/// Start a child.
pub fn env_start(child: EnvId, rip: u64, rsp: u64, a0: u64, a1: u64) -> Result<(), Error> {
    call(Call::EnvStart, child.0, rip, rsp, a0, a1).map(|_| ())
}

/// Kill a descendant (or remove the record of an ended child).
pub fn env_kill(env: EnvId) -> Result<(), Error> {
    call(Call::EnvKill, env.0, 0, 0, 0, 0).map(|_| ())
}

/// A child's status and detail.
pub fn env_status(child: EnvId) -> Result<(EnvStatus, u64), Error> {
    let (s, d) = call(Call::EnvStatus, child.0, 0, 0, 0, 0)?;
    Ok((EnvStatus::from_number(s).ok_or(Error::BadState)?, d))
}

/// Ask a descendant to return `pages` pages within `ticks` ticks.
pub fn env_reclaim(env: EnvId, pages: u64, ticks: u64) -> Result<(), Error> {
    call(Call::EnvReclaim, env.0, pages, ticks, 0, 0).map(|_| ())
}

/// Read part of a boot-archive program: (bytes copied, file size).
pub fn program_read(name: &str, offset: u64, buf: &mut [u8]) -> Result<(u64, u64), Error> {
    call(
        Call::ProgramRead,
        name.as_ptr() as u64,
        name.len() as u64,
        offset,
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
    )
}

/// Give up the rest of the slice (to `target`, or anyone with
/// `exo_abi::YIELD_ANY`).
pub fn yield_to(target: u64) -> Result<(), Error> {
    let s;
    // SAFETY: Yield saves and restores the complete register state, so the
    // program continues as if from a plain call; every register is listed
    // as clobbered anyway.
    unsafe {
        asm!("syscall", inlateout("rax") Call::Yield as u64 => s, inlateout("rdi") target => _,
             out("rsi") _, out("rdx") _, out("r8") _, out("r9") _, out("r10") _,
             out("rcx") _, out("r11") _, options(nostack))
    };
    Error::check(s)
}

/// Stop; only a PCT or an upcall enters this environment again.
pub fn wait() -> ! {
    // SAFETY: Wait never returns; nothing of this context is needed again.
    unsafe { asm!("syscall", in("rax") Call::Wait as u64, options(noreturn, nostack)) }
}

/// Download a wakeup predicate (see `exo_abi::code` and [`Call::PredSet`]);
/// an empty `code` removes it. On a refusal the error is `BadCode` with
/// the reason and the instruction's index.
pub fn pred_set(
    code: &[exo_abi::code::Insn],
    windows: &[exo_abi::code::Window],
) -> Result<(), (Error, u64, u64)> {
    // SAFETY: PredSet only reads the two arrays (Insn and Window are the
    // ABI's `repr(C)` layouts) and changes nothing in this program.
    let (s, why, at) = unsafe {
        raw(
            Call::PredSet as u64,
            code.as_ptr() as u64,
            code.len() as u64,
            windows.as_ptr() as u64,
            windows.len() as u64,
            0,
            0,
        )
    };
    Error::check(s).map_err(|e| (e, why, at))
}

/// Sleep until the installed predicate holds: its tag (0 if an upcall
/// resumed this context before it held).
pub fn pred_wait() -> Result<u64, Error> {
    let (s, tag);
    // SAFETY: PredWait saves and restores the complete register state but
    // RAX and RDX (status and tag), like Yield; every register the ABI
    // names is declared clobbered anyway.
    unsafe {
        asm!("syscall", inlateout("rax") Call::PredWait as u64 => s, out("rdx") tag,
             out("rdi") _, out("rsi") _, out("r8") _, out("r9") _, out("r10") _,
             out("rcx") _, out("r11") _, options(nostack))
    };
    Error::check(s).map(|()| tag)
}

/// End this environment.
pub fn exit(code: u64) -> ! {
    // SAFETY: Exit never returns.
    unsafe { asm!("syscall", in("rax") Call::Exit as u64, in("rdi") code, options(noreturn, nostack)) }
}

/// NIC `nic`'s MAC address (6 bytes) and how many NICs there are.
pub fn net_info(nic: u64) -> Result<([u8; 6], u64), Error> {
    call(Call::NetInfo, nic, 0, 0, 0, 0).map(|(mac, n)| {
        let b = mac.to_be_bytes();
        ([b[2], b[3], b[4], b[5], b[6], b[7]], n)
    })
}

/// NIC `nic`'s counters.
pub fn net_stats(nic: u64) -> Result<exo_abi::net::NicStats, Error> {
    let mut s = exo_abi::net::NicStats::default();
    call(Call::NetInfo, nic, &raw mut s as u64, 0, 0, 0).map(|_| s)
}

/// Transmit the `len`-byte frame at byte `offset` of the page of `cap`
/// (with `exo_abi::net::TX_HEADROOM` bytes free before it).
pub fn net_transmit(nic: u64, cap: Cap, offset: u64, len: u64) -> Result<(), Error> {
    call(Call::NetTransmit, nic, cap.0, offset, len, 0).map(|_| ())
}

/// Install a packet filter delivering into the ring of `ring` pages.
/// Returns the filter's id.
pub fn net_filter_install(nic: u64, atoms: &[exo_abi::net::Atom], ring: &[Cap]) -> Result<u64, Error> {
    call(
        Call::NetFilterInstall,
        nic,
        atoms.as_ptr() as u64,
        atoms.len() as u64,
        ring.as_ptr() as u64,
        ring.len() as u64,
    )
    .map(|(id, _)| id)
}

/// Remove a filter this environment installed.
pub fn net_filter_remove(id: u64) -> Result<(), Error> {
    call(Call::NetFilterRemove, id, 0, 0, 0, 0).map(|_| ())
}

/// Have the kernel demultiplex what NIC `nic` received; returns how many
/// frames it took.
pub fn net_poll(nic: u64) -> Result<u64, Error> {
    call(Call::NetPoll, nic, 0, 0, 0, 0).map(|(n, _)| n)
}

/// Benchmark probe: which filter `frame` would go to (0: none), and the
/// instructions the kernel's decision took.
pub fn net_demux_probe(nic: u64, frame: &[u8]) -> Result<(u64, u64), Error> {
    call(Call::NetDemuxProbe, nic, frame.as_ptr() as u64, frame.len() as u64, 0, 0)
}
