//! Wakeup predicates: downloaded code the verifier refuses for each of its
//! reasons, bad windows, a predicate that holds at once, one on the clock,
//! one on a word another environment writes (the scheduler skips the
//! sleeper until it holds), a window revoked under a sleeper, and a run
//! that traps.

use alloc::format;
use exo_abi::code::asm::*;
use exo_abi::code::op::*;
use exo_abi::code::{Helper, Insn, MAX_INSNS, Reject, Window};
use exo_abi::{ANY_PAGE, Binding, ENV_SELF, EnvStatus, Error, Prot, Rights};
use exo_user::{Checks, arg_u64, expect_eq, now};
use exos::spawn::spawn_with;
use exos::sys;

/// The shared page: word 0 is the waker's counter, word 1 the sleeper's
/// acknowledgement, word 2 how many times the sleeper woke.
const SHARED: u64 = 0x41_0000_0000;

/// "word 0 ≠ word 1" (tag 1).
const CHANGED: [Insn; 7] =
    [load(8, 1, 0, 0), load(8, 2, 0, 8), jmp(JNE, 1, 2, 2), mov_k(0, 0), ret(), mov_k(0, 1), ret()];

fn word(i: u64) -> *mut u64 {
    (SHARED + 8 * i) as *mut u64
}

/// role=predicates
pub fn run() -> u64 {
    let mut c = Checks::new("predicates");
    let Ok((page, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    let win = [Window { cap: page.0, offset: 0, len: 24 }];

    // The verifier's refusals reach ring 3 with their reason and place.
    let refused: &[(&[Insn], Reject, u64)] = &[
        (&[mov_k(0, 0), ja(-2), ret()], Reject::BadJump, 1),
        (&[load(8, 0, 0, 24), ret()], Reject::OutOfBounds, 0),
        (&[load(8, 0, 1, 0), ret()], Reject::OutOfBounds, 0),
        (&[mov(0, 5), ret()], Reject::Uninitialised, 0),
        (&[Insn { imm: 77, ..call(Helper::Now) }, ret()], Reject::Helper, 0),
        (&[mov_k(0, 1)], Reject::NoReturn, 0),
        (&[Insn { op: 0x7f, ..Insn::default() }], Reject::UnknownOp, 0),
        (&[mov_k(0, 1), alu_k(MOD, 0, 0), ret()], Reject::DivisionByZero, 1),
    ];
    for (code, why, at) in refused {
        expect_eq!(
            c,
            "refused with reason and index",
            sys::pred_set(code, &win),
            Err((Error::BadCode, *why as u64, *at))
        );
    }
    let long = [mov_k(0, 0); MAX_INSNS + 1];
    expect_eq!(c, "too long", sys::pred_set(&long, &win).map_err(|e| e.0), Err(Error::BadLength));
    let ok_code = [mov_k(0, 7), ret()];
    let bad_windows: &[(Window, Error)] = &[
        (Window { cap: 0xdead_beef, offset: 0, len: 8 }, Error::InvalidCap),
        (Window { cap: page.0, offset: 4090, len: 8 }, Error::BadArgument),
        (Window { cap: page.0, offset: 0, len: 0 }, Error::BadArgument),
    ];
    for (w, e) in bad_windows {
        expect_eq!(c, "bad window", sys::pred_set(&ok_code, &[*w]).map_err(|e| e.0), Err(*e));
    }
    expect_eq!(
        c,
        "five windows",
        sys::pred_set(&ok_code, &[win[0]; 5]).map_err(|e| e.0),
        Err(Error::BadLength)
    );
    // SAFETY: the kernel must refuse the pointer (it is in the kernel half).
    let (s, _, _) = unsafe { sys::raw(exo_abi::Call::PredSet as u64, 0xffff_8000_0000_0000, 2, 0, 0, 0, 0) };
    expect_eq!(c, "kernel pointer", Error::check(s), Err(Error::BadAddress));

    // No predicate: PredWait says so instead of sleeping forever.
    expect_eq!(c, "remove", sys::pred_set(&[], &[]), Ok(()));
    expect_eq!(c, "wait without a predicate", sys::pred_wait(), Err(Error::BadState));
    // One that holds: returns at once with its tag, and stays installed.
    expect_eq!(c, "install", sys::pred_set(&ok_code, &[]), Ok(()));
    expect_eq!(c, "holds at once", sys::pred_wait(), Ok(7));
    expect_eq!(c, "still installed", sys::pred_wait(), Ok(7));

    // The clock: sleep until three ticks from now (tag 2).
    let t = now();
    let clock = [call(Helper::Now), jmp_k(JGT, 0, (t + 3) as i32, 2), mov_k(0, 0), ret(), mov_k(0, 2), ret()];
    expect_eq!(c, "clock predicate", sys::pred_set(&clock, &[]), Ok(()));
    expect_eq!(c, "woke on the clock", sys::pred_wait(), Ok(2));
    c.check(now() > t + 3, "after the deadline", format_args!("{} then {}", t, now()));

    // A trap at run time disables the predicate.
    let trap = [mov_k(0, 1), mov_k(1, 0), alu(DIV, 0, 1), ret()];
    expect_eq!(c, "verifies", sys::pred_set(&trap, &[]), Ok(()));
    expect_eq!(c, "trapped", sys::pred_wait(), Err(Error::CodeTrapped));
    expect_eq!(c, "removed after the trap", sys::pred_wait(), Err(Error::BadState));

    sleeper_partner(&mut c, page);
    c.finish()
}

/// A partner with no slices of its own sleeps on "word 0 ≠ word 1" of a
/// page we grant it: a directed yield to it fails while the predicate is
/// false (it cannot run), succeeds once we change word 0; then we revoke
/// the grant under it and it wakes with Revoked.
fn sleeper_partner(c: &mut Checks, page: exo_abi::Cap) {
    // SAFETY: SHARED holds no Rust data.
    let _ = unsafe { sys::bind(ENV_SELF, &[Binding { va: SHARED, cap: page.0, prot: Prot::RW.0 }]) };
    let mut grant = exo_abi::Cap(0);
    let child = spawn_with("exo-utest", 0, 64, |child| {
        grant = sys::page_grant(page, child, Rights::READ_WRITE)?;
        Ok(format!("role=pred-sleeper cap={}", grant.0))
    });
    let Ok(child) = child else {
        c.check(false, "spawn the sleeper", format_args!("{child:?}"));
        return;
    };
    // Let it start and go to sleep (it has no slices: only our yields run
    // it; a tick may preempt it on the way, so yield until it cannot run).
    let settle = || (0..10).any(|_| sys::yield_to(child.0) == Err(Error::BadState));
    for k in 1..=10u64 {
        c.check(settle(), "a sleeper whose predicate is false cannot run", format_args!("round {k}"));
        // SAFETY: SHARED is bound to the shared page.
        let woke_before = unsafe { word(2).read_volatile() };
        // SAFETY: as above.
        unsafe { word(0).write_volatile(k) };
        let mut yields = 0;
        // SAFETY: as above.
        while unsafe { word(1).read_volatile() } != k && yields < 10 {
            if sys::yield_to(child.0).is_err() {
                break;
            }
            yields += 1;
        }
        // SAFETY: as above.
        let (ack, woke) = unsafe { (word(1).read_volatile(), word(2).read_volatile()) };
        expect_eq!(c, "it saw the change", ack, k);
        expect_eq!(c, "it woke once", woke, woke_before + 1);
        c.check(yields >= 1, "it ran only when we yielded to it", format_args!("{yields} yields"));
    }
    c.check(settle(), "asleep again", format_args!(""));
    // Take the grant back while it sleeps: it must wake with Revoked, not
    // keep reading a page it no longer holds.
    // SAFETY: only the child's binding is affected.
    expect_eq!(c, "revoke its window", unsafe { sys::cap_revoke(grant) }, Ok(()));
    let mut status = sys::env_status(child);
    for _ in 0..10 {
        if status.is_ok_and(|(s, _)| s != EnvStatus::Alive) {
            break;
        }
        let _ = sys::yield_to(child.0);
        status = sys::env_status(child);
    }
    expect_eq!(c, "the sleeper woke with Revoked and exited", status, Ok((EnvStatus::Exited, 42)));
    let _ = sys::env_kill(child);
}

/// role=pred-sleeper cap=C: acknowledge every change of word 0.
pub fn sleeper(args: &str) -> u64 {
    let cap = arg_u64(args, "cap").unwrap_or(0);
    // SAFETY: SHARED holds no Rust data.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: SHARED, cap, prot: Prot::RW.0 }]) };
    if r.is_err() || sys::pred_set(&CHANGED, &[Window { cap, offset: 0, len: 24 }]).is_err() {
        return 1;
    }
    loop {
        match sys::pred_wait() {
            // SAFETY: SHARED is bound to the shared page.
            Ok(1) => unsafe {
                word(1).write_volatile(word(0).read_volatile());
                word(2).write_volatile(word(2).read_volatile() + 1);
            },
            Ok(_) => {} // entered for another reason: check again
            Err(Error::Revoked) => return 42,
            Err(_) => return 2,
        }
    }
}
