//! Protected control transfer from the library OS's side: a synchronous
//! call that looks like a function call, serving incoming calls,
//! asynchronous sends, and wake-up notifications. (LRPC, with bindings and
//! argument stacks, is built on this in `crate::ipc::lrpc`.)
//!
//! The kernel saves nothing for a synchronous PCT, so the caller saves its
//! own state: [`exos_pct_call`] pushes the callee-saved registers, parks
//! its stack pointer, clears the registers that are not the message (they
//! would otherwise reach the callee), and transfers. Every transfer into
//! this environment arrives at [`exos_pct_entry`] with RAX = the sender:
//! if that is the environment we are calling, it is the reply, and the
//! entry restores the parked state and returns from the call; otherwise it
//! is a new call, served on the PCT stack by the registered server — or a
//! wake-up ([`NOTIFY`] in the first word, sent by [`notify`]), after which
//! the thread scheduler looks at what it may now run.
//!
//! A synchronous call keeps the whole environment waiting until the
//! reply (the caller's thread of control has moved into the callee): no
//! other thread of the caller runs meanwhile.

use crate::sys;
use core::arch::{asm, naked_asm};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use exo_abi::{Call, EnvId, Error, HandlerKind};

/// Five words of message (RSI, RDX, R8, R9, R10).
pub type Message = [u64; 5];

/// A server: computes the reply to `caller`'s message.
pub type Server = fn(EnvId, Message) -> Message;

static SERVER: AtomicUsize = AtomicUsize::new(0);
static PCT_STACK: AtomicU64 = AtomicU64::new(0);
/// The environment our outstanding synchronous call went to (0 = none).
static CALL_TARGET: AtomicU64 = AtomicU64::new(0);
/// Our stack pointer while that call is outstanding.
static CALL_RSP: AtomicU64 = AtomicU64::new(0);

const STACK_PAGES: u64 = 4;

/// First word of a wake-up notification (no server sees it).
pub const NOTIFY: u64 = 0xe705_0000_7a4e_0001;
/// First word of the reply to a call into an environment that serves no
/// calls (it takes only replies and notifications).
pub const NO_SERVER: u64 = 0xe705_0000_7a4e_00ff;

/// Accept PCTs: replies to our calls and notifications always, new calls
/// if `server` is given.
pub fn install(server: Option<Server>) -> Result<(), Error> {
    SERVER.store(server.map_or(0, |f| f as usize), Relaxed);
    ensure()
}

/// Register the PCT entry (keeping any server), if it is not yet.
pub fn ensure() -> Result<(), Error> {
    if PCT_STACK.load(Relaxed) != 0 {
        return Ok(());
    }
    let stack = crate::mem::new_stack(STACK_PAGES)?;
    // SAFETY: `exos_pct_entry` follows the PCT entry convention.
    unsafe { sys::set_handler(HandlerKind::Pct, exos_pct_entry as *const () as u64, 0) }?;
    PCT_STACK.store(stack, Relaxed);
    Ok(())
}

/// In a forked child: register the entry again if the parent had one.
pub(crate) fn after_fork() -> Result<(), Error> {
    CALL_TARGET.store(0, Relaxed);
    if PCT_STACK.load(Relaxed) == 0 {
        return Ok(());
    }
    // SAFETY: as in `ensure`; the stack is a private one (fresh here).
    unsafe { sys::set_handler(HandlerKind::Pct, exos_pct_entry as *const () as u64, 0) }
}

/// Whether a synchronous call of ours is outstanding (the environment is
/// waiting for its reply).
pub fn in_call() -> bool {
    CALL_TARGET.load(Relaxed) != 0
}

