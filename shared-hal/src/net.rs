//! Network interfaces: virtio-net devices on the PCI bus, driven by the
//! `virtio-drivers` crate (rcore-os, no_std, MIT: virtqueues, feature
//! negotiation and the modern PCI transport are not what this testbed
//! compares, so a well-kept driver serves). This module supplies what the
//! crate needs from the machine: DMA memory (physically contiguous frames),
//! uncached MMIO mappings for the device's BARs, and bounce buffers for the
//! driver's own heap buffers (the kernel heap is not physically contiguous).
//! Interrupts are not used: the devices are polled.
//!
//! A buffer that already lies in the physical window (a frame the caller
//! reached through [`memory::phys_to_virt`], e.g. a page an environment
//! owns) is handed to the device as it is: `share` gives its own physical
//! address, no bounce buffer and no copy. kernel-exo transmits from
//! environments' pages that way, through [`RawNic`].

use crate::{memory, paging, pci::PortCam};
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use virtio_drivers::device::net::{VirtIONet, VirtIONetRaw};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{Command, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Entries per virtqueue.
pub const QUEUE_SIZE: usize = 16;
/// Receive buffer length (an Ethernet frame plus the virtio-net header).
pub const BUF_LEN: usize = 2048;

/// One NIC.
pub type Nic = VirtIONet<VirtioHal, PciTransport, QUEUE_SIZE>;

/// One NIC driven through the raw interface (the caller owns every
/// buffer; nothing is allocated per frame).
pub type RawNic = VirtIONetRaw<VirtioHal, PciTransport, QUEUE_SIZE>;

/// Bytes of the virtio-net header in front of every frame on the wire
/// queues (VERSION_1 header, negotiated by `virtio-drivers`).
pub const HEADER_LEN: usize = 12;

/// The physical address of `len` bytes at kernel address `va`, if they lie
/// in the physical window on RAM frames (physically contiguous there).
pub fn window_phys(va: u64, len: usize) -> Option<u64> {
    let pa = va.checked_sub(memory::phys_offset())?;
    let last = pa.checked_add(len.max(1) as u64 - 1)?;
    (memory::is_managed(pa & !0xfff) && memory::is_managed(last & !0xfff)).then_some(pa)
}

/// Where BARs are mapped: the kernel scratch region from 2 GiB on, bump
/// allocated (devices are set up once and never go away).
const MMIO_OFFSET: u64 = 2 << 30;
static MMIO_NEXT: AtomicU64 = AtomicU64::new(0);

/// The machine side of `virtio-drivers`.
pub struct VirtioHal;

fn pages_for(len: usize) -> u64 {
    len.div_ceil(4096).max(1) as u64
}

// SAFETY: `dma_alloc` returns zeroed, physically contiguous frames that
// nothing else uses, seen through the physical window (virtual = physical
// + offset, so the device and the driver see the same bytes); `share`
// returns such frames holding a copy of the buffer, and `unshare` copies
// back and frees them; `mmio_phys_to_virt` maps exactly the requested
// range uncached.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let pa = memory::alloc_contiguous_zeroed(pages as u64).expect("frames for a virtqueue");
        let va = NonNull::new(memory::phys_to_virt(pa) as *mut u8).expect("the window is not at 0");
        (pa as PhysAddr, va)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        for i in 0..pages as u64 {
            let _ = memory::free_frame(paddr + i * 4096);
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let pa = paddr;
        let first = pa & !0xfff;
        let pages = pages_for((pa - first) as usize + size);
        let va =
            paging::kernel_scratch_base() + MMIO_OFFSET + MMIO_NEXT.fetch_add(pages * 4096, Ordering::SeqCst);
        let root = paging::kernel_root();
        let flags = paging::pte::WRITABLE | paging::pte::NO_EXECUTE | paging::pte::NO_CACHE;
        for i in 0..pages {
            paging::map(root, va + i * 4096, first + i * 4096, flags).expect("a fresh scratch page maps");
        }
        NonNull::new((va + (pa - first)) as *mut u8).expect("scratch is not at 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        if let Some(pa) = window_phys(buffer.as_ptr() as *const u8 as u64, len) {
            return pa as PhysAddr; // already device-visible: lend it as it is
        }
        let pa = memory::alloc_contiguous_zeroed(pages_for(len)).expect("frames for a bounce buffer");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller lends us `buffer` (valid for `len` bytes) for
            // this call; the frames are ours and at least `len` long.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buffer.as_ptr() as *const u8,
                    memory::phys_to_virt(pa) as *mut u8,
                    len,
                )
            };
        }
        pa as PhysAddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let len = buffer.len();
        if window_phys(buffer.as_ptr() as *const u8 as u64, len) == Some(paddr) {
            return; // lent as it was (see `share`)
        }
        let pa = paddr;
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` is the bounce buffer `share` made for `buffer`,
            // which the caller still lends us.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    memory::phys_to_virt(pa) as *const u8,
                    buffer.as_ptr() as *mut u8,
                    len,
                )
            };
        }
        for i in 0..pages_for(len) {
            let _ = memory::free_frame(pa + i * 4096);
        }
    }
}

/// Every virtio-net device on PCI bus 0, set up and ready (in slot order,
/// so the same QEMU command line always gives the same order).
pub fn nics() -> Vec<Nic> {
    transports()
        .into_iter()
        .filter_map(|(df, t)| {
            Nic::new(t, BUF_LEN).map_err(|e| log::warn!("net: {df:?}: virtio-net set-up failed: {e:?}")).ok()
        })
        .collect()
}

/// Every virtio-net device, as [`nics`], through the raw interface: no
/// receive buffers are posted (the caller posts its own).
pub fn raw_nics() -> Vec<RawNic> {
    transports()
        .into_iter()
        .filter_map(|(df, t)| {
            RawNic::new(t).map_err(|e| log::warn!("net: {df:?}: virtio-net set-up failed: {e:?}")).ok()
        })
        .collect()
}

fn transports() -> Vec<(virtio_drivers::transport::pci::bus::DeviceFunction, PciTransport)> {
    let mut root = PciRoot::new(PortCam);
    let found: Vec<_> = root
        .enumerate_bus(0)
        .filter(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .map(|(df, _)| df)
        .collect();
    let mut out = Vec::new();
    for df in found {
        root.set_command(df, Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER);
        let transport = match PciTransport::new::<VirtioHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("net: {df:?}: no virtio transport: {e:?}");
                continue;
            }
        };
        out.push((df, transport));
    }
    out
}

/// Send one frame from `from` to `to` and check it arrives intact.
fn exchange(from: &mut Nic, to: &mut Nic, seq: u8) -> Result<(), alloc::string::String> {
    use alloc::format;
    let mut frame = [0u8; 60];
    frame[..6].copy_from_slice(&to.mac_address());
    frame[6..12].copy_from_slice(&from.mac_address());
    frame[12..14].copy_from_slice(&[0x88, 0xb5]); // the IEEE's "local experimental" EtherType
    for (i, b) in frame[14..].iter_mut().enumerate() {
        *b = seq.wrapping_add(i as u8);
    }
    let mut tx = from.new_tx_buffer(frame.len());
    tx.packet_mut().copy_from_slice(&frame);
    from.send(tx).map_err(|e| format!("send: {e:?}"))?;
    for _ in 0..1_000_000 {
        if to.can_recv() {
            let rx = to.receive().map_err(|e| format!("receive: {e:?}"))?;
            let got = rx.packet().get(..frame.len()).map(|p| p == frame);
            to.recycle_rx_buffer(rx).map_err(|e| format!("recycle: {e:?}"))?;
            return match got {
                Some(true) => Ok(()),
                _ => Err(format!("frame {seq} arrived changed")),
            };
        }
        core::hint::spin_loop();
    }
    Err(format!("frame {seq} never arrived"))
}

/// The two-NIC check (`scenario=net`, with two virtio-net devices on one
/// QEMU hub): frames cross the hub both ways, byte for byte.
pub fn two_nics_exchange_frames() -> Result<(), alloc::string::String> {
    let mut nics = nics();
    if nics.len() != 2 {
        return Err(alloc::format!("expected 2 virtio-net devices, found {}", nics.len()));
    }
    let (a, b) = nics.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    if a.mac_address() == b.mac_address() {
        return Err("the two NICs have the same MAC address".into());
    }
    for seq in 0..8 {
        exchange(a, b, seq)?;
        exchange(b, a, seq + 100)?;
    }
    Ok(())
}
