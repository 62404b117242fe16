//! kernel-spin's network tests (boot with `nics=2`): the protocol graph
//! across the QEMU hub — the in-kernel echo, a hostile sender's frames
//! dropped and counted with the receiver still working, a panicking
//! endpoint contained, and user-level UDP between two processes (with
//! the bad calls' typed errors checked by the client program).

use crate::loader;
use crate::process;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use shared_hal::testing::Test;
use shared_hal::{ensure, ensure_eq};
use spin_ext_misbehaving as bad;
use spin_interface::event::Event;
use spin_interface::net::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket as Wire, UdpRepr,
};
use spin_interface::net::{self, ChecksumCapabilities, Datagram, NetError, NetServices, UdpPacket, UdpSend};
use spin_interface::{Domain, Identity, Import};

/// The tests, in order.
pub const TESTS: &[Test] = &[
    Test { name: "spin::net_kernel_echo_across_the_hub", run: kernel_echo_across_the_hub },
    Test { name: "spin::net_hostile_frames_dropped_and_counted", run: hostile_frames_dropped_and_counted },
    Test { name: "spin::net_panicking_endpoint_is_contained", run: panicking_endpoint_is_contained },
    Test { name: "spin::net_user_udp_between_processes", run: user_udp_between_processes },
];

/// The port of the test's own endpoint (on either NIC).
const KPORT: u16 = 9999;
static HITS: AtomicU64 = AtomicU64::new(0);
static LAST: spin::Mutex<([u8; 64], usize)> = spin::Mutex::new(([0; 64], 0));

fn is_kport(u: &UdpPacket) -> bool {
    u.dst_port == KPORT
}

fn kernel_endpoint(u: UdpPacket) {
    let mut last = LAST.lock();
    let n = u.read_payload(&mut last.0);
    last.1 = n;
    HITS.fetch_add(1, Ordering::SeqCst);
}

static ECHOED: Import<(), u64> = Import::new("Echo", "echoed");
static IP_DROPS: Import<(), u64> = Import::new("IP", "drops");
static UDP_DROPS: Import<(), u64> = Import::new("UDP", "drops");
static UDP_UNCLAIMED: Import<(), u64> = Import::new("UDP", "unclaimed");
static ARP_DROPS: Import<(), u64> = Import::new("ARP", "drops");
static SOCKETS_BOUND: Import<(), usize> = Import::new("Sockets", "bound");

fn err(e: impl core::fmt::Debug) -> String {
    alloc::format!("{e:?}")
}

/// Bind the test's imports and endpoint (once).
fn setup() -> Result<&'static UdpSend, String> {
    let me = Identity::kernel(crate::key());
    static UDP: UdpSend = net::udp_send();
    static DONE: spin::Once<&'static UdpSend> = spin::Once::new();
    if let Some(s) = DONE.get() {
        return Ok(s);
    }
    ensure_eq!(net_services().nics(), 2);
    Domain::named("udp-echo").and_then(|d| d.resolve(me, &[&ECHOED])).map_err(err)?;
    Domain::named("ip").and_then(|d| d.resolve(me, &[&IP_DROPS])).map_err(err)?;
    Domain::named("udp").and_then(|d| d.resolve(me, &[&UDP_DROPS, &UDP_UNCLAIMED])).map_err(err)?;
    Domain::named("arp").and_then(|d| d.resolve(me, &[&ARP_DROPS])).map_err(err)?;
    Domain::named("sockets").and_then(|d| d.resolve(me, &[&SOCKETS_BOUND])).map_err(err)?;
    Domain::named("udp").and_then(|d| d.resolve(me, &[&UDP])).map_err(err)?;
    let udp = &UDP;
    let arrived: &'static Event<UdpPacket, ()> =
        Domain::named("udp").and_then(|d| d.lookup(me, "UDP", "PacketArrived")).map_err(err)?;
    arrived.install(me, kernel_endpoint, Some(is_kport)).map_err(err)?;
    Ok(*DONE.call_once(|| udp))
}

pub fn net_services() -> &'static NetServices {
    NetServices::new(crate::key())
}

