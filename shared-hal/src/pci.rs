//! PCI configuration space through the legacy I/O ports (0xCF8/0xCFC, the
//! `pc` machine's i440FX has no memory-mapped configuration space), in
//! the form `virtio-drivers` enumerates and programs devices with.

use crate::cpu;
use spin::Mutex;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// The address/data port pair is one shared register: one access at a time.
static PORTS: Mutex<()> = Mutex::new(());

fn address(df: DeviceFunction, offset: u8) -> u32 {
    (1 << 31)
        | (u32::from(df.bus) << 16)
        | (u32::from(df.device & 0x1f) << 11)
        | (u32::from(df.function & 0x7) << 8)
        | u32::from(offset & 0xfc)
}

/// Configuration access through the I/O ports.
pub struct PortCam;

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        let _ports = PORTS.lock();
        // SAFETY: 0xCF8/0xCFC are the PCI configuration mechanism #1 ports
        // of the `pc` machine; selecting a register and reading it has no
        // other effect.
        unsafe {
            cpu::outl(CONFIG_ADDRESS, address(df, offset));
            cpu::inl(CONFIG_DATA)
        }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let _ports = PORTS.lock();
        // SAFETY: as in `read_word`; the caller (the driver) writes a
        // register of a device it owns.
        unsafe {
            cpu::outl(CONFIG_ADDRESS, address(df, offset));
            cpu::outl(CONFIG_DATA, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}
