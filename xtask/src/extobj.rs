//! The trusted build's extension objects (kernel-spin): each loadable
//! extension, once it has passed the build checks (`checks::gate`), is
//! compiled into a relocatable ELF object against the very `spin_interface`
//! the kernel links, certified with an HMAC-SHA256 over its exact bytes,
//! and shipped in the boot archive. The build also writes the kernel's
//! export table: every symbol the certified objects import, each of which
//! must be defined by the extension interface's crates or the language
//! runtime (never the HAL, never a kernel internal).
//!
//! Why the same `spin_interface`: Rust symbol names carry the defining
//! crate's hash, so an object compiled against another build of the
//! interface would name symbols the kernel does not have. The objects are
//! built in the kernel's target directory with the kernel's profile (fat
//! LTO, one codegen unit, same environment), so cargo reuses the kernel
//! build's interface rlib; `-C linker-plugin-lto=no` makes the extension's
//! own code native (an LTO profile otherwise leaves only LLVM bitcode). A
//! mismatch cannot slip through: the kernel's link then fails on the
//! export table's undefined name.

use crate::env::{clean_cargo, root};
use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use object::read::archive::ArchiveFile;
use object::{Object, ObjectSymbol};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::path::PathBuf;

const TARGET: &str = "x86_64-unknown-none";

/// The extensions kernel-spin loads from its boot archive instead of
/// linking them: (directory under `extensions/`, file stem in the archive).
pub const LOADABLE: &[&str] = &["hello", "evens", "dynbench", "initfail"];

/// What the MAC covers before the object's bytes (domain separation: a
/// certificate for anything else never verifies as an object's).
pub const CERT_CONTEXT: &[u8] = b"kernel-spin certified extension object v1\0";

/// Crates whose symbols an extension may import: the extension interface
/// and its dependency closure, and the language runtime.
const ALLOWED_CRATES: &[&str] =
    &["spin_interface", "spin_trusted", "spin_abi", "hal_logic", "spin", "log", "core", "alloc", "__rustc"];
/// Unmangled runtime symbols an extension may import (compiler_builtins).
const ALLOWED_C: &[&str] = &["memcpy", "memmove", "memset", "memcmp", "bcmp"];

/// Where the objects, certificates, key and export table go.
pub fn out_dir() -> PathBuf {
    root().join("target/spin-ext")
}

/// The generated export table (Rust source the kernel's build script includes).
pub fn exports_file() -> PathBuf {
    out_dir().join("exports.rs")
}

/// The certificate key (generated once per target directory, never committed).
pub fn key_file() -> PathBuf {
    out_dir().join("cert.key")
}

fn key() -> Result<Vec<u8>> {
    let path = key_file();
    if let Ok(k) = std::fs::read(&path)
        && k.len() == 32
    {
        return Ok(k);
    }
    std::fs::create_dir_all(out_dir())?;
    let mut k = vec![0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut k).context("reading /dev/urandom")?;
    std::fs::write(&path, &k)?;
    Ok(k)
}

/// The certificate of `object` under `key`.
pub fn certify(key: &[u8], object: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(CERT_CONTEXT);
    mac.update(object);
    mac.finalize().into_bytes().to_vec()
}

