//! Clean pages first, then the least recently used.
//!
//! A clean page costs nothing to give back (its contents are zeroes, or
//! can be had again), so those go first; among pages of the same kind,
//! the one whose accessed bit has been clear for the most scans of
//! `pager::scan` (the oldest age), then the one not accessed since the
//! last scan, then the oldest mapping.

use crate::pager::{Candidate, Choice, Policy};

/// Clean before dirty, then least recently used.
pub struct CleanLru;

/// Smaller is a better victim.
fn rank(c: &Candidate) -> (bool, core::cmp::Reverse<u16>, bool, u32) {
    (c.dirty, core::cmp::Reverse(c.age), c.accessed, c.seq)
}

impl Policy for CleanLru {
    fn name(&self) -> &'static str {
        "clean-lru"
    }

    fn choose(&self, candidates: &[Candidate], choice: &mut Choice) {
        while choice.remaining() > 0 {
            let best = (0..candidates.len()).filter(|&i| !choice.is_taken(i)).min_by_key(|&i| rank(&candidates[i]));
            match best {
                Some(i) => {
                    choice.take(i);
                }
                None => break,
            }
        }
    }
}
