//! The in-kernel loader and linker for certified extension objects (ring
//! 0, trusted): SPIN's `Domain.Create(objectFile)` + `Resolve`. An object is
//! a relocatable ELF file the trusted build (`cargo xtask build spin`,
//! xtask/src/extobj.rs) compiled from an extension crate that passed the
//! build checks, with an HMAC-SHA256 certificate over its exact bytes.
//!
//! In order, before any of its code runs: verify the certificate (nothing
//! else of the object is read first); parse it (`object`, no_std ELF
//! reader); lay out its allocated sections in three page-aligned regions,
//! text, read-only data (with a GOT for the imports) and data; map fresh
//! frames there read-write, copy, apply every relocation (known types
//! only, each written inside its section, each target a loaded section of
//! the object or a symbol of the kernel's export table — the symbols of
//! the extension interface and the language runtime the certified objects
//! import, nothing else: the HAL and the kernel's own functions cannot
//! even be named); then set the final protections (text read-execute,
//! everything else no-execute, only data writable). Then the extension's
//! `EXTENSION` static is handed to [`loader::load`](crate::loader::load)
//! under the name the kernel's caller chose (reserved before `init` runs
//! contained). A failure before `init` gives back every frame and the
//! address range; once `init` has run, its code may be referenced from
//! anywhere it handed a `&'static` to, so its memory stays mapped (and
//! its domain unloaded) for good: see [`unload`].

use crate::loader::{self, LoadError};
use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use object::read::elf::{ElfFile64, SectionHeader};
use object::{
    LittleEndian as LE, Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget,
    SectionIndex, SymbolIndex, SymbolSection, elf,
};
use sha2::Sha256;
use shared_hal::paging::{self, pte};
use spin_interface::{Extension, Identity, KernelKey};

/// One symbol the kernel exports to loaded extensions: its name and address.
pub struct Export(pub &'static str, pub *const u8);
// SAFETY: the address is only compared and copied into a loaded object's
// GOT or code, never dereferenced by the kernel.
unsafe impl Sync for Export {}

mod generated {
    use super::Export;
    include!(concat!(env!("OUT_DIR"), "/exports.rs"));
    include!(concat!(env!("OUT_DIR"), "/certkey.rs"));
}

/// What the MAC covers before the object (as xtask/src/extobj.rs).
const CERT_CONTEXT: &[u8] = b"kernel-spin certified extension object v1\0";
/// The largest object image the loader maps (text + data + GOT).
pub const MAX_IMAGE: u64 = 4 << 20;
/// Where loaded objects live: slots of the kernel's scratch region.
const LOAD_OFFSET: u64 = 64 << 30;
const SLOT_SIZE: u64 = 16 << 20;
const SLOTS: usize = 4096;

/// Why an object did not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjError {
    /// This kernel was built without a certificate key (refuses everything).
    NoKey,
    /// The certificate does not match the object's bytes.
    BadCertificate,
    /// Not a well-formed x86-64 relocatable ELF object.
    Malformed,
    /// Its sections add up to more than [`MAX_IMAGE`].
    TooLarge,
    /// An allocated section of a kind the loader does not map (TLS, init arrays, ...).
    BadSection,
    /// A relocation type the linker does not know.
    UnknownRelocation(u32),
    /// A relocation outside its section, or a value that does not fit.
    RelocationOutOfRange,
    /// A symbol outside the object's loaded sections (absolute, common, ...).
    BadSymbol,
    /// An undefined symbol the kernel does not export.
    NotExported,
    /// No (or more than one) `EXTENSION` static.
    NoEntry,
    /// No frames or no address range left.
    OutOfMemory,
    /// This very object (same certificate) is loaded already.
    AlreadyLoaded,
    /// The extension's `init` or its registration failed (see `loader`).
    Load(LoadError),
}

/// The export table's address of `name`.
fn export(name: &[u8]) -> Option<u64> {
    let table = &generated::EXPORTS;
    table.binary_search_by(|e| e.0.as_bytes().cmp(name)).ok().map(|i| table[i].1 as u64)
}

/// How many symbols the kernel exports to loaded extensions.
pub fn exports() -> usize {
    generated::EXPORTS.len()
}

/// Check `cert` against `object` (constant time, in `hmac`).
pub fn verify(object: &[u8], cert: &[u8]) -> Result<(), ObjError> {
    let key = generated::CERT_KEY.ok_or(ObjError::NoKey)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| ObjError::NoKey)?;
    mac.update(CERT_CONTEXT);
    mac.update(object);
    mac.verify_slice(cert).map_err(|_| ObjError::BadCertificate)
}

