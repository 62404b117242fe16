//! The processor as a vector of time slices.
//!
//! Each slot of the vector is owned by one environment (named here by its
//! table index) or free. The scheduler walks the vector round-robin; an
//! environment with more slots runs more often. Slots move between
//! environments only by explicit transfer (a parent gives some of its own
//! to a child it creates, and gets them back when the child ends), so no
//! environment can take processor time it was not given.
//!
//! A synchronous PCT *donates* the caller's slices to the callee until
//! the callee transfers back; [`resolve`] follows such donations to find
//! who actually runs in a slot.

/// Not enough free (or owned) slots for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotEnough;

/// `N` time slices.
#[derive(Debug, Clone)]
pub struct SliceVector<const N: usize> {
    owner: [Option<usize>; N],
    cursor: usize,
}

impl<const N: usize> Default for SliceVector<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SliceVector<N> {
    pub const fn new() -> Self {
        Self { owner: [None; N], cursor: N - 1 }
    }

    /// Slots owned by `who`.
    pub fn count(&self, who: usize) -> usize {
        self.owner.iter().filter(|o| **o == Some(who)).count()
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.owner.iter().filter(|o| o.is_none()).count()
    }

    /// Give `n` free slots to `who`, spread over the vector (every
    /// `N / n`-th free slot where possible, so an environment's turns are
    /// evenly spaced).
    pub fn assign(&mut self, who: usize, n: usize) -> Result<(), NotEnough> {
        if n > self.free() {
            return Err(NotEnough);
        }
        let stride = N.checked_div(n).unwrap_or(1).max(1);
        let mut given = 0;
        let mut start = 0;
        while given < n {
            let mut i = start;
            while i < N && given < n {
                if self.owner[i].is_none() {
                    self.owner[i] = Some(who);
                    given += 1;
                    i += stride;
                } else {
                    i += 1;
                }
            }
            start += 1;
        }
        Ok(())
    }

    /// Move `n` of `from`'s slots to `to`.
    pub fn transfer(&mut self, from: usize, to: usize, n: usize) -> Result<(), NotEnough> {
        if self.count(from) < n {
            return Err(NotEnough);
        }
        // Take the later ones, so a parent keeps its first turns.
        for slot in self.owner.iter_mut().rev().filter(|o| **o == Some(from)).take(n) {
            *slot = Some(to);
        }
        Ok(())
    }

    /// Move all of `from`'s slots to `to` (or free them if `to` is `None`);
    /// returns how many moved.
    pub fn give_all(&mut self, from: usize, to: Option<usize>) -> usize {
        let mut moved = 0;
        for slot in self.owner.iter_mut().filter(|o| **o == Some(from)) {
            *slot = to;
            moved += 1;
        }
        moved
    }

    /// The slot the scheduler is in.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The owner of slot `i`.
    pub fn owner(&self, i: usize) -> Option<usize> {
        self.owner.get(i).copied().flatten()
    }

    /// Advance round-robin to the next slot, starting after the cursor,
    /// for which `choose(owner)` names something to run; the cursor stays
    /// there. Looks at each slot at most once; `None` if nothing can run.
    pub fn next(&mut self, mut choose: impl FnMut(usize) -> Option<usize>) -> Option<usize> {
        for step in 1..=N {
            let i = (self.cursor + step) % N;
            if let Some(owner) = self.owner[i]
                && let Some(run) = choose(owner)
            {
                self.cursor = i;
                return Some(run);
            }
        }
        None
    }
}

/// Who runs in a slot owned by `owner`: the first environment along the
/// chain of donations (starting with `owner` itself) that can run. Chains
/// are bounded by `limit` steps, so a donation cycle resolves to nothing
/// rather than looping.
pub fn resolve(
    owner: usize,
    limit: usize,
    runnable: impl Fn(usize) -> bool,
    donated_to: impl Fn(usize) -> Option<usize>,
) -> Option<usize> {
    let mut who = owner;
    for _ in 0..=limit {
        if runnable(who) {
            return Some(who);
        }
        who = donated_to(who)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_spreads_and_counts() {
        let mut v: SliceVector<8> = SliceVector::new();
        v.assign(1, 2).unwrap();
        assert_eq!(v.count(1), 2);
        assert_eq!(v.owner(0), Some(1));
        assert_eq!(v.owner(4), Some(1), "two slots of eight are four apart");
        v.assign(2, 6).unwrap();
        assert_eq!(v.free(), 0);
        assert_eq!(v.assign(3, 1), Err(NotEnough));
        assert_eq!(v.transfer(2, 3, 7), Err(NotEnough));
        v.transfer(2, 3, 2).unwrap();
        assert_eq!((v.count(2), v.count(3)), (4, 2));
        assert_eq!(v.give_all(3, Some(2)), 2);
        assert_eq!(v.count(2), 6);
        assert_eq!(v.give_all(2, None), 6);
        assert_eq!(v.free(), 6);
    }

    #[test]
    fn round_robin_shares_by_slot_count() {
        let mut v: SliceVector<6> = SliceVector::new();
        v.assign(1, 4).unwrap();
        v.assign(2, 2).unwrap();
        let mut runs = [0usize; 3];
        for _ in 0..60 {
            let who = v.next(Some).unwrap();
            runs[who] += 1;
        }
        assert_eq!((runs[1], runs[2]), (40, 20));
    }

    #[test]
    fn next_skips_what_cannot_run_and_reports_idle() {
        let mut v: SliceVector<4> = SliceVector::new();
        v.assign(1, 2).unwrap();
        v.assign(2, 2).unwrap();
        for _ in 0..5 {
            assert_eq!(v.next(|o| (o == 2).then_some(o)), Some(2));
        }
        assert_eq!(v.next(|_| None), None);
        let empty: SliceVector<4> = SliceVector::new();
        assert_eq!(empty.clone().next(Some), None);
    }

    #[test]
    fn donations_are_followed_and_cycles_end() {
        // 1 donated to 2, 2 donated to 3; only 3 can run.
        let don = |e: usize| match e {
            1 => Some(2),
            2 => Some(3),
            _ => None,
        };
        assert_eq!(resolve(1, 8, |e| e == 3, don), Some(3));
        assert_eq!(resolve(1, 8, |e| e == 1 || e == 3, don), Some(1), "the owner itself first");
        assert_eq!(resolve(1, 8, |_| false, don), None);
        // A cycle 1 -> 2 -> 1 where nobody can run.
        let cyc = |e: usize| Some(if e == 1 { 2 } else { 1 });
        assert_eq!(resolve(1, 8, |_| false, cyc), None);
    }
}
