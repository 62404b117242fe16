//! The network interfaces as a protected resource (Aegis's secure binding
//! for the network): environments transmit frames from pages they own,
//! and receive through downloaded packet filters that the kernel merges
//! into one decision structure per NIC (`exo_logic::dpf`), each filter
//! bound to a receive ring in its environment's own pages.
//!
//! The NICs are polled (`net_poll`): every frame the device has received
//! is classified by the NIC's trie and copied into the matching filter's
//! ring, or dropped and counted. The receive copy is the one copy on the
//! path: the device writes into kernel buffers because which environment a
//! frame is for is known only after the filter ran (Aegis copies too; its
//! ASHs are what avoids a second copy at user level). Transmission needs
//! no copy: the device reads the environment's page.
//!
//! A filter's ring pages are named by capabilities, which are checked
//! again on every delivery: a page freed, revoked or given away since the
//! filter was installed is never written (the frame is dropped, and the
//! filter with it).

use crate::caps;
use crate::kernel::Kernel;
use alloc::vec::Vec;
use exo_abi::Error;
use exo_abi::Rights;
use exo_abi::net::{
    Atom, FILTER_ATOMS_MAX, FILTERS_MAX, FILTERS_PER_ENV_MAX, FRAME_MAX, FRAME_MIN, NICS_MAX, NicStats,
    RING_PAGES_MAX, RingHeader, SLOT_BYTES, SLOTS_PER_PAGE, SlotHeader, TX_HEADROOM, slot_offset,
};
use exo_logic::dpf::{Canonical, FilterError, Trie};
use exo_logic::handles::SlotTable;
use shared_hal::memory::{self, phys_to_virt};
use shared_hal::net::RawNic;
use spin::Mutex;

/// Receive buffers posted per NIC (one frame each: header and frame).
const RX_BUFFERS: usize = shared_hal::net::QUEUE_SIZE;

/// An installed filter.
pub struct Filter {
    /// The environment that installed it.
    pub owner: u64,
    pub nic: usize,
    pub canonical: Canonical,
    /// The ring: capabilities and the physical addresses they named.
    ring: [(u64, u64); RING_PAGES_MAX as usize],
    pages: usize,
    /// The kernel's own producer index (the one in the page is a copy).
    tail: u32,
    dropped: u32,
}

impl Filter {
    fn slots(&self) -> u32 {
        (self.pages * SLOTS_PER_PAGE) as u32
    }
}

struct NicState {
    dev: RawNic,
    /// Physical addresses of the posted receive buffers, by token.
    rx: [u64; RX_BUFFERS],
    trie: Trie,
    stats: NicStats,
}

pub struct Net {
    nics: Vec<NicState>,
    pub filters: SlotTable<Filter, 12>,
}

static NET: Mutex<Option<Net>> = Mutex::new(None);

/// Find and set up the NICs (once, at boot), posting every receive buffer.
pub fn init() {
    let mut nics = Vec::new();
    for mut dev in shared_hal::net::raw_nics().into_iter().take(NICS_MAX) {
        let mut rx = [0u64; RX_BUFFERS];
        for j in 0..RX_BUFFERS {
            let pa = memory::alloc_zeroed_frame().expect("frames for the receive buffers at boot");
            // SAFETY: the frame is the kernel's, reached through the
            // physical window, and stays posted (never reused) while the
            // device may write it.
            let buf = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(pa) as *mut u8, 4096) };
            // SAFETY: as above: the buffer outlives its time in the queue.
            let token = unsafe { dev.receive_begin(buf) }.expect("an empty receive queue takes a buffer");
            rx[token as usize % RX_BUFFERS] = pa;
            debug_assert_eq!(token as usize, j);
        }
        nics.push(NicState { dev, rx, trie: Trie::new(), stats: NicStats::default() });
    }
    if !nics.is_empty() {
        shared_hal::println!("kernel-exo: {} virtio-net NIC(s)", nics.len());
    }
    *NET.lock() = Some(Net { nics, filters: SlotTable::new(FILTERS_MAX) });
}

/// Run `f` on the network state. Callers hold the kernel lock first
/// (kernel, then net: the one order).
pub fn with<R>(f: impl FnOnce(&mut Net) -> R) -> R {
    let mut guard = NET.lock();
    f(guard.as_mut().expect("net::init not called"))
}

impl Net {
    fn nic(&mut self, nic: u64) -> Result<&mut NicState, Error> {
        self.nics.get_mut(usize::try_from(nic).map_err(|_| Error::NotFound)?).ok_or(Error::NotFound)
    }

    pub fn nic_count(&self) -> usize {
        self.nics.len()
    }

    pub fn stats(&self, nic: usize) -> Option<NicStats> {
        self.nics.get(nic).map(|n| n.stats)
    }