/// The certificate the trusted build would give `object` (the in-kernel
/// tests use it to sign objects they corrupted, so the checks after the
/// certificate's are reached; no system call leads here).
pub fn certificate(object: &[u8]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&generated::CERT_KEY?).ok()?;
    mac.update(CERT_CONTEXT);
    mac.update(object);
    Some(mac.finalize().into_bytes().into())
}

/// Which region a loaded section goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Text,
    ReadOnly,
    Data,
}

/// A loaded section: its index, region, offset in the region, size, and
/// whether its bytes come from the file (not `.bss`).
struct Placed {
    index: SectionIndex,
    region: Region,
    offset: u64,
    size: u64,
    bits: bool,
}

/// A mapped address range: its slot, start, and frames (one per page).
struct Mapping {
    slot: u32,
    base: u64,
    frames: Vec<u64>,
}

/// Which slots are taken (a bit each): 4096 slots of 16 MiB from 64 GiB
/// into the scratch region (unloaded objects keep theirs for good).
static SLOTS_USED: spin::Mutex<[u64; SLOTS / 64]> = spin::Mutex::new([0; SLOTS / 64]);

impl Mapping {
    /// Take a free slot and map `pages` fresh zeroed frames there, read-write, no-execute.
    fn new(pages: u64) -> Result<Self, ObjError> {
        let slot = {
            let mut used = SLOTS_USED.lock();
            let Some(word) = used.iter().position(|w| *w != u64::MAX) else {
                return Err(ObjError::OutOfMemory);
            };
            let bit = (!used[word]).trailing_zeros();
            used[word] |= 1 << bit;
            (word * 64) as u32 + bit
        };
        let base = paging::kernel_scratch_base() + LOAD_OFFSET + u64::from(slot) * SLOT_SIZE;
        let mut m = Mapping { slot, base, frames: Vec::new() };
        if m.frames.try_reserve_exact(pages as usize).is_err() {
            m.free();
            return Err(ObjError::OutOfMemory);
        }
        for i in 0..pages {
            let Some(pa) = shared_hal::memory::alloc_zeroed_frame() else {
                m.free();
                return Err(ObjError::OutOfMemory);
            };
            if paging::map(paging::kernel_root(), base + i * 4096, pa, pte::WRITABLE | pte::NO_EXECUTE)
                .is_err()
            {
                let _ = shared_hal::memory::free_frame(pa);
                m.free();
                return Err(ObjError::OutOfMemory);
            }
            m.frames.push(pa);
        }
        Ok(m)
    }

    /// The mapped bytes (read-write until [`Mapping::protect`]).
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `frames.len()` pages starting at `base` are mapped
        // read-write to frames this mapping owns and nothing else refers
        // to (fresh slot, fresh frames); `&mut self` makes this the only
        // reference for its lifetime.
        unsafe { core::slice::from_raw_parts_mut(self.base as *mut u8, self.frames.len() * 4096) }
    }

    /// Set page `i`'s final protection.
    fn protect(&self, i: u64, writable: bool, exec: bool) {
        let va = self.base + i * 4096;
        let flags = if writable { pte::WRITABLE } else { 0 } | if exec { 0 } else { pte::NO_EXECUTE };
        let updated =
            paging::update(paging::kernel_root(), va, |e| (e & !(pte::WRITABLE | pte::NO_EXECUTE)) | flags);
        debug_assert!(updated.is_ok(), "the loader's own page is mapped");
        shared_hal::cpu::invlpg(va);
    }

    /// Unmap and free every frame, give the slot back.
    fn free(&mut self) {
        for (i, &pa) in self.frames.iter().enumerate() {
            let va = self.base + i as u64 * 4096;
            let _ = paging::unmap(paging::kernel_root(), va);
            shared_hal::cpu::invlpg(va);
            let _ = shared_hal::memory::free_frame(pa);
        }
        self.frames = Vec::new();
        SLOTS_USED.lock()[self.slot as usize / 64] &= !(1 << (self.slot % 64));
    }
}

/// A loaded object: its domain and its memory.
struct Loaded {
    name: &'static str,
    cert: [u8; 32],
    identity: &'static Identity,
    mapping: Mapping,
}

static LOADED: spin::Mutex<Vec<Loaded>> = spin::Mutex::new(Vec::new());

/// Sizes of a laid-out object (reported by the benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub pages: u64,
    pub relocations: u64,
    pub imports: u64,
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}

