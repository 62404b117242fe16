//! The processor: slice shares, directed yield, end-of-slice upcalls
//! answered and ignored, and a bystander that must be unaffected by
//! whatever the environments next to it do.

use alloc::format;
use exo_abi::{ANY_PAGE, Binding, ENV_SELF, Prot, Rights, YIELD_ANY};
use exo_user::{Checks, arg_u64, expect_eq, now};
use exos::spawn::spawn_with;
use exos::sys;

/// role=spin cpu=N: run until we have held the processor at N distinct
/// ticks; or ticks=N: until N ticks have passed. Exit code: the tick at
/// which we ended.
pub fn spin(args: &str) -> u64 {
    if let Some(n) = arg_u64(args, "ticks") {
        exo_user::spin_ticks(n);
        return now();
    }
    let want = arg_u64(args, "cpu").unwrap_or(10);
    let (mut mine, mut last) = (0, u64::MAX);
    while mine < want {
        let t = now();
        if t != last {
            mine += 1;
            last = t;
        }
        core::hint::spin_loop();
    }
    now()
}

const COUNTER: u64 = 0x40_0000_0000;

/// role=yield: a directed yield runs exactly the environment named, even
/// one that owns no slices at all.
pub fn yield_test() -> u64 {
    let mut c = Checks::new("yield");
    let Ok((page, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    // SAFETY: COUNTER holds no Rust data.
    let _ = unsafe { sys::bind(ENV_SELF, &[Binding { va: COUNTER, cap: page.0, prot: Prot::RW.0 }]) };
    let child = spawn_with("exo-utest", 0, 64, |child| {
        let cap = sys::page_grant(page, child, Rights::READ_WRITE)?;
        Ok(format!("role=yield-partner cap={}", cap.0))
    });
    let Ok(child) = child else {
        c.check(false, "spawn the partner", format_args!("{child:?}"));
        return c.finish();
    };
    // The partner owns no slices: the counter moves only when we yield to
    // it. (A timer tick may preempt it mid-turn, so a turn can take more
    // than one yield; it can never take none.)
    let counter = COUNTER as *const u64;
    let mut yields = 0u64;
    for k in 1..=20 {
        // SAFETY: COUNTER is bound to the shared page.
        while unsafe { counter.read_volatile() } < k && yields < 200 {
            // SAFETY: as above.
            let before = unsafe { counter.read_volatile() };
            if sys::yield_to(child.0).is_err() {
                break;
            }
            yields += 1;
            // SAFETY: as above.
            let after = unsafe { counter.read_volatile() };
            c.check(after <= before + 1, "one increment per turn", format_args!("{before} -> {after}"));
        }
    }
    // SAFETY: as above.
    expect_eq!(c, "20 turns of the partner", unsafe { counter.read_volatile() }, 20);
    c.check(
        (20..=40).contains(&yields),
        "each needed (about) one directed yield",
        format_args!("{yields} yields"),
    );
    expect_eq!(c, "yield to nobody", sys::yield_to(0x7700), Err(exo_abi::Error::NoSuchEnv));
    expect_eq!(c, "yield to oneself", sys::yield_to(sys::env_self().0), Err(exo_abi::Error::BadState));
    expect_eq!(c, "yield to anyone", sys::yield_to(YIELD_ANY), Ok(()));
    expect_eq!(c, "kill the partner", sys::env_kill(child), Ok(()));
    c.finish()
}

/// role=yield-partner cap=C: count, and hand the processor back.
pub fn yield_partner(args: &str) -> u64 {
    let cap = arg_u64(args, "cap").unwrap_or(0);
    // SAFETY: COUNTER holds no Rust data.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: COUNTER, cap, prot: Prot::RW.0 }]) };
    if r.is_err() {
        return 1;
    }
    let parent = exos::info::get().parent;
    loop {
        // SAFETY: COUNTER is bound to the shared page.
        unsafe { (COUNTER as *mut u64).write_volatile((COUNTER as *const u64).read_volatile() + 1) };
        if sys::yield_to(parent).is_err() {
            return 2;
        }
    }
}

/// role=slice-answer: with the default upcall hook (yield), every end of
/// slice is answered in time: upcalls arrive, no penalty.
pub fn slice_answer() -> u64 {
    let mut c = Checks::new("slice-answer");
    if let Err(e) = exos::upcall::install(None, None) {
        c.check(false, "install", format_args!("{e:?}"));
        return c.finish();
    }
    let start = now();
    while exos::info_field!(slice_upcalls) < 20 && now() < start + 2000 {
        core::hint::spin_loop();
    }
    let (upcalls, penalties) = (exos::info_field!(slice_upcalls), exos::info_field!(penalties));
    c.check(upcalls >= 20, "end-of-slice upcalls arrive", format_args!("{upcalls}"));
    // The answer (a yield) comes microseconds after the upcall, well inside
    // the grace tick. Under TCG the timer follows host time, so a host that
    // stalls QEMU for a millisecond can still cost an odd penalty: allow
    // one in ten, where ignoring the upcall is penalised every time.
    c.check(
        penalties * 10 <= upcalls,
        "answered in time: (almost) no penalties",
        format_args!("{penalties} of {upcalls}"),
    );
    c.finish()
}

/// role=slice-ignore: a hook that keeps the processor for 3 ticks after
/// its slice ended: the kernel preempts it and counts penalties, and it
/// still resumes correctly afterwards.
pub fn slice_ignore() -> u64 {
    let mut c = Checks::new("slice-ignore");
    fn keep_going() {
        exo_user::spin_ticks(3);
    }
    if let Err(e) = exos::upcall::install(Some(keep_going), None) {
        c.check(false, "install", format_args!("{e:?}"));
        return c.finish();
    }
    let start = now();
    let mut spins = 0u64;
    while exos::info_field!(penalties) < 3 && now() < start + 2000 {
        spins += 1;
        core::hint::spin_loop();
    }
    c.check(
        exos::info_field!(penalties) >= 3,
        "preempted and penalised",
        format_args!("{}", exos::info_field!(penalties)),
    );
    c.check(spins > 0 && exos::info_field!(slice_upcalls) >= 3, "upcalls delivered", format_args!(""));
    c.finish()
}

const PATTERN_VA: u64 = 0x50_0000_0000;

/// role=bystander ticks=N: own a page, keep a pattern in it, share the
/// processor for N ticks; everything must be as it was at the end.
pub fn bystander(args: &str) -> u64 {
    let mut c = Checks::new("bystander");
    let Ok((page, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
    // SAFETY: PATTERN_VA holds no Rust data.
    let _ = unsafe { sys::bind(ENV_SELF, &[Binding { va: PATTERN_VA, cap: page.0, prot: Prot::RW.0 }]) };
    let p = PATTERN_VA as *mut u64;
    for i in 0..512 {
        // SAFETY: the page is bound read-write.
        unsafe { p.add(i).write_volatile(0x5eed_0000 + i as u64) };
    }
    let start = now();
    while now() < start + arg_u64(args, "ticks").unwrap_or(30) {
        let _ = sys::yield_to(YIELD_ANY);
    }
    // SAFETY: as above.
    let intact = (0..512).all(|i| unsafe { p.add(i).read_volatile() } == 0x5eed_0000 + i as u64);
    c.check(intact, "our page is untouched", format_args!(""));
    c.finish()
}