    /// Heap bytes the filter table and the tries keep when emptied (leak
    /// checks account for their growth, as `Kernel::table_bytes`).
    pub fn table_bytes(&self) -> usize {
        let [a, b] = self.filters.heap_blocks();
        let tries = self.nics.iter().flat_map(|n| n.trie.heap_blocks());
        [a, b].into_iter().chain(tries).map(shared_hal::heap::footprint).sum()
    }

    /// Trie nodes in use on every NIC (leak checks).
    pub fn trie_nodes(&self) -> usize {
        self.nics.iter().map(|n| n.trie.nodes()).sum()
    }
}

/// `net_info`: the MAC address, the NIC count, and the statistics.
pub fn info(nic: u64) -> Result<(u64, u64, NicStats), Error> {
    with(|n| {
        let count = n.nics.len() as u64;
        let s = n.nic(nic)?;
        let mac = s.dev.mac_address().iter().fold(0u64, |m, &b| (m << 8) | u64::from(b));
        Ok((mac, count, s.stats))
    })
}

/// `net_transmit` for environment `env`.
pub fn transmit(k: &Kernel, env: u64, nic: u64, cap: u64, offset: u64, len: u64) -> Result<(), Error> {
    let cap = caps::held(k, env, cap)?;
    if !cap.rights.contains(Rights::WRITE) {
        return Err(Error::NoRights);
    }
    if !(FRAME_MIN..=FRAME_MAX).contains(&len) {
        return Err(Error::BadLength);
    }
    if offset < TX_HEADROOM || offset.checked_add(len).is_none_or(|end| end > 4096) {
        return Err(Error::BadArgument);
    }
    let pa = cap.pa;
    with(|n| {
        let ni = usize::try_from(nic).map_err(|_| Error::NotFound)?;
        n.nic(nic)?;
        let start = offset - TX_HEADROOM;
        // SAFETY: the caller holds a writable capability for the page at
        // `pa` (checked above, under the kernel lock, which stays held until
        // the device is done), and `start..offset + len` lies inside it.
        let buf = unsafe {
            core::slice::from_raw_parts_mut(
                (phys_to_virt(pa) + start) as *mut u8,
                (offset + len - start) as usize,
            )
        };
        let hdr = n.nics[ni].dev.fill_buffer_header(buf).map_err(|_| Error::BadLength)?;
        let frame = &buf[TX_HEADROOM as usize - hdr..];
        // SAFETY: `frame` is not touched by the kernel until the request
        // completes, below, before this call returns.
        let token = unsafe { n.nics[ni].dev.transmit_begin(frame) }.map_err(|_| Error::Limit)?;
        // The device completes a transmission once the hub has delivered
        // the frame, i.e. once the receiving NIC had a free buffer. The
        // receiver is one of ours: if the wait is long, drain every NIC
        // (frames go to their rings or are dropped and counted), so a
        // flood that fills a receive queue cannot wedge the sender here.
        // How long QEMU's device model takes, in guest instructions,
        // depends on the host's thread timing: the wait is counted apart
        // (`tx_wait_instructions`) so benchmarks can leave it out.
        let t0 = benchmarks::measure::rdtsc();
        let mut spins = 0u32;
        while n.nics[ni].dev.poll_transmit() != Some(token) {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) {
                for j in 0..n.nics.len() {
                    poll_nic(k, n, j);
                }
            }
            core::hint::spin_loop();
        }
        n.nics[ni].stats.tx_wait_instructions += benchmarks::measure::rdtsc() - t0;
        // SAFETY: the same buffer as passed to `transmit_begin`.
        unsafe { n.nics[ni].dev.transmit_complete(token, frame) }.map_err(|_| Error::Limit)?;
        n.nics[ni].stats.transmitted += 1;
        Ok(())
    })
}

