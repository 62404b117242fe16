//! The networking rows: a UDP round trip between two environments through
//! the two NICs of the QEMU hub (this one the client on NIC 0, a copy of
//! exo-bench the echo server on NIC 1, both over ExOS's UDP), and the
//! kernel's packet demultiplexer with 1, 10 and 100 bound ports.

use benchmarks::suite::Outcome;
use exo_abi::EnvStatus;
use exos::net::{Interface, Ring, build_udp, udp_filter};
use exos::spawn::{spawn, wait_child};
use exos::sys;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

const CLIENT_IP: [u8; 4] = [10, 0, 0, 1];
const SERVER_IP: [u8; 4] = [10, 0, 0, 2];
const ECHO_PORT: u16 = 7;

/// role=udp-echo: the server side.
pub fn echo_server() -> u64 {
    exos::net::serve_echo(1, SERVER_IP, ECHO_PORT)
}

pub fn udp_round_trip(iters: u32, runs: u32) -> Outcome {
    let server = spawn("exo-bench", "role=udp-echo", 2, 256).expect("start the echo server");
    let mut net = Interface::open(0, CLIENT_IP).expect("NIC 0");
    let mut sock = net.bind(4000).expect("bind the client port");
    let payload: [u8; 64] = core::array::from_fn(|i| i as u8 ^ 0xa5);
    let mut buf = [0u8; 64];
    // Warm up until the server answers (it binds its port when it runs).
    let mut answered = false;
    for _ in 0..20 {
        net.send_to(&sock, (SERVER_IP, ECHO_PORT), &payload).expect("send");
        if net.recv_from(&mut sock, &mut buf, 200).is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "the echo server never answered");
    let mut wrong = 0u32;
    // The instructions the guest spends spinning while QEMU's device model
    // transmits depend on the host's timing: they are left out (the kernel
    // counts them apart), so two runs give the same figure.
    let waited =
        || [0, 1].iter().map(|&nic| sys::net_stats(nic).map_or(0, |s| s.tx_wait_instructions)).sum::<u64>();
    let sample = benchmarks::measure::measure_runs(iters, runs, || {
        let w0 = waited();
        let t0 = benchmarks::measure::rdtsc();
        for _ in 0..iters {
            net.send_to(&sock, (SERVER_IP, ECHO_PORT), &payload).expect("send");
            match net.recv_from(&mut sock, &mut buf, 10_000) {
                Ok((64, from)) if buf == payload && from == (SERVER_IP, ECHO_PORT) => {}
                _ => wrong += 1,
            }
        }
        let t1 = benchmarks::measure::rdtsc();
        (t1 - t0) - (waited() - w0)
    });
    if let Ok(st) = sys::net_stats(1) {
        // The receive copy (kernel buffer -> the server's ring), for the README.
        exos::println!(
            "[exo-bench] NIC 1 receive copies: {} frames, {} bytes, {} instructions",
            st.delivered,
            st.copied_bytes,
            st.copy_instructions
        );
    }
    // Every round trip carried the 64 bytes there and back.
    assert_eq!(wrong, 0, "{wrong} round trips came back wrong");
    net.send_to(&sock, (SERVER_IP, ECHO_PORT), b"quit").expect("send quit");
    assert_eq!(wait_child(server), Ok((EnvStatus::Exited, 0)), "the echo server's end");
    Outcome::Measured(sample)
}

/// `endpoints` bound ports (filters on NIC 0, sharing a ring page), and a
/// frame for the middle one: the kernel's decision, instructions as it
/// counts them (from the frame to the chosen filter, no delivery).
pub fn demux(endpoints: u32, iters: u32, runs: u32) -> Outcome {
    let ring = Ring::new(1).expect("a ring page");
    let mut ids = [0u64; 100];
    let n = endpoints.min(100) as usize;
    for (i, id) in ids.iter_mut().take(n).enumerate() {
        *id = sys::net_filter_install(0, &udp_filter(CLIENT_IP, 5000 + i as u16), ring.caps())
            .expect("install a port's filter");
    }
    let target = n / 2;
    let mut frame = [0u8; 128];
    let len = build_udp(
        &mut frame,
        (EthernetAddress([2, 0, 0, 0, 0, 2]), Ipv4Address::from(SERVER_IP), 9),
        (
            EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            Ipv4Address::from(CLIENT_IP),
            5000 + target as u16,
        ),
        &[0x42; 64],
    );
    let frame = &frame[..len];
    let sample = benchmarks::measure::measure_runs(iters, runs, || {
        let mut total = 0;
        for _ in 0..iters {
            let (id, instructions) = sys::net_demux_probe(0, frame).expect("probe");
            // The choice is the filter of the frame's port, every time.
            assert_eq!(id, ids[target], "the demultiplexer chose the wrong endpoint");
            total += instructions;
        }
        total
    });
    for &id in &ids[..n] {
        sys::net_filter_remove(id).expect("remove a port's filter");
    }
    Outcome::Measured(sample)
}
