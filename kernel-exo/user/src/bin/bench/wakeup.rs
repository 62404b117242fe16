//! Downloaded code on kernel-exo: the cost of downloading (verifying and
//! installing) a wakeup predicate, and a round of wakeup through one.

use benchmarks::measure::{measure_runs, rdtsc};
use benchmarks::suite::Outcome;
use exo_abi::code::asm::*;
use exo_abi::code::op::*;
use exo_abi::code::{Insn, Window};
use exo_abi::{ANY_PAGE, Binding, Cap, ENV_SELF, Prot, Rights};
use exos::sys;
use hal_logic::cmdline::Cmdline;

/// The shared page: word 0 the waker's counter, word 1 the sleeper's
/// acknowledgement, word 2 how many times it woke.
const SHARED: u64 = 0x42_0000_0000;

fn word(i: u64) -> *mut u64 {
    (SHARED + 8 * i) as *mut u64
}

/// "word 0 ≠ word 1" (tag 1): 7 instructions.
const CHANGED: [Insn; 7] =
    [load(8, 1, 0, 0), load(8, 2, 0, 8), jmp(JNE, 1, 2, 2), mov_k(0, 0), ret(), mov_k(0, 1), ret()];

fn shared_page() -> Cap {
    let (page, _) = sys::page_alloc(ANY_PAGE).expect("a page for the predicate's window");
    // SAFETY: SHARED holds no Rust data.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: SHARED, cap: page.0, prot: Prot::RW.0 }]) };
    r.expect("bind the shared page");
    page
}

/// "handler download, N instructions": one timed PredSet of an
/// N-instruction predicate (a load, N-3 additions, a move, `ret`) per
/// iteration, removed untimed; afterwards it is installed once more and
/// run (PredWait returns its result at once, which is checked).
pub fn download(n: usize, iters: u32, runs: u32) -> Outcome {
    let page = shared_page();
    // SAFETY: SHARED is bound to our page.
    unsafe { word(0).write_volatile(1000) };
    let mut code = [ret(); 100];
    code[0] = load(8, 1, 0, 0);
    for insn in &mut code[1..n - 2] {
        *insn = alu_k(ADD, 1, 1);
    }
    code[n - 2] = mov(0, 1);
    let code = &code[..n];
    let win = [Window { cap: page.0, offset: 0, len: 8 }];
    let sample = measure_runs(iters, runs, || {
        let mut total = 0;
        for _ in 0..iters {
            let t0 = rdtsc();
            let r = sys::pred_set(code, &win);
            total += rdtsc() - t0;
            assert_eq!(r, Ok(()), "the predicate must verify");
            sys::pred_set(&[], &[]).expect("remove it");
        }
        total
    });
    sys::pred_set(code, &win).expect("install it once more");
    assert_eq!(sys::pred_wait(), Ok(1000 + n as u64 - 3), "the downloaded predicate computes its result");
    sys::pred_set(&[], &[]).expect("remove it");
    Outcome::Measured(sample)
}

/// "predicate wakeup": a sleeper with no time slices of its own waits on
/// [`CHANGED`]; one round = we change word 0 and yield to it (the kernel
/// runs the predicate, which holds, and enters it), it acknowledges in
/// word 1 and sleeps again (the predicate is false), and we run again.
pub fn round(iters: u32, runs: u32) -> Outcome {
    let page = shared_page();
    let sleeper = exos::spawn::spawn_with("exo-bench", 0, 64, |child| {
        let cap = sys::page_grant(page, child, Rights::READ_WRITE)?;
        Ok(alloc::format!("role=pred-sleeper cap={}", cap.0))
    })
    .expect("start the sleeper");
    // Let it start and fall asleep (it cannot run once it sleeps).
    while sys::yield_to(sleeper.0).is_ok() {}
    let mut k = 0u64;
    let mut rounds = 0u64;
    let sample = benchmarks::measure(iters, runs, || {
        k += 1;
        // SAFETY: SHARED is bound to the shared page.
        unsafe { word(0).write_volatile(k) };
        rounds += sys::yield_to(sleeper.0).is_ok() as u64;
    });
    // SAFETY: as above.
    let (ack, woke) = unsafe { (word(1).read_volatile(), word(2).read_volatile()) };
    assert_eq!(ack, k, "the sleeper acknowledged the last change");
    // A timer tick may preempt the sleeper between waking and sleeping
    // again (it then finishes in the next round, seeing that round's
    // change): every round but those few must have woken it.
    assert!(rounds == k && woke + 8 >= k && woke <= k, "{woke} wakeups in {k} rounds ({rounds} yields)");
    sys::env_kill(sleeper).expect("stop the sleeper");
    Outcome::Measured(sample)
}

/// role=pred-sleeper cap=C: acknowledge every change of word 0.
pub fn sleeper(cmd: &Cmdline) -> u64 {
    let cap = cmd.get("cap").and_then(|c| c.parse().ok()).unwrap_or(0);
    // SAFETY: SHARED holds no Rust data.
    let (_, r) = unsafe { sys::bind(ENV_SELF, &[Binding { va: SHARED, cap, prot: Prot::RW.0 }]) };
    r.expect("bind the shared page");
    sys::pred_set(&CHANGED, &[Window { cap, offset: 0, len: 24 }]).expect("download the predicate");
    loop {
        if sys::pred_wait() == Ok(1) {
            // SAFETY: SHARED is bound to the shared page.
            unsafe {
                word(1).write_volatile(word(0).read_volatile());
                word(2).write_volatile(word(2).read_volatile() + 1);
            }
        }
    }
}