/// `net_filter_install` for environment slot `i`: the atoms and the ring
/// capabilities have been copied in by the caller.
pub fn install(k: &Kernel, i: usize, nic: u64, atoms: &[Atom], ring: &[u64]) -> Result<u64, Error> {
    let env = k.env(i).id;
    let canonical = Canonical::new(atoms).map_err(|e| match e {
        FilterError::Length => Error::BadLength,
        FilterError::Malformed => Error::BadArgument,
        FilterError::OutOfMemory => Error::OutOfMemory,
    })?;
    if ring.is_empty() || ring.len() > RING_PAGES_MAX as usize {
        return Err(Error::BadLength);
    }
    let mut pages = [(0u64, 0u64); RING_PAGES_MAX as usize];
    for (slot, &handle) in pages.iter_mut().zip(ring) {
        let cap = caps::held(k, env, handle)?;
        if !cap.rights.contains(Rights::WRITE) {
            return Err(Error::NoRights);
        }
        *slot = (handle, cap.pa);
    }
    let pages_used = &pages[..ring.len()];
    if pages_used.iter().enumerate().any(|(j, p)| pages_used[..j].iter().any(|q| q.1 == p.1)) {
        return Err(Error::BadArgument);
    }
    with(|n| {
        let nic_index = usize::try_from(nic).map_err(|_| Error::NotFound)?;
        n.nic(nic)?;
        if n.filters.iter().filter(|(_, f)| f.owner == env).count() >= FILTERS_PER_ENV_MAX {
            return Err(Error::Limit);
        }
        if n.filters.len() >= FILTERS_MAX {
            return Err(Error::Limit);
        }
        if n.filters.iter().any(|(_, f)| f.nic == nic_index && !f.canonical.disjoint(&canonical)) {
            return Err(Error::Conflict);
        }
        let filter = Filter {
            owner: env,
            nic: nic_index,
            canonical,
            ring: pages,
            pages: ring.len(),
            tail: 0,
            dropped: 0,
        };
        let slots = filter.slots();
        // The count was checked above: a refusal here is the heap's.
        let id = n.filters.insert(filter).map_err(|_| Error::OutOfMemory)?;
        if let Err(e) = n.nics[nic_index].trie.insert(&canonical, id) {
            let _ = n.filters.remove(id);
            return Err(match e {
                FilterError::OutOfMemory => Error::OutOfMemory,
                _ => Error::BadArgument,
            });
        }
        write_header(pages[0].1, RingHeader { head: 0, tail: 0, dropped: 0, slots });
        Ok(id)
    })
}

fn write_header(pa: u64, h: RingHeader) {
    // SAFETY: `pa` is a ring page whose capability was checked just now;
    // the header is at its start.
    unsafe { core::ptr::write_volatile(phys_to_virt(pa) as *mut RingHeader, h) };
}

/// `net_filter_remove` for environment `env`.
pub fn remove(env: u64, id: u64) -> Result<(), Error> {
    with(|n| {
        match n.filters.get(id) {
            Ok(f) if f.owner == env => {}
            _ => return Err(Error::NotFound),
        }
        drop_filter(n, id);
        Ok(())
    })
}

fn drop_filter(n: &mut Net, id: u64) {
    if let Ok(f) = n.filters.remove(id) {
        let removed = n.nics[f.nic].trie.remove(&f.canonical);
        debug_assert_eq!(removed, Some(id));
    }
}

/// Remove every filter of environment `env` (teardown: no allocation).
pub fn release_env(env: u64) {
    with(|n| {
        // The table is small (FILTERS_MAX); find and remove one at a time.
        loop {
            let found = n.filters.iter().find(|(_, f)| f.owner == env).map(|(h, _)| h);
            let Some(id) = found else { break };
            drop_filter(n, id);
        }
    });
}

/// The id of the filter `frame` matches on `nic`, if any.
pub fn classify(n: &Net, nic: usize, frame: &[u8]) -> Option<u64> {
    n.nics.get(nic)?.trie.classify(frame)
}

/// `net_demux_probe`: classify without delivering; (filter id, instructions).
pub fn probe(nic: u64, frame: &[u8]) -> Result<(u64, u64), Error> {
    with(|n| {
        let nic = usize::try_from(nic).map_err(|_| Error::NotFound)?;
        if nic >= n.nics.len() {
            return Err(Error::NotFound);
        }
        let t0 = benchmarks::measure::rdtsc();
        let id = classify(n, nic, frame);
        let t1 = benchmarks::measure::rdtsc();
        Ok((id.unwrap_or(0), t1 - t0))
    })
}

/// `net_poll`: take what NIC `nic` has received and deliver it.
pub fn poll(k: &Kernel, nic: u64) -> Result<u64, Error> {
    with(|n| {
        let ni = usize::try_from(nic).map_err(|_| Error::NotFound)?;
        n.nic(nic)?;
        Ok(poll_nic(k, n, ni))
    })
}

/// Take what NIC `ni` has received (at most one queue's worth, so the
/// time is bounded however fast frames arrive) and deliver it.
fn poll_nic(k: &Kernel, n: &mut Net, ni: usize) -> u64 {
    let mut taken = 0;
    for _ in 0..RX_BUFFERS {
        let Some(token) = n.nics[ni].dev.poll_receive() else { break };
        let Some(&pa) = n.nics[ni].rx.get(token as usize) else { break };
        // SAFETY: the buffer posted under `token` (a kernel frame), now
        // returned by the device.
        let buf = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(pa) as *mut u8, 4096) };
        // SAFETY: the same buffer as passed to `receive_begin`.
        let got = unsafe { n.nics[ni].dev.receive_complete(token, buf) };
        taken += 1;
        n.nics[ni].stats.received += 1;
        match got {
            Ok((hdr, len)) if (FRAME_MIN as usize..=FRAME_MAX as usize).contains(&len) => {
                deliver(k, n, ni, &buf[hdr..hdr + len]);
            }
            _ => n.nics[ni].stats.dropped_malformed += 1,
        }
        // SAFETY: the buffer is reposted; the kernel does not touch it
        // again until the device returns it.
        let again = unsafe { n.nics[ni].dev.receive_begin(buf) };
        if let Ok(t) = again {
            n.nics[ni].rx[t as usize] = pa;
        }
    }
    taken
}

