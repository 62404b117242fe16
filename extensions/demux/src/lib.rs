//! Benchmark endpoints for "packet demux, N endpoints" (ring 0, safe
//! Rust): guarded handlers on `UDP.PacketArrived`, each guard matching one
//! destination port ([`BASE_PORT`] + i), each handler counting. What one
//! load installs is named by the domain name the kernel gives it:
//! `demux-<n>` installs endpoints 0..n, `demux-<n>-hi` endpoints 50..50+n
//! (one domain may install at most 64 handlers on an event, so 100
//! endpoints are two loads). At most 50 per load.
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::event::Event;
use spin_interface::net::UdpPacket;
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("demux", init);

/// Endpoint i guards port `BASE_PORT + i`.
pub const BASE_PORT: u16 = 20000;
/// Most endpoints one load installs.
pub const PER_LOAD: usize = 50;

static HITS: AtomicU64 = AtomicU64::new(0);

fn lo<const I: u16>(u: &UdpPacket) -> bool {
    u.dst_port == BASE_PORT + I
}

fn hi<const I: u16>(u: &UdpPacket) -> bool {
    u.dst_port == BASE_PORT + 50 + I
}

fn hit(_: UdpPacket) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

macro_rules! guards {
    ($f:ident: $($i:literal)*) => { [$($f::<$i>,)*] };
}
static LO: [fn(&UdpPacket) -> bool; PER_LOAD] = guards!(lo: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49);
static HI: [fn(&UdpPacket) -> bool; PER_LOAD] = guards!(hi: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49);

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let name = ctx.identity().name();
    let rest = name.strip_prefix("demux-").unwrap_or("");
    let (count, table) = match rest.strip_suffix("-hi") {
        Some(n) => (n, &HI),
        None => (rest, &LO),
    };
    let n = count.parse::<usize>().unwrap_or(0).min(PER_LOAD);
    let arrived: &'static Event<UdpPacket, ()> = ctx.lookup("udp", "UDP", "PacketArrived")?;
    for guard in &table[..n] {
        arrived.install(ctx.identity(), hit, Some(*guard))?;
    }
    Ok(ExportTable::new().procedure("Demux", "hits", hits))
}

fn hits(_: ()) -> u64 {
    HITS.load(Ordering::Relaxed)
}
