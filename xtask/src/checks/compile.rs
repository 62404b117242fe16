//! Asking the compiler: build one extension with the forced lints, and have
//! rustc print it macro-expanded and cfg-stripped. Both builds use the
//! kernel's target and release profile (an extension has no features, so
//! its cfg is the kernel build's) and share one target directory,
//! `target/ext-check`, so dependencies compile once.

use crate::env::{clean_cargo, root};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-none";

/// Lints the trusted build forces on every extension, on the command line
/// (after anything the extension's manifest says, and `forbid` cannot be
/// lowered by the crate's own attributes): no `unsafe` of any kind, and
/// every lifetime of a path written out, so the implied-bounds check sees it.
pub const FORCED_LINTS: &[&str] = &["-F", "unsafe_code", "-F", "elided_lifetimes_in_paths"];

fn target_dir() -> PathBuf {
    root().join("target/ext-check")
}

fn cargo_rustc(workspace: &Path, package: &str) -> Command {
    let mut cmd = clean_cargo(workspace);
    cmd.args([
        "rustc",
        "--quiet",
        "--locked",
        "--release",
        "--target",
        TARGET,
        "--lib",
        "--package",
        package,
    ])
    .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// The compiler's error lines (what a report should show first).
fn errors(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.starts_with("error")
                && !l.starts_with("error: could not compile")
                && !l.contains("aborting due to")
        })
        .collect();
    if lines.is_empty() { stderr.trim().to_owned() } else { lines.join("; ") }
}

/// Build `package`'s library with the forced lints. `Ok(Err(errors))` when
/// the compiler refuses it; `Ok(Ok(rlib))` with the library it produced.
pub fn forced_build(workspace: &Path, package: &str, crate_name: &str) -> Result<Result<PathBuf, String>> {
    let out = cargo_rustc(workspace, package)
        .args(["--message-format=json-render-diagnostics", "--"])
        .args(FORCED_LINTS)
        .output()
        .with_context(|| format!("running cargo rustc for {package}"))?;
    if !out.status.success() {
        return Ok(Err(errors(&String::from_utf8_lossy(&out.stderr))));
    }
    Ok(rlib_of(&out.stdout, package, crate_name).map_err(|e| format!("{e:#}")))
}

/// The rlib of `crate_name` among the artifacts cargo reported (its JSON
/// messages on `stdout`): the forced build's, or the extension object
/// build's (`extobj`).
pub fn rlib_of(stdout: &[u8], package: &str, crate_name: &str) -> Result<PathBuf> {
    let prefix = format!("lib{crate_name}-");
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| {
            f.extension().is_some_and(|e| e == "rlib")
                && f.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&prefix) || n == format!("lib{crate_name}.rlib")
                })
        })
        .with_context(|| format!("cargo reported no rlib for {package}"))
}

/// The crate as rustc expanded it (`-Zunpretty=expanded`), from the same
/// stable compiler (`RUSTC_BOOTSTRAP=1` only unlocks the printing flag;
/// the forced build above already refused any `#![feature]`).
pub fn expanded(workspace: &Path, package: &str) -> Result<Result<String, String>> {
    let file = target_dir().join("expanded").join(format!("{package}.rs"));
    std::fs::create_dir_all(file.parent().expect("has parent"))?;
    let _ = std::fs::remove_file(&file);
    let out = cargo_rustc(workspace, package)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["--", "-Zunpretty=expanded", "-o"])
        .arg(&file)
        .output()
        .with_context(|| format!("running cargo rustc -Zunpretty=expanded for {package}"))?;
    if !out.status.success() {
        return Ok(Err(errors(&String::from_utf8_lossy(&out.stderr))));
    }
    std::fs::read_to_string(&file).map(Ok).with_context(|| format!("reading {}", file.display()))
}