/// Poll until the endpoint has seen `want` datagrams in all (bounded).
fn wait_hits(want: u64) -> Result<(), String> {
    for _ in 0..100_000 {
        if HITS.load(Ordering::SeqCst) >= want {
            return Ok(());
        }
        net_services().poll();
    }
    Err(alloc::format!("{} datagrams reached the endpoint, expected {want}", HITS.load(Ordering::SeqCst)))
}

/// Send `payload` from the test's port on NIC 0 to NIC 1's `port` and
/// check that the in-kernel echo sends it back to the test's endpoint.
fn echo_round(udp: &UdpSend, payload: &[u8]) -> Result<(), String> {
    let before = HITS.load(Ordering::SeqCst);
    let echoed = ECHOED.call(()).map_err(err)?;
    let d = Datagram { nic: 0, src_port: KPORT, dst: net::address(1), dst_port: 7 };
    udp.call((d, net::owned_payload(payload).map_err(err)?)).map_err(err)?.map_err(err)?;
    wait_hits(before + 1)?;
    ensure_eq!(ECHOED.call(()), Ok(echoed + 1));
    let last = LAST.lock();
    ensure!(&last.0[..last.1] == payload, "the echo came back changed");
    Ok(())
}

fn kernel_echo_across_the_hub() -> Result<(), String> {
    let udp = setup()?;
    for round in 0..4u8 {
        let payload: [u8; 64] = core::array::from_fn(|i| round ^ i as u8);
        echo_round(udp, &payload)?;
    }
    Ok(())
}

/// A valid 64-byte-payload frame from NIC 0 to NIC 1's `port` (the demux benchmark's).
pub fn udp_frame(port: u16, payload: &[u8]) -> ([u8; 256], usize) {
    frame(port, payload, 0)
}

/// A valid UDP/IPv4/Ethernet frame from NIC 0 to NIC 1's `port`, with
/// `options` bytes of IPv4 options (NOPs) in its header.
fn frame(port: u16, payload: &[u8], options: usize) -> ([u8; 256], usize) {
    let net = net_services();
    let (a, b) = (net.mac(0).unwrap_or_default(), net.mac(1).unwrap_or_default());
    let mut buf = [0u8; 256];
    let udp_len = 8 + payload.len();
    let ihl = 20 + options;
    let total = 14 + ihl + udp_len;
    let caps = ChecksumCapabilities::default();
    let (src, dst) = (net::address(0), net::address(1));
    {
        let mut f = EthernetFrame::new_unchecked(&mut buf[..total]);
        EthernetRepr {
            src_addr: EthernetAddress(a),
            dst_addr: EthernetAddress(b),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut f);
        let mut ip = Ipv4Packet::new_unchecked(f.payload_mut());
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: udp_len,
            hop_limit: 64,
        }
        .emit(&mut ip, &caps);
    }
    {
        let mut w = Wire::new_unchecked(&mut buf[14 + ihl..total]);
        UdpRepr { src_port: KPORT, dst_port: port }.emit(
            &mut w,
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(dst),
            payload.len(),
            |p| p.copy_from_slice(payload),
            &caps,
        );
    }
    if options > 0 {
        buf[14] = 0x40 | (ihl / 4) as u8;
        buf[34..14 + ihl].fill(1); // NOP options
        buf[16..18].copy_from_slice(&((ihl + udp_len) as u16).to_be_bytes());
        refill_ip_checksum(&mut buf);
    }
    (buf, total)
}

fn refill_ip_checksum(buf: &mut [u8]) {
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..]);
    ip.fill_checksum();
}

