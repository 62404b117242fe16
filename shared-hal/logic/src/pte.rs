//! x86-64 page-table entry bits: the one definition the HAL's page tables,
//! kernel-exo's ABI (what an environment reads through its self-map) and
//! kernel-spin use.

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const USER: u64 = 1 << 2;
/// Write-through and cache-disable (with the default PAT: uncached, for
/// device registers).
pub const NO_CACHE: u64 = (1 << 3) | (1 << 4);
pub const ACCESSED: u64 = 1 << 5;
pub const DIRTY: u64 = 1 << 6;
/// A large page (at the levels above the last).
pub const HUGE: u64 = 1 << 7;
pub const GLOBAL: u64 = 1 << 8;
/// Bits 9..=11 are ignored by the MMU and free for the OS.
pub const AVAILABLE_SHIFT: u32 = 9;
pub const NO_EXECUTE: u64 = 1 << 63;
/// The physical address field.
pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
