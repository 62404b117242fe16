//! QEMU's fw_cfg device, read through its I/O ports: how the kernel gets the
//! command line xtask chose (`-fw_cfg name=opt/testbed/cmdline,string=...`)
//! without rebuilding the disk image.

use crate::cpu::{inb, outw};
use alloc::string::String;
use alloc::vec::Vec;
use hal_logic::fwcfg::{CMDLINE_FILE, DIR_SELECTOR, ENTRY_LEN, decode_entry};

const PORT_SELECTOR: u16 = 0x510;
const PORT_DATA: u16 = 0x511;

fn select(key: u16) {
    // SAFETY: the fw_cfg selector port; selecting an item has no other effect.
    unsafe { outw(PORT_SELECTOR, key) };
}

fn read_bytes(buf: &mut [u8]) {
    for b in buf {
        // SAFETY: the fw_cfg data port; each read returns the next byte of the
        // selected item (or 0 past its end).
        *b = unsafe { inb(PORT_DATA) };
    }
}

/// Whether the device is present (its signature item reads "QEMU").
pub fn present() -> bool {
    select(0);
    let mut sig = [0u8; 4];
    read_bytes(&mut sig);
    &sig == b"QEMU"
}

/// The contents of the fw_cfg file `name`, if it exists.
pub fn read_file(name: &str) -> Option<Vec<u8>> {
    if !present() {
        return None;
    }
    select(DIR_SELECTOR);
    let mut count = [0u8; 4];
    read_bytes(&mut count);
    let count = u32::from_be_bytes(count);
    let mut found = None;
    for _ in 0..count {
        let mut raw = [0u8; ENTRY_LEN];
        read_bytes(&mut raw);
        let e = decode_entry(&raw);
        if e.name == name.as_bytes() {
            found = Some((e.select, e.size));
        }
    }
    let (key, size) = found?;
    let mut data = alloc::vec![0u8; size.min(64 * 1024) as usize];
    select(key);
    read_bytes(&mut data);
    Some(data)
}

/// The kernel command line (empty when none was given).
pub fn cmdline() -> String {
    read_file(CMDLINE_FILE)
        .map(|b| String::from_utf8_lossy(&b).trim_end_matches('\0').into())
        .unwrap_or_default()
}