fn hostile_frames_dropped_and_counted() -> Result<(), String> {
    let udp = setup()?;
    let net = net_services();
    let (ip0, udp0, un0, arp0) = (
        IP_DROPS.call(()).map_err(err)?,
        UDP_DROPS.call(()).map_err(err)?,
        UDP_UNCLAIMED.call(()).map_err(err)?,
        ARP_DROPS.call(()).map_err(err)?,
    );
    let payload = [0x42u8; 32];
    let (good, len) = frame(KPORT, &payload, 0);
    let send = |f: &[u8]| net.transmit(0, f).map_err(err);
    // Dropped by IP: truncated, total length past the frame, header length
    // below 5 words, bad header checksum, a fragment.
    send(&good[..20])?;
    let mut f = good;
    f[16..18].copy_from_slice(&1400u16.to_be_bytes());
    refill_ip_checksum(&mut f);
    send(&f[..len])?;
    let mut f = good;
    f[14] = 0x44;
    refill_ip_checksum(&mut f);
    send(&f[..len])?;
    let mut f = good;
    f[24] ^= 0xff;
    send(&f[..len])?;
    let mut f = good;
    f[20] |= 0x20; // more fragments
    refill_ip_checksum(&mut f);
    send(&f[..len])?;
    // Dropped by UDP: a bad checksum, a length field past the packet.
    let mut f = good;
    f[len - 1] ^= 0x01;
    send(&f[..len])?;
    let mut f = good;
    f[38..40].copy_from_slice(&500u16.to_be_bytes());
    send(&f[..len])?;
    // Dropped by ARP: a truncated ARP packet.
    let mut f = good;
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    send(&f[..24])?;
    // Refused before the wire: oversized and undersized frames.
    ensure_eq!(net.transmit(0, &[0u8; 1600]), Err(NetError::TooLong));
    ensure_eq!(net.transmit(0, &good[..10]), Err(NetError::TooShort));
    ensure_eq!(net.transmit(7, &good[..len]), Err(NetError::NoSuchNic));
    // Accepted: IPv4 options are skipped.
    let hits = HITS.load(Ordering::SeqCst);
    let (opt, opt_len) = frame(KPORT, &payload, 8);
    send(&opt[..opt_len])?;
    wait_hits(hits + 1).map_err(|e| {
        alloc::format!(
            "{e} (IP drops +{:?}, UDP drops +{:?})",
            IP_DROPS.call(()).map(|n| n - ip0),
            UDP_DROPS.call(()).map(|n| n - udp0)
        )
    })?;
    ensure!(LAST.lock().0[..32] == payload, "the datagram with IPv4 options arrived changed");
    ensure_eq!(IP_DROPS.call(()), Ok(ip0 + 5));
    ensure_eq!(UDP_DROPS.call(()), Ok(udp0 + 2));
    ensure_eq!(ARP_DROPS.call(()), Ok(arp0 + 1));
    // A flood to a port nobody has: each datagram counted unclaimed.
    let (flood, flood_len) = frame(4444, &payload, 0);
    for i in 0..256 {
        send(&flood[..flood_len])?;
        if i % 8 == 7 {
            net.poll();
        }
    }
    net.poll();
    ensure_eq!(UDP_UNCLAIMED.call(()), Ok(un0 + 256));
    // The receiver still works.
    echo_round(udp, &[9u8; 64])
}

fn panicking_endpoint_is_contained() -> Result<(), String> {
    let udp = setup()?;
    let id = loader::load(crate::key(), "udp-panic", &bad::UDP_PANIC).map_err(err)?;
    let d = Datagram { nic: 0, src_port: KPORT, dst: net::address(1), dst_port: bad::PANIC_PORT };
    udp.call((d, net::owned_payload(b"boom").map_err(err)?)).map_err(err)?.map_err(err)?;
    for _ in 0..100_000 {
        if spin_interface::domain::is_unloaded(id.id()) {
            break;
        }
        net_services().poll();
    }
    ensure!(spin_interface::domain::is_unloaded(id.id()), "the panicking endpoint was not unloaded");
    ensure!(Domain::named("udp-panic").is_err(), "the faulted domain is still registered");
    // The graph goes on: the echo still answers.
    echo_round(udp, &[3u8; 64])
}

fn user_udp_between_processes() -> Result<(), String> {
    setup()?;
    let server = process::spawn("spin-udp", [1, 0]).map_err(err)?;
    let client = process::run("spin-udp", [2, 5000]);
    let served = process::wait(server);
    process::reap(server);
    ensure_eq!(client, Ok(0));
    ensure_eq!(served, Some(0));
    // The same client against the in-kernel echo extension.
    ensure_eq!(process::run("spin-udp", [2, 7]), Ok(0));
    ensure_eq!(SOCKETS_BOUND.call(()), Ok(0));
    Ok(())
}
