//! Build checks for SPIN extensions (host side of `cargo xtask test`).
//!
//! kernel-spin's protection rests on extensions being safe Rust that can
//! reach the kernel only through `spin-interface`. That rule is checked
//! here, not just written down:
//!
//! - every crate under `extensions/` must open its library with
//!   `#![forbid(unsafe_code)]`, may depend only on `spin-interface` and
//!   `log` (plus `alloc`, which is not a Cargo dependency), and may have no
//!   build script or procedural macro (host code that could generate
//!   anything);
//! - compile-fail fixtures (`kernel-spin/compile-fail/`, a workspace of its
//!   own) prove the language does the rest: an extension with an `unsafe`
//!   block does not build, an extension naming `shared_hal` without
//!   depending on it does not build, a correct one does, and a manifest
//!   that depends on the HAL is rejected by the check above.
//!
//! Each check is one line of the test report.

use crate::env::{clean_cargo, root};
use crate::test::Report;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What an extension may depend on.
const ALLOWED_DEPENDENCIES: &[&str] = &["spin-interface", "log"];

/// One crate's manifest facts, from `cargo metadata`.
struct Crate {
    name: String,
    dependencies: Vec<String>,
    lib_root: Option<PathBuf>,
    host_code: Vec<String>,
}

/// The packages of the workspace whose manifest is `manifest`.
fn packages(manifest: &Path) -> Result<Vec<(PathBuf, Crate)>> {
    let out = clean_cargo(&root())
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(manifest)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let mut crates = Vec::new();
    for p in v["packages"].as_array().context("metadata has packages")? {
        let manifest_path = PathBuf::from(p["manifest_path"].as_str().context("manifest_path")?);
        let dependencies = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        let mut lib_root = None;
        let mut host_code = Vec::new();
        for t in p["targets"].as_array().into_iter().flatten() {
            let kinds: Vec<&str> =
                t["kind"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if kinds.contains(&"custom-build") {
                host_code.push("a build script".to_owned());
            }
            if kinds.contains(&"proc-macro") {
                host_code.push("a procedural macro".to_owned());
            }
            if kinds.iter().any(|k| *k == "lib" || *k == "rlib") {
                lib_root = t["src_path"].as_str().map(PathBuf::from);
            }
        }
        let name = p["name"].as_str().context("package name")?.to_owned();
        crates.push((manifest_path, Crate { name, dependencies, lib_root, host_code }));
    }
    Ok(crates)
}

/// Whether the crate root forbids unsafe code (an inner attribute line).
fn forbids_unsafe(source: &str) -> bool {
    source
        .lines()
        .map(str::trim)
        .any(|l| l.starts_with("#![forbid(") && l.contains("unsafe_code") && !l.starts_with("//"))
}

/// Everything wrong with one extension crate (empty: it passes).
fn violations(c: &Crate) -> Vec<String> {
    let mut why = Vec::new();
    for d in &c.dependencies {
        if !ALLOWED_DEPENDENCIES.contains(&d.as_str()) {
            why.push(format!("depends on `{d}` (allowed: {})", ALLOWED_DEPENDENCIES.join(", ")));
        }
    }
    for h in &c.host_code {
        why.push(format!("has {h}"));
    }
    match &c.lib_root {
        None => why.push("has no library target".to_owned()),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(src) if forbids_unsafe(&src) => {}
            Ok(_) => why.push(format!("{} lacks #![forbid(unsafe_code)]", path.display())),
            Err(e) => why.push(format!("cannot read {}: {e}", path.display())),
        },
    }
    why
}

fn fixtures_dir() -> PathBuf {
    root().join("kernel-spin/compile-fail")
}

/// `cargo check` one fixture for the kernel target; returns (success, stderr).
fn check_fixture(package: &str) -> Result<(bool, String)> {
    let out = clean_cargo(&fixtures_dir())
        .args(["check", "--quiet", "--locked", "--target", "x86_64-unknown-none", "--package", package])
        .env("CARGO_TARGET_DIR", root().join("target/compile-fail"))
        .output()
        .context("running cargo check on a fixture")?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

fn selected(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

/// Run every extension check, one report line each.
pub fn run(report: &mut Report, filter: Option<&str>) {
    // 1. The workspace's extensions.
    let name = "checks/extensions_found";
    match packages(&root().join("Cargo.toml")) {
        Err(e) => report.fail(name, format!("{e:#}")),
        Ok(all) => {
            let dir = root().join("extensions");
            let exts: Vec<_> = all.into_iter().filter(|(m, _)| m.starts_with(&dir)).collect();
            if selected(name, filter) {
                if exts.is_empty() {
                    report.fail(name, "no crates under extensions/ are workspace members");
                } else {
                    report.pass(name);
                }
            }
            for (_, c) in &exts {
                let name = format!("checks/extension_{}_is_safe_and_confined", c.name);
                if !selected(&name, filter) {
                    continue;
                }
                let why = violations(c);
                if why.is_empty() { report.pass(&name) } else { report.fail(&name, why.join("\n")) }
            }
        }
    }

    // 2. The manifest check rejects a fixture that depends on the HAL.
    let name = "checks/manifest_depending_on_the_hal_is_rejected";
    if selected(name, filter) {
        match packages(&fixtures_dir().join("Cargo.toml")) {
            Err(e) => report.fail(name, format!("{e:#}")),
            Ok(fx) => {
                let find = |n: &str| fx.iter().find(|(_, c)| c.name == n).map(|(_, c)| violations(c));
                match (find("fixture-depends-on-hal"), find("fixture-well-behaved")) {
                    (Some(bad), Some(good))
                        if bad.iter().any(|w| w.contains("shared-hal")) && good.is_empty() =>
                    {
                        report.pass(name)
                    }
                    other => report
                        .fail(name, format!("expected only the HAL dependency to be flagged, got {other:?}")),
                }
            }
        }
    }

    // 3. What the compiler refuses.
    let cases: [(&str, &str, Option<&str>); 3] = [
        ("checks/compile_fail_well_behaved_extension_builds", "fixture-well-behaved", None),
        (
            "checks/compile_fail_extension_using_unsafe",
            "fixture-uses-unsafe",
            Some("usage of an `unsafe` block"),
        ),
        ("checks/compile_fail_extension_naming_the_hal", "fixture-names-hal", Some("`shared_hal`")),
    ];
    for (name, package, must_fail_with) in cases {
        if !selected(name, filter) {
            continue;
        }
        match (check_fixture(package), must_fail_with) {
            (Err(e), _) => report.fail(name, format!("{e:#}")),
            (Ok((true, _)), None) => report.pass(name),
            (Ok((false, err)), None) => {
                report.fail(name, format!("the control fixture does not build:\n{err}"))
            }
            (Ok((true, _)), Some(_)) => report.fail(name, format!("{package} built, but it must not")),
            (Ok((false, err)), Some(want)) if err.contains(want) => report.pass(name),
            (Ok((false, err)), Some(want)) => {
                report.fail(name, format!("{package} failed for another reason (expected {want:?}):\n{err}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbid_attribute_is_recognised() {
        assert!(forbids_unsafe("//! doc\n#![no_std]\n#![forbid(unsafe_code)]\n"));
        assert!(forbids_unsafe("#![forbid(missing_docs, unsafe_code)]"));
        assert!(!forbids_unsafe("// #![forbid(unsafe_code)]\n#![deny(unsafe_code)]"));
    }
}
