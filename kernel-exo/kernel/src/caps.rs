//! Capabilities: one right to one physical page, held by one environment.
//!
//! A capability is named by a generational handle (`exo_logic::handles`),
//! so a handle to a revoked capability is told apart from one that never
//! existed. Every check an operation needs is done here: the handle names
//! a live capability ([`Error::InvalidCap`] / [`Error::Revoked`]), the
//! caller holds it ([`Error::NotHolder`]), and it carries the right
//! ([`Error::NoRights`]).
//!
//! Invariants: an environment holds at most one capability per page; every
//! page-table entry in an environment's address space was installed with
//! the capability it holds for that page, and is listed in that
//! capability's `mappings`, so revoking the capability breaks exactly those
//! bindings.

use crate::kernel::{Kernel, cap_error};
use alloc::vec::Vec;
use exo_abi::{Error, Rights};

pub struct Cap {
    /// The environment that holds (and alone may use) this capability.
    pub holder: u64,
    /// Physical address of the page.
    pub pa: u64,
    /// READ or READ|WRITE.
    pub rights: Rights,
    /// Whether this is the page's owner capability (free, grant, transfer).
    pub owner: bool,
    /// Virtual addresses in the holder's address space bound with it.
    pub mappings: Vec<u64>,
}

/// The capability `handle`, which `caller` must hold.
pub fn held(k: &Kernel, caller: u64, handle: u64) -> Result<&Cap, Error> {
    let cap = k.caps.get(handle).map_err(cap_error)?;
    if cap.holder != caller {
        return Err(Error::NotHolder);
    }
    Ok(cap)
}

/// The capability `handle`, which `caller` must hold — or, for a grant,
/// whose page `caller` owns (the owner may look at the grants it gave).
pub fn held_or_granted(k: &Kernel, caller: u64, handle: u64) -> Result<&Cap, Error> {
    let cap = k.caps.get(handle).map_err(cap_error)?;
    if cap.holder == caller || (!cap.owner && k.pages.get(&cap.pa).is_some_and(|r| r.owner == caller)) {
        return Ok(cap);
    }
    Err(Error::NotHolder)
}

/// The owner capability `handle`, which `caller` must hold.
pub fn owned(k: &Kernel, caller: u64, handle: u64) -> Result<&Cap, Error> {
    let cap = held(k, caller, handle)?;
    if !cap.owner {
        return Err(Error::NoRights);
    }
    Ok(cap)
}

/// What `cap_info` reports: the page number and the rights (with OWNER).
pub fn info(cap: &Cap) -> (u64, u64) {
    let owner = if cap.owner { Rights::OWNER.0 } else { 0 };
    (cap.pa >> 12, cap.rights.0 | owner)
}
