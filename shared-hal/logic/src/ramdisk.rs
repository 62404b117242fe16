//! The ramdisk archive: how xtask packs user programs into the boot image.
//!
//! The bootloader loads one file, the ramdisk, into memory and tells the
//! kernel where it is. We put a tiny archive in it:
//!
//! ```text
//! offset 0   magic  b"TBRAMDSK"
//!        8   count  u32 little-endian
//!       12   zero   u32
//!       16   count × entry { name: [u8; 48] NUL-padded UTF-8, offset: u64, len: u64 }
//!       ...  file contents, anywhere after the entry table
//! ```
//!
//! [`pack`] builds one (xtask, on the host); [`Archive::parse`] reads one (the
//! kernels) and rejects every malformed archive with an [`ArchiveError`].

use alloc::vec::Vec;

const MAGIC: &[u8; 8] = b"TBRAMDSK";
const HEADER: usize = 16;
const NAME_LEN: usize = 48;
const ENTRY: usize = NAME_LEN + 16;

/// Why an archive could not be packed or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveError {
    /// Shorter than its header or entry table says.
    Truncated,
    /// Does not start with the magic bytes.
    BadMagic,
    /// A file's bytes lie outside the archive.
    BadExtent,
    /// A name is empty, too long, or not UTF-8.
    BadName,
    /// Two files share a name.
    Duplicate,
}

/// A parsed archive borrowing the ramdisk bytes.
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// One file in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl<'a> Archive<'a> {
    /// Validate the whole archive: header, every entry's name and extent, and
    /// name uniqueness. After this, [`Archive::files`] cannot fail.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        if bytes.len() < HEADER {
            return Err(ArchiveError::Truncated);
        }
        if &bytes[..8] != MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let table_end =
            count.checked_mul(ENTRY).and_then(|t| t.checked_add(HEADER)).ok_or(ArchiveError::Truncated)?;
        if bytes.len() < table_end {
            return Err(ArchiveError::Truncated);
        }
        let archive = Self { bytes, count };
        for i in 0..count {
            let f = archive.entry(i)?;
            for j in 0..i {
                if archive.entry(j)?.name == f.name {
                    return Err(ArchiveError::Duplicate);
                }
            }
        }
        Ok(archive)
    }

    fn entry(&self, i: usize) -> Result<File<'a>, ArchiveError> {
        let at = HEADER + i * ENTRY;
        let raw = &self.bytes[at..at + NAME_LEN];
        let name_len = raw.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&raw[..name_len]).map_err(|_| ArchiveError::BadName)?;
        if name.is_empty() {
            return Err(ArchiveError::BadName);
        }
        let offset = u64_at(self.bytes, at + NAME_LEN);
        let len = u64_at(self.bytes, at + NAME_LEN + 8);
        let end = offset.checked_add(len).ok_or(ArchiveError::BadExtent)?;
        if end > self.bytes.len() as u64 {
            return Err(ArchiveError::BadExtent);
        }
        Ok(File { name, data: &self.bytes[offset as usize..end as usize] })
    }

    /// Number of files.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether the archive holds no files.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// All files, in archive order.
    pub fn files(&self) -> impl Iterator<Item = File<'a>> + '_ {
        (0..self.count).filter_map(|i| self.entry(i).ok())
    }

    /// The file called `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.files().find(|f| f.name == name).map(|f| f.data)
    }
}

/// Build an archive from `(name, contents)` pairs.
pub fn pack(files: &[(&str, &[u8])]) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(files.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut offset = (HEADER + files.len() * ENTRY) as u64;
    for (i, (name, data)) in files.iter().enumerate() {
        if name.is_empty() || name.len() > NAME_LEN || name.contains('\0') {
            return Err(ArchiveError::BadName);
        }
        if files[..i].iter().any(|(n, _)| n == name) {
            return Err(ArchiveError::Duplicate);
        }
        let mut raw = [0u8; NAME_LEN];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&raw);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        // Keep each file 16-byte aligned inside the archive.
        offset += (data.len() as u64).div_ceil(16) * 16;
    }
    for (_, data) in files {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(16) * 16, 0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let bytes = pack(&[("hello", b"world"), ("empty", b""), ("bin", &[1, 2, 3])]).unwrap();
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.get("hello"), Some(&b"world"[..]));
        assert_eq!(a.get("empty"), Some(&b""[..]));
        assert_eq!(a.get("bin"), Some(&[1u8, 2, 3][..]));
        assert_eq!(a.get("nope"), None);
        let names: Vec<_> = a.files().map(|f| f.name).collect();
        assert_eq!(names, ["hello", "empty", "bin"]);
    }

    #[test]
    fn pack_rejects_bad_names() {
        assert_eq!(pack(&[("", b"x")]), Err(ArchiveError::BadName));
        let long = "x".repeat(49);
        assert_eq!(pack(&[(&long, b"x")]), Err(ArchiveError::BadName));
        assert_eq!(pack(&[("a", b"x"), ("a", b"y")]), Err(ArchiveError::Duplicate));
    }

    #[test]
    fn hostile_archives() {
        assert_eq!(Archive::parse(b"TBRAM").err(), Some(ArchiveError::Truncated));
        assert_eq!(Archive::parse(b"XXXXXXXX\0\0\0\0\0\0\0\0").err(), Some(ArchiveError::BadMagic));
        // Count says a billion entries.
        let mut b = pack(&[("a", b"x")]).unwrap();
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Archive::parse(&b).err(), Some(ArchiveError::Truncated));
        // Extent past the end, and an overflowing offset + len.
        let good = pack(&[("a", b"xyz")]).unwrap();
        let len_at = HEADER + NAME_LEN + 8;
        let mut b = good.clone();
        b[len_at..len_at + 8].copy_from_slice(&1000u64.to_le_bytes());
        assert_eq!(Archive::parse(&b).err(), Some(ArchiveError::BadExtent));
        let mut b = good.clone();
        b[len_at..len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Archive::parse(&b).err(), Some(ArchiveError::BadExtent));
        // Invalid UTF-8 and empty names.
        let mut b = good.clone();
        b[HEADER] = 0xff;
        assert_eq!(Archive::parse(&b).err(), Some(ArchiveError::BadName));
        let mut b = good;
        b[HEADER] = 0;
        assert_eq!(Archive::parse(&b).err(), Some(ArchiveError::BadName));
    }
}
