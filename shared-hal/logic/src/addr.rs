//! Address arithmetic and the user/kernel split of the 48-bit x86-64 address space.
//!
//! Both kernels give ring 3 the lower canonical half below [`USER_END`]; the
//! upper half belongs to the kernel (the bootloader is told to put every
//! mapping it makes there). A user-supplied address is an *allegation*: it
//! becomes a [`UserRange`] only after these checks.

/// Size of a base page.
pub const PAGE_SIZE: u64 = 4096;

/// First address above the part of the lower half that user programs may map.
///
/// The last 512 GiB slot of the lower half (PML4 index 255) is reserved for a
/// read-only view of the environment's own page tables (the exokernel's
/// self-map), so user mappings end below it.
pub const USER_END: u64 = 0x0000_7f80_0000_0000;

/// Lowest address user programs may map: page zero stays unmapped so that
/// null-pointer dereferences fault.
pub const USER_START: u64 = PAGE_SIZE;

/// Why an address or range supplied by an untrusted caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrError {
    /// Not page aligned where alignment is required.
    Unaligned,
    /// Non-canonical, in the kernel half, or otherwise outside user space.
    NotUser,
    /// Length zero where a non-empty range is required, or `start + len` overflows.
    BadLength,
}

/// Whether `addr` is canonical for 48-bit virtual addresses.
pub const fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1_ffff
}

/// Round down to a page boundary.
pub const fn page_floor(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

/// Round up to a page boundary, or `None` on overflow.
pub const fn page_ceil(addr: u64) -> Option<u64> {
    match addr.checked_add(PAGE_SIZE - 1) {
        Some(a) => Some(page_floor(a)),
        None => None,
    }
}

/// A byte range `[start, start + len)` checked to lie entirely in user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRange {
    start: u64,
    len: u64,
}

impl UserRange {
    /// Check an untrusted `(start, len)` pair. Empty ranges are allowed (a
    /// zero-length read or write is a no-op), but they must still start in user space.
    pub fn new(start: u64, len: u64) -> Result<Self, AddrError> {
        let end = start.checked_add(len).ok_or(AddrError::BadLength)?;
        if start < USER_START || end > USER_END {
            return Err(AddrError::NotUser);
        }
        Ok(Self { start, len })
    }

    /// Like [`UserRange::new`] but also requires page alignment of start and
    /// length and a non-zero length: the shape of a mapping request.
    pub fn pages(start: u64, npages: u64) -> Result<Self, AddrError> {
        if !start.is_multiple_of(PAGE_SIZE) {
            return Err(AddrError::Unaligned);
        }
        if npages == 0 {
            return Err(AddrError::BadLength);
        }
        let len = npages.checked_mul(PAGE_SIZE).ok_or(AddrError::BadLength)?;
        Self::new(start, len)
    }

    /// First byte.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Number of pages the range touches.
    pub const fn page_count(&self) -> u64 {
        if self.len == 0 {
            return 0;
        }
        (page_floor(self.end() - 1) - page_floor(self.start)) / PAGE_SIZE + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x0000_7fff_ffff_ffff));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0x1234_0000_0000_0000));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(is_canonical(u64::MAX));
    }

    #[test]
    fn user_ranges() {
        assert!(UserRange::new(0x40_0000, 10).is_ok());
        assert_eq!(UserRange::new(0, 1), Err(AddrError::NotUser));
        assert_eq!(UserRange::new(0xffff_8000_0000_0000, 8), Err(AddrError::NotUser));
        assert_eq!(UserRange::new(USER_END - 4, 8), Err(AddrError::NotUser));
        assert_eq!(UserRange::new(u64::MAX - 2, 8), Err(AddrError::BadLength));
        assert!(UserRange::new(USER_END - 8, 8).is_ok());
    }

    #[test]
    fn page_ranges() {
        assert_eq!(UserRange::pages(0x40_0001, 1), Err(AddrError::Unaligned));
        assert_eq!(UserRange::pages(0x40_0000, 0), Err(AddrError::BadLength));
        assert_eq!(UserRange::pages(0x40_0000, u64::MAX), Err(AddrError::BadLength));
        let r = UserRange::pages(0x40_0000, 3).unwrap();
        assert_eq!(r.page_count(), 3);
        assert_eq!(r.end(), 0x40_3000);
        assert_eq!(UserRange::new(0x40_0ff0, 0x20).unwrap().page_count(), 2);
        assert_eq!(UserRange::new(0x40_0ff0, 0).unwrap().page_count(), 0);
    }

    #[test]
    fn rounding() {
        assert_eq!(page_floor(0x1fff), 0x1000);
        assert_eq!(page_ceil(0x1001), Some(0x2000));
        assert_eq!(page_ceil(u64::MAX), None);
    }
}
