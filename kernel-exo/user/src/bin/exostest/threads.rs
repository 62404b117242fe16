//! ExOS's user-level threads: fork-join, ping-pong through a mutex and
//! condition variables, yield, and preemption by the end-of-slice upcall.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use exo_user::{Checks, expect_eq};
use exos::thread::sync::{Condvar, Mutex};
use exos::thread::{self, ThreadError};

fn double(x: u64) -> u64 {
    x * 2
}

/// Whose turn it is in the ping-pong (0 = ping, 1 = pong), and rounds.
static TURN: Mutex<(u64, u64)> = Mutex::new((0, 0));
static PING: Condvar = Condvar::new();
static PONG: Condvar = Condvar::new();
const ROUNDS: u64 = 1000;

fn pong(_: u64) -> u64 {
    let mut g = TURN.lock().expect("lock");
    for _ in 0..ROUNDS {
        while g.0 != 1 {
            g = PONG.wait(g).expect("wait");
        }
        g.0 = 0;
        g.1 += 1;
        PING.notify_one();
    }
    g.1
}

static ORDER: AtomicU64 = AtomicU64::new(0);

fn yielder(tag: u64) -> u64 {
    for _ in 0..3 {
        // Record the interleaving: each thread appends its tag.
        let o = ORDER.load(SeqCst);
        ORDER.store(o * 10 + tag, SeqCst);
        thread::yield_now();
    }
    tag
}

pub fn run() -> u64 {
    let mut c = Checks::new("threads");
    // Fork-join: 50 threads in turn, each joined.
    let mut sum = 0;
    let mut ok = true;
    for i in 0..50 {
        match thread::spawn(double, i).map(thread::join) {
            Ok(Ok(r)) => sum += r,
            other => {
                ok = false;
                c.check(false, "spawn and join", format_args!("{other:?}"));
                break;
            }
        }
    }
    c.check(ok, "50 fork-joins", format_args!(""));
    expect_eq!(c, "each returned its result", sum, 2 * (0..50).sum::<u64>());
    // Several alive at once, joined in another order.
    let hs: alloc::vec::Vec<_> = (0..8).filter_map(|i| thread::spawn(double, 100 + i).ok()).collect();
    expect_eq!(c, "8 threads at once", hs.len(), 8);
    let results: alloc::vec::Vec<_> = hs.into_iter().rev().map(thread::join).collect();
    let want: alloc::vec::Vec<_> = (0..8).rev().map(|i| Ok(2 * (100 + i))).collect();
    expect_eq!(c, "joined in reverse", results, want);

    // Ping-pong between this thread and another.
    let h = thread::spawn(pong, 0);
    c.check(h.is_ok(), "start pong", format_args!("{h:?}"));
    let mut g = TURN.lock().expect("lock");
    for _ in 0..ROUNDS {
        g.0 = 1;
        PONG.notify_one();
        while g.0 != 0 {
            g = PING.wait(g).expect("wait");
        }
    }
    drop(g);
    expect_eq!(c, "1000 round trips", h.map(thread::join), Ok(Ok(ROUNDS)));

    // Yield alternates ready threads.
    let a = thread::spawn(yielder, 1);
    let b = thread::spawn(yielder, 2);
    let (a, b) = (a.map(thread::join), b.map(thread::join));
    expect_eq!(c, "yielders ran", (a, b), (Ok(Ok(1)), Ok(Ok(2))));
    // Each yield lets the other run: 121212 — unless the end-of-slice
    // upcall preempted one in between, which may swap a pair. Either way
    // each ran three times and they alternated most of the time.
    let digits: alloc::vec::Vec<u64> = (0..6).map(|k| ORDER.load(SeqCst) / 10u64.pow(k) % 10).collect();
    let changes = digits.windows(2).filter(|w| w[0] != w[1]).count();
    let ones = digits.iter().filter(|&&d| d == 1).count();
    c.check(ones == 3 && changes >= 3, "and took turns", format_args!("{}", ORDER.load(SeqCst)));

    // Refusals.
    let m = Mutex::new(0);
    let held = m.lock();
    expect_eq!(c, "locking a mutex twice", m.lock().map(|_| ()), Err(ThreadError::Deadlock));
    expect_eq!(c, "try_lock of a held mutex", m.try_lock().is_none(), true);
    drop(held);
    expect_eq!(c, "try_lock of a free one", m.try_lock().is_some(), true);
    // A thread that cannot finish until we let it.
    if let Ok(h) = thread::spawn(gated, 0) {
        {
            let _section = exos::private::critical();
            expect_eq!(c, "blocking inside a critical section", thread::join(h), Err(ThreadError::Deadlock));
        }
        *GATE.lock().expect("lock") = true;
        OPEN.notify_all();
        while GATED_DONE.load(SeqCst) == 0 {
            thread::yield_now();
        }
    }
    c.finish()
}

