//! Networking at user level: ARP, IPv4 and UDP over the kernel's NIC
//! binding. The kernel only moves frames — it transmits from a page we
//! own and demultiplexes received frames by the packet filters we install
//! into receive rings in our own pages (`exo_abi::net`); everything a
//! protocol does happens here, with `smoltcp`'s `wire` types parsing and
//! building the headers.
//!
//! ```ignore
//! let mut net = exos::net::Interface::open(0, [10, 0, 0, 1])?;
//! let mut sock = net.bind(4000)?;                  // installs the filter
//! net.send_to(&sock, ([10, 0, 0, 2], 7), b"ping")?; // ARP first if needed
//! let mut buf = [0u8; 1472];
//! let (n, from) = net.recv_from(&mut sock, &mut buf, 10_000)?;
//! ```
//!
//! Waiting never spins: when the ring is empty and the kernel had nothing
//! new for us, the environment yields the rest of its slice.

use crate::sys;
use crate::vm::{self, Mapping};
use exo_abi::net::{
    Atom, FRAME_MAX, RING_PAGES_MAX, RingHeader, SLOTS_PER_PAGE, SlotHeader, TX_HEADROOM, slot_offset,
};
use exo_abi::{Cap, Error, Prot, YIELD_ANY};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

/// Why a network operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The kernel refused a call.
    Kernel(Error),
    /// Nothing arrived within the polls allowed.
    Timeout,
    /// The payload does not fit in one frame.
    TooLong,
    /// No ARP answer for the address.
    Unresolved,
}

impl From<Error> for NetError {
    fn from(e: Error) -> Self {
        NetError::Kernel(e)
    }
}

impl From<vm::VmError> for NetError {
    fn from(e: vm::VmError) -> Self {
        NetError::Kernel(crate::mem::to_error(e))
    }
}

/// Most UDP payload in one (unfragmented) frame.
pub const UDP_PAYLOAD_MAX: usize = FRAME_MAX as usize - 14 - 20 - 8;
/// Where frames are built in the transmit page (headroom before it).
const TX_OFFSET: u64 = 64;
const _: () = assert!(TX_OFFSET >= TX_HEADROOM);

/// A receive ring in pages of our own.
pub struct Ring {
    va: u64,
    caps: [Cap; RING_PAGES_MAX as usize],
    pages: usize,
}

impl Ring {
    /// A fresh ring of `pages` pages.
    pub fn new(pages: usize) -> Result<Ring, NetError> {
        let pages = pages.clamp(1, RING_PAGES_MAX as usize);
        let va = Mapping::anon(pages as u64).prot(Prot::RW).map()?;
        let mut caps = [Cap(0); RING_PAGES_MAX as usize];
        for (i, c) in caps.iter_mut().take(pages).enumerate() {
            *c = vm::page_at(va + i as u64 * 4096).map(|p| p.0).ok_or(Error::BadState)?;
        }
        Ok(Ring { va, caps, pages })
    }

    /// The capabilities the filter names.
    pub fn caps(&self) -> &[Cap] {
        &self.caps[..self.pages]
    }

    fn header(&self) -> *mut RingHeader {
        self.va as *mut RingHeader
    }

    /// Hand the oldest frame to `f` and consume it.
    pub fn pop<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let h = self.header();
        // SAFETY: the ring's pages are mapped read-write for as long as the
        // Ring lives; the kernel writes `tail` and the slots, we `head`.
        let (head, tail) = unsafe {
            (core::ptr::read_volatile(&raw const (*h).head), core::ptr::read_volatile(&raw const (*h).tail))
        };
        if head == tail {
            return None;
        }
        let slots = (self.pages * SLOTS_PER_PAGE) as u32;
        let s = (head % slots) as usize;
        let at = self.va + (s / SLOTS_PER_PAGE) as u64 * 4096 + slot_offset(s) as u64;
        // SAFETY: slot `s` lies in page `s / SLOTS_PER_PAGE` of the ring,
        // filled by the kernel before it published `tail`.
        let hdr = unsafe { core::ptr::read_volatile(at as *const SlotHeader) };
        let len = (hdr.len as usize).min(FRAME_MAX as usize);
        // SAFETY: as above; `len` is clamped to the slot's capacity.
        let frame = unsafe {
            core::slice::from_raw_parts((at as usize + core::mem::size_of::<SlotHeader>()) as *const u8, len)
        };
        let r = f(frame);
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&raw mut (*h).head, head.wrapping_add(1)) };
        Some(r)
    }

    /// Frames the kernel dropped because the ring was full.
    pub fn dropped(&self) -> u32 {
        // SAFETY: as in `pop`.
        unsafe { core::ptr::read_volatile(&raw const (*self.header()).dropped) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = vm::unmap(self.va, self.pages as u64);
    }
}

