//! Networking through ExOS: a UDP echo between two environments on the
//! two NICs of the QEMU hub (client on NIC 0, server on NIC 1), hostile
//! packet filters and transmit buffers refused with typed errors, and a
//! hostile sender whose garbage the receiver survives.

use exo_abi::net::{Atom, FILTERS_PER_ENV_MAX, NicStats};
use exo_abi::{Cap, EnvStatus, Error};
use exo_user::{Checks, arg_u64, expect_eq};
use exos::net::{Interface, NetError, Ring, arp_filter, udp_filter};
use exos::spawn::{spawn, wait_child};
use exos::sys;

pub const CLIENT_IP: [u8; 4] = [10, 0, 0, 1];
pub const SERVER_IP: [u8; 4] = [10, 0, 0, 2];
pub const ECHO_PORT: u16 = 7;

fn payload(seq: u8) -> [u8; 64] {
    core::array::from_fn(|i| seq.wrapping_mul(31).wrapping_add(i as u8))
}

/// role=udp-echo: serve UDP echo on NIC 1 until a datagram "quit".
pub fn echo_server() -> u64 {
    exos::net::serve_echo(1, SERVER_IP, ECHO_PORT)
}

/// Send `data` and wait for its echo, resending a few times (the server
/// may not have bound its port yet).
pub fn echo(c: &mut Checks, net: &mut Interface, sock: &mut exos::net::UdpSocket, data: &[u8]) -> bool {
    let mut buf = [0u8; 1472];
    for _ in 0..5 {
        if let Err(e) = net.send_to(sock, (SERVER_IP, ECHO_PORT), data) {
            c.check(false, "send_to", format_args!("{e:?}"));
            return false;
        }
        match net.recv_from(sock, &mut buf, 2000) {
            Ok((n, from)) => {
                expect_eq!(c, "echo comes from the server", from, (SERVER_IP, ECHO_PORT));
                expect_eq!(c, "echo is the datagram", &buf[..n], data);
                return true;
            }
            Err(NetError::Timeout) => continue,
            Err(e) => {
                c.check(false, "recv_from", format_args!("{e:?}"));
                return false;
            }
        }
    }
    c.check(false, "an echo arrived", format_args!("after 5 tries"));
    false
}

fn quit(net: &mut Interface, sock: &exos::net::UdpSocket) {
    let _ = net.send_to(sock, (SERVER_IP, ECHO_PORT), b"quit");
}

/// role=udp: a UDP echo between two environments.
pub fn udp() -> u64 {
    let mut c = Checks::new("udp");
    let server = match spawn("exo-exostest", "role=udp-echo", 2, 256) {
        Ok(s) => s,
        Err(e) => {
            c.check(false, "spawn the echo server", format_args!("{e:?}"));
            return c.finish();
        }
    };
    let (mut net, mut sock) =
        match Interface::open(0, CLIENT_IP).and_then(|mut n| n.bind(4000).map(|s| (n, s))) {
            Ok(x) => x,
            Err(e) => {
                c.check(false, "open NIC 0 and bind", format_args!("{e:?}"));
                return c.finish();
            }
        };
    for seq in 0..8 {
        if !echo(&mut c, &mut net, &mut sock, &payload(seq)) {
            break;
        }
    }
    // Bigger and smaller datagrams.
    let big = [0x5au8; 1472];
    echo(&mut c, &mut net, &mut sock, &big);
    echo(&mut c, &mut net, &mut sock, b"x");
    expect_eq!(
        c,
        "too long for a frame",
        net.send_to(&sock, (SERVER_IP, 7), &[0; 1473]),
        Err(NetError::TooLong)
    );
    c.check(
        net.stats.arp_learned >= 1,
        "the server's MAC was learned by ARP",
        format_args!("{:?}", net.stats),
    );
    quit(&mut net, &sock);
    expect_eq!(c, "the echo server exits cleanly", wait_child(server), Ok((EnvStatus::Exited, 0)));
    if let Ok(s) = sys::net_stats(1) {
        exos::println!("[udp] NIC 1: {s:?}");
    }
    c.finish()
}

