//! Visible revocation: the bookkeeping of one "return N pages by tick T"
//! request.

/// An outstanding request to an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Pages asked for.
    pub wanted: u64,
    /// Pages the environment has returned since.
    pub returned: u64,
    /// The timer tick at which the kernel takes the rest.
    pub deadline: u64,
}

impl Request {
    /// Ask for `wanted` pages, due `ticks` ticks after `now`.
    pub const fn new(wanted: u64, now: u64, ticks: u64) -> Self {
        Self { wanted, returned: 0, deadline: now.saturating_add(ticks) }
    }

    /// Count one returned page; true when the request is now met.
    pub fn returned_one(&mut self) -> bool {
        self.returned = self.returned.saturating_add(1);
        self.met()
    }

    pub const fn met(&self) -> bool {
        self.returned >= self.wanted
    }

    /// Whether the deadline has passed at tick `now`.
    pub const fn expired(&self, now: u64) -> bool {
        now >= self.deadline
    }

    /// Pages still owed.
    pub const fn shortfall(&self) -> u64 {
        self.wanted.saturating_sub(self.returned)
    }

    /// Ticks left at `now`.
    pub const fn ticks_left(&self, now: u64) -> u64 {
        self.deadline.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lifecycle() {
        let mut r = Request::new(3, 100, 5);
        assert_eq!(r.deadline, 105);
        assert!(!r.met() && !r.expired(104) && r.expired(105));
        assert_eq!(r.ticks_left(101), 4);
        assert!(!r.returned_one());
        assert!(!r.returned_one());
        assert_eq!(r.shortfall(), 1);
        assert!(r.returned_one());
        assert_eq!(r.shortfall(), 0);
        assert_eq!(Request::new(1, u64::MAX, 9).deadline, u64::MAX);
        assert_eq!(r.ticks_left(200), 0);
    }
}