/// A bound UDP port: its filter and its ring.
pub struct UdpSocket {
    pub port: u16,
    filter: u64,
    ring: Ring,
    /// Frames that reached the ring but were not valid UDP for us.
    pub rejected: u64,
}

impl UdpSocket {
    /// The kernel's id of the socket's filter.
    pub fn filter_id(&self) -> u64 {
        self.filter
    }

    /// Frames the kernel dropped for a full ring.
    pub fn dropped(&self) -> u32 {
        self.ring.dropped()
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let _ = sys::net_filter_remove(self.filter);
    }
}

/// The packet filter of UDP port `port` at `ip`: IPv4, not a fragment,
/// protocol UDP, our address, our port (after the IPv4 header, options
/// included).
pub fn udp_filter(ip: [u8; 4], port: u16) -> [Atom; 5] {
    [
        Atom::new(12, 2, 0x0800),
        Atom { offset: 20, width: 2, flags: 0, mask: 0x3fff, value: 0 },
        Atom::new(23, 1, 17),
        Atom::new(30, 4, u32::from_be_bytes(ip)),
        Atom::after_ipv4(2, 2, u32::from(port)),
    ]
}

/// The filter of ARP packets asking about, or answering to, `ip`.
pub fn arp_filter(ip: [u8; 4]) -> [Atom; 2] {
    [Atom::new(12, 2, 0x0806), Atom::new(38, 4, u32::from_be_bytes(ip))]
}

const ARP_CACHE: usize = 8;

/// Counters of what the library saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub arp_answered: u64,
    pub arp_learned: u64,
    pub yields: u64,
}

/// One NIC with our IPv4 address on it.
pub struct Interface {
    pub nic: u64,
    pub mac: EthernetAddress,
    pub ip: Ipv4Address,
    tx_va: u64,
    tx_cap: Cap,
    arp: Ring,
    arp_filter: u64,
    cache: [Option<(Ipv4Address, EthernetAddress)>; ARP_CACHE],
    cache_next: usize,
    pub stats: Stats,
}

impl Interface {
    /// Use NIC `nic` with address `ip`: a transmit page, and the ARP
    /// filter and ring.
    pub fn open(nic: u64, ip: [u8; 4]) -> Result<Interface, NetError> {
        let (mac, _) = sys::net_info(nic)?;
        let tx_va = Mapping::anon(1).prot(Prot::RW).map()?;
        let tx_cap = vm::page_at(tx_va).map(|p| p.0).ok_or(Error::BadState)?;
        let arp = Ring::new(2)?;
        let arp_filter = sys::net_filter_install(nic, &arp_filter(ip), arp.caps())?;
        Ok(Interface {
            nic,
            mac: EthernetAddress(mac),
            ip: Ipv4Address::from(ip),
            tx_va,
            tx_cap,
            arp,
            arp_filter,
            cache: [None; ARP_CACHE],
            cache_next: 0,
            stats: Stats::default(),
        })
    }

    /// Bind UDP port `port`: install its filter with a fresh ring.
    pub fn bind(&mut self, port: u16) -> Result<UdpSocket, NetError> {
        let ring = Ring::new(4)?;
        let filter = sys::net_filter_install(self.nic, &udp_filter(self.ip.octets(), port), ring.caps())?;
        Ok(UdpSocket { port, filter, ring, rejected: 0 })
    }

    fn tx_buf(&mut self) -> &mut [u8] {
        // SAFETY: the transmit page is mapped read-write for the
        // interface's lifetime and only used here, one frame at a time.
        unsafe {
            core::slice::from_raw_parts_mut((self.tx_va + TX_OFFSET) as *mut u8, (4096 - TX_OFFSET) as usize)
        }
    }

    /// Transmit the first `len` bytes of the transmit buffer.
    fn transmit(&mut self, len: usize) -> Result<(), NetError> {
        sys::net_transmit(self.nic, self.tx_cap, TX_OFFSET, len as u64)?;
        Ok(())
    }