/// Compile one extension's library with native code, in the kernel's
/// build configuration; returns its rlib.
fn compile(package: &str, crate_name: &str) -> Result<PathBuf> {
    let out = clean_cargo(&root())
        .args(["rustc", "--quiet", "--release", "--target", TARGET, "--lib", "--package", package])
        .args(["--message-format=json-render-diagnostics", "--"])
        .args(crate::checks::compile::FORCED_LINTS)
        .args(["-C", "linker-plugin-lto=no", "-C", "embed-bitcode=no"])
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .output()
        .with_context(|| format!("running cargo rustc for {package}"))?;
    if !out.status.success() {
        bail!("compiling the extension object {package} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    crate::checks::compile::rlib_of(&out.stdout, package, crate_name)
}

/// The one native object in an rlib (one codegen unit).
fn object_of(rlib: &[u8]) -> Result<Vec<u8>> {
    let archive = ArchiveFile::parse(rlib).context("parsing the rlib")?;
    let mut objects = Vec::new();
    for member in archive.members() {
        let member = member?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        if name.ends_with(".o") {
            objects.push(member.data(rlib)?.to_vec());
        }
    }
    match objects.len() {
        1 => Ok(objects.pop().expect("one")),
        n => bail!("expected one object file in the rlib (one codegen unit), found {n}"),
    }
}

/// The crate roots a demangled symbol names (`a::b` → `a`, and every
/// path inside `<...>`).
fn roots(demangled: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = demangled.as_bytes();
    // (start of the identifier being read, whether it begins a path)
    let mut ident: Option<(usize, bool)> = None;
    for (i, &c) in bytes.iter().enumerate() {
        let part = c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
        match (part, ident) {
            (true, None) => ident = Some((i, !(i >= 2 && &bytes[i - 2..i] == b"::"))),
            (false, Some((s, root))) => {
                if root && bytes[i..].starts_with(b"::") {
                    out.push(&demangled[s..i]);
                }
                ident = None;
            }
            _ => {}
        }
    }
    out
}

/// Why an extension may not import `symbol` (`None`: it may).
pub fn import_refused(symbol: &str) -> Option<String> {
    if ALLOWED_C.contains(&symbol) {
        return None;
    }
    if !(symbol.starts_with("_ZN") || symbol.starts_with("_R")) {
        return Some(format!("`{symbol}` is not a Rust symbol of the interface or the runtime"));
    }
    let demangled = format!("{:#}", rustc_demangle::demangle(symbol));
    let roots = roots(&demangled);
    if roots.is_empty() {
        return Some(format!("`{demangled}` names no crate"));
    }
    roots
        .iter()
        .find(|r| !ALLOWED_CRATES.contains(r))
        .map(|r| format!("`{demangled}` belongs to `{r}`, which the extension interface does not export"))
}

/// One certified object (its size and import count, for the build's log).
pub struct Certified {
    pub name: String,
    pub bytes: usize,
    pub imports: usize,
}

/// Build, check and certify every loadable extension; write the export
/// table the kernel build includes. Runs after `checks::gate`.
pub fn build() -> Result<Vec<Certified>> {
    let key = key()?;
    let mut imports = BTreeSet::new();
    let mut out = Vec::new();
    for dir in LOADABLE {
        let package = format!("spin-ext-{dir}");
        let krate = package.replace('-', "_");
        let rlib = compile(&package, &krate)?;
        // The certified object must pass the same object-code check.
        let why = crate::checks::objects::inspect_rlib(&rlib, &krate)?;
        if !why.is_empty() {
            bail!("extension object {package} fails the object check:\n  - {}", why.join("\n  - "));
        }
        let object = object_of(&std::fs::read(&rlib)?)?;
        let file = object::File::parse(&*object).context("parsing the extension object")?;
        let mut count = 0;
        for s in file.symbols().filter(|s| s.is_undefined()) {
            let name = s.name()?;
            if name.is_empty() {
                continue;
            }
            if let Some(why) = import_refused(name) {
                bail!("extension {package} may not import {why}");
            }
            imports.insert(name.to_owned());
            count += 1;
        }
        let cert = certify(&key, &object);
        std::fs::create_dir_all(out_dir())?;
        std::fs::write(out_dir().join(format!("{dir}.ext")), &object)?;
        std::fs::write(out_dir().join(format!("{dir}.cert")), &cert)?;
        out.push(Certified { name: dir.to_string(), bytes: object.len(), imports: count });
    }
    write_if_changed(&exports_file(), &export_table(&imports))?;
    Ok(out)
}

/// Whether `symbol` names a static (Rust's statics are upper case; a
/// wrong guess cannot slip through: the kernel's link then fails).
fn is_static(symbol: &str) -> bool {
    let d = format!("{:#}", rustc_demangle::demangle(symbol));
    let last = d.rsplit("::").next().unwrap_or("");
    last.bytes().any(|b| b.is_ascii_uppercase()) && !last.bytes().any(|b| b.is_ascii_lowercase())
}

/// The kernel's export table as Rust source: a declaration per symbol (a
/// function or a static, so fat LTO keeps its definition) and the table
/// of (name, address), sorted by name, that `dynload` searches.
fn export_table(imports: &BTreeSet<String>) -> String {
    let mut decls = String::new();
    let mut rows = String::new();
    for (i, name) in imports.iter().enumerate() {
        if is_static(name) {
            decls.push_str(&format!("    #[link_name = {name:?}]\n    static x{i}: u8;\n"));
            rows.push_str(&format!("    Export({name:?}, &raw const x{i}),\n"));
        } else {
            decls.push_str(&format!("    #[link_name = {name:?}]\n    fn x{i}();\n"));
            rows.push_str(&format!("    Export({name:?}, x{i} as *const u8),\n"));
        }
    }
    format!(
        "// Generated by `cargo xtask build spin` (xtask/src/extobj.rs): the symbols\n\
         // the certified extension objects import. Never called or read through\n\
         // these declarations: the loader only takes their addresses.\n\
         unsafe extern \"C\" {{\n{decls}}}\n\
         /// (symbol, address), sorted by symbol.\n\
         pub static EXPORTS: [Export; {}] = [\n{rows}];\n",
        imports.len()
    )
}

fn write_if_changed(path: &std::path::Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_the_first_segment_of_every_path() {
        assert_eq!(roots("spin_interface::domain::is_unloaded"), ["spin_interface"]);
        assert_eq!(roots("<alloc::sync::Arc<T,A>>::drop_slow"), ["alloc"]);
        assert_eq!(roots("<kernel_spin::X as core::fmt::Debug>::fmt"), ["kernel_spin", "core"]);
    }

    #[test]
    fn imports_of_the_interface_and_runtime_are_allowed() {
        assert_eq!(import_refused("_ZN14spin_interface3log4emit17h972165230bd938b8E"), None);
        assert_eq!(import_refused("_RNvNtCsg3SjgaGcPXb_4core9panicking5panic"), None);
        assert_eq!(import_refused("_RNvCsfLfy6EI15iL_7___rustc12___rust_alloc"), None);
        assert_eq!(import_refused("memcpy"), None);
    }

    #[test]
    fn imports_of_the_hal_or_the_kernel_are_refused() {
        let hal = import_refused("_ZN10shared_hal6memory11alloc_frame17h0123456789abcdefE").unwrap();
        assert!(hal.contains("shared_hal"), "{hal}");
        let k = import_refused("_ZN11kernel_spin3key17h0123456789abcdefE").unwrap();
        assert!(k.contains("kernel_spin"), "{k}");
        // A trait impl naming a kernel type inside the angle brackets.
        let imp = import_refused(
            "_ZN65_$LT$kernel_spin..Foo$u20$as$u20$core..fmt..Debug$GT$3fmt17h0123456789abcdefE",
        )
        .unwrap();
        assert!(imp.contains("kernel_spin"), "{imp}");
        assert!(import_refused("kernel_main").is_some());
    }

    #[test]
    fn the_certificate_binds_the_exact_bytes() {
        let a = certify(b"k", b"object");
        assert_eq!(a, certify(b"k", b"object"));
        assert_ne!(a, certify(b"k", b"objecT"));
        assert_ne!(a, certify(b"K", b"object"));
        assert_eq!(a.len(), 32);
    }
}
