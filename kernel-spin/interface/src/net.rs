//! Networking: the NICs as the kernel (a trusted service) exposes them, the
//! `Ether.PacketArrived` event at the root of the protocol graph, packet
//! handles, and the types the graph's events and services carry.
//!
//! # The protocol graph
//! The kernel's receive path raises [`ETHER_PACKET_ARRIVED`] (contained)
//! once for every frame a NIC received; the kernel polls the NICs from its
//! idle path (and tests and benchmarks call [`NetServices::poll`]). The
//! `ip` extension handles it (guard: EtherType IPv4) and raises its
//! `IP.PacketArrived`; the `udp` extension handles that (guard: protocol
//! 17) and raises `UDP.PacketArrived`, on which endpoints are guarded
//! handlers whose guard matches the destination port. `arp` answers ARP.
//! Each layer's event is a static of the extension that defines it,
//! exported as an object; the argument types are here, because extensions
//! depend only on this crate.
//!
//! # Packets
//! The frame being delivered lives in one kernel buffer (the receive path
//! is serial); a [`Packet`] is a copyable handle to it with a generation:
//! [`Packet::read`] copies bytes out while the frame is current and copies
//! nothing once another frame has replaced it, so a handle an extension
//! keeps names nothing. Headers are parsed with `smoltcp`'s `wire` types
//! (re-exported as [`wire`]).
//!
//! # Sending
//! [`NetServices::transmit`] sends one whole Ethernet frame (at most
//! [`MAX_FRAME`] bytes) on a NIC; the `udp` extension's `UDP.send` ([`UdpSend`])
//! builds UDP/IPv4/Ethernet headers around a payload and sends it.

use crate::Import;
use crate::contain::critical;
use crate::event::{Combine, KernelEvent};
use crate::key::KernelKey;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin_trusted::RefSlot;

/// Which checksums `wire`'s `parse` and `emit` check and fill (all, by default).
pub use smoltcp::phy::ChecksumCapabilities;
/// `smoltcp`'s header types (no_std, IPv4 and Ethernet only).
pub use smoltcp::wire;
use wire::Ipv4Address;

/// Longest frame sent or delivered (Ethernet header + 1500; no FCS).
pub const MAX_FRAME: usize = 1514;
/// Most NICs the kernel drives.
pub const MAX_NICS: usize = 4;
/// The longest UDP payload one frame carries (1500 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = 1472;

/// The testbed's fixed addressing: NIC `i` has IPv4 address 10.0.17.(i+1).
pub fn address(nic: u8) -> Ipv4Address {
    Ipv4Address::new(10, 0, 17, nic.wrapping_add(1))
}

/// The NIC whose address is `ip`, if one of ours.
pub fn nic_of(ip: Ipv4Address) -> Option<u8> {
    let o = ip.octets();
    (o[..3] == [10, 0, 17] && o[3] >= 1 && usize::from(o[3]) <= MAX_NICS).then(|| o[3] - 1)
}

/// Why a network operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// No NIC with this number.
    NoSuchNic,
    /// Longer than a frame (or a datagram) may be.
    TooLong,
    /// Shorter than an Ethernet header.
    TooShort,
    /// The device refused the frame (its queue is full).
    Device,
    /// The destination's hardware address is not known (ARP unanswered).
    Unreachable,
    /// The service's extension is not loaded.
    Unavailable,
    /// No memory for the datagram.
    NoMemory,
}

/// The frame being delivered.
struct Current {
    generation: u32,
    len: usize,
    data: [u8; MAX_FRAME],
}

static CURRENT: spin::Mutex<Current> =
    spin::Mutex::new(Current { generation: 0, len: 0, data: [0; MAX_FRAME] });

/// A received frame, while it is being delivered (a copyable handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    generation: u32,
    len: u16,
    nic: u8,
    ethertype: u16,
}

impl Packet {
    /// The NIC it arrived on.
    #[inline(always)]
    pub fn nic(self) -> u8 {
        self.nic
    }

