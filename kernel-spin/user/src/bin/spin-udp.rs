//! UDP over the two NICs from ring 3 (the `sockets` extension's system
//! calls). RDI = mode (bits 0–7), iterations (bits 8–39), runs (bits
//! 40–47); RSI = the server port to use (5000: the user-level server
//! `mode 1` on NIC 1; 7: the in-kernel echo extension).
//!
//! - mode 1, server: bind NIC 1 port 5000, echo every datagram back until
//!   one starting with 0xff arrives; exit 0.
//! - mode 2, client test: bad calls get their typed errors, then 16 round
//!   trips from NIC 0 port 6000 come back byte for byte; exit 0, or the
//!   number of the failed check.
//! - mode 3, client benchmark: `measure` round trips of 64-byte payloads
//!   (each reply checked), `bench_report` the sample; exit 0.
#![no_std]
#![no_main]

use benchmarks::measure::measure;
use spin_user::{Error, exit, nr, println, syscall};

const SERVER_NIC: u64 = 1;
const CLIENT_NIC: u64 = 0;
const SERVER_PORT: u64 = 5000;
const CLIENT_PORT: u64 = 6000;
/// 10.0.17.2, NIC 1's address.
const SERVER_IP: u64 = 0x0a00_1102;
const QUIT: u8 = 0xff;

fn bind(nic: u64, port: u64) -> Result<u64, Error> {
    syscall(nr::UDP_BIND, [nic, port, 0, 0, 0, 0])
}

fn send_to(s: u64, buf: &[u8], ip: u64, port: u64) -> Result<u64, Error> {
    syscall(nr::UDP_SEND_TO, [s, buf.as_ptr() as u64, buf.len() as u64, ip, port, 0])
}

/// (length, source port, source address)
fn recv_from(s: u64, buf: &mut [u8]) -> Result<(usize, u64, u64), Error> {
    let v = syscall(nr::UDP_RECV_FROM, [s, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0])?;
    Ok(((v & 0xffff) as usize, (v >> 16) & 0xffff, v >> 32))
}

fn server() -> ! {
    let Ok(s) = bind(SERVER_NIC, SERVER_PORT) else { exit(10) };
    let mut buf = [0u8; 1472];
    loop {
        let Ok((n, port, ip)) = recv_from(s, &mut buf) else { exit(11) };
        if n > 0 && buf[0] == QUIT {
            exit(0);
        }
        if send_to(s, &buf[..n], ip, port).is_err() {
            exit(12);
        }
    }
}

fn expect(check: i64, got: Result<u64, Error>, want: Error) {
    if got != Err(want) {
        println!("spin-udp: check {check}: got {got:?}, want {want:?}");
        exit(check);
    }
}

fn client_test(port: u64) -> ! {
    expect(20, bind(CLIENT_NIC, 0), Error::BadArgument);
    expect(21, bind(99, 1234), Error::BadArgument);
    expect(22, bind(CLIENT_NIC, 1 << 20), Error::BadArgument);
    let Ok(s) = bind(CLIENT_NIC, CLIENT_PORT) else { exit(23) };
    expect(24, bind(CLIENT_NIC, CLIENT_PORT), Error::Busy);
    let data = [7u8; 64];
    expect(25, send_to(99, &data, SERVER_IP, port), Error::BadHandle);
    expect(
        26,
        syscall(nr::UDP_SEND_TO, [s, 0xffff_8000_0000_0000, 64, SERVER_IP, port, 0]),
        Error::BadAddress,
    );
    expect(
        27,
        syscall(nr::UDP_SEND_TO, [s, data.as_ptr() as u64, 5000, SERVER_IP, port, 0]),
        Error::BadLength,
    );
    expect(28, send_to(s, &data, SERVER_IP, 0), Error::BadArgument);
    expect(29, send_to(s, &data, 1 << 40, port), Error::BadArgument);
    expect(30, syscall(nr::UDP_RECV_FROM, [s, 0, 64, 0, 0, 0]), Error::BadAddress);
    expect(31, syscall(nr::UDP_RECV_FROM, [s, u64::MAX - 8, 64, 0, 0, 0]), Error::BadAddress);
    expect(32, syscall(nr::UDP_CLOSE, [s + 1, 0, 0, 0, 0, 0]), Error::BadHandle);
    let mut buf = [0u8; 128];
    for round in 0..16u8 {
        let mut out = [0u8; 64];
        for (i, b) in out.iter_mut().enumerate() {
            *b = round.wrapping_mul(31).wrapping_add(i as u8) & 0x7f;
        }
        if send_to(s, &out, SERVER_IP, port) != Ok(64) {
            exit(40);
        }
        match recv_from(s, &mut buf) {
            Ok((64, p, ip)) if p == port && ip == SERVER_IP && buf[..64] == out => {}
            other => {
                println!("spin-udp: round {round}: {other:?}");
                exit(41);
            }
        }
    }
    quit(s, port);
    if syscall(nr::UDP_CLOSE, [s, 0, 0, 0, 0, 0]).is_err() {
        exit(42);
    }
    expect(43, send_to(s, &data, SERVER_IP, port), Error::BadHandle);
    exit(0)
}

fn quit(s: u64, port: u64) {
    if port == SERVER_PORT {
        let _ = send_to(s, &[QUIT], SERVER_IP, port);
    }
}

fn client_bench(port: u64, iters: u32, runs: u32) -> ! {
    let Ok(s) = bind(CLIENT_NIC, CLIENT_PORT) else { exit(50) };
    let out = [0x5au8; 64];
    let mut buf = [0u8; 128];
    let mut good = 0u64;
    let mut calls = 0u64;
    let sample = measure(iters, runs, || {
        calls += 1;
        let sent = send_to(s, &out, SERVER_IP, port);
        if let (Ok(64), Ok((64, p, _))) = (sent, recv_from(s, &mut buf))
            && p == port
            && buf[..64] == out
        {
            good += 1;
        }
    });
    quit(s, port);
    if good != calls {
        println!("spin-udp: {} of {calls} round trips came back wrong", calls - good);
        exit(51);
    }
    let a = [sample.runs as u64, sample.iterations as u64, sample.min, sample.median, sample.max, 0];
    let _ = syscall(nr::BENCH_REPORT, a);
    exit(0)
}

#[unsafe(no_mangle)]
extern "C" fn _start(spec: u64, port: u64) -> ! {
    let iters = ((spec >> 8) & 0xffff_ffff) as u32;
    let runs = ((spec >> 40) & 0xff) as u32;
    match spec & 0xff {
        1 => server(),
        2 => client_test(port),
        3 => client_bench(port, iters, runs),
        _ => exit(2),
    }
}
