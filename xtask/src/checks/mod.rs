//! Build checks for SPIN extensions: the compiler and `cargo metadata`
//! decide, never source text. They gate every kernel-spin image
//! ([`gate`], called by `build::image`) and are test lines of
//! `cargo xtask test` ([`run`]).
//!
//! kernel-spin's protection rests on extensions being safe Rust that can
//! reach the kernel only through `spin-interface`. One extension passes when
//! all of these hold, in this order (a package failing the first is never
//! compiled: its build script or proc macro would run on the host):
//!
//! 1. [`policy`]: its dependency graph, from `cargo metadata`: a library
//!    whose only dependency is spin-interface of this checkout, nothing
//!    outside spin-interface's own closure, no build script, proc macro or
//!    feature.
//! 2. [`compile`]: it builds for the kernel target and profile with
//!    `-F unsafe_code -F elided_lifetimes_in_paths` forced on the command
//!    line (whatever the crate says about itself).
//! 3. [`objects`]: its object code defines only Rust symbols of its own
//!    crate, in ordinary code and data sections.
//! 4. [`expanded`]: the expanded crate has no unsafe attribute (the lint
//!    misses `#[unsafe(naked)]`), no assembly, and no type shaped like the
//!    implied-bounds exploits of rust-lang/rust#25860.
//!
//! Fixtures in `kernel-spin/compile-fail/` (a workspace of its own) prove
//! each rejection happens, for the right reason.

pub mod compile;
pub mod expanded;
pub mod objects;
pub mod policy;

use crate::env::{clean_cargo, root};
use crate::test::Report;
use anyhow::{Context, Result, bail};
use policy::{Metadata, Package};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One workspace's metadata, with its directory.
struct Workspace {
    dir: PathBuf,
    meta: Metadata,
}

fn load(dir: &Path) -> Result<Workspace> {
    let out = clean_cargo(dir)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    }
    let v = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    Ok(Workspace { dir: dir.to_owned(), meta: Metadata::parse(&v)? })
}

/// Every reason `pkg` fails the check (empty: it passes).
fn check_package(ws: &Workspace, pkg: &Package) -> Result<Vec<String>> {
    let why = policy::violations(&ws.meta, pkg, &policy::interface_manifest(&root()));
    if !why.is_empty() {
        return Ok(why); // never compile it: its host code would run
    }
    let krate = pkg.crate_name();
    let rlib = match compile::forced_build(&ws.dir, &pkg.name, &krate)? {
        Ok(rlib) => rlib,
        Err(errors) => return Ok(vec![format!("does not compile with the forced lints: {errors}")]),
    };
    let mut why = objects::inspect_rlib(&rlib, &krate)?;
    match compile::expanded(&ws.dir, &pkg.name)? {
        Ok(text) => why.extend(expanded::violations(&text)),
        Err(errors) => why.push(format!("rustc could not expand it: {errors}")),
    }
    Ok(why)
}

/// The workspace's extensions (packages under `extensions/`) and their verdicts.
type Verdicts = Vec<(String, Vec<String>)>;

/// Checked once per xtask run, shared by the tests and the image gate.
fn extension_verdicts() -> &'static Result<Verdicts, String> {
    static VERDICTS: OnceLock<Result<Verdicts, String>> = OnceLock::new();
    VERDICTS.get_or_init(|| {
        let check = || -> Result<Verdicts> {
            let ws = load(&root())?;
            let dir = root().join("extensions");
            let mut out = Vec::new();
            for p in
                ws.meta.packages.iter().filter(|p| p.source.is_none() && p.manifest_path.starts_with(&dir))
            {
                out.push((p.name.clone(), check_package(&ws, p)?));
            }
            Ok(out)
        };
        check().map_err(|e| format!("{e:#}"))
    })
}

/// Refuse to go on unless every extension passes (before building kernel-spin).
pub fn gate() -> Result<()> {
    let verdicts =
        extension_verdicts().as_ref().map_err(|e| anyhow::anyhow!("checking the SPIN extensions: {e}"))?;
    refusal(verdicts)
}

