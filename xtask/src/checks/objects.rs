//! What the compiled extension defines, read from its rlib's object files:
//! every defined global symbol must be a Rust-mangled symbol of the
//! extension's own crate, and every section one the compiler makes for
//! ordinary code and data.
//!
//! This closes the symbol-level escapes whatever produced them (an
//! attribute, `global_asm!`, anything the lint might miss): a strong
//! `memcpy` would override compiler_builtins' weak one, an `.init_array`
//! entry would run code nobody called, an unmangled or foreign-crate name
//! could replace a kernel function at link time.

use anyhow::{Context, Result};
use object::elf::STV_HIDDEN;
use object::read::archive::ArchiveFile;
use object::{Object, ObjectSection, ObjectSymbol, SymbolFlags};
use std::path::Path;

/// Sections rustc and LLVM emit for ordinary code and data (with
/// `-ffunction-sections`-style suffixes), plus bookkeeping.
const SECTION_PREFIXES: &[&str] =
    &[".text", ".rodata", ".data", ".bss", ".ldata", ".lrodata", ".lbss", ".debug_", ".llvmbc", ".llvmcmd"];
const SECTION_NAMES: &[&str] = &[
    "",
    ".symtab",
    ".strtab",
    ".shstrtab",
    ".group",
    ".comment",
    ".note.GNU-stack",
    ".llvm_addrsig",
    ".eh_frame",
    ".gcc_except_table",
];

/// Whether an object may contain a section of this name.
pub fn section_allowed(name: &str) -> bool {
    let base = name.strip_prefix(".rela").or_else(|| name.strip_prefix(".rel")).unwrap_or(name);
    let prefixed =
        |p: &&str| base == *p || base.strip_prefix(p).is_some_and(|r| r.starts_with('.') || p.ends_with('_'));
    SECTION_NAMES.contains(&base) || SECTION_PREFIXES.iter().any(prefixed)
}

/// The first path component of a legacy-mangled (`_ZN..E`) or v0 (`_R`)
/// Rust symbol, if `name` is one.
pub fn mangled_crate(name: &str) -> Option<&str> {
    if let Some(rest) = name.strip_prefix("_ZN") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let len: usize = rest[..digits].parse().ok()?;
        let ident = rest.get(digits..digits + len)?;
        // A legacy symbol ends with its hash: `17h<16 hex digits>E`.
        let hash = name.strip_suffix('E')?.rsplit("17h").next()?;
        (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(ident)
    } else if let Some(rest) = name.strip_prefix("_R") {
        // v0: `_R` [vendor-specific] `Nv..` ... `C` <disambiguator> <len> <ident>: take the crate root.
        let at = rest.find('C')?;
        let after = &rest[at + 1..];
        let after = match after.strip_prefix('s') {
            Some(s) => &s[s.find('_')? + 1..],
            None => after,
        };
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let len: usize = after[..digits].parse().ok()?;
        after.get(digits..digits + len)
    } else {
        None
    }
}

/// Why a defined global symbol is not allowed in extension `krate`, if it
/// is not. `hidden`: its ELF visibility is hidden.
///
/// Rust symbols of other crates appear when this crate instantiates their
/// generic code and shares an instance between its own codegen units, and
/// LLVM promotes anonymous constants (`anon.<hash>.<n>`, hidden) the same
/// way. A Rust-mangled name carries a hash and can only meet another Rust
/// definition (a duplicate-symbol link error: Rust defines nothing weak);
/// what can replace kernel code at link time is any other name (`memcpy`
/// overriding compiler_builtins' weak one).
pub fn symbol_verdict(name: &str, _krate: &str, hidden: bool) -> Option<String> {
    // LLVM may suffix a promoted local: `<name>.llvm.<digits>`.
    let base = match name.split_once(".llvm.") {
        Some((b, n)) if n.bytes().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    };
    let anon = base.strip_prefix("anon.").and_then(|r| r.split_once('.')).is_some_and(|(h, n)| {
        h.len() == 32 && h.bytes().all(|c| c.is_ascii_hexdigit()) && n.bytes().all(|c| c.is_ascii_digit())
    });
    if mangled_crate(base).is_some() || (anon && hidden) {
        None
    } else {
        Some(format!("defines the global symbol `{name}`, which is not a Rust-mangled name"))
    }
}

/// Everything wrong with the objects in the rlib at `path` of crate `krate`.
pub fn inspect_rlib(path: &Path, krate: &str) -> Result<Vec<String>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let archive = ArchiveFile::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let mut why = Vec::new();
    let mut objects = 0;
    for member in archive.members() {
        let member = member.context("reading an rlib member")?;
        let name = String::from_utf8_lossy(member.name()).into_owned();
        if !name.ends_with(".o") {
            continue; // lib.rmeta: the crate's metadata
        }
        objects += 1;
        let bytes = member.data(&*data).context("reading an object")?;
        let file = object::File::parse(bytes).with_context(|| format!("parsing {name}"))?;
        for s in file.sections() {
            let sname = s.name().unwrap_or("?");
            if !section_allowed(sname) {
                why.push(format!("has the section `{sname}` (only code and data sections are allowed)"));
            }
        }
        for sym in file.symbols() {
            if sym.is_global() && sym.is_definition() {
                let hidden = matches!(sym.flags(), SymbolFlags::Elf { st_other, .. } if st_other.visibility() == STV_HIDDEN);
                if let Some(w) = symbol_verdict(sym.name().unwrap_or("?"), krate, hidden) {
                    why.push(w);
                }
            }
        }
    }
    if objects == 0 {
        why.push(format!("{} holds no object code to inspect", path.display()));
    }
    why.sort();
    why.dedup();
    Ok(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        for ok in [
            ".text",
            ".text._ZN3foo3bar17h0123456789abcdefE",
            ".rodata.str1.1",
            ".rela.text.x",
            ".bss.X",
            ".data.rel.ro.Y",
            ".debug_info",
            ".note.GNU-stack",
            "",
        ] {
            assert!(section_allowed(ok), "{ok}");
        }
        for bad in [
            ".init_array",
            ".init_array.0",
            ".rela.init_array",
            ".ctors",
            ".fini_array",
            ".textual",
            ".my_section",
            ".preinit_array",
        ] {
            assert!(!section_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn symbols() {
        let k = "spin_ext_hello";
        assert_eq!(symbol_verdict("_ZN14spin_ext_hello4init17h0123456789abcdefE", k, false), None);
        assert_eq!(symbol_verdict("_ZN4core3ptr4drop17h0123456789abcdefE.llvm.123", k, true), None);
        assert_eq!(symbol_verdict("anon.5cd1670492d878f9ea15813a0b6f8aee.0.llvm.1328", k, true), None);
        assert!(symbol_verdict("anon.5cd1670492d878f9ea15813a0b6f8aee.0.llvm.1328", k, false).is_some());
        assert!(symbol_verdict("memcpy", k, true).unwrap().contains("not a Rust-mangled"));
        assert!(symbol_verdict("memcpy.llvm.1", k, true).is_some());
        // Looks mangled but has no hash: not a symbol rustc made.
        assert!(symbol_verdict("_ZN14spin_ext_hello4initE", k, true).is_some());
        assert_eq!(mangled_crate("_RNvCs1234_14spin_ext_hello4init"), Some("spin_ext_hello"));
    }
}
