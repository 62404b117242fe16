//! Ping-pong between two kernel threads with a lock and two condition
//! variables (SPIN's kernel-thread ping-pong), shared by the test and the
//! benchmark: the caller is "ping", a forked thread is "pong".

use crate::imports;
use spin_interface::sync::{Condition, Mutex};
use spin_interface::threads::{ThreadError, ThreadId};

/// Whose turn it is (`PING_TURN` / `PONG_TURN`), and whether pong should stop.
static TURN: Mutex<(u32, bool)> = Mutex::new((PING_TURN, false));
static PING: Condition = Condition::new();
static PONG: Condition = Condition::new();

const PING_TURN: u32 = 0;
const PONG_TURN: u32 = 1;

fn pong(_: usize) {
    let mut g = TURN.lock();
    loop {
        while g.0 != PONG_TURN {
            g = PONG.wait(g);
        }
        if g.1 {
            return;
        }
        g.0 = PING_TURN;
        PING.signal();
    }
}

/// Start the pong thread.
pub fn start() -> Result<ThreadId, ThreadError> {
    *TURN.lock() = (PING_TURN, false);
    imports::fork(pong, 0)
}

/// One round trip: signal pong and block until it signals back.
#[inline(always)]
pub fn round() {
    let mut g = TURN.lock();
    g.0 = PONG_TURN;
    PONG.signal();
    while g.0 != PING_TURN {
        g = PING.wait(g);
    }
}

/// Stop and join the pong thread.
pub fn stop(t: ThreadId) -> Result<(), ThreadError> {
    {
        let mut g = TURN.lock();
        g.1 = true;
        g.0 = PONG_TURN;
        PONG.signal();
    }
    imports::join(t)
}
