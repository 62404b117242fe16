//! The IPv4 layer of kernel-spin's protocol graph (ring 0, safe Rust): a
//! guarded handler on `Ether.PacketArrived` (guard: EtherType IPv4) that
//! checks the header with `smoltcp`'s wire types and raises this
//! extension's own event `IP.PacketArrived` for packets addressed to the
//! NIC they arrived on.
//!
//! Dropped (and counted, `IP.drops`): truncated frames, a wrong version,
//! header or total length, a bad header checksum, fragments (no
//! reassembly), packets for another address. Options are skipped (the
//! payload starts after the header length the packet states).
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::event::{Combine, Event, EventInfo};
use spin_interface::net::ChecksumCapabilities;
use spin_interface::net::wire::{EthernetProtocol, Ipv4Packet, Ipv4Repr};
use spin_interface::net::{self, IpPacket, MAX_FRAME, Packet};
use spin_interface::{ExportTable, Extension, Identity, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("ip", init);

/// Packets that passed the checks and no protocol handler took.
static NO_PROTOCOL: AtomicU64 = AtomicU64::new(0);
/// Frames dropped by the checks.
static DROPS: AtomicU64 = AtomicU64::new(0);

fn no_protocol(_: IpPacket) {
    NO_PROTOCOL.fetch_add(1, Ordering::Relaxed);
}

/// An IPv4 packet for us arrived (this extension defines it).
pub static IP_PACKET_ARRIVED: Event<IpPacket, ()> =
    Event::new("IP.PacketArrived", no_protocol, Combine::Last);

/// Any extension may handle IP packets (a transport layer, a monitor):
/// receiving is not a privilege on this testbed; sending is (`Trusted.Net`).
fn anyone(_: &Identity, _: &EventInfo) -> bool {
    true
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    IP_PACKET_ARRIVED.define(ctx.identity(), anyone)?;
    net::ETHER_PACKET_ARRIVED.install(ctx.identity(), on_frame, Some(is_ipv4))?;
    Ok(ExportTable::new()
        .event("IP", "PacketArrived", &IP_PACKET_ARRIVED)
        .procedure("IP", "drops", drops)
        .procedure("IP", "unclaimed", unclaimed))
}

fn drops(_: ()) -> u64 {
    DROPS.load(Ordering::Relaxed)
}

fn unclaimed(_: ()) -> u64 {
    NO_PROTOCOL.load(Ordering::Relaxed)
}

fn is_ipv4(p: &Packet) -> bool {
    p.ethertype() == u16::from(EthernetProtocol::Ipv4)
}

const ETHER_HEADER: usize = 14;

fn on_frame(p: Packet) {
    match check(p) {
        // Contained: a faulting protocol handler is unloaded, not this layer.
        Some(ip) => {
            let _ = IP_PACKET_ARRIVED.raise_contained(ip);
        }
        None => {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn check(p: Packet) -> Option<IpPacket> {
    let mut buf = [0u8; MAX_FRAME];
    let n = p.read(0, &mut buf);
    let packet = Ipv4Packet::new_checked(buf.get(ETHER_HEADER..n)?).ok()?;
    // Version, lengths, checksum, no fragments.
    let repr = Ipv4Repr::parse(&packet, &ChecksumCapabilities::default()).ok()?;
    if repr.dst_addr != net::address(p.nic()) {
        return None;
    }
    let header = usize::from(packet.header_len());
    Some(IpPacket {
        packet: p,
        src: repr.src_addr,
        dst: repr.dst_addr,
        protocol: u8::from(repr.next_header),
        payload_offset: (ETHER_HEADER + header) as u16,
        payload_len: repr.payload_len as u16,
    })
}
