//! kernel-spin's in-kernel tests of extensions loaded into the running
//! kernel (`dynload`, run last with `mode=test`): `hello`, which the boot
//! loaded from its certified object, is called, unloaded (its import then
//! answers `Unbound`) and loaded again; and every bad object is refused
//! with its typed error, leaving no frame, heap byte, name or domain
//! behind. Bad objects are the boot archive's `hello` with bytes changed;
//! past the certificate check they are re-signed with the kernel's key
//! (as a compromised or buggy trusted build would), so the linker's own
//! checks are what refuses them.

use crate::dynload::{self, ObjError};
use crate::loader::LoadError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use object::read::elf::{ElfFile64, SectionHeader};
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol, elf};
use shared_hal::testing::Test;
use shared_hal::{ensure, ensure_eq};
use spin_interface::{Domain, Identity, Import, LinkError};

/// The tests, in order.
pub const TESTS: &[Test] = &[
    Test { name: "spin::dynload_hello_unload_and_reload", run: hello_unload_and_reload },
    Test { name: "spin::dynload_unsigned_or_changed_is_refused", run: unsigned_or_changed },
    Test { name: "spin::dynload_malformed_is_refused", run: malformed },
    Test { name: "spin::dynload_bad_relocation_is_refused", run: bad_relocation },
    Test { name: "spin::dynload_kernel_and_hal_symbols_are_unreachable", run: unreachable_symbols },
    Test { name: "spin::dynload_absurd_section_is_refused", run: absurd_section },
    Test { name: "spin::dynload_twice_or_taken_name_is_refused", run: twice_or_taken_name },
    Test { name: "spin::dynload_init_that_panics_or_loops_is_contained", run: init_fails_contained },
];

static GREET: Import<u64, u64> = Import::new("Hello", "greet");

fn hello() -> Result<(&'static [u8], &'static [u8]), String> {
    dynload::from_archive("hello").ok_or_else(|| String::from("no hello.ext/hello.cert in the boot archive"))
}

fn bind_greet() -> Result<(), String> {
    let me = Identity::kernel(crate::key());
    let d = Domain::named("hello").map_err(|e| format!("{e:?}"))?;
    ensure_eq!(d.resolve(me, &[&GREET]), Ok(1));
    Ok(())
}

/// The loaded `hello` answers; unloaded, its import is unbound and its
/// name free; loaded again from the same object, it answers again.
fn hello_unload_and_reload() -> Result<(), String> {
    let (obj, cert) = hello()?;
    ensure!(dynload::loaded().contains(&"hello"), "the boot loaded hello from its object");
    bind_greet()?;
    ensure_eq!(GREET.call(1), Ok(2));
    let pages = dynload::unload(crate::key(), "hello").map_err(|e| format!("{e:?}"))?;
    ensure!(pages > 0, "hello occupied {pages} pages");
    ensure_eq!(GREET.call(1), Err(LinkError::Unbound));
    ensure_eq!(Domain::named("hello").err(), Some(LinkError::NoSuchDomain));
    ensure_eq!(dynload::unload(crate::key(), "hello"), Err(dynload::UnloadError::NotLoaded));
    for round in 0..2 {
        let (_, stats) = dynload::load(crate::key(), "hello", obj, cert).map_err(|e| format!("{e:?}"))?;
        ensure!(stats.relocations > 0 && stats.imports > 0, "{stats:?}");
        bind_greet()?;
        ensure_eq!(GREET.call(41), Ok(42));
        if round == 0 {
            dynload::unload(crate::key(), "hello").map_err(|e| format!("{e:?}"))?;
            ensure_eq!(GREET.call(1), Err(LinkError::Unbound));
        }
    }
    Ok(())
}

/// Load `obj` with `cert` as `name`, expect `want`, and check (on a
/// second, warmed-up attempt) that nothing is left behind: frames, heap,
/// loaded objects, the name.
fn refused(name: &'static str, obj: &[u8], cert: &[u8], want: ObjError) -> Result<(), String> {
    let got = dynload::load(crate::key(), name, obj, cert).map(|_| ());
    ensure_eq!(got, Err(want));
    let loaded = dynload::loaded().len();
    let before = (shared_hal::memory::free_frames(), shared_hal::heap::used(), loaded);
    let got = dynload::load(crate::key(), name, obj, cert).map(|_| ());
    ensure_eq!(got, Err(want));
    let after = (shared_hal::memory::free_frames(), shared_hal::heap::used(), dynload::loaded().len());
    ensure_eq!(after, before);
    // (A taken name stays its owner's.)
    if want != ObjError::Load(LoadError::Link(LinkError::Duplicate)) {
        ensure_eq!(Domain::named(name).err(), Some(LinkError::NoSuchDomain));
    }
    Ok(())
}

