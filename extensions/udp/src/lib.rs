//! The UDP layer of kernel-spin's protocol graph (ring 0, safe Rust): a
//! guarded handler on the `ip` extension's `IP.PacketArrived` (guard:
//! protocol 17) that checks the datagram (length field, checksum) with
//! `smoltcp`'s wire types and raises this extension's `UDP.PacketArrived`,
//! on which endpoints are guarded handlers (the guard matches the
//! destination port); and `UDP.service`, which builds the UDP, IPv4 and
//! Ethernet headers around a payload and transmits it.
//!
//! Dropped and counted: bad datagrams (`UDP.drops`), datagrams no
//! endpoint's guard accepted (`UDP.unclaimed`, the event's default).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::event::{Combine, Event, EventInfo};
use spin_interface::net::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket as Wire, UdpRepr,
};
use spin_interface::net::{
    self, ArpResolve, ChecksumCapabilities, Datagram, IpPacket, MAX_FRAME, MAX_UDP_PAYLOAD, NetError,
    NetServices, UdpPacket,
};
use spin_interface::sync::Once;
use spin_interface::{ExportTable, Extension, Identity, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("udp", init);

static NET: Once<&'static NetServices> = Once::new();
static ARP: ArpResolve = net::arp_resolve();
static DROPS: AtomicU64 = AtomicU64::new(0);
static UNCLAIMED: AtomicU64 = AtomicU64::new(0);

fn unclaimed(_: UdpPacket) {
    UNCLAIMED.fetch_add(1, Ordering::Relaxed);
}

/// A datagram arrived (this extension defines it; endpoints handle it).
pub static UDP_PACKET_ARRIVED: Event<UdpPacket, ()> =
    Event::new("UDP.PacketArrived", unclaimed, Combine::Last);

/// Any extension may install an endpoint (its guard names its port).
fn anyone(_: &Identity, _: &EventInfo) -> bool {
    true
}

/// `UDP.send` (see `spin_interface::net::UdpSend`).
fn send_export((d, payload): (Datagram, alloc::vec::Vec<u8>)) -> Result<(), NetError> {
    send(d, &payload)
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static NetServices = ctx.lookup("kernel", "Trusted.Net", "services")?;
    NET.call_once(|| services);
    ctx.resolve("arp", &[&ARP])?;
    let ip: &'static Event<IpPacket, ()> = ctx.lookup("ip", "IP", "PacketArrived")?;
    UDP_PACKET_ARRIVED.define(ctx.identity(), anyone)?;
    ip.install(ctx.identity(), on_ip, Some(is_udp))?;
    Ok(ExportTable::new()
        .event("UDP", "PacketArrived", &UDP_PACKET_ARRIVED)
        .procedure("UDP", "send", send_export)
        .procedure("UDP", "drops", drops)
        .procedure("UDP", "unclaimed", unclaimed_count))
}

fn drops(_: ()) -> u64 {
    DROPS.load(Ordering::Relaxed)
}

fn unclaimed_count(_: ()) -> u64 {
    UNCLAIMED.load(Ordering::Relaxed)
}

fn is_udp(p: &IpPacket) -> bool {
    p.protocol == u8::from(IpProtocol::Udp)
}

fn on_ip(ip: IpPacket) {
    match check(ip) {
        // Contained: a faulting endpoint is unloaded, not this layer.
        Some(u) => {
            let _ = UDP_PACKET_ARRIVED.raise_contained(u);
        }
        None => {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn check(ip: IpPacket) -> Option<UdpPacket> {
    let mut buf = [0u8; MAX_FRAME];
    let len = usize::from(ip.payload_len);
    let n = ip.packet.read(usize::from(ip.payload_offset), &mut buf[..len.min(MAX_FRAME)]);
    if n != len {
        return None;
    }
    let wire = Wire::new_checked(&buf[..n]).ok()?;
    let (src, dst) = (IpAddress::Ipv4(ip.src), IpAddress::Ipv4(ip.dst));
    let repr = UdpRepr::parse(&wire, &src, &dst, &ChecksumCapabilities::default()).ok()?;
    Some(UdpPacket {
        packet: ip.packet,
        src: ip.src,
        dst: ip.dst,
        src_port: repr.src_port,
        dst_port: repr.dst_port,
        payload_offset: ip.payload_offset + 8,
        payload_len: wire.len() - 8,
    })
}

/// Polls for an ARP answer before a send gives up.
const ARP_POLLS: usize = 256;

fn send(d: Datagram, payload: &[u8]) -> Result<(), NetError> {
    let net = NET.get().ok_or(NetError::Unavailable)?;
    if payload.len() > MAX_UDP_PAYLOAD {
        return Err(NetError::TooLong);
    }
    let mine = net.mac(d.nic).ok_or(NetError::NoSuchNic)?;
    let resolve = || ARP.call((d.nic, d.dst)).map_err(|_| NetError::Unavailable);
    let mut dst_mac = resolve()?;
    for _ in 0..ARP_POLLS {
        if dst_mac.is_some() {
            break;
        }
        // Deliver the answer (nothing, if we are inside a delivery).
        if net.poll() == 0 && net::nic_of(d.dst).is_none() {
            break;
        }
        dst_mac = resolve()?;
    }
    let dst_mac = dst_mac.ok_or(NetError::Unreachable)?;
    let src = net::address(d.nic);
    let udp_len = 8 + payload.len();
    let total = 14 + 20 + udp_len;
    let mut buf = [0u8; MAX_FRAME];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..total]);
    EthernetRepr {
        src_addr: EthernetAddress(mine),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut frame);
    let caps = ChecksumCapabilities::default();
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: d.dst,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: 64,
    };
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &caps);
    let mut wire = Wire::new_unchecked(packet.payload_mut());
    UdpRepr { src_port: d.src_port, dst_port: d.dst_port }.emit(
        &mut wire,
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(d.dst),
        payload.len(),
        |p| p.copy_from_slice(payload),
        &caps,
    );
    net.transmit(d.nic, &buf[..total])
}
