//! Visible revocation and the abort protocol.
//!
//! The kernel asks an environment to return N pages by a deadline; the
//! request is delivered as an upcall (when the environment registered an
//! upcall entry) and recorded in its info page. The environment chooses
//! which pages to give up (free or transfer them). If it has not returned
//! N by the deadline, the abort protocol takes the shortfall itself —
//! the most recently acquired pages first — breaking every binding of
//! them and recording their numbers in the environment's repossession
//! vector, which it can read in its info page. Nothing else is disturbed.
//! (The order is `exo_logic::revoke::victims`' newest-first, applied one
//! page at a time so the timer path needs no heap.)

use crate::env;
use crate::kernel::Kernel;
use exo_abi::Error;
use exo_logic::revoke::Request;

/// Ask environment `i` to return `pages` pages within `ticks` timer ticks.
pub fn request(k: &mut Kernel, i: usize, pages: u64, ticks: u64) -> Result<(), Error> {
    let now = k.ticks;
    let e = k.env_mut(i);
    if !e.is_live() {
        return Err(Error::NoSuchEnv);
    }
    if e.revoke.is_some() {
        return Err(Error::BadState);
    }
    if pages == 0 {
        return Err(Error::BadArgument);
    }
    e.revoke = Some(Request::new(pages, now, ticks));
    e.revoke_upcall_pending = e.upcall_entry != 0;
    env::publish(k, i);
    if ticks == 0 {
        abort(k, i);
    }
    Ok(())
}

/// Run the abort protocol on every environment whose request has expired.
pub fn check_deadlines(k: &mut Kernel) {
    let now = k.ticks;
    for i in 0..exo_abi::MAX_ENVS {
        if k.occupied(i) && k.env(i).revoke.is_some_and(|r| r.expired(now)) {
            abort(k, i);
        }
    }
}

/// Whether any request is outstanding (the monitor then keeps the clock
/// running even when nothing is runnable).
pub fn pending(k: &Kernel) -> bool {
    k.env_slots().any(|i| k.env(i).revoke.is_some())
}

/// Take what environment `i` still owes.
pub fn abort(k: &mut Kernel, i: usize) {
    let Some(req) = k.env_mut(i).revoke.take() else { return };
    k.env_mut(i).revoke_upcall_pending = false;
    let id = k.env(i).id;
    // Newest first (see exo_logic::revoke::victims): take the most recently
    // acquired page it owns, as often as it owes one. (No list is built:
    // the timer path must not depend on the heap.)
    let mut taken = 0;
    while taken < req.shortfall() {
        let newest =
            k.env(i).caps.iter().rev().find_map(|h| k.caps.get(*h).ok().filter(|c| c.owner)).map(|c| c.pa);
        let Some(pa) = newest else { break };
        crate::pages::free_page(k, pa, false);
        env::record_repossessed(k, i, pa >> 12);
        taken += 1;
    }
    env::publish(k, i);
    log::info!("kernel-exo: repossessed {taken} page(s) from environment {id:#x}");
}