/// `obj` changed by `f`, re-signed with the kernel's key.
fn signed(obj: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Result<(Vec<u8>, [u8; 32]), String> {
    let mut bad = obj.to_vec();
    f(&mut bad);
    let cert = dynload::certificate(&bad).ok_or("this kernel has no certificate key")?;
    Ok((bad, cert))
}

/// The file offset of the first section named with `prefix`, and its size.
fn section(obj: &[u8], prefix: &str) -> Result<(usize, usize), String> {
    let file = ElfFile64::<LE>::parse(obj).map_err(|e| format!("{e}"))?;
    let s = file
        .sections()
        .find(|s| s.name().is_ok_and(|n| n.starts_with(prefix)))
        .ok_or_else(|| format!("no section {prefix}*"))?;
    let (off, size) = s.file_range().ok_or("section without file data")?;
    Ok((off as usize, size as usize))
}

fn unsigned_or_changed() -> Result<(), String> {
    let (obj, cert) = hello()?;
    refused("unsigned", obj, &[], ObjError::BadCertificate)?;
    refused("unsigned", obj, &[0; 32], ObjError::BadCertificate)?;
    for prefix in [".text._ZN14spin_ext_hello4init", ".rela.text._ZN14spin_ext_hello4init", ".symtab"] {
        let (off, size) = section(obj, prefix)?;
        let mut bad = obj.to_vec();
        bad[off + size / 2] ^= 1;
        refused("changed", &bad, cert, ObjError::BadCertificate)?;
    }
    // A certificate for another object (hello with one more byte).
    let (_, other) = signed(obj, |b| b.push(0))?;
    refused("another", obj, &other, ObjError::BadCertificate)?;
    Ok(())
}

fn malformed() -> Result<(), String> {
    let (obj, _) = hello()?;
    let (bad, cert) = signed(obj, |b| b.truncate(1000))?;
    refused("truncated", &bad, &cert, ObjError::Malformed)?;
    let (bad, cert) = signed(obj, |b| b[..4].copy_from_slice(b"\x7fELG"))?;
    refused("not-elf", &bad, &cert, ObjError::Malformed)?;
    // A section whose bytes lie outside the file.
    let (off, _) = section(obj, ".text._ZN14spin_ext_hello4init")?;
    let (bad, cert) = signed(obj, |b| {
        let shoff = u64::from_le_bytes(b[0x28..0x30].try_into().expect("8 bytes")) as usize;
        let shnum = usize::from(u16::from_le_bytes([b[0x3c], b[0x3d]]));
        for i in 0..shnum {
            let h = shoff + i * 64;
            if u64::from_le_bytes(b[h + 24..h + 32].try_into().expect("8 bytes")) == off as u64 {
                b[h + 24..h + 32].copy_from_slice(&(1u64 << 40).to_le_bytes());
            }
        }
    })?;
    refused("outside", &bad, &cert, ObjError::Malformed)?;
    Ok(())
}

fn bad_relocation() -> Result<(), String> {
    let (obj, _) = hello()?;
    let (rela, _) = section(obj, ".rela.text._ZN14spin_ext_hello4init")?;
    // Elf64_Rela: r_offset, r_info (symbol << 32 | type), r_addend.
    let (bad, cert) = signed(obj, |b| b[rela + 8..rela + 12].copy_from_slice(&99u32.to_le_bytes()))?;
    refused("unknown-reloc", &bad, &cert, ObjError::UnknownRelocation(99))?;
    let (bad, cert) = signed(obj, |b| b[rela..rela + 8].copy_from_slice(&0xffff_fff0u64.to_le_bytes()))?;
    refused("reloc-outside", &bad, &cert, ObjError::RelocationOutOfRange)?;
    Ok(())
}

/// Rename the undefined symbol `from` (in the string table) to `to`.
fn rename(b: &mut [u8], from: &str, to: &str) {
    assert!(to.len() <= from.len());
    let at =
        b.windows(from.len() + 1).position(|w| &w[..from.len()] == from.as_bytes() && w[from.len()] == 0);
    if let Some(at) = at {
        b[at..at + to.len()].copy_from_slice(to.as_bytes());
        b[at + to.len()] = 0;
    }
}

/// An object naming a kernel internal or a HAL function (whether or not
/// the kernel has it) is refused: only the export table resolves.
fn unreachable_symbols() -> Result<(), String> {
    let (obj, _) = hello()?;
    let file = ElfFile64::<LE>::parse(obj).map_err(|e| format!("{e}"))?;
    let import = file
        .symbols()
        .filter(|s| s.is_undefined())
        .filter_map(|s| s.name().ok())
        .max_by_key(|n| n.len())
        .ok_or("hello imports nothing")?;
    for target in ["kernel_main", "_ZN10shared_hal6memory11alloc_frame17h0000000000000000E", "memcpy2"] {
        let (bad, cert) = signed(obj, |b| rename(b, import, target))?;
        ensure!(bad != obj, "the rename of {import} happened");
        refused("naming", &bad, &cert, ObjError::NotExported)?;
    }
    ensure!(dynload::exports() > 0, "the kernel exports the interface");
    Ok(())
}

fn absurd_section() -> Result<(), String> {
    let (obj, _) = hello()?;
    let file = ElfFile64::<LE>::parse(obj).map_err(|e| format!("{e}"))?;
    let bss = file
        .sections()
        .find(|s| s.elf_section_header().sh_type(LE) == elf::SHT_NOBITS)
        .ok_or("hello has no .bss")?
        .index()
        .0;
    let (bad, cert) = signed(obj, |b| {
        let shoff = u64::from_le_bytes(b[0x28..0x30].try_into().expect("8 bytes")) as usize;
        let h = shoff + bss * 64;
        b[h + 32..h + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    })?;
    refused("absurd", &bad, &cert, ObjError::TooLarge)?;
    Ok(())
}

fn twice_or_taken_name() -> Result<(), String> {
    let (obj, cert) = hello()?;
    // hello is loaded (the reload test left it so): the same object again.
    refused("hello-again", obj, cert, ObjError::AlreadyLoaded)?;
    // Another object (one byte of padding more) under taken or privileged names.
    let (bad, cert) = signed(obj, |b| b.push(0))?;
    for taken in ["hello", "syscalls", "vm", "kernel"] {
        refused(taken, &bad, &cert, ObjError::Load(LoadError::Link(LinkError::Duplicate)))?;
    }
    ensure!(Domain::named("syscalls").is_ok(), "syscalls kept its name");
    Ok(())
}

/// An object whose `init` panics, or loops past its budget, is contained:
/// a typed error, its domain unloaded, its name free, the kernel and the
/// other loaded extensions unharmed. (Its memory is retired, not freed:
/// its `init` ran; see `dynload`.)
fn init_fails_contained() -> Result<(), String> {
    let (obj, cert) = dynload::from_archive("initfail").ok_or("no initfail object in the boot archive")?;
    for (name, fault) in [("init-panic", "Panicked"), ("init-loop", "TimedOut"), ("init-error", "")] {
        let got = dynload::load(crate::key(), name, obj, cert).map(|_| ());
        match got {
            Err(ObjError::Load(LoadError::Fault(f))) if !fault.is_empty() => {
                ensure!(format!("{f:?}").starts_with(fault), "{name}: {f:?}")
            }
            Err(ObjError::Load(LoadError::Init(_))) if fault.is_empty() => {}
            other => return Err(format!("{name}: {other:?}")),
        }
        ensure_eq!(Domain::named(name).err(), Some(LinkError::NoSuchDomain));
        ensure!(!dynload::loaded().contains(&name), "{name} is not listed as loaded");
    }
    // The name is free again: the object fails the same way a second time.
    let again = dynload::load(crate::key(), "init-error", obj, cert).map(|_| ());
    ensure!(matches!(again, Err(ObjError::Load(LoadError::Init(_)))), "{again:?}");
    bind_greet()?;
    ensure_eq!(GREET.call(1), Ok(2));
    Ok(())
}