    /// The MAC address `ip` is cached with, if any.
    pub fn arp_cached(&self, ip: [u8; 4]) -> Option<EthernetAddress> {
        self.cached(Ipv4Address::from(ip))
    }

    /// Send a raw frame (tests: hostile senders).
    pub fn send_raw(&mut self, frame: &[u8]) -> Result<(), NetError> {
        if frame.len() > self.tx_buf().len() {
            return Err(NetError::TooLong);
        }
        self.tx_buf()[..frame.len()].copy_from_slice(frame);
        self.transmit(frame.len())
    }

    fn learn(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        if let Some(e) = self.cache.iter_mut().flatten().find(|(i, _)| *i == ip) {
            e.1 = mac;
            return;
        }
        self.cache[self.cache_next] = Some((ip, mac));
        self.cache_next = (self.cache_next + 1) % ARP_CACHE;
        self.stats.arp_learned += 1;
    }

    fn cached(&self, ip: Ipv4Address) -> Option<EthernetAddress> {
        self.cache.iter().flatten().find(|(i, _)| *i == ip).map(|e| e.1)
    }

    fn send_arp(&mut self, op: ArpOperation, tha: EthernetAddress, tpa: Ipv4Address) -> Result<(), NetError> {
        let dst = if op == ArpOperation::Request { EthernetAddress::BROADCAST } else { tha };
        let (mac, ip) = (self.mac, self.ip);
        let buf = self.tx_buf();
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..42]);
        EthernetRepr { src_addr: mac, dst_addr: dst, ethertype: EthernetProtocol::Arp }.emit(&mut frame);
        let arp = ArpRepr::EthernetIpv4 {
            operation: op,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        self.transmit(42)
    }

    /// Answer ARP requests for our address and learn from every ARP
    /// packet that names it.
    pub fn service_arp(&mut self) -> Result<(), NetError> {
        loop {
            let my_ip = self.ip;
            let got = self.arp.pop(|f| {
                let frame = EthernetFrame::new_checked(f).ok()?;
                let arp = ArpRepr::parse(&ArpPacket::new_checked(frame.payload()).ok()?).ok()?;
                match arp {
                    ArpRepr::EthernetIpv4 {
                        operation,
                        source_hardware_addr,
                        source_protocol_addr,
                        target_protocol_addr,
                        ..
                    } if target_protocol_addr == my_ip => {
                        Some((operation, source_hardware_addr, source_protocol_addr))
                    }
                    _ => None,
                }
            });
            match got {
                None => return Ok(()),
                Some(None) => {}
                Some(Some((op, sha, spa))) => {
                    self.learn(spa, sha);
                    if op == ArpOperation::Request {
                        self.send_arp(ArpOperation::Reply, sha, spa)?;
                        self.stats.arp_answered += 1;
                    }
                }
            }
        }
    }

    /// One round of waiting: ARP, the kernel's demultiplexer, and if it
    /// had nothing for us, the rest of the slice to someone else.
    fn wait_once(&mut self) -> Result<(), NetError> {
        self.service_arp()?;
        if sys::net_poll(self.nic)? == 0 {
            self.stats.yields += 1;
            let _ = sys::yield_to(YIELD_ANY);
        }
        Ok(())
    }

    /// The MAC address of `ip`: from the cache, or by asking (at most
    /// `polls` rounds of waiting).
    pub fn resolve(&mut self, ip: Ipv4Address, polls: u32) -> Result<EthernetAddress, NetError> {
        if let Some(mac) = self.cached(ip) {
            return Ok(mac);
        }
        for round in 0..polls {
            if round % 64 == 0 {
                self.send_arp(ArpOperation::Request, EthernetAddress([0; 6]), ip)?;
            }
            self.wait_once()?;
            if let Some(mac) = self.cached(ip) {
                return Ok(mac);
            }
        }
        Err(NetError::Unresolved)
    }

    /// Send `payload` from `sock`'s port to `to` (address, port).
    pub fn send_to(&mut self, sock: &UdpSocket, to: ([u8; 4], u16), payload: &[u8]) -> Result<(), NetError> {
        if payload.len() > UDP_PAYLOAD_MAX {
            return Err(NetError::TooLong);
        }
        let dst_ip = Ipv4Address::from(to.0);
        let dst_mac = self.resolve(dst_ip, 10_000)?;
        let (mac, ip) = (self.mac, self.ip);
        let len = build_udp(self.tx_buf(), (mac, ip, sock.port), (dst_mac, dst_ip, to.1), payload);
        self.transmit(len)
    }

    /// Receive one datagram on `sock` into `buf`: (bytes, (sender address,
    /// port)). Frames that are not valid UDP for us (bad checksums, wrong
    /// lengths, ...) are counted in `sock.rejected` and skipped. Waits at
    /// most `polls` rounds.
    pub fn recv_from(
        &mut self,
        sock: &mut UdpSocket,
        buf: &mut [u8],
        polls: u32,
    ) -> Result<(usize, ([u8; 4], u16)), NetError> {
        let my_ip = self.ip;
        let port = sock.port;
        for _ in 0..=polls {
            while let Some(got) = sock.ring.pop(|f| parse_udp(f, my_ip, port, buf)) {
                match got {
                    Some(r) => return Ok(r),
                    None => sock.rejected += 1,
                }
            }
            self.wait_once()?;
        }
        Err(NetError::Timeout)
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        let _ = sys::net_filter_remove(self.arp_filter);
        let _ = vm::unmap(self.tx_va, 1);
    }
}

