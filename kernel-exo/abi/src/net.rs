//! The network interface as a protected resource: the frame limits of the
//! transmit call, the packet-filter language of the DPF-style demultiplexer
//! and the layout of the receive ring an environment names when it installs
//! a filter.
//!
//! # Filters
//!
//! A filter is a conjunction of [`Atom`]s: "the `width`-byte big-endian
//! field at `offset`, masked with `mask`, equals `value`". An atom with
//! [`Atom::AFTER_IPV4`] in `flags` counts its offset from the end of the
//! frame's IPv4 header (14 + 4 × IHL, the IHL read from byte 14 of the
//! frame), the one header-length shift the language has. A test the frame
//! is too short for fails. The kernel merges every filter installed on a
//! NIC into one trie over the atoms' (offset, width, mask, flags) with a
//! hash table on the value, so the cost of a decision depends on the
//! length of the filters, not on how many share a field.
//!
//! **Ownership rule.** A new filter is refused with
//! [`crate::Error::Conflict`] unless it is *provably disjoint* from every
//! filter already installed on that NIC, by anyone: some field (same
//! offset, width and flags) tested by both with values that differ on the
//! bits both masks keep. So no frame can ever match two filters — a
//! duplicate, a refinement (more tests) or a generalisation (fewer) of
//! another filter is refused, and so is a filter on unrelated fields.
//!
//! # Receive ring
//!
//! A ring is 1 to [`RING_PAGES_MAX`] pages the environment may write (named
//! by capabilities). Page 0 starts with a [`RingHeader`]; every page holds
//! [`SLOTS_PER_PAGE`] slots of [`SLOT_BYTES`] bytes from offset
//! [`SLOTS_OFFSET`], each a [`SlotHeader`] followed by the frame. The
//! kernel produces at `tail`, the environment consumes at `head` (both
//! free-running; slot = index mod slot count); when `tail - head` equals
//! the slot count the ring is full and the frame is dropped and counted in
//! `dropped`. The kernel never trusts `head` beyond that comparison.

/// Shortest frame `net_transmit` sends: an Ethernet header.
pub const FRAME_MIN: u64 = 14;
/// Longest frame: an Ethernet header and a 1500-byte payload (no FCS).
pub const FRAME_MAX: u64 = 1514;
/// Bytes `net_transmit` needs free in front of the frame, in the same
/// page: the kernel writes the device's header there and hands the page
/// itself to the NIC (no copy of the frame).
pub const TX_HEADROOM: u64 = 12;

/// Most atoms in one filter.
pub const FILTER_ATOMS_MAX: u64 = 16;
/// Most filters one environment may have installed.
pub const FILTERS_PER_ENV_MAX: usize = 128;
/// Most filters installed, all environments and NICs together.
pub const FILTERS_MAX: usize = 1024;
/// Most pages in one receive ring.
pub const RING_PAGES_MAX: u64 = 8;
/// Most NICs the kernel drives.
pub const NICS_MAX: usize = 4;

/// One field test of a filter (12 bytes, as the environment writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct Atom {
    /// Byte offset of the field (from the frame's start, or from the end
    /// of the IPv4 header with [`Atom::AFTER_IPV4`]).
    pub offset: u16,
    /// 1, 2 or 4 bytes, big-endian.
    pub width: u8,
    /// [`Atom::AFTER_IPV4`] or 0.
    pub flags: u8,
    /// Bits of the field compared (must cover `value`; not 0).
    pub mask: u32,
    pub value: u32,
}

impl Atom {
    /// The offset counts from the end of the IPv4 header.
    pub const AFTER_IPV4: u8 = 1;

    /// A plain test of an absolute field.
    pub const fn new(offset: u16, width: u8, value: u32) -> Atom {
        Atom { offset, width, flags: 0, mask: width_mask(width), value }
    }

    /// A test of a field after the IPv4 header (e.g. a UDP port).
    pub const fn after_ipv4(offset: u16, width: u8, value: u32) -> Atom {
        Atom { offset, width, flags: Atom::AFTER_IPV4, mask: width_mask(width), value }
    }

    /// Whether the atom is well formed: width 1, 2 or 4, known flags, a
    /// mask that fits the width and is not 0, a value inside the mask, and
    /// a field that can lie inside a [`FRAME_MAX`]-byte frame.
    pub const fn is_valid(&self) -> bool {
        let w = self.width;
        if !(w == 1 || w == 2 || w == 4) || self.flags & !Atom::AFTER_IPV4 != 0 {
            return false;
        }
        let full = width_mask(w);
        self.mask != 0
            && self.mask & !full == 0
            && self.value & !self.mask == 0
            && (self.offset as u64) + (w as u64) <= FRAME_MAX
    }
}

/// Every bit of a field `width` bytes wide.
pub const fn width_mask(width: u8) -> u32 {
    match width {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

/// The start of ring page 0.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct RingHeader {
    /// Next slot the environment will consume (written by the environment).
    pub head: u32,
    /// Next slot the kernel will fill (written by the kernel).
    pub tail: u32,
    /// Frames the filter matched but the ring had no room for.
    pub dropped: u32,
    /// Slots in the ring (written by the kernel at install).
    pub slots: u32,
}

/// The start of each slot.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct SlotHeader {
    /// Bytes of frame that follow.
    pub len: u32,
    /// The NIC it arrived on.
    pub nic: u32,
}

/// Where the slots of each ring page start (page 0 has the header before).
pub const SLOTS_OFFSET: usize = 32;
/// Bytes per slot: a slot header and up to [`FRAME_MAX`] bytes, rounded.
pub const SLOT_BYTES: usize = 2032;
/// Slots in each ring page.
pub const SLOTS_PER_PAGE: usize = 2;
const _: () = assert!(SLOTS_OFFSET + SLOTS_PER_PAGE * SLOT_BYTES <= 4096);
const _: () = assert!(core::mem::size_of::<SlotHeader>() + FRAME_MAX as usize <= SLOT_BYTES);
const _: () = assert!(core::mem::size_of::<RingHeader>() <= SLOTS_OFFSET);
const _: () = assert!(core::mem::size_of::<Atom>() == 12);

/// Byte offset of slot `s` in page `s / SLOTS_PER_PAGE` of a ring.
pub const fn slot_offset(s: usize) -> usize {
    SLOTS_OFFSET + (s % SLOTS_PER_PAGE) * SLOT_BYTES
}

/// What `net_info` reports about a NIC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct NicStats {
    pub received: u64,
    pub delivered: u64,
    /// Matched no filter.
    pub dropped_unmatched: u64,
    /// Matched, but the ring was full (or its pages were gone).
    pub dropped_ring: u64,
    /// Too short, too long, or refused by the device.
    pub dropped_malformed: u64,
    pub transmitted: u64,
    /// Bytes copied into rings, and the instructions the copies took.
    pub copied_bytes: u64,
    pub copy_instructions: u64,
    /// Instructions spent waiting for the device to finish transmissions
    /// (QEMU's device model runs beside the guest: how long it takes, in
    /// guest instructions, depends on the host's timing).
    pub tx_wait_instructions: u64,
}
