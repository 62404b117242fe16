//! The NICs as a trusted service (ring 0): the kernel owns the virtio-net
//! devices (shared-hal's driver, polled), transmits whole frames for the
//! network extensions, and delivers every received frame by raising
//! `Ether.PacketArrived` (contained: a faulting handler is unloaded and
//! delivery goes on).
//!
//! Receive is polled, never interrupt driven: from the idle path (the
//! scheduler idles when no strand is runnable, e.g. every thread is
//! blocked in `udp_recv_from`; [`idle_poll`] delivers what has arrived
//! before the CPU halts) and on demand ([`poll`], through
//! `NetServices::poll`, for tests, benchmarks and a sender waiting for
//! an ARP reply). Polling keeps every figure a count of instructions
//! (no interrupt latency, nothing asynchronous) and costs nothing when
//! nothing waits for the network.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use shared_hal::net::Nic;
use spin_interface::KernelKey;
use spin_interface::net::{self, MAX_FRAME, MAX_NICS, NetError};

static NICS: spin::Mutex<Vec<Nic>> = spin::Mutex::new(Vec::new());
/// How many NICs were found at boot (read without the lock).
static COUNT: AtomicU64 = AtomicU64::new(0);
/// Their hardware addresses.
static MACS: spin::Mutex<[[u8; 6]; MAX_NICS]> = spin::Mutex::new([[0; 6]; MAX_NICS]);
/// Set while frames are being delivered: a nested poll does nothing.
static DELIVERING: AtomicBool = AtomicBool::new(false);
/// Frames the devices handed us that were longer than a frame may be.
pub static OVERSIZED: AtomicU64 = AtomicU64::new(0);
/// Set by the benchmark glue, which stops the timer: the idle path then
/// polls again instead of halting (no interrupt would end the halt).
pub static NEVER_HALT: AtomicBool = AtomicBool::new(false);
/// Frames delivered.
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);

fn transmit(nic: u8, frame: &[u8]) -> Result<(), NetError> {
    let mut nics = NICS.lock();
    let dev = nics.get_mut(usize::from(nic)).ok_or(NetError::NoSuchNic)?;
    // The driver allocates the frame's buffer infallibly and the HAL a
    // bounce frame with `expect`: make sure both will succeed (nothing
    // runs in between on this uniprocessor), so a full heap or a full
    // memory is an error for the sender, never a kernel panic.
    let mut probe: Vec<u8> = Vec::new();
    if probe.try_reserve_exact(frame.len() + 64).is_err() || shared_hal::memory::free_frames() < 4 {
        return Err(NetError::Device);
    }
    drop(probe);
    let mut tx = dev.new_tx_buffer(frame.len());
    tx.packet_mut().copy_from_slice(frame);
    dev.send(tx).map_err(|_| NetError::Device)
}

fn mac(nic: u8) -> Option<[u8; 6]> {
    (usize::from(nic) < count()).then(|| MACS.lock()[usize::from(nic)])
}

fn count() -> usize {
    COUNT.load(Ordering::Relaxed) as usize
}

/// Take one received frame from `nic` into `buf`: its length, if any.
fn receive_one(nic: usize, buf: &mut [u8; MAX_FRAME]) -> Option<usize> {
    let mut nics = NICS.lock();
    let dev = nics.get_mut(nic)?;
    if !dev.can_recv() {
        return None;
    }
    let rx = dev.receive().ok()?;
    let p = rx.packet();
    let n = if p.len() > MAX_FRAME {
        OVERSIZED.fetch_add(1, Ordering::Relaxed);
        0
    } else {
        buf[..p.len()].copy_from_slice(p);
        p.len()
    };
    let _ = dev.recycle_rx_buffer(rx);
    Some(n)
}

/// Deliver every frame waiting in the NICs; how many were delivered.
pub fn poll() -> usize {
    if DELIVERING.swap(true, Ordering::Acquire) {
        return 0;
    }
    let mut buf = [0u8; MAX_FRAME];
    let mut done = 0;
    loop {
        let mut any = false;
        for nic in 0..count() {
            let Some(n) = receive_one(nic, &mut buf) else { continue };
            any = true;
            if n == 0 {
                continue;
            }
            if let Ok(packet) = net::deliver(crate::key(), nic as u8, &buf[..n]) {
                // A faulting handler has been unloaded; the next frame goes on.
                let _ = net::ETHER_PACKET_ARRIVED.event(crate::key()).raise_contained(packet);
                done += 1;
            }
        }
        if !any {
            break;
        }
    }
    DELIVERED.fetch_add(done as u64, Ordering::Relaxed);
    DELIVERING.store(false, Ordering::Release);
    done
}

/// The idle path's poll: deliver what has arrived (the caller halts only
/// if nothing did). A frame just sent may still be inside the device
/// model, so a few empty polls come before giving up.
pub fn idle_poll() -> bool {
    if count() == 0 {
        return false;
    }
    for _ in 0..IDLE_POLLS {
        if poll() > 0 {
            return true;
        }
    }
    false
}

/// Empty polls the idle path makes before halting.
const IDLE_POLLS: usize = 64;

static CORE: net::Core = net::Core { transmit, mac, count, poll };

/// Find the NICs and bind the Net implementation.
pub fn install(key: &KernelKey) {
    let found = shared_hal::net::nics();
    {
        let mut macs = MACS.lock();
        for (i, n) in found.iter().take(MAX_NICS).enumerate() {
            macs[i] = n.mac_address();
        }
    }
    let mut nics = NICS.lock();
    *nics = found;
    nics.truncate(MAX_NICS);
    COUNT.store(nics.len() as u64, Ordering::Relaxed);
    net::install(key, &CORE);
}
