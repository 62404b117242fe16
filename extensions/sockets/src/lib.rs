//! User-level UDP sockets (ring 0, safe Rust): the system calls
//! `udp_bind`, `udp_send_to`, `udp_recv_from` (blocking) and `udp_close`
//! (see spin-abi's `nr`), handled by this extension.
//!
//! The extension is one endpoint of the protocol graph: a guarded handler
//! on `UDP.PacketArrived` whose guard matches the NIC and port of a bound
//! socket (installed once, at load: a per-socket handler would make
//! `udp_bind` allocate in the dispatcher, where a full heap could not be
//! answered with a typed error). The handler copies the datagram into the socket's queue
//! (fixed, [`SOCKET_QUEUE`] datagrams: a full queue drops, counted) and
//! wakes a thread blocked in `udp_recv_from`, which copies it out to the
//! process. Sockets are a fixed table (no allocation on any call); a
//! socket belongs to the process that bound it (another process's handle
//! is `BadHandle`), and is closed when that process is reaped.
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};
use spin_interface::abi::{Error, MAX_SOCKETS_PER_PROCESS, MAX_UDP_PAYLOAD, Return, SOCKET_QUEUE, nr};
use spin_interface::event::Event;
use spin_interface::net::wire::Ipv4Address;
use spin_interface::net::{Datagram, MAX_NICS, NetError, UdpPacket, UdpSend};
use spin_interface::sync::{Condition, Mutex, Once};
use spin_interface::user::{self, Process, SYSTEM_CALLS, SyscallArgs, UserServices};
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The extension's descriptor.
pub static EXTENSION: Extension = Extension::new("sockets", init);

/// Sockets in the system.
pub const SOCKETS: usize = 16;
const PAYLOAD: usize = MAX_UDP_PAYLOAD as usize;

static USER: Once<&'static UserServices> = Once::new();
static UDP: UdpSend = spin_interface::net::udp_send();

#[derive(Clone, Copy)]
struct Queued {
    len: u16,
    src: u32,
    src_port: u16,
    data: [u8; PAYLOAD],
}

const NOTHING: Queued = Queued { len: 0, src: 0, src_port: 0, data: [0; PAYLOAD] };

struct Socket {
    owner: Option<Process>,
    nic: u8,
    port: u16,
    queue: [Queued; SOCKET_QUEUE],
    head: usize,
    count: usize,
    dropped: u64,
}

const FREE: Socket =
    Socket { owner: None, nic: 0, port: 0, queue: [NOTHING; SOCKET_QUEUE], head: 0, count: 0, dropped: 0 };

static TABLE: [Mutex<Socket>; SOCKETS] = [const { Mutex::new(FREE) }; SOCKETS];
static READY: [Condition; SOCKETS] = [const { Condition::new() }; SOCKETS];
/// What each socket's guard matches: `nic << 16 | port`, or `UNBOUND`.
static KEYS: [AtomicU32; SOCKETS] = [const { AtomicU32::new(UNBOUND) }; SOCKETS];
const UNBOUND: u32 = u32::MAX;

fn key(nic: u8, port: u16) -> u32 {
    u32::from(nic) << 16 | u32::from(port)
}

/// The socket bound to `u`'s NIC and destination port.
#[inline(always)]
fn socket_for(u: &UdpPacket) -> Option<usize> {
    let k = key(u.packet.nic(), u.dst_port);
    KEYS.iter().position(|b| b.load(Ordering::Relaxed) == k)
}

/// The endpoint's guard: a socket is bound to the datagram's port.
fn bound_here(u: &UdpPacket) -> bool {
    socket_for(u).is_some()
}

fn on_datagram(u: UdpPacket) {
    if let Some(s) = socket_for(&u) {
        arrive(s, u)
    }
}

/// A system-call handler.
type Handler = fn(SyscallArgs) -> Return;

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let services: &'static UserServices = ctx.lookup("kernel", "Trusted.User", "services")?;
    USER.call_once(|| services);
    ctx.resolve("udp", &[&UDP])?;
    let arrived: &'static Event<UdpPacket, ()> = ctx.lookup("udp", "UDP", "PacketArrived")?;
    let me = ctx.identity();
    // One endpoint for every socket, installed now: binding a socket then
    // only fills a table entry (no allocation on a system call).
    arrived.install(me, on_datagram, Some(bound_here))?;
    let calls: [(u64, Handler); 4] = [
        (nr::UDP_BIND, bind),
        (nr::UDP_SEND_TO, send_to),
        (nr::UDP_RECV_FROM, recv_from),
        (nr::UDP_CLOSE, close),
    ];
    for (n, h) in calls {
        SYSTEM_CALLS[n as usize].install(me, h, None)?;
    }
    user::PROCESS_REAPED.install(me, reaped, None)?;
    user::PROCESS_KILLED.install(me, killed, None)?;
    Ok(ExportTable::new().procedure("Sockets", "bound", bound).procedure("Sockets", "dropped", dropped))
}

/// How many sockets are bound (tests check reaping closes them).
fn bound(_: ()) -> usize {
    KEYS.iter().filter(|k| k.load(Ordering::Relaxed) != UNBOUND).count()
}

/// Datagrams dropped because a socket's queue was full.
fn dropped(_: ()) -> u64 {
    TABLE.iter().map(|s| s.lock().dropped).sum()
}

fn user() -> Result<&'static UserServices, Error> {
    USER.get().copied().ok_or(Error::BadState)
}

fn current() -> Result<Process, Error> {
    user()?.current_process().ok_or(Error::BadState)
}

