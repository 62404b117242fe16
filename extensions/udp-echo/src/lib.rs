//! An in-kernel UDP echo server (ring 0, safe Rust): SPIN's
//! "application-specific protocol in the kernel". One guarded handler on
//! `UDP.PacketArrived` (guard: destination port [`PORT`]) sends every
//! datagram back to where it came from, from the receive path itself: no
//! process, no system call, no copy to user space.
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::event::Event;
use spin_interface::net::{self, Datagram, MAX_UDP_PAYLOAD, UdpPacket, UdpSend};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("udp-echo", init);

/// The port it serves (the echo protocol's, RFC 862).
pub const PORT: u16 = 7;

static UDP: UdpSend = net::udp_send();
static ECHOED: AtomicU64 = AtomicU64::new(0);

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    ctx.resolve("udp", &[&UDP])?;
    let arrived: &'static Event<UdpPacket, ()> = ctx.lookup("udp", "UDP", "PacketArrived")?;
    arrived.install(ctx.identity(), echo, Some(is_echo))?;
    Ok(ExportTable::new().procedure("Echo", "echoed", echoed))
}

fn echoed(_: ()) -> u64 {
    ECHOED.load(Ordering::Relaxed)
}

fn is_echo(u: &UdpPacket) -> bool {
    u.dst_port == PORT
}

fn echo(u: UdpPacket) {
    let mut buf = [0u8; MAX_UDP_PAYLOAD];
    let n = u.read_payload(&mut buf);
    let reply = Datagram { nic: u.packet.nic(), src_port: PORT, dst: u.src, dst_port: u.src_port };
    let Ok(payload) = net::owned_payload(&buf[..n]) else { return };
    if UDP.call((reply, payload)) == Ok(Ok(())) {
        ECHOED.fetch_add(1, Ordering::Relaxed);
    }
}