    /// Its length in bytes (Ethernet header included).
    #[inline(always)]
    pub fn len(self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The EtherType field (0 for a frame shorter than a header): what
    /// guards on `Ether.PacketArrived` test, without a copy.
    #[inline(always)]
    pub fn ethertype(self) -> u16 {
        self.ethertype
    }

    /// Copy up to `buf.len()` bytes from `offset` into `buf`; how many
    /// were copied (0 past the end, or once the frame is no longer the
    /// one being delivered).
    pub fn read(self, offset: usize, buf: &mut [u8]) -> usize {
        critical(|| {
            let c = CURRENT.lock();
            if c.generation != self.generation || offset >= c.len {
                return 0;
            }
            let n = buf.len().min(c.len - offset);
            buf[..n].copy_from_slice(&c.data[offset..offset + n]);
            n
        })
    }
}

/// Make `frame` (received on `nic`) the frame being delivered and return
/// its handle: earlier handles go stale. The kernel's receive path.
pub fn deliver(_key: &KernelKey, nic: u8, frame: &[u8]) -> Result<Packet, NetError> {
    if frame.len() > MAX_FRAME {
        return Err(NetError::TooLong);
    }
    critical(|| {
        let mut c = CURRENT.lock();
        c.generation = c.generation.wrapping_add(1);
        c.len = frame.len();
        c.data[..frame.len()].copy_from_slice(frame);
        let ethertype = match frame {
            [_, _, _, _, _, _, _, _, _, _, _, _, hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => 0,
        };
        Ok(Packet { generation: c.generation, len: frame.len() as u16, nic, ethertype })
    })
}

/// Frames no handler took (the event's default handler counts them).
static UNCLAIMED: AtomicU64 = AtomicU64::new(0);

fn unclaimed(_: Packet) {
    UNCLAIMED.fetch_add(1, Ordering::Relaxed);
}

/// How many frames arrived that no handler's guard accepted.
pub fn unclaimed_frames() -> u64 {
    UNCLAIMED.load(Ordering::Relaxed)
}

/// A frame arrived (defined by the kernel; the root of the protocol graph).
/// A [`KernelEvent`]: extensions install handlers on it, only the kernel's
/// receive path raises it, so no extension can replay or inject frames
/// into the layers above.
pub static ETHER_PACKET_ARRIVED: KernelEvent<Packet, ()> =
    KernelEvent::new("Ether.PacketArrived", unclaimed, Combine::Last);

/// An IPv4 packet arrived (the `ip` extension's event, exported as
/// `IP.PacketArrived`): the header was checked (version, header length,
/// total length within the frame, checksum; fragments dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPacket {
    pub packet: Packet,
    pub src: Ipv4Address,
    pub dst: Ipv4Address,
    pub protocol: u8,
    /// Where the IP payload starts in the frame, and its length.
    pub payload_offset: u16,
    pub payload_len: u16,
}

/// A UDP datagram arrived (the `udp` extension's event, exported as
/// `UDP.PacketArrived`): length and checksum were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket {
    pub packet: Packet,
    pub src: Ipv4Address,
    pub dst: Ipv4Address,
    pub src_port: u16,
    pub dst_port: u16,
    /// Where the UDP payload starts in the frame, and its length.
    pub payload_offset: u16,
    pub payload_len: u16,
}

impl UdpPacket {
    /// Copy the payload into `buf` (at most its length); bytes copied.
    pub fn read_payload(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(usize::from(self.payload_len));
        self.packet.read(usize::from(self.payload_offset), &mut buf[..n])
    }
}

/// Where a datagram goes (the `udp` extension's `UDP.send`, [`UdpSend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// The NIC it leaves from (its address is the source address).
    pub nic: u8,
    pub src_port: u16,
    pub dst: Ipv4Address,
    pub dst_port: u16,
}