/// The receive path: queue the datagram, wake a reader.
fn arrive(s: usize, u: UdpPacket) {
    let mut sock = TABLE[s].lock();
    if sock.owner.is_none() {
        return;
    }
    if sock.count == SOCKET_QUEUE {
        sock.dropped += 1;
        return;
    }
    let slot = (sock.head + sock.count) % SOCKET_QUEUE;
    let q = &mut sock.queue[slot];
    q.len = u.read_payload(&mut q.data) as u16;
    q.src = u32::from(u.src);
    q.src_port = u.src_port;
    sock.count += 1;
    drop(sock);
    READY[s].signal();
}

/// The socket a handle names, if the caller owns it.
fn socket_of(handle: u64, p: Process) -> Result<usize, Error> {
    let s = handle.checked_sub(1).filter(|s| *s < SOCKETS as u64).ok_or(Error::BadHandle)? as usize;
    if TABLE[s].lock().owner != Some(p) {
        return Err(Error::BadHandle);
    }
    Ok(s)
}

fn bind(a: SyscallArgs) -> Return {
    let [nic, port, ..] = a.0;
    let run = || {
        let p = current()?;
        if nic >= MAX_NICS as u64 || port == 0 || port > u64::from(u16::MAX) {
            return Err(Error::BadArgument);
        }
        let (nic, port) = (nic as u8, port as u16);
        if KEYS.iter().any(|k| k.load(Ordering::Relaxed) == key(nic, port)) {
            return Err(Error::Busy);
        }
        if TABLE.iter().filter(|s| s.lock().owner == Some(p)).count() >= MAX_SOCKETS_PER_PROCESS {
            return Err(Error::Limit);
        }
        let s = (0..SOCKETS).find(|s| TABLE[*s].lock().owner.is_none()).ok_or(Error::NoMemory)?;
        let mut sock = TABLE[s].lock();
        sock.owner = Some(p);
        sock.nic = nic;
        sock.port = port;
        sock.head = 0;
        sock.count = 0;
        KEYS[s].store(key(nic, port), Ordering::Relaxed);
        Ok(s as u64 + 1)
    };
    run().into()
}

fn net_error(e: NetError) -> Error {
    match e {
        NetError::TooLong | NetError::TooShort => Error::BadLength,
        NetError::NoSuchNic | NetError::Unreachable => Error::BadArgument,
        NetError::Device => Error::Busy,
        NetError::Unavailable => Error::ExtensionFault,
        NetError::NoMemory => Error::NoMemory,
    }
}

fn send_to(a: SyscallArgs) -> Return {
    let [handle, ptr, len, ip, port, ..] = a.0;
    let run = || {
        let p = current()?;
        let s = socket_of(handle, p)?;
        if len > MAX_UDP_PAYLOAD {
            return Err(Error::BadLength);
        }
        if port == 0 || port > u64::from(u16::MAX) || ip > u64::from(u32::MAX) {
            return Err(Error::BadArgument);
        }
        user::check_user_range(ptr, len.max(1))?;
        let mut buf = [0u8; PAYLOAD];
        let payload = &mut buf[..len as usize];
        user()?.copy_from_user(ptr, payload)?;
        let (nic, src_port) = {
            let sock = TABLE[s].lock();
            (sock.nic, sock.port)
        };
        let d = Datagram { nic, src_port, dst: Ipv4Address::from(ip as u32), dst_port: port as u16 };
        let payload = spin_interface::net::owned_payload(payload).map_err(net_error)?;
        UDP.call((d, payload)).map_err(|_| Error::BadState)?.map_err(net_error)?;
        Ok(len)
    };
    run().into()
}

fn recv_from(a: SyscallArgs) -> Return {
    let [handle, ptr, len, ..] = a.0;
    let run = || {
        let services = user()?;
        let p = current()?;
        let s = socket_of(handle, p)?;
        if len > u64::from(u16::MAX) {
            return Err(Error::BadLength);
        }
        user::check_user_range(ptr, len.max(1))?;
        let mut sock = TABLE[s].lock();
        loop {
            if sock.owner != Some(p) {
                return Err(Error::BadHandle);
            }
            if sock.count > 0 {
                break;
            }
            if services.killed() {
                drop(sock);
                services.end_if_killed();
                return Err(Error::BadState);
            }
            sock = READY[s].wait(sock);
        }
        let q = sock.queue[sock.head];
        sock.head = (sock.head + 1) % SOCKET_QUEUE;
        sock.count -= 1;
        drop(sock);
        let n = (len as usize).min(usize::from(q.len));
        services.copy_to_user(ptr, &q.data[..n])?;
        Ok(n as u64 | u64::from(q.src_port) << 16 | u64::from(q.src) << 32)
    };
    run().into()
}

fn release(s: usize) {
    {
        let mut sock = TABLE[s].lock();
        KEYS[s].store(UNBOUND, Ordering::Relaxed);
        sock.owner = None;
        sock.count = 0;
    }
    READY[s].broadcast();
}

fn close(a: SyscallArgs) -> Return {
    let run = || {
        let s = socket_of(a.0[0], current()?)?;
        release(s);
        Ok(0)
    };
    run().into()
}

fn reaped(p: Process) {
    for (s, sock) in TABLE.iter().enumerate() {
        if sock.lock().owner == Some(p) {
            release(s);
        }
    }
}

fn killed(p: Process) {
    for (sock, ready) in TABLE.iter().zip(&READY) {
        if sock.lock().owner == Some(p) {
            ready.broadcast();
        }
    }
}