/// Link `object` (already verified) into fresh memory; returns the mapping
/// and the address of its `EXTENSION` static. Nothing of it runs.
fn link(object: &[u8], stats: &mut Stats) -> Result<(Mapping, u64), ObjError> {
    let file = ElfFile64::<LE>::parse(object).map_err(|_| ObjError::Malformed)?;
    if file.kind() != ObjectKind::Relocatable || file.architecture() != object::Architecture::X86_64 {
        return Err(ObjError::Malformed);
    }
    // 1. Layout.
    let mut placed: Vec<Placed> = Vec::new();
    let mut sizes = [0u64; 3];
    for s in file.sections() {
        let h = s.elf_section_header();
        let flags = h.sh_flags(LE).0;
        if flags & elf::SHF_ALLOC.0 == 0 || s.name() == Ok(".eh_frame") {
            continue;
        }
        let ty = h.sh_type(LE);
        if flags & elf::SHF_TLS.0 != 0 || !matches!(ty, elf::SHT_PROGBITS | elf::SHT_NOBITS) {
            return Err(ObjError::BadSection);
        }
        let name = s.name().map_err(|_| ObjError::Malformed)?;
        let region = if flags & elf::SHF_EXECINSTR.0 != 0 {
            if flags & elf::SHF_WRITE.0 != 0 {
                return Err(ObjError::BadSection);
            }
            Region::Text
        } else if flags & elf::SHF_WRITE.0 == 0 || name.starts_with(".data.rel.ro") {
            Region::ReadOnly
        } else {
            Region::Data
        };
        let align = s.align().max(1);
        if !align.is_power_of_two() || align > 4096 || s.size() > MAX_IMAGE {
            return Err(if s.size() > MAX_IMAGE { ObjError::TooLarge } else { ObjError::BadSection });
        }
        let r = region as usize;
        let offset = align_up(sizes[r], align).ok_or(ObjError::TooLarge)?;
        sizes[r] = offset.checked_add(s.size()).ok_or(ObjError::TooLarge)?;
        if sizes[r] > MAX_IMAGE {
            return Err(ObjError::TooLarge);
        }
        let bits = ty == elf::SHT_PROGBITS;
        if bits && s.data().map_err(|_| ObjError::Malformed)?.len() as u64 != s.size() {
            return Err(ObjError::Malformed);
        }
        placed.try_reserve(1).map_err(|_| ObjError::OutOfMemory)?;
        placed.push(Placed { index: s.index(), region, offset, size: s.size(), bits });
    }
    // The GOT: one slot per symbol a GOT-relative relocation names, after the read-only data.
    let mut got: Vec<SymbolIndex> = Vec::new();
    for s in file.sections() {
        for (_, r) in s.relocations() {
            if let (RelocationFlags::Elf { r_type }, RelocationTarget::Symbol(sym)) = (r.flags(), r.target())
                && matches!(
                    r_type,
                    elf::R_X86_64_GOTPCREL | elf::R_X86_64_GOTPCRELX | elf::R_X86_64_REX_GOTPCRELX
                )
                && !got.contains(&sym)
            {
                got.try_reserve(1).map_err(|_| ObjError::OutOfMemory)?;
                got.push(sym);
            }
        }
    }
    let got_offset = align_up(sizes[Region::ReadOnly as usize], 8).ok_or(ObjError::TooLarge)?;
    sizes[Region::ReadOnly as usize] = got_offset + got.len() as u64 * 8;
    let pages: [u64; 3] = sizes.map(|s| align_up(s, 4096).map_or(u64::MAX, |v| v / 4096));
    let total = pages.iter().try_fold(0u64, |a, &p| a.checked_add(p)).ok_or(ObjError::TooLarge)?;
    if total * 4096 > MAX_IMAGE {
        return Err(ObjError::TooLarge);
    }
    let region_start = |r: Region| match r {
        Region::Text => 0,
        Region::ReadOnly => pages[0] * 4096,
        Region::Data => (pages[0] + pages[1]) * 4096,
    };
    let mut map = Mapping::new(total)?;
    let result = (|| {
        let base = map.base;
        let find = |i: SectionIndex| placed.iter().find(|p| p.index == i);
        let va_of = |p: &Placed| base + region_start(p.region) + p.offset;
        // 2. Copy.
        for p in &placed {
            if p.bits {
                let data =
                    file.section_by_index(p.index).and_then(|s| s.data()).map_err(|_| ObjError::Malformed)?;
                let at = (region_start(p.region) + p.offset) as usize;
                map.bytes()[at..at + data.len()].copy_from_slice(data);
            }
        }
        // 3. Resolve symbols and relocate.
        let resolve = |sym: SymbolIndex| -> Result<u64, ObjError> {
            let s = file.symbol_by_index(sym).map_err(|_| ObjError::Malformed)?;
            match s.section() {
                SymbolSection::Undefined => {
                    let name = s.name_bytes().map_err(|_| ObjError::Malformed)?;
                    export(name).ok_or(ObjError::NotExported)
                }
                SymbolSection::Section(i) => {
                    let p = find(i).ok_or(ObjError::BadSymbol)?;
                    if s.address() > p.size {
                        return Err(ObjError::BadSymbol);
                    }
                    Ok(va_of(p) + s.address())
                }
                _ => Err(ObjError::BadSymbol),
            }
        };
        let got_va = base + region_start(Region::ReadOnly) + got_offset;
        for (slot, &sym) in got.iter().enumerate() {
            let v = resolve(sym)?;
            let at = (region_start(Region::ReadOnly) + got_offset) as usize + slot * 8;
            map.bytes()[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        stats.imports = file
            .symbols()
            .filter(|s| s.is_undefined() && !s.name_bytes().is_ok_and(|n| n.is_empty()))
            .count() as u64;
        for s in file.sections() {
            let Some(p) = find(s.index()) else { continue };
            let target_va = va_of(p);
            for (offset, r) in s.relocations() {
                stats.relocations += 1;
                let RelocationFlags::Elf { r_type } = r.flags() else { return Err(ObjError::Malformed) };
                let RelocationTarget::Symbol(sym) = r.target() else {
                    return Err(ObjError::BadSymbol);
                };
                let width = match r_type {
                    elf::R_X86_64_64 => 8,
                    elf::R_X86_64_PC32
                    | elf::R_X86_64_PLT32
                    | elf::R_X86_64_32S
                    | elf::R_X86_64_GOTPCREL
                    | elf::R_X86_64_GOTPCRELX
                    | elf::R_X86_64_REX_GOTPCRELX => 4,
                    other => return Err(ObjError::UnknownRelocation(other.0)),
                };
                if !p.bits || offset.checked_add(width).is_none_or(|e| e > p.size) {
                    return Err(ObjError::RelocationOutOfRange);
                }
                let place = target_va + offset;
                let a = r.addend();
                let value: i128 = match r_type {
                    elf::R_X86_64_64 | elf::R_X86_64_32S => i128::from(resolve(sym)?) + i128::from(a),
                    elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => {
                        i128::from(resolve(sym)?) + i128::from(a) - i128::from(place)
                    }
                    _ => {
                        let slot = got.iter().position(|g| *g == sym).ok_or(ObjError::Malformed)? as u64;
                        i128::from(got_va + slot * 8) + i128::from(a) - i128::from(place)
                    }
                };
                let at = (region_start(p.region) + p.offset + offset) as usize;
                if width == 8 {
                    map.bytes()[at..at + 8].copy_from_slice(&(value as u64).to_le_bytes());
                } else {
                    // 32-bit fields are sign-extended by the CPU (and R_X86_64_32S by definition).
                    let v = i32::try_from(value).map_err(|_| ObjError::RelocationOutOfRange)?;
                    map.bytes()[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        // 4. The entry: exactly one `<crate>::EXTENSION` static, in read-only data, of the right size.
        let mut entry = None;
        for s in file.symbols() {
            let Ok(name) = s.name() else { continue };
            if s.is_global() && !s.is_undefined() && is_entry_name(name) {
                if entry.is_some() {
                    return Err(ObjError::NoEntry);
                }
                let SymbolSection::Section(i) = s.section() else { return Err(ObjError::NoEntry) };
                let p = find(i).ok_or(ObjError::NoEntry)?;
                let ok_size = s.size() == core::mem::size_of::<Extension>() as u64;
                let ok_place = p.region == Region::ReadOnly
                    && s.address().checked_add(s.size()).is_some_and(|e| e <= p.size)
                    && (va_of(p) + s.address()).is_multiple_of(core::mem::align_of::<Extension>() as u64);
                if !ok_size || !ok_place {
                    return Err(ObjError::NoEntry);
                }
                entry = Some(va_of(p) + s.address());
            }
        }
        entry.ok_or(ObjError::NoEntry)
    })();
    match result {
        Ok(entry) => {
            for i in 0..total {
                let (writable, exec) = if i < pages[0] {
                    (false, true)
                } else if i < pages[0] + pages[1] {
                    (false, false)
                } else {
                    (true, false)
                };
                map.protect(i, writable, exec);
            }
            stats.pages = total;
            Ok((map, entry))
        }
        Err(e) => {
            map.free();
            Err(e)
        }
    }
}

/// `_ZN<n><crate>9EXTENSION17h<16 hex>E`: a crate's top-level `EXTENSION`.
fn is_entry_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("_ZN") else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(n) = rest[..digits].parse::<usize>() else { return false };
    let Some(after) = rest[digits..].get(n..) else { return false };
    let Some(hash) = after.strip_prefix("9EXTENSION17h").and_then(|h| h.strip_suffix('E')) else {
        return false;
    };
    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Verify, link and load `object` as the domain `name` (the kernel's
/// caller chooses it; the object's own suggestion confers nothing).
pub fn load(
    key: &KernelKey,
    name: &'static str,
    object: &[u8],
    cert: &[u8],
) -> Result<(&'static Identity, Stats), ObjError> {
    verify(object, cert)?;
    let mac: [u8; 32] = cert.try_into().map_err(|_| ObjError::BadCertificate)?;
    if LOADED.lock().iter().any(|l| l.cert == mac) {
        return Err(ObjError::AlreadyLoaded);
    }
    // A taken name is refused before anything is mapped.
    spin_interface::Domain::reserve(key, name).map_err(|e| ObjError::Load(LoadError::Link(e)))?;
    spin_interface::Domain::release(key, name);
    let mut stats = Stats::default();
    let (map, entry) = link(object, &mut stats)?;
    LOADED.lock().try_reserve(1).map_err(|_| ObjError::OutOfMemory)?;
    // SAFETY: `entry` is the address of the certified object's
    // `EXTENSION` static (checked name, size and alignment, inside its
    // read-only data), a `spin_interface::Extension` compiled against this
    // kernel's very interface crate by the trusted build, initialised by
    // its relocated bytes. The memory stays mapped read-only for good once
    // `init` may have run (see `unload`), so `'static` holds.
    let ext: &'static Extension = unsafe { &*(entry as *const Extension) };
    match loader::load(key, name, ext) {
        Ok(identity) => {
            LOADED.lock().push(Loaded { name, cert: mac, identity, mapping: map });
            Ok((identity, stats))
        }
        Err(e) => {
            // Its `init` ran: retire the memory (see the module docs).
            core::mem::forget(map);
            Err(ObjError::Load(e))
        }
    }
}

/// Verify and link `object` without running any of it, then give its
/// memory back (the benchmarks' split of a load).
pub fn link_only(object: &[u8], cert: &[u8]) -> Result<Stats, ObjError> {
    verify(object, cert)?;
    let mut stats = Stats::default();
    let (mut map, _) = link(object, &mut stats)?;
    map.free();
    Ok(stats)
}

/// Why an unload failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnloadError {
    /// No extension of that name was loaded from an object.
    NotLoaded,
}

/// Unload the object-loaded extension `name`: its domain is unloaded
/// (handlers removed, imports bound to it answer "unbound", its name is
/// free again). Its memory stays mapped as it was and is never reused:
/// other domains may still hold `&'static` references it
/// handed out (events, exported objects), which the interface cannot yet
/// revoke. Returns the pages retired.
pub fn unload(key: &KernelKey, name: &str) -> Result<u64, UnloadError> {
    let mut loaded = LOADED.lock();
    let i = loaded.iter().position(|l| l.name == name).ok_or(UnloadError::NotLoaded)?;
    let l = loaded.swap_remove(i);
    drop(loaded);
    spin_interface::domain::unload(key, l.identity.id());
    spin_interface::Domain::release(key, l.name);
    let pages = l.mapping.frames.len() as u64;
    core::mem::forget(l.mapping);
    Ok(pages)
}

/// The names of the extensions loaded from objects.
pub fn loaded() -> Vec<&'static str> {
    LOADED.lock().iter().map(|l| l.name).collect()
}

/// The object and certificate `file` from the boot archive (names the
/// kernel chose).
pub fn from_archive(file: &str) -> Option<(&'static [u8], &'static [u8])> {
    let disk = crate::process::ramdisk()?;
    let archive = hal_logic::ramdisk::Archive::parse(disk).ok()?;
    let obj = alloc::format!("{file}.ext");
    let cert = alloc::format!("{file}.cert");
    Some((archive.get(&obj)?, archive.get(&cert)?))
}