/// role=net-errors foreign_cap=<cap> foreign_filter=<id>: hostile filters
/// and transmit buffers.
pub fn errors(args: &str) -> u64 {
    let mut c = Checks::new("net-errors");
    let foreign_cap = Cap(arg_u64(args, "foreign_cap").unwrap_or(0));
    let foreign_filter = arg_u64(args, "foreign_filter").unwrap_or(0);
    let ring = Ring::new(1).expect("a ring page");
    let rc = ring.caps();
    let ok = udp_filter(CLIENT_IP, 5000);

    // No such NIC, anywhere.
    expect_eq!(c, "info on NIC 9", sys::net_info(9).map(|_| ()), Err(Error::NotFound));
    expect_eq!(c, "poll NIC 9", sys::net_poll(9), Err(Error::NotFound));
    expect_eq!(c, "install on NIC 9", sys::net_filter_install(9, &ok, rc), Err(Error::NotFound));
    expect_eq!(
        c,
        "install on NIC u64::MAX",
        sys::net_filter_install(u64::MAX, &ok, rc),
        Err(Error::NotFound)
    );
    expect_eq!(c, "two NICs", sys::net_info(0).map(|r| r.1), Ok(2));

    // Malformed filters.
    expect_eq!(c, "no atoms", sys::net_filter_install(0, &[], rc), Err(Error::BadLength));
    expect_eq!(
        c,
        "17 atoms",
        sys::net_filter_install(0, &[Atom::new(0, 1, 1); 17], rc),
        Err(Error::BadLength)
    );
    expect_eq!(
        c,
        "offset past any frame",
        sys::net_filter_install(0, &[Atom::new(1513, 2, 1)], rc),
        Err(Error::BadArgument)
    );
    expect_eq!(
        c,
        "offset 65535",
        sys::net_filter_install(0, &[Atom::new(65535, 1, 1)], rc),
        Err(Error::BadArgument)
    );
    expect_eq!(c, "width 3", sys::net_filter_install(0, &[Atom::new(0, 3, 1)], rc), Err(Error::BadArgument));
    let wild = Atom { mask: 0, ..Atom::new(0, 1, 0) };
    expect_eq!(c, "mask 0", sys::net_filter_install(0, &[wild], rc), Err(Error::BadArgument));
    let odd = Atom { flags: 0x80, ..Atom::new(0, 1, 0) };
    expect_eq!(c, "unknown flags", sys::net_filter_install(0, &[odd], rc), Err(Error::BadArgument));
    expect_eq!(
        c,
        "same field twice",
        sys::net_filter_install(0, &[Atom::new(0, 1, 1), Atom::new(0, 1, 2)], rc),
        Err(Error::BadArgument)
    );
    // Bad user pointers for the filter and the ring.
    // SAFETY: a filter install changes none of our memory (the kernel
    // only reads the lists, and refuses these).
    let (s, _, _) = unsafe {
        sys::raw(
            exo_abi::Call::NetFilterInstall as u64,
            0,
            0xffff_8000_0000_0000,
            1,
            rc.as_ptr() as u64,
            1,
            0,
        )
    };
    expect_eq!(c, "atoms in the kernel half", Error::check(s), Err(Error::BadAddress));
    // SAFETY: as above.
    let (s, _, _) =
        unsafe { sys::raw(exo_abi::Call::NetFilterInstall as u64, 0, ok.as_ptr() as u64, 5, 0x10, 1, 0) };
    expect_eq!(c, "ring list unmapped", Error::check(s), Err(Error::BadAddress));
    // Rings in pages we may not write.
    expect_eq!(
        c,
        "ring of no capability",
        sys::net_filter_install(0, &ok, &[Cap(12345)]),
        Err(Error::InvalidCap)
    );
    expect_eq!(
        c,
        "ring in another environment's page",
        sys::net_filter_install(0, &ok, &[foreign_cap]),
        Err(Error::NotHolder)
    );
    expect_eq!(c, "ring of 9 pages", sys::net_filter_install(0, &ok, &[rc[0]; 9]), Err(Error::BadLength));
    expect_eq!(c, "ring of 0 pages", sys::net_filter_install(0, &ok, &[]), Err(Error::BadLength));
    expect_eq!(
        c,
        "the same page twice",
        sys::net_filter_install(0, &ok, &[rc[0], rc[0]]),
        Err(Error::BadArgument)
    );

    // Ownership: overlapping another environment's filter (udp 10.0.0.9:9
    // on NIC 0, installed by the kernel test for a bystander).
    let theirs = udp_filter([10, 0, 0, 9], 9);
    expect_eq!(c, "their exact filter", sys::net_filter_install(0, &theirs, rc), Err(Error::Conflict));
    let mut refined = [Atom::default(); 6];
    refined[..5].copy_from_slice(&theirs);
    refined[5] = Atom::new(26, 4, 0x0a00_0001); // and from 10.0.0.1
    expect_eq!(c, "a refinement of theirs", sys::net_filter_install(0, &refined, rc), Err(Error::Conflict));
    expect_eq!(
        c,
        "a generalisation of theirs",
        sys::net_filter_install(0, &theirs[..4], rc),
        Err(Error::Conflict)
    );
    expect_eq!(
        c,
        "unrelated fields",
        sys::net_filter_install(0, &[Atom::new(6, 4, 1)], rc),
        Err(Error::Conflict)
    );
    expect_eq!(c, "removing their filter", sys::net_filter_remove(foreign_filter), Err(Error::NotFound));
    // Disjoint is fine, on the other NIC too; our own duplicate is not.
    let mine = sys::net_filter_install(0, &ok, rc);
    c.check(mine.is_ok(), "a disjoint filter", format_args!("{mine:?}"));
    expect_eq!(c, "our own duplicate", sys::net_filter_install(0, &ok, rc), Err(Error::Conflict));
    let other_nic = sys::net_filter_install(1, &theirs, rc);
    c.check(other_nic.is_ok(), "their filter on the other NIC", format_args!("{other_nic:?}"));
    let mine = mine.unwrap_or(0);
    expect_eq!(c, "remove", sys::net_filter_remove(mine), Ok(()));
    expect_eq!(c, "remove twice", sys::net_filter_remove(mine), Err(Error::NotFound));
    expect_eq!(c, "remove id 0", sys::net_filter_remove(0), Err(Error::NotFound));
    let _ = other_nic.map(sys::net_filter_remove);

    // Thousands of filters: the per-environment limit, then all removed.
    let mut ids = [0u64; FILTERS_PER_ENV_MAX];
    let mut installed = 0;
    let mut refused = None;
    for port in 0..3000u32 {
        match sys::net_filter_install(0, &udp_filter(CLIENT_IP, 10_000 + port as u16), rc) {
            Ok(id) if installed < ids.len() => {
                ids[installed] = id;
                installed += 1;
            }
            Ok(_) => {
                refused = Some(Err(Error::BadState));
                break;
            }
            Err(e) => {
                refused = Some(Err(e));
                break;
            }
        }
    }
    expect_eq!(c, "filters installed before the limit", installed, FILTERS_PER_ENV_MAX);
    expect_eq!(c, "then Limit", refused, Some(Err::<(), Error>(Error::Limit)));
    let removed = ids[..installed].iter().filter(|&&id| sys::net_filter_remove(id).is_ok()).count();
    expect_eq!(c, "every one removed", removed, installed);
    // The ARP filter shape is accepted once.
    let arp = sys::net_filter_install(0, &arp_filter(CLIENT_IP), rc);
    c.check(arp.is_ok(), "an ARP filter", format_args!("{arp:?}"));
    // Left installed: the kernel test checks teardown removes it.

    // Transmit: bad buffers.
    let tx = exos::vm::Mapping::anon(1).map().expect("a page");
    let txc = exos::vm::page_at(tx).map(|p| p.0).expect("its capability");
    expect_eq!(c, "transmit on NIC 9", sys::net_transmit(9, txc, 64, 60), Err(Error::NotFound));
    expect_eq!(c, "transmit no capability", sys::net_transmit(0, Cap(777), 64, 60), Err(Error::InvalidCap));
    expect_eq!(
        c,
        "transmit another's page",
        sys::net_transmit(0, foreign_cap, 64, 60),
        Err(Error::NotHolder)
    );
    expect_eq!(c, "13 bytes", sys::net_transmit(0, txc, 64, 13), Err(Error::BadLength));
    expect_eq!(c, "1515 bytes", sys::net_transmit(0, txc, 64, 1515), Err(Error::BadLength));
    expect_eq!(c, "no headroom", sys::net_transmit(0, txc, 0, 60), Err(Error::BadArgument));
    expect_eq!(c, "past the page", sys::net_transmit(0, txc, 4000, 200), Err(Error::BadArgument));
    expect_eq!(c, "offset overflows", sys::net_transmit(0, txc, u64::MAX, 60), Err(Error::BadArgument));
    expect_eq!(c, "a good frame", sys::net_transmit(0, txc, 64, 60), Ok(()));
    // The probe's bounds.
    expect_eq!(c, "probe 1515 bytes", sys::net_demux_probe(0, &[0; 1515]).map(|_| ()), Err(Error::BadLength));
    expect_eq!(c, "probe a short frame", sys::net_demux_probe(0, &[0; 3]).map(|r| r.0), Ok(0));
    let mut st = NicStats::default();
    // SAFETY: the kernel refuses to write to its own half; none of our
    // memory changes.
    let (s, _, _) = unsafe { sys::raw(exo_abi::Call::NetInfo as u64, 0, 0xffff_8000_0000_0000, 0, 0, 0, 0) };
    expect_eq!(c, "stats to the kernel half", Error::check(s), Err(Error::BadAddress));
    if let Ok(s) = sys::net_stats(0) {
        st = s;
    }
    c.check(st.transmitted >= 1, "the good frame was counted", format_args!("{st:?}"));
    core::mem::forget(ring); // its filter stays: teardown must clean up
    c.finish()
}