/// Classify `frame` and copy it into the matching ring, or count the drop.
fn deliver(k: &Kernel, n: &mut Net, nic: usize, frame: &[u8]) {
    let Some(id) = classify(n, nic, frame) else {
        n.nics[nic].stats.dropped_unmatched += 1;
        return;
    };
    let f = n.filters.get(id).expect("the trie names installed filters");
    // The ring's pages must still be the owner's to write.
    let still_held = f.ring[..f.pages].iter().all(|&(handle, pa)| {
        caps::held(k, f.owner, handle).is_ok_and(|c| c.pa == pa && c.rights.contains(Rights::WRITE))
    });
    if !still_held {
        n.nics[nic].stats.dropped_ring += 1;
        drop_filter(n, id);
        return;
    }
    let f = n.filters.get_mut(id).expect("checked just now");
    let hdr_pa = f.ring[0].1;
    let hdr = phys_to_virt(hdr_pa) as *mut RingHeader;
    // SAFETY: page 0 of the ring, whose capability was checked above.
    let head = unsafe { core::ptr::read_volatile(&raw const (*hdr).head) };
    if f.tail.wrapping_sub(head) >= f.slots() {
        f.dropped = f.dropped.wrapping_add(1);
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&raw mut (*hdr).dropped, f.dropped) };
        n.nics[nic].stats.dropped_ring += 1;
        return;
    }
    let s = (f.tail % f.slots()) as usize;
    let page = f.ring[s / SLOTS_PER_PAGE].1;
    let at = phys_to_virt(page) + slot_offset(s) as u64;
    let t0 = benchmarks::measure::rdtsc();
    // SAFETY: slot `s` lies inside ring page `page` (checked capability),
    // SLOT_BYTES long, and holds a SlotHeader and up to FRAME_MAX bytes.
    unsafe {
        core::ptr::write_volatile(
            at as *mut SlotHeader,
            SlotHeader { len: frame.len() as u32, nic: nic as u32 },
        );
        let data = (at as usize + core::mem::size_of::<SlotHeader>()) as *mut u8;
        debug_assert!(core::mem::size_of::<SlotHeader>() + frame.len() <= SLOT_BYTES);
        copy_frame(data, frame);
    }
    let t1 = benchmarks::measure::rdtsc();
    f.tail = f.tail.wrapping_add(1);
    // SAFETY: as above; the tail is published after the slot is written.
    unsafe { core::ptr::write_volatile(&raw mut (*hdr).tail, f.tail) };
    let st = &mut n.nics[nic].stats;
    st.delivered += 1;
    st.copied_bytes += frame.len() as u64;
    st.copy_instructions += t1 - t0;
}

/// Copy `src` to `dst` with `rep movsq` and `rep movsb` (one counted
/// instruction per 8 bytes under `-icount`; the generic `memcpy` this
/// target links took about 15 more per 106-byte frame).
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes and not overlap `src`.
unsafe fn copy_frame(dst: *mut u8, src: &[u8]) {
    // SAFETY: the caller guarantees `dst`; `src` is a valid slice; the
    // string instructions move exactly `src.len()` bytes forward (DF is
    // clear in the kernel, as the ABI requires).
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) src.len() & 7,
            inout("rcx") src.len() / 8 => _,
            inout("rdi") dst => _,
            inout("rsi") src.as_ptr() => _,
            options(nostack, preserves_flags),
        )
    };
}

/// Largest filter, for buffers.
pub const ATOMS_MAX: usize = FILTER_ATOMS_MAX as usize;

/// Parse `count` atoms from the bytes a user supplied (any bytes form an
/// atom; `Canonical::new` judges them).
pub fn atoms_from_bytes(bytes: &[u8], out: &mut [Atom; ATOMS_MAX]) {
    for (a, b) in out.iter_mut().zip(bytes.chunks_exact(core::mem::size_of::<Atom>())) {
        *a = Atom {
            offset: u16::from_le_bytes([b[0], b[1]]),
            width: b[2],
            flags: b[3],
            mask: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            value: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        };
    }
}