/// Wake `target` (it is waiting on something we changed): an
/// asynchronous notification. If it is not waiting yet, hand it the
/// processor and try again, while `still_needed()` says so. Returns
/// NoSuchEnv if it has ended.
pub fn notify(target: EnvId, still_needed: impl Fn() -> bool) -> Result<(), Error> {
    for _ in 0..1000 {
        if !still_needed() {
            return Ok(());
        }
        match send_async(target, [NOTIFY, 0, 0, 0, 0]) {
            Err(Error::BadState) => {
                // Running or ready: let it get to its wait (or see the change).
                if sys::yield_to(target.0).is_err() {
                    sys::yield_to(exo_abi::YIELD_ANY)?;
                }
            }
            r => return r,
        }
    }
    Err(Error::BadState)
}

/// Serve calls with `server` from now on; this context ends (waits).
pub fn serve_forever(server: Server) -> Result<core::convert::Infallible, Error> {
    install(Some(server))?;
    sys::wait()
}

/// Call `target` with `msg`, synchronously (our slices are donated to it
/// until it replies); returns its reply. Registers the PCT entry first if
/// needed (the reply arrives through it).
#[inline]
pub fn call(target: EnvId, msg: Message) -> Result<Message, Error> {
    if PCT_STACK.load(Relaxed) == 0 {
        ensure()?;
    }
    // No thread switch may happen between parking our state and the
    // transfer (another thread's call would overwrite it): the upcall
    // handler does not preempt inside `exos_pct_call` (`in_call_window`).
    let mut reply = core::mem::MaybeUninit::<Message>::uninit();
    // SAFETY: exos_pct_call follows the C ABI; it returns either an error
    // from the kernel or, through exos_pct_entry, 0 with the reply written
    // and every callee-saved register restored.
    let status = unsafe { exos_pct_call(target.0, &msg, reply.as_mut_ptr()) };
    match status {
        // SAFETY: status 0 means exos_pct_entry wrote all five words.
        0 => Ok(unsafe { reply.assume_init() }),
        s => Err(Error::from_status(s)),
    }
}

/// Reply to `caller` (a synchronous PCT back); this context ends. If the
/// caller cannot take it (gone, or not waiting), just wait.
pub fn reply(caller: EnvId, msg: Message) -> ! {
    // SAFETY: `msg` is five readable words; this context ends either way.
    unsafe { exos_pct_reply(caller.0, &msg) }
}

/// Send `msg` to `target` asynchronously: it runs now, for the rest of
/// our slice; we continue later in our own slices.
pub fn send_async(target: EnvId, msg: Message) -> Result<(), Error> {
    let s;
    // SAFETY: the asynchronous PCT saves and restores our complete state.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") Call::PctAsync as u64 => s,
            inlateout("rdi") target.0 => _, inlateout("rsi") msg[0] => _, inlateout("rdx") msg[1] => _,
            inlateout("r8") msg[2] => _, inlateout("r9") msg[3] => _, inlateout("r10") msg[4] => _,
            out("rcx") _, out("r11") _, options(nostack)
        )
    };
    Error::check(s)
}

extern "C" fn exos_pct_serve(caller: u64, m0: u64, m1: u64, m2: u64, m3: u64, m4: u64) -> ! {
    let caller = EnvId(caller);
    if m0 == NOTIFY {
        // Something we wait for may have changed. In a call of our own we
        // keep waiting for its reply; otherwise the scheduler decides.
        if in_call() {
            sys::wait();
        }
        crate::thread::reenter();
    }
    match SERVER.load(Relaxed) {
        0 => reply(caller, [NO_SERVER, 0, 0, 0, 0]),
        f => {
            // SAFETY: only `install` stores non-zero values, and they are Servers.
            let server: Server = unsafe { core::mem::transmute::<usize, Server>(f) };
            // Not a thread: no thread switch while it runs (and whatever
            // was parked keeps its critical-section depth).
            let depth = &crate::private::rt().nopreempt;
            depth.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
            let out = server(caller, [m0, m1, m2, m3, m4]);
            depth.fetch_sub(1, core::sync::atomic::Ordering::SeqCst);
            reply(caller, out)
        }
    }
}

