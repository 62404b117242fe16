//! The one error enum every system call returns (in RAX; 0 means success).

use core::fmt;

/// Why a system call was refused. Every call may also return
/// [`Error::UnknownCall`] (wrong number) — the rest are listed per call in
/// [`crate::Call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    /// No system call has this number.
    UnknownCall = 1,
    /// An address is non-canonical, in the kernel half, in the reserved
    /// kernel-managed window, outside user space, or not accessible.
    BadAddress = 2,
    /// An address that must be page (or 16-byte) aligned is not.
    Unaligned = 3,
    /// A count or length is zero where it may not be, too large, or overflows.
    BadLength = 4,
    /// No capability has this handle.
    InvalidCap = 5,
    /// The capability existed but has been revoked (or its page freed).
    Revoked = 6,
    /// The capability belongs to another environment.
    NotHolder = 7,
    /// The capability does not carry the right the operation needs
    /// (write access, or ownership).
    NoRights = 8,
    /// The physical page is not free (owned by an environment or the kernel).
    PageInUse = 9,
    /// The number names no page the kernel hands out (MMIO, firmware, out of range).
    NoSuchPage = 10,
    /// No free physical memory (or no memory for page tables).
    OutOfMemory = 11,
    /// The environment's page quota (pages owned plus page tables) is used up.
    QuotaExceeded = 12,
    /// No live environment has this id.
    NoSuchEnv = 13,
    /// The caller has no authority over that environment (not its parent
    /// or ancestor).
    Denied = 14,
    /// The environment is not in a state that allows the operation (e.g.
    /// a PCT target that is not waiting, starting a started child).
    BadState = 15,
    /// The target has no entry point registered for this transfer.
    NoEntry = 16,
    /// A fixed limit is reached (environments, capabilities, slices).
    Limit = 17,
    /// An enumerated or flag argument has an invalid value.
    BadArgument = 18,
    /// No program with this name is in the boot archive.
    NotFound = 19,
    /// Downloaded code the verifier refused (the call says where and why).
    BadCode = 30,
    /// Downloaded code trapped at run time (it is disabled).
    CodeTrapped = 31,
    /// A packet filter would capture frames another installed filter may
    /// already capture (see [`crate::net`] for the rule).
    Conflict = 20,
}

impl Error {
    /// Every error, for tables and tests.
    pub const ALL: [Error; 22] = [
        Error::UnknownCall,
        Error::BadAddress,
        Error::Unaligned,
        Error::BadLength,
        Error::InvalidCap,
        Error::Revoked,
        Error::NotHolder,
        Error::NoRights,
        Error::PageInUse,
        Error::NoSuchPage,
        Error::OutOfMemory,
        Error::QuotaExceeded,
        Error::NoSuchEnv,
        Error::Denied,
        Error::BadState,
        Error::NoEntry,
        Error::Limit,
        Error::BadArgument,
        Error::NotFound,
        Error::BadCode,
        Error::CodeTrapped,
        Error::Conflict,
    ];

    /// The code returned in RAX.
    pub const fn code(self) -> u64 {
        self as u64
    }

    /// The error with this code (`None` for 0, success, and for unknown codes).
    pub fn from_code(code: u64) -> Option<Error> {
        Error::ALL.into_iter().find(|e| e.code() == code)
    }

    /// Turn a returned RAX into a result.
    #[inline]
    pub fn check(status: u64) -> Result<(), Error> {
        if status == 0 { Ok(()) } else { Err(Error::from_status(status)) }
    }

    /// The error a non-zero status names.
    #[cold]
    pub fn from_status(status: u64) -> Error {
        // A code this ABI does not know can only come from a newer kernel.
        Error::from_code(status).unwrap_or(Error::UnknownCall)
    }

    /// A short description.
    pub const fn describe(self) -> &'static str {
        match self {
            Error::UnknownCall => "no such system call",
            Error::BadAddress => "bad address",
            Error::Unaligned => "unaligned address",
            Error::BadLength => "bad count or length",
            Error::InvalidCap => "no such capability",
            Error::Revoked => "capability revoked",
            Error::NotHolder => "capability belongs to another environment",
            Error::NoRights => "capability lacks the needed right",
            Error::PageInUse => "page in use",
            Error::NoSuchPage => "no such page",
            Error::OutOfMemory => "out of memory",
            Error::QuotaExceeded => "page quota exceeded",
            Error::NoSuchEnv => "no such environment",
            Error::Denied => "no authority over that environment",
            Error::BadState => "environment in the wrong state",
            Error::NoEntry => "no entry point registered",
            Error::Limit => "limit reached",
            Error::BadArgument => "bad argument",
            Error::NotFound => "not found",
            Error::BadCode => "downloaded code refused by the verifier",
            Error::CodeTrapped => "downloaded code trapped",
            Error::Conflict => "packet filter overlaps an installed one",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_small_and_round_trip() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_ne!(e.code(), 0, "0 is success");
            assert!(e.code() < 64);
            assert_eq!(Error::from_code(e.code()), Some(*e));
            assert_eq!(Error::check(e.code()), Err(*e));
            for other in &Error::ALL[i + 1..] {
                assert_ne!(e.code(), other.code());
            }
        }
        assert_eq!(Error::check(0), Ok(()));
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::check(9999), Err(Error::UnknownCall));
    }
}