static GATE: Mutex<bool> = Mutex::new(false);
static OPEN: Condvar = Condvar::new();
static GATED_DONE: AtomicU64 = AtomicU64::new(0);

fn gated(_: u64) -> u64 {
    let mut g = GATE.lock().expect("lock");
    while !*g {
        g = OPEN.wait(g).expect("wait");
    }
    GATED_DONE.store(1, SeqCst);
    0
}

static SPUN: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static STOP: AtomicU64 = AtomicU64::new(0);
static COUNTER: Mutex<u64> = Mutex::new(0);

/// Spin without ever yielding, counting.
fn spinner(i: u64) -> u64 {
    while STOP.load(SeqCst) == 0 {
        SPUN[i as usize].fetch_add(1, SeqCst);
    }
    SPUN[i as usize].load(SeqCst)
}

/// Increment a shared counter under the lock, holding it a while.
fn incrementer(n: u64) -> u64 {
    for _ in 0..n {
        let mut g = COUNTER.lock().expect("lock");
        let v = *g;
        for _ in 0..200 {
            core::hint::spin_loop(); // a long critical region: preemption lands inside it
        }
        *g = v + 1;
    }
    n
}

/// Preemption: threads that never yield all get the processor.
pub fn preempt() -> u64 {
    let mut c = Checks::new("preempt");
    let a = thread::spawn(spinner, 0);
    let b = thread::spawn(spinner, 1);
    let start = exo_user::now();
    // This thread never yields either: only the slice-end upcall moves us.
    // Keep going for at least 20 upcalls, so that the penalty ratio below
    // is measured over enough of them for one stalled-host penalty not to
    // decide it.
    let ran = || SPUN[0].load(SeqCst) > 0 && SPUN[1].load(SeqCst) > 0;
    while !(ran() && exos::info_field!(slice_upcalls) >= 20) && exo_user::now() < start + 2000 {
        core::hint::spin_loop();
    }
    STOP.store(1, SeqCst);
    let (a, b) = (a.map(thread::join), b.map(thread::join));
    c.check(
        matches!((a, b), (Ok(Ok(x)), Ok(Ok(y))) if x > 0 && y > 0),
        "both spinners ran though nobody yielded",
        format_args!("{:?} {:?}", SPUN[0].load(SeqCst), SPUN[1].load(SeqCst)),
    );
    let ups = exos::info_field!(slice_upcalls);
    c.check(ups > 0, "driven by end-of-slice upcalls", format_args!("{ups}"));
    // Under TCG the timer follows host time, so a stalled host can cost
    // an odd penalty; ignoring the upcalls would cost one every time.
    let penalties = exos::info_field!(penalties);
    c.check(penalties * 10 <= ups.max(1), "answered in time", format_args!("{penalties} of {ups}"));
    // A lock held across preemptions.
    let hs: alloc::vec::Vec<_> = (0..4).filter_map(|_| thread::spawn(incrementer, 300).ok()).collect();
    let n = hs.len() as u64;
    let done: u64 = hs.into_iter().map(|h| thread::join(h).unwrap_or(0)).sum();
    expect_eq!(
        c,
        "every increment under the lock counted",
        (*COUNTER.lock().expect("lock"), done),
        (300 * n, 300 * n)
    );
    c.check(exos::info_field!(slice_upcalls) > ups, "preempted meanwhile", format_args!(""));
    c.finish()
}
