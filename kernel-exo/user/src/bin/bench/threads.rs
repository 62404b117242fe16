//! The thread-management rows with ExOS's user-level threads, which are
//! integrated with the exokernel through its end-of-slice upcall (the
//! "user integrated" rows). The timer is off while benchmarks run, so
//! what is measured is the package's own work: no upcall interrupts it.

use benchmarks::measure::{measure_runs, rdtsc};
use benchmarks::suite::Outcome;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use exos::thread::sync::{Condvar, Mutex};
use exos::thread::{self, join, spawn};

#[inline(never)]
fn null_thread(x: u64) -> u64 {
    x
}

/// Create, run and join a thread that does nothing.
pub fn fork_join(iters: u32, runs: u32) -> Outcome {
    let sample = benchmarks::measure(iters, runs, || {
        let h = spawn(null_thread, 1).expect("spawn");
        core::hint::black_box(join(h).expect("join"));
    });
    Outcome::Measured(sample)
}

/// Whose turn: 0 = ping (the measuring thread), 1 = pong, 2 = stop.
static TURN: Mutex<u64> = Mutex::new(0);
static PING: Condvar = Condvar::new();
static PONG: Condvar = Condvar::new();
static ROUNDS: AtomicU64 = AtomicU64::new(0);

fn pong(_: u64) -> u64 {
    let mut g = TURN.lock().expect("lock");
    loop {
        while *g == 0 {
            g = PONG.wait(g).expect("wait");
        }
        if *g == 2 {
            return ROUNDS.load(Relaxed);
        }
        *g = 0;
        ROUNDS.fetch_add(1, Relaxed);
        PING.notify_one();
    }
}

/// Thread A signals B and blocks; B signals A and blocks: one round trip
/// per iteration, through a mutex and two condition variables.
pub fn ping_pong(iters: u32, runs: u32) -> Outcome {
    let h = spawn(pong, 0).expect("spawn pong");
    // We hold the lock between round trips (the condition waits release it).
    let mut held = Some(TURN.lock().expect("lock"));
    let sample = measure_runs(iters, runs, || {
        let mut g = held.take().expect("held between runs");
        let t0 = rdtsc();
        for _ in 0..iters {
            *g = 1;
            PONG.notify_one();
            while *g != 0 {
                g = PING.wait(g).expect("wait");
            }
        }
        let t = rdtsc() - t0;
        held = Some(g);
        t
    });
    let mut g = held.take().expect("held");
    *g = 2;
    PONG.notify_one();
    drop(g);
    let rounds = join(h).expect("join pong");
    // Every round trip went the whole way (the warm-up run too).
    assert_eq!(rounds, iters as u64 * (sample.runs as u64 + 1), "ping-pong lost rounds");
    thread::yield_now();
    Outcome::Measured(sample)
}