/// Build an Ethernet/IPv4/UDP frame in `buf` from (MAC, address, port)
/// to (MAC, address, port), checksums filled; returns its length. `buf`
/// must hold 42 bytes more than the payload.
pub fn build_udp(
    buf: &mut [u8],
    from: (EthernetAddress, Ipv4Address, u16),
    to: (EthernetAddress, Ipv4Address, u16),
    payload: &[u8],
) -> usize {
    let len = 14 + 20 + 8 + payload.len();
    let caps = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..len]);
    EthernetRepr { src_addr: from.0, dst_addr: to.0, ethertype: EthernetProtocol::Ipv4 }.emit(&mut frame);
    let ip_repr = Ipv4Repr {
        src_addr: from.1,
        dst_addr: to.1,
        next_header: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        hop_limit: 64,
    };
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip_repr.emit(&mut packet, &caps);
    UdpRepr { src_port: from.2, dst_port: to.2 }.emit(
        &mut UdpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(from.1),
        &IpAddress::Ipv4(to.1),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    len
}

/// The datagram in `f` if it is valid UDP to `ip`:`port`: copied to `buf`.
fn parse_udp(f: &[u8], ip: Ipv4Address, port: u16, buf: &mut [u8]) -> Option<(usize, ([u8; 4], u16))> {
    let caps = ChecksumCapabilities::default();
    let frame = EthernetFrame::new_checked(f).ok()?;
    if frame.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(frame.payload()).ok()?;
    let ip_repr = Ipv4Repr::parse(&packet, &caps).ok()?;
    if ip_repr.dst_addr != ip || ip_repr.next_header != IpProtocol::Udp {
        return None;
    }
    let udp_packet = UdpPacket::new_checked(packet.payload()).ok()?;
    let udp = UdpRepr::parse(
        &udp_packet,
        &IpAddress::Ipv4(ip_repr.src_addr),
        &IpAddress::Ipv4(ip_repr.dst_addr),
        &caps,
    )
    .ok()?;
    if udp.dst_port != port {
        return None;
    }
    let data = udp_packet.payload();
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    Some((n, (ip_repr.src_addr.octets(), udp.src_port)))
}

/// A UDP echo server on NIC `nic` at `ip`:`port`, until a datagram "quit"
/// (returns 0) or an error (returns its number for the exit code).
pub fn serve_echo(nic: u64, ip: [u8; 4], port: u16) -> u64 {
    let Ok(mut net) = Interface::open(nic, ip) else { return 1 };
    let Ok(mut sock) = net.bind(port) else { return 2 };
    let mut buf = [0u8; UDP_PAYLOAD_MAX];
    loop {
        match net.recv_from(&mut sock, &mut buf, u32::MAX - 1) {
            Ok((n, from)) => {
                if &buf[..n] == b"quit" {
                    crate::println!("[udp-echo] quit; {} frames rejected", sock.rejected);
                    return 0;
                }
                if net.send_to(&sock, from, &buf[..n]).is_err() {
                    return 3;
                }
            }
            Err(_) => return 4,
        }
    }
}
