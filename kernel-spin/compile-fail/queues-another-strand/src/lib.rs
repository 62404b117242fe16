//! Fixture: an extension parking a strand it saw (not the running one) in
//! a queue of its own, so the scheduler could never queue it again (a
//! strand is in at most one queue). Only the running strand queues itself;
//! queueing another takes the scheduler's `Scheduling` capability.
#![no_std]
#![forbid(unsafe_code)]

use spin_interface::strand::{Strand, StrandQueue};

static TRAP: StrandQueue = StrandQueue::new();

pub fn park(victim: Strand) -> bool {
    TRAP.push(victim)
}
