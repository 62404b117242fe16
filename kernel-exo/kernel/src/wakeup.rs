//! Wakeup predicates (Xok): an environment downloads a small verified
//! program over words in pages it holds, and sleeps; the scheduler runs
//! the program whenever the environment's slice comes up and wakes it
//! when the result is non-zero (the result is the tag it wakes with).
//!
//! The secure binding is made at download: each window's capability must
//! be held with read rights and the window must lie in its page, so the
//! verifier's bounds proof is a proof that a run reads only those bytes.
//! A window's capability can die while its owner sleeps (the page is
//! freed, the grant revoked): [`cap_dropped`] is called from the one place
//! capabilities die, and the sleeper then wakes with `Revoked` instead of
//! a run reading a page that may belong to someone else by then.

use crate::caps;
use crate::env::Env;
use crate::kernel::Kernel;
use crate::uaccess;
use alloc::vec::Vec;
use exo_abi::code::{INSN_BYTES, Insn, Kind, MAX_INSNS, MAX_WINDOWS, WINDOW_BYTES, Window};
use exo_abi::{Error, Rights};
use exo_logic::code::{self, Machine, Refused};
use shared_hal::memory::phys_to_virt;

/// An installed predicate.
pub struct Predicate {
    code: Vec<Insn>,
    windows: [Bound; MAX_WINDOWS],
    /// Whether the code calls the clock helper: then time alone can make
    /// it true, and the monitor keeps the clock running for its sleeper.
    uses_clock: bool,
    /// Whether a window's capability died: the next evaluation wakes the
    /// environment with `Revoked` and never runs the code again.
    revoked: bool,
}

/// A window after the secure binding: the capability it was made with
/// and where its bytes are in the kernel's physical window.
#[derive(Clone, Copy, Default)]
struct Bound {
    cap: u64,
    base: u64,
}

/// What an evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The predicate is false: keep sleeping.
    No,
    /// It holds, with this tag.
    Tag(u64),
    /// Wake with this error (and the predicate is gone).
    Error(Error),
}

impl Wake {
    /// What PredWait returns for it: (status, result 0). `No` is 0 and 0:
    /// entered for another reason (an upcall) before the predicate held.
    pub fn registers(self) -> (u64, u64) {
        match self {
            Wake::No => (0, 0),
            Wake::Tag(tag) => (0, tag),
            Wake::Error(err) => (err.code(), 0),
        }
    }
}

/// Why a download failed: an error, and for `BadCode` the reason and the
/// instruction.
pub type SetError = (Error, Option<Refused>);

/// [`exo_abi::Call::PredSet`] for environment `i`.
pub fn set(
    k: &mut Kernel,
    i: usize,
    code_ptr: u64,
    count: u64,
    win_ptr: u64,
    nwin: u64,
) -> Result<(), SetError> {
    if count == 0 {
        k.env_mut(i).pred = None;
        return Ok(());
    }
    if count > MAX_INSNS as u64 || nwin > MAX_WINDOWS as u64 {
        return Err((Error::BadLength, None));
    }
    let mut raw = [0u8; MAX_INSNS * INSN_BYTES];
    let raw = &mut raw[..count as usize * INSN_BYTES];
    uaccess::copy_from_user(raw, code_ptr).map_err(|e| (e, None))?;
    let mut wraw = [0u8; MAX_WINDOWS * WINDOW_BYTES];
    let wraw = &mut wraw[..nwin as usize * WINDOW_BYTES];
    uaccess::copy_from_user(wraw, win_ptr).map_err(|e| (e, None))?;

    let me = k.env(i).id;
    let mut windows = [Bound::default(); MAX_WINDOWS];
    let mut lens = [0u32; MAX_WINDOWS];
    for (n, chunk) in wraw.chunks_exact(WINDOW_BYTES).enumerate() {
        let w = Window::from_bytes(chunk.try_into().expect("chunks_exact"));
        let cap = caps::held(k, me, w.cap).map_err(|e| (e, None))?;
        if !cap.rights.contains(Rights::READ) {
            return Err((Error::NoRights, None));
        }
        if w.len == 0 || u64::from(w.offset) + u64::from(w.len) > 4096 {
            return Err((Error::BadArgument, None));
        }
        windows[n] = Bound { cap: w.cap, base: phys_to_virt(cap.pa) + u64::from(w.offset) };
        lens[n] = w.len;
    }
    let mut insns = Vec::new();
    insns.try_reserve_exact(count as usize).map_err(|_| (Error::OutOfMemory, None))?;
    insns.extend(raw.chunks_exact(INSN_BYTES).map(|c| Insn::from_bytes(c.try_into().expect("chunks_exact"))));
    code::verify(&insns, Kind::Predicate, &lens[..nwin as usize]).map_err(|r| (Error::BadCode, Some(r)))?;
    let uses_clock = insns.iter().any(|i| i.op == exo_abi::code::op::CALL);
    k.env_mut(i).pred = Some(Predicate { code: insns, windows, uses_clock, revoked: false });
    Ok(())
}

/// Evaluate `e`'s predicate at clock `now`.
pub fn eval(e: &Env, now: u64) -> Wake {
    let Some(p) = e.pred.as_ref() else { return Wake::Error(Error::BadState) };
    if p.revoked {
        return Wake::Error(Error::Revoked);
    }
    match code::run(&p.code, &Reader { p, now }) {
        Ok(0) => Wake::No,
        Ok(tag) => Wake::Tag(tag),
        Err(code::Trap::DivisionByZero) => Wake::Error(Error::CodeTrapped),
    }
}

/// After a wake with an error the predicate is gone.
pub fn woke(e: &mut Env, how: Wake) {
    if let Wake::Error(_) = how {
        e.pred = None;
    }
}

/// Whether some environment sleeps on a predicate that reads the clock.
pub fn clock_sleepers(k: &Kernel) -> bool {
    k.env_slots().any(|i| {
        let e = k.env(i);
        e.sleeping && e.pred.as_ref().is_some_and(|p| p.uses_clock)
    })
}

/// Capability `handle` of environment `e` died.
pub fn cap_dropped(e: &mut Env, handle: u64) {
    if let Some(p) = e.pred.as_mut()
        && p.windows.iter().any(|w| w.cap == handle && w.base != 0)
    {
        p.revoked = true;
    }
}

struct Reader<'a> {
    p: &'a Predicate,
    now: u64,
}

impl Machine for Reader<'_> {
    fn load(&self, w: usize, off: usize, width: usize) -> u64 {
        let base = self.p.windows[w].base + off as u64;
        (0..width).rev().fold(0, |acc, b| {
            // SAFETY: the verifier proved `off + width` within the window,
            // the window lies in a page the environment held a read
            // capability for at download, and the capability is still
            // live (`revoked` is set the moment it dies, and then no run
            // happens): the bytes are a page of RAM the environment may
            // read, through the kernel's physical window. Volatile: the
            // environment writes them behind the compiler's back.
            acc << 8 | u64::from(unsafe { core::ptr::read_volatile((base + b as u64) as *const u8) })
        })
    }

    fn now(&self) -> u64 {
        self.now
    }
}
