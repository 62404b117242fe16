//! Turning a user program's ELF file into a checked loading plan.
//!
//! The `elf` crate parses the headers; this module decides whether the file
//! is something a kernel may load into a user address space (64-bit x86-64
//! static executable, every loadable segment inside user space, no two
//! segments on the same page, file extents inside the file, entry point in an
//! executable segment) and describes the result as page-aligned [`Segment`]s.
//! The kernel then only copies bytes and installs mappings.

use crate::addr::{PAGE_SIZE, USER_END, USER_START, page_ceil, page_floor};
use alloc::vec::Vec;
use elf::ElfBytes;
use elf::abi::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;

/// Why an ELF file cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Not a well-formed 64-bit little-endian ELF file.
    Malformed,
    /// Not an x86-64 static executable (`ET_EXEC`).
    WrongKind,
    /// A segment lies outside user space, or its sizes are inconsistent.
    BadSegment,
    /// Two loadable segments share a page.
    Overlap,
    /// The entry point is not inside an executable segment.
    BadEntry,
    /// No loadable segments at all.
    Empty,
}

/// One page-aligned region to map, and which file bytes go where in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First page of the mapping.
    pub page_start: u64,
    /// Number of pages.
    pub pages: u64,
    /// Virtual address the file bytes are copied to (inside the mapping).
    pub copy_to: u64,
    /// Offset of those bytes in the file.
    pub file_offset: u64,
    /// How many bytes to copy; the rest of the mapping is zero.
    pub file_len: u64,
    pub writable: bool,
    pub executable: bool,
}

/// A checked plan for loading a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfPlan {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

