//! First in, first out: give back the pages mapped longest ago.

use crate::pager::{Candidate, Choice, Policy};

/// Oldest mapping first (by mapping order; ignores use and dirtiness).
pub struct Fifo;

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn choose(&self, candidates: &[Candidate], choice: &mut Choice) {
        // Repeatedly take the oldest candidate not taken yet: O(n * wanted),
        // fine for the few pages a request asks for, and no allocation.
        while choice.remaining() > 0 {
            let oldest = (0..candidates.len())
                .filter(|&i| !choice.is_taken(i))
                .min_by_key(|&i| candidates[i].seq);
            match oldest {
                Some(i) => {
                    choice.take(i);
                }
                None => break,
            }
        }
    }
}
