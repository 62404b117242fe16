//! ARP for kernel-spin's protocol graph (ring 0, safe Rust): a guarded
//! handler on `Ether.PacketArrived` (guard: EtherType ARP) that answers
//! requests for the address of the NIC they arrived on and learns the
//! sender of every request and reply addressed to us; and `ARP.service`,
//! which the senders above use to find a destination's hardware address.
//!
//! The cache has a fixed number of entries (replaced round robin), so no
//! sender on the wire can make it grow. Malformed packets are dropped and
//! counted (`ARP.drops`).
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin_interface::net::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    Ipv4Address,
};
use spin_interface::net::{self, NetServices, Packet};
use spin_interface::sync::{Once, SpinLock};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("arp", init);

static NET: Once<&'static NetServices> = Once::new();

const ENTRIES: usize = 8;
/// An address and its hardware address.
type Entry = Option<(Ipv4Address, [u8; 6])>;
static CACHE: SpinLock<[Entry; ENTRIES]> = SpinLock::new([None; ENTRIES]);
static NEXT: AtomicUsize = AtomicUsize::new(0);
static DROPS: AtomicU64 = AtomicU64::new(0);

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static NetServices = ctx.lookup("kernel", "Trusted.Net", "services")?;
    NET.call_once(|| services);
    net::ETHER_PACKET_ARRIVED.install(ctx.identity(), on_frame, Some(is_arp))?;
    Ok(ExportTable::new().procedure("ARP", "resolve", resolve_export).procedure("ARP", "drops", drops))
}

fn drops(_: ()) -> u64 {
    DROPS.load(Ordering::Relaxed)
}

fn is_arp(p: &Packet) -> bool {
    p.ethertype() == u16::from(EthernetProtocol::Arp)
}

fn learn(ip: Ipv4Address, mac: [u8; 6]) {
    let mut cache = CACHE.lock();
    if let Some(e) = cache.iter_mut().flatten().find(|(i, _)| *i == ip) {
        e.1 = mac;
        return;
    }
    let slot = NEXT.fetch_add(1, Ordering::Relaxed) % ENTRIES;
    cache[slot] = Some((ip, mac));
}

fn lookup(ip: Ipv4Address) -> Option<[u8; 6]> {
    CACHE.lock().iter().flatten().find(|(i, _)| *i == ip).map(|(_, m)| *m)
}

/// Send an ARP packet on `nic`.
fn send(
    nic: u8,
    op: ArpOperation,
    dst_mac: EthernetAddress,
    target_mac: EthernetAddress,
    target: Ipv4Address,
) {
    let Some(net) = NET.get() else { return };
    let Some(mine) = net.mac(nic) else { return };
    let repr = ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: EthernetAddress(mine),
        source_protocol_addr: net::address(nic),
        target_hardware_addr: target_mac,
        target_protocol_addr: target,
    };
    let mut buf = [0u8; 14 + 28];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr { src_addr: EthernetAddress(mine), dst_addr: dst_mac, ethertype: EthernetProtocol::Arp }
        .emit(&mut frame);
    repr.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    let _ = net.transmit(nic, &buf);
}

/// `ARP.resolve` (see `spin_interface::net::ArpResolve`).
fn resolve_export((nic, ip): (u8, Ipv4Address)) -> Option<[u8; 6]> {
    resolve(nic, ip)
}

fn resolve(nic: u8, ip: Ipv4Address) -> Option<[u8; 6]> {
    if let Some(mac) = lookup(ip) {
        return Some(mac);
    }
    send(nic, ArpOperation::Request, EthernetAddress::BROADCAST, EthernetAddress([0; 6]), ip);
    None
}

fn on_frame(p: Packet) {
    let mut buf = [0u8; 14 + 28];
    let n = p.read(0, &mut buf);
    let parsed =
        buf.get(14..n).and_then(|b| ArpPacket::new_checked(b).ok()).and_then(|a| ArpRepr::parse(&a).ok());
    let Some(ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    }) = parsed
    else {
        DROPS.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if target_protocol_addr != net::address(p.nic()) || !source_hardware_addr.is_unicast() {
        return;
    }
    learn(source_protocol_addr, source_hardware_addr.0);
    if operation == ArpOperation::Request {
        send(p.nic(), ArpOperation::Reply, source_hardware_addr, source_hardware_addr, source_protocol_addr);
    }
}