/// Check `file` and produce its loading plan.
pub fn plan(file: &[u8]) -> Result<ElfPlan, ElfError> {
    let elf = ElfBytes::<LittleEndian>::minimal_parse(file).map_err(|_| ElfError::Malformed)?;
    if elf.ehdr.e_type != ET_EXEC || elf.ehdr.e_machine != EM_X86_64 {
        return Err(ElfError::WrongKind);
    }
    let phdrs = elf.segments().ok_or(ElfError::Empty)?;
    let mut segments: Vec<Segment> = Vec::new();
    for ph in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        if ph.p_memsz == 0 {
            continue;
        }
        let end = ph.p_vaddr.checked_add(ph.p_memsz).ok_or(ElfError::BadSegment)?;
        let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(ElfError::BadSegment)?;
        if ph.p_filesz > ph.p_memsz
            || ph.p_vaddr < USER_START
            || end > USER_END
            || file_end > file.len() as u64
        {
            return Err(ElfError::BadSegment);
        }
        let page_start = page_floor(ph.p_vaddr);
        let page_end = page_ceil(end).ok_or(ElfError::BadSegment)?;
        let seg = Segment {
            page_start,
            pages: (page_end - page_start) / PAGE_SIZE,
            copy_to: ph.p_vaddr,
            file_offset: ph.p_offset,
            file_len: ph.p_filesz,
            writable: ph.p_flags & PF_W != 0,
            executable: ph.p_flags & PF_X != 0,
        };
        let seg_end = seg.page_start + seg.pages * PAGE_SIZE;
        if segments
            .iter()
            .any(|s| s.page_start < seg_end && seg.page_start < s.page_start + s.pages * PAGE_SIZE)
        {
            return Err(ElfError::Overlap);
        }
        segments.push(seg);
    }
    if segments.is_empty() {
        return Err(ElfError::Empty);
    }
    let entry = elf.ehdr.e_entry;
    let in_text = segments
        .iter()
        .any(|s| s.executable && entry >= s.copy_to && entry < s.page_start + s.pages * PAGE_SIZE);
    if !in_text {
        return Err(ElfError::BadEntry);
    }
    Ok(ElfPlan { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 executable with the given program headers
    /// `(type, flags, offset, vaddr, filesz, memsz)`.
    fn build(kind: u16, entry: u64, phs: &[(u32, u32, u64, u64, u64, u64)], total: usize) -> Vec<u8> {
        let mut f = vec![0u8; total.max(64 + 56 * phs.len())];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1; // version
        f[16..18].copy_from_slice(&kind.to_le_bytes());
        f[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for (i, &(t, fl, off, va, fs, ms)) in phs.iter().enumerate() {
            let b = 64 + 56 * i;
            f[b..b + 4].copy_from_slice(&t.to_le_bytes());
            f[b + 4..b + 8].copy_from_slice(&fl.to_le_bytes());
            f[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
            f[b + 16..b + 24].copy_from_slice(&va.to_le_bytes());
            f[b + 24..b + 32].copy_from_slice(&va.to_le_bytes());
            f[b + 32..b + 40].copy_from_slice(&fs.to_le_bytes());
            f[b + 40..b + 48].copy_from_slice(&ms.to_le_bytes());
            f[b + 48..b + 56].copy_from_slice(&4096u64.to_le_bytes());
        }
        f
    }

    const RX: u32 = 5;
    const RW: u32 = 6;

    #[test]
    fn good_program() {
        let f = build(
            ET_EXEC,
            0x40_1010,
            &[(PT_LOAD, RX, 0, 0x40_1000, 0x100, 0x100), (PT_LOAD, RW, 0x100, 0x40_2000, 0x10, 0x3000)],
            0x200,
        );
        let p = plan(&f).unwrap();
        assert_eq!(p.entry, 0x40_1010);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[1].pages, 3);
        assert!(p.segments[1].writable && !p.segments[1].executable);
        assert_eq!(p.segments[0].file_len, 0x100);
    }

    #[test]
    fn hostile_programs() {
        assert_eq!(plan(b"not an elf").err(), Some(ElfError::Malformed));
        let ok_seg = (PT_LOAD, RX, 0, 0x40_1000, 0x100, 0x100);
        assert_eq!(plan(&build(3, 0x40_1000, &[ok_seg], 0x200)).err(), Some(ElfError::WrongKind));
        // Segment in the kernel half.
        let kern = (PT_LOAD, RX, 0, 0xffff_8000_0000_0000, 0x100, 0x100);
        assert_eq!(
            plan(&build(ET_EXEC, 0xffff_8000_0000_0000, &[kern], 0x200)).err(),
            Some(ElfError::BadSegment)
        );
        // Page zero.
        let zero = (PT_LOAD, RX, 0, 0, 0x100, 0x100);
        assert_eq!(plan(&build(ET_EXEC, 0, &[zero], 0x200)).err(), Some(ElfError::BadSegment));
        // memsz wraps around.
        let wrap = (PT_LOAD, RX, 0, 0x40_1000, 0x100, u64::MAX);
        assert_eq!(plan(&build(ET_EXEC, 0x40_1000, &[wrap], 0x200)).err(), Some(ElfError::BadSegment));
        // File bytes beyond the end of the file.
        let long = (PT_LOAD, RX, 0, 0x40_1000, 0x10000, 0x10000);
        assert_eq!(plan(&build(ET_EXEC, 0x40_1000, &[long], 0x200)).err(), Some(ElfError::BadSegment));
        // Overlapping segments.
        let a = (PT_LOAD, RX, 0, 0x40_1000, 0x100, 0x100);
        let b = (PT_LOAD, RW, 0, 0x40_1800, 0x100, 0x100);
        assert_eq!(plan(&build(ET_EXEC, 0x40_1000, &[a, b], 0x200)).err(), Some(ElfError::Overlap));
        // Entry outside any executable segment.
        let data = (PT_LOAD, RW, 0, 0x40_1000, 0x100, 0x100);
        assert_eq!(plan(&build(ET_EXEC, 0x40_1000, &[data], 0x200)).err(), Some(ElfError::BadEntry));
        assert_eq!(plan(&build(ET_EXEC, 0x40_1000, &[], 0x200)).err(), Some(ElfError::Empty));
    }
}