/// The gate's decision on a set of verdicts: an error naming every failing
/// extension and its reasons.
fn refusal(verdicts: &Verdicts) -> Result<()> {
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|(_, why)| !why.is_empty())
        .map(|(name, why)| format!("extension `{name}` fails the build check:\n  - {}", why.join("\n  - ")))
        .collect();
    if !failed.is_empty() {
        bail!("refusing to build kernel-spin:\n{}", failed.join("\n"));
    }
    Ok(())
}

/// The fixtures: (test name, package, reason it must be rejected for;
/// `None` for the control that must pass).
const FIXTURES: &[(&str, &str, Option<&str>)] = &[
    ("well_behaved_extension_passes", "fixture-well-behaved", None),
    ("extension_using_unsafe_is_rejected", "fixture-uses-unsafe", Some("usage of an `unsafe` block")),
    ("forbid_in_a_comment_is_not_enough", "fixture-forbid-in-comment", Some("usage of an `unsafe` block")),
    ("forbid_in_a_string_is_not_enough", "fixture-forbid-in-string", Some("usage of an `unsafe` block")),
    (
        "forbid_in_a_cfg_stripped_module_is_not_enough",
        "fixture-forbid-in-dead-module",
        Some("usage of an `unsafe` block"),
    ),
    ("extension_naming_the_hal_is_rejected", "fixture-names-hal", Some("`shared_hal`")),
    ("extern_crate_of_log_is_rejected", "fixture-extern-crate-log", Some("can't find crate for `log`")),
    (
        "manifest_depending_on_the_hal_is_rejected",
        "fixture-depends-on-hal",
        Some("declares the dependency `shared-hal`"),
    ),
    (
        "renamed_hal_dependency_is_rejected",
        "fixture-renamed-hal",
        Some("`shared-hal` renamed to `spin-interface`"),
    ),
    (
        "target_specific_hal_dependency_is_rejected",
        "fixture-target-specific-hal",
        Some("for target `cfg(target_os = \"none\")` only"),
    ),
    (
        "impostor_interface_reexporting_the_hal_is_rejected",
        "fixture-impostor-interface",
        Some("impostor-interface"),
    ),
    ("proc_macro_named_log_is_rejected", "fixture-fake-log", Some("a procedural macro")),
    ("registry_dependency_is_rejected", "fixture-registry-dependency", Some("from registry+")),
    ("build_script_is_rejected", "fixture-build-script", Some("has a build script")),
    ("global_asm_is_rejected", "fixture-global-asm", Some("usage of `core::arch::global_asm`")),
    ("no_mangle_is_rejected", "fixture-no-mangle", Some("declaration of a `no_mangle` function")),
    ("naked_function_is_rejected", "fixture-naked", Some("uses the unsafe attribute")),
    (
        "implied_bounds_fn_pointer_is_rejected",
        "fixture-lifetime-fn-pointer",
        Some("a reference to a type with lifetimes"),
    ),
    (
        "implied_bounds_mut_reference_is_rejected",
        "fixture-lifetime-mut-ref",
        Some("a reference to a type with lifetimes"),
    ),
    (
        "implied_bounds_dyn_fn_closure_is_rejected",
        "fixture-lifetime-dyn-fn",
        Some("a reference to a type with lifetimes"),
    ),
    (
        "implied_bounds_behind_a_macro_is_rejected",
        "fixture-lifetime-macro",
        Some("a reference to a type with lifetimes"),
    ),
    (
        "implied_bounds_behind_a_type_alias_is_rejected",
        "fixture-lifetime-alias",
        Some("a reference to a type with lifetimes"),
    ),
    (
        "implied_bounds_behind_a_struct_is_rejected",
        "fixture-lifetime-struct",
        Some("a reference to a type with lifetimes"),
    ),
    ("raising_a_core_event_is_rejected", "fixture-raises-core-event", Some("no method named `raise`")),
    (
        "queueing_another_strand_is_rejected",
        "fixture-queues-another-strand",
        Some("method `push` is private"),
    ),
];

