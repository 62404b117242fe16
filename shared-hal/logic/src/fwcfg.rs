//! The pure half of QEMU's fw_cfg device: decoding its file directory.
//!
//! xtask hands the kernel its command line as a fw_cfg file
//! (`-fw_cfg name=opt/testbed/cmdline,string=...`). The directory (selector
//! 0x19) is a big-endian `u32` count followed by 64-byte entries
//! `{ size: u32 BE, select: u16 BE, reserved: u16, name: [u8; 56] }`. The
//! port I/O lives in `shared_hal::fwcfg`; this module only interprets bytes.

/// The fw_cfg selector of the file directory.
pub const DIR_SELECTOR: u16 = 0x19;
/// Size of one directory entry.
pub const ENTRY_LEN: usize = 64;
/// Name of the file xtask uses for the kernel command line.
pub const CMDLINE_FILE: &str = "opt/testbed/cmdline";

/// One decoded directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    pub size: u32,
    pub select: u16,
    pub name: &'a [u8],
}

/// Decode one 64-byte directory entry.
pub fn decode_entry(raw: &[u8; ENTRY_LEN]) -> DirEntry<'_> {
    let size = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let select = u16::from_be_bytes([raw[4], raw[5]]);
    let name = &raw[8..];
    let n = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    DirEntry { size, select, name: &name[..n] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let mut raw = [0u8; ENTRY_LEN];
        raw[..4].copy_from_slice(&300u32.to_be_bytes());
        raw[4..6].copy_from_slice(&0x0021u16.to_be_bytes());
        raw[8..8 + CMDLINE_FILE.len()].copy_from_slice(CMDLINE_FILE.as_bytes());
        let e = decode_entry(&raw);
        assert_eq!(e.size, 300);
        assert_eq!(e.select, 0x21);
        assert_eq!(e.name, CMDLINE_FILE.as_bytes());
        // A name filling all 56 bytes (no terminator) is taken whole.
        let full = [b'a'; ENTRY_LEN];
        assert_eq!(decode_entry(&full).name.len(), 56);
    }
}