/// Make a synchronous call: `target`, the message at `msg`, the reply to
/// `out`. Returns 0 (through [`exos_pct_entry`]) or the kernel's error.
///
/// # Safety
/// `msg` and `out` must be valid for five words; [`install`] must have
/// registered the entry (else the reply has nowhere to go).
#[unsafe(naked)]
pub unsafe extern "C" fn exos_pct_call(target: u64, msg: *const Message, out: *mut Message) -> u64 {
    naked_asm!(
        "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
        "push rdx",                      // where the reply goes
        "mov [rip + {call_rsp}], rsp",
        "mov [rip + {call_target}], rdi",
        "mov rax, rsi",
        "mov rsi, [rax]",                // the message
        "mov rdx, [rax + 8]",
        "mov r8, [rax + 16]",
        "mov r9, [rax + 24]",
        "mov r10, [rax + 32]",
        "xor ebx, ebx",                  // not part of the message: do not leak them
        "xor ebp, ebp",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "mov eax, {pct_sync}",
        "syscall",
        // Only a failed transfer comes back here (RAX = the error).
        "mov qword ptr [rip + {call_target}], 0",
        "pop rdx",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
        "ret",
        ".globl exos_pct_call_end",
        "exos_pct_call_end:",
        call_rsp = sym CALL_RSP,
        call_target = sym CALL_TARGET,
        pct_sync = const Call::PctSync as u64,
    )
}

unsafe extern "C" {
    /// The first byte after `exos_pct_call`.
    fn exos_pct_call_end();
}

/// Whether `rip` is inside `exos_pct_call`, which parks the caller's state
/// in globals before transferring: no thread switch may happen there.
#[inline]
pub(crate) fn in_call_window(rip: u64) -> bool {
    (exos_pct_call as *const () as u64..exos_pct_call_end as *const () as u64).contains(&rip)
}

/// Transfer synchronously to `target` with the message at `msg`, sending
/// nothing else of ours (this activation's other registers are cleared);
/// if the transfer fails, wait. Never returns, so it saves nothing.
///
/// # Safety
/// `msg` must be valid for five words.
#[unsafe(naked)]
unsafe extern "C" fn exos_pct_reply(target: u64, msg: *const Message) -> ! {
    naked_asm!(
        "mov rax, rsi",
        "mov rsi, [rax]",
        "mov rdx, [rax + 8]",
        "mov r8, [rax + 16]",
        "mov r9, [rax + 24]",
        "mov r10, [rax + 32]",
        "xor ebx, ebx",
        "xor ebp, ebp",
        "xor r12d, r12d",
        "xor r13d, r13d",
        "xor r14d, r14d",
        "xor r15d, r15d",
        "mov eax, {pct_sync}",
        "syscall",
        "mov eax, {wait}",               // the caller could not take it
        "syscall",
        "ud2",
        pct_sync = const Call::PctSync as u64,
        wait = const Call::Wait as u64,
    )
}

/// Every PCT into this environment starts here (see the module docs).
#[unsafe(naked)]
pub extern "C" fn exos_pct_entry() {
    naked_asm!(
        "cmp rax, [rip + {call_target}]",
        "jne 2f",
        // The reply to our call: back into exos_pct_call's frame.
        "mov qword ptr [rip + {call_target}], 0",
        "mov rsp, [rip + {call_rsp}]",
        "pop rax",
        "mov [rax], rsi",
        "mov [rax + 8], rdx",
        "mov [rax + 16], r8",
        "mov [rax + 24], r9",
        "mov [rax + 32], r10",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
        "xor eax, eax",
        "ret",
        // A new call: serve it on the PCT stack.
        "2:",
        "mov rsp, [rip + {stack}]",
        "mov rdi, rax",                  // exos_pct_serve(caller, m0..m4)
        "mov rcx, r8",
        "mov r8, r9",
        "mov r9, r10",
        "cld",
        "call {serve}",
        "ud2",
        call_target = sym CALL_TARGET,
        call_rsp = sym CALL_RSP,
        stack = sym PCT_STACK,
        serve = sym exos_pct_serve,
    )
}