fn selected(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

/// Run every extension check, one report line each.
pub fn run(report: &mut Report, filter: Option<&str>) {
    // 1. The workspace's extensions.
    let name = "checks/extensions_found";
    match extension_verdicts() {
        Err(e) => report.fail(name, e.clone()),
        Ok(verdicts) => {
            if selected(name, filter) {
                if verdicts.is_empty() {
                    report.fail(name, "no crates under extensions/ are workspace members");
                } else {
                    report.pass(name);
                }
            }
            for (ext, why) in verdicts {
                let name = format!("checks/extension_{ext}_is_safe_and_confined");
                if selected(&name, filter) {
                    if why.is_empty() { report.pass(&name) } else { report.fail(&name, why.join("\n")) }
                }
            }
        }
    }

    // 2. The fixtures: each rejected for its reason, the control accepted.
    let wanted: Vec<_> =
        FIXTURES.iter().filter(|(n, ..)| selected(&format!("checks/fixture_{n}"), filter)).collect();
    if wanted.is_empty() {
        return;
    }
    let ws = match load(&root().join("kernel-spin/compile-fail")) {
        Ok(ws) => ws,
        Err(e) => {
            for (n, ..) in wanted {
                report.fail(&format!("checks/fixture_{n}"), format!("{e:#}"));
            }
            return;
        }
    };
    for (n, package, must_fail_with) in wanted {
        let name = format!("checks/fixture_{n}");
        let verdict = match ws.meta.packages.iter().find(|p| p.name == *package && p.source.is_none()) {
            None => Err(anyhow::anyhow!("no fixture package {package}")),
            Some(p) => check_package(&ws, p),
        };
        match (verdict, must_fail_with) {
            (Err(e), _) => report.fail(&name, format!("{e:#}")),
            (Ok(why), None) if why.is_empty() => report.pass(&name),
            (Ok(why), None) => {
                report.fail(&name, format!("the control fixture is rejected:\n{}", why.join("\n")))
            }
            (Ok(why), Some(_)) if why.is_empty() => {
                report.fail(&name, format!("{package} passed, but it must not"))
            }
            (Ok(why), Some(want)) if why.iter().any(|w| w.contains(want)) => report.pass(&name),
            (Ok(why), Some(want)) => report.fail(
                &name,
                format!("{package} was rejected for another reason (expected {want:?}):\n{}", why.join("\n")),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_names_each_failing_extension_and_why() {
        let ok = vec![("spin-ext-a".to_owned(), vec![])];
        assert!(refusal(&ok).is_ok());
        let bad = vec![
            ("spin-ext-a".to_owned(), vec![]),
            ("spin-ext-b".to_owned(), vec!["has a build script".to_owned()]),
        ];
        let e = format!("{:#}", refusal(&bad).unwrap_err());
        assert!(e.contains("refusing to build kernel-spin") && e.contains("`spin-ext-b`"), "{e}");
        assert!(e.contains("has a build script") && !e.contains("`spin-ext-a`"), "{e}");
    }

    #[test]
    fn metadata_is_read_from_cargo_json() {
        let v = serde_json::json!({
            "packages": [{
                "id": "path+file:///r/extensions/x#spin-ext-x@0.1.0", "name": "spin-ext-x", "version": "0.1.0",
                "manifest_path": "/r/extensions/x/Cargo.toml", "source": null, "features": {},
                "targets": [{"kind": ["lib"]}, {"kind": ["custom-build"]}],
                "dependencies": [{"name": "shared-hal", "rename": "spin-interface", "kind": null,
                                  "target": "cfg(unix)", "source": null, "path": "/r/shared-hal"}]
            }],
            "resolve": {"nodes": [{"id": "path+file:///r/extensions/x#spin-ext-x@0.1.0", "deps": []}]}
        });
        let m = Metadata::parse(&v).unwrap();
        let p = &m.packages[0];
        assert_eq!(p.crate_name(), "spin_ext_x");
        assert_eq!(p.target_kinds, ["lib", "custom-build"]);
        let d = &p.deps[0];
        assert_eq!(
            (d.name.as_str(), d.rename.as_deref(), d.target.as_deref()),
            ("shared-hal", Some("spin-interface"), Some("cfg(unix)"))
        );
    }
}