/// Wait for the echo of `data`, skipping stale echoes of earlier ones.
fn echo_tolerant(c: &mut Checks, net: &mut Interface, sock: &mut exos::net::UdpSocket, data: &[u8]) {
    let mut buf = [0u8; 1472];
    for _ in 0..5 {
        if net.send_to(sock, (SERVER_IP, ECHO_PORT), data).is_err() {
            break;
        }
        for _ in 0..64 {
            match net.recv_from(sock, &mut buf, 500) {
                Ok((n, _)) if &buf[..n] == data => {
                    c.check(true, "", format_args!(""));
                    return;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    c.check(false, "the receiver still echoes", format_args!("no echo of {} bytes", data.len()));
}

/// role=net-hostile: a hostile sender on NIC 0 against the echo server on
/// NIC 1; the server must survive and still answer.
pub fn hostile_sender() -> u64 {
    use exos::net::build_udp;
    use smoltcp::wire::{EthernetAddress, Ipv4Address};
    let mut c = Checks::new("net-hostile");
    let Ok(server) = spawn("exo-exostest", "role=udp-echo", 2, 256) else {
        c.check(false, "spawn the echo server", format_args!(""));
        return c.finish();
    };
    let (mut net, mut sock) =
        match Interface::open(0, CLIENT_IP).and_then(|mut n| n.bind(4000).map(|s| (n, s))) {
            Ok(x) => x,
            Err(e) => {
                c.check(false, "open NIC 0 and bind", format_args!("{e:?}"));
                return c.finish();
            }
        };
    // A good echo first: the server is up and its MAC known.
    if !echo(&mut c, &mut net, &mut sock, &payload(1)) {
        return c.finish();
    }
    let server_mac = net.arp_cached(SERVER_IP).unwrap_or(EthernetAddress([0xff; 6]));
    let mut good = [0u8; 1514];
    let from = (net.mac, Ipv4Address::from(CLIENT_IP), 4000);
    let to = (server_mac, Ipv4Address::from(SERVER_IP), ECHO_PORT);
    let n = build_udp(&mut good, from, to, &payload(2));
    let send = |net: &mut Interface, f: &[u8]| net.send_raw(f);
    let mut sent = 0;
    // Truncated: before the port (the filter cannot match), and inside.
    for cut in [14, 20, 30, 36, 40, 50] {
        sent += send(&mut net, &good[..cut]).is_ok() as u32;
    }
    // Wrong length fields: IPv4 total length too long and too short, UDP
    // length too short and too long.
    for (at, v) in [(16usize, 0x05u8), (17, 0xff), (16, 0), (17, 4), (38, 0), (39, 3), (38, 5), (39, 0)] {
        let mut f = good;
        f[at] = v;
        sent += send(&mut net, &f[..n]).is_ok() as u32;
    }
    // Fragments: more-fragments set; a non-zero offset.
    for (at, v) in [(20usize, 0x20u8), (21, 0x10)] {
        let mut f = good;
        f[at] |= v;
        sent += send(&mut net, &f[..n]).is_ok() as u32;
    }
    // Bad checksums: IPv4 header, UDP.
    for at in [24usize, 40] {
        let mut f = good;
        f[at] ^= 0x5a;
        sent += send(&mut net, &f[..n]).is_ok() as u32;
    }
    // IHL 15 claimed in a short packet; IHL below 5.
    for v in [0x4fu8, 0x43] {
        let mut f = good;
        f[14] = v;
        sent += send(&mut net, &f[..n]).is_ok() as u32;
    }
    expect_eq!(c, "every hostile frame went out", sent, 20);
    // Oversized: the kernel refuses to send it at all.
    expect_eq!(c, "a 1515-byte frame", send(&mut net, &[0u8; 1515]), Err(NetError::Kernel(Error::BadLength)));
    // IPv4 options (IHL 6, one NOP word, checksum fixed): valid, so the
    // filter's header-length shift must still find the port, and the
    // server echoes it.
    let mut opt = [0u8; 1514];
    opt[..34].copy_from_slice(&good[..34]);
    opt[14] = 0x46;
    opt[34..38].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    opt[38..n + 4].copy_from_slice(&good[34..n]);
    let total = u16::from_be_bytes([opt[16], opt[17]]) + 4;
    opt[16..18].copy_from_slice(&total.to_be_bytes());
    opt[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(&opt[14..38]);
    opt[24..26].copy_from_slice(&sum.to_be_bytes());
    let r = send(&mut net, &opt[..n + 4]);
    expect_eq!(c, "a frame with IPv4 options", r, Ok(()));
    let mut buf = [0u8; 1472];
    let got = net.recv_from(&mut sock, &mut buf, 2000).map(|(len, _)| buf[..len] == payload(2));
    expect_eq!(c, "the options frame was demultiplexed by the IHL shift and echoed", got, Ok(true));
    // A flood, without yielding: more than the server's ring holds.
    let mut flood_ok = 0;
    for _ in 0..64 {
        flood_ok += send(&mut net, &good[..n]).is_ok() as u32;
    }
    expect_eq!(c, "the flood went out", flood_ok, 64);
    // Drain the echoes of the flood, then the server must still answer.
    while net.recv_from(&mut sock, &mut buf, 200).is_ok() {}
    echo_tolerant(&mut c, &mut net, &mut sock, b"still there?");
    quit(&mut net, &sock);
    expect_eq!(c, "the echo server exits cleanly", wait_child(server), Ok((EnvStatus::Exited, 0)));
    c.finish()
}

/// The Internet checksum of `data` (an IPv4 header).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 =
        data.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