/// `UDP.send`, the procedure the `udp` extension exports: send the payload
/// (at most [`MAX_UDP_PAYLOAD`] bytes) as one datagram. A procedure, not an
/// object of function pointers, so that unloading `udp` unbinds it
/// (`LinkError::Unbound`) instead of leaving callers a way into its code;
/// the payload is owned because a procedure's argument is `'static`
/// ([`owned_payload`] makes one without panicking).
pub type UdpSend = Import<(Datagram, Vec<u8>), Result<(), NetError>>;

/// An import of `UDP.send`, to resolve against the `udp` domain.
pub const fn udp_send() -> UdpSend {
    Import::new("UDP", "send")
}

/// `ARP.resolve`, the procedure the `arp` extension exports: the hardware
/// address of `(nic, ip)` if known; otherwise a request is sent on `nic`
/// and `None` returned (the sender may poll and ask again).
pub type ArpResolve = Import<(u8, Ipv4Address), Option<[u8; 6]>>;

/// An import of `ARP.resolve`, to resolve against the `arp` domain.
pub const fn arp_resolve() -> ArpResolve {
    Import::new("ARP", "resolve")
}

/// A copy of `payload` to hand to `UDP.send` (fallible: no panic when the
/// heap or the caller's quota is exhausted).
pub fn owned_payload(payload: &[u8]) -> Result<Vec<u8>, NetError> {
    if payload.len() > MAX_UDP_PAYLOAD {
        return Err(NetError::TooLong);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(payload.len()).map_err(|_| NetError::NoMemory)?;
    v.extend_from_slice(payload);
    Ok(v)
}

/// The kernel core's NIC procedures, bound at boot.
pub struct Core {
    pub transmit: fn(u8, &[u8]) -> Result<(), NetError>,
    pub mac: fn(u8) -> Option<[u8; 6]>,
    pub count: fn() -> usize,
    pub poll: fn() -> usize,
}

static UNBOUND: Core = Core {
    transmit: |_, _| crate::not_installed("Net"),
    mac: |_| crate::not_installed("Net"),
    count: || crate::not_installed("Net"),
    poll: || crate::not_installed("Net"),
};

static CORE: RefSlot<Core> = RefSlot::new(&UNBOUND);

/// Bind the kernel's implementation.
pub fn install(_key: &KernelKey, core: &'static Core) {
    CORE.set(core);
}

/// Frames sent, counted here for tests (the kernel's own counters are its business).
static SENT: AtomicU32 = AtomicU32::new(0);

/// The NICs (granted to the network extensions).
pub struct NetServices {
    _private: (),
}

impl NetServices {
    /// The one instance (the kernel exports it, restricted).
    pub fn new(_key: &KernelKey) -> &'static NetServices {
        static SERVICES: NetServices = NetServices { _private: () };
        &SERVICES
    }

    /// Send one Ethernet frame (header included, at most [`MAX_FRAME`] bytes).
    pub fn transmit(&self, nic: u8, frame: &[u8]) -> Result<(), NetError> {
        if frame.len() > MAX_FRAME {
            return Err(NetError::TooLong);
        }
        if frame.len() < 14 {
            return Err(NetError::TooShort);
        }
        if usize::from(nic) >= (CORE.get().count)() {
            return Err(NetError::NoSuchNic);
        }
        (CORE.get().transmit)(nic, frame)?;
        SENT.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// NIC `nic`'s hardware address.
    pub fn mac(&self, nic: u8) -> Option<[u8; 6]> {
        (CORE.get().mac)(nic)
    }

    /// How many NICs there are.
    pub fn nics(&self) -> usize {
        (CORE.get().count)()
    }

    /// Deliver the frames waiting in the NICs now; how many. Does nothing
    /// (0) when called from inside a delivery (handlers run on the receive
    /// path; a nested delivery would replace the frame they are reading).
    pub fn poll(&self) -> usize {
        (CORE.get().poll)()
    }

    /// Frames sent through [`NetServices::transmit`] so far.
    pub fn sent(&self) -> u32 {
        SENT.load(Ordering::Relaxed)
    }
}
