//! Dependency identity of an extension, decided on `cargo metadata` (the
//! declared dependencies and the resolve graph), never on manifest text.
//!
//! The rule, precisely:
//! - the extension is a library only: no build script, no procedural macro,
//!   no other target (binaries, tests, examples), no features (one cfg);
//! - every declared dependency (normal, dev or build, for any target) is
//!   `spin-interface` itself: the package at `kernel-spin/interface` of this
//!   checkout (a path source), normal kind, for every target, not renamed;
//! - every package in the extension's resolved graph is the extension or in
//!   the *trusted closure*: spin-interface and what it depends on (normal and
//!   build edges). Those packages are the kernel's own trusted code; nothing
//!   outside them (a registry crate, a proc macro, a build script) can enter.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One declared dependency, as `cargo metadata` resolved the manifest.
#[derive(Clone, Debug, Default)]
pub struct DeclaredDep {
    /// The package name (after `package = "..."`).
    pub name: String,
    /// The name the crate is known by, when renamed.
    pub rename: Option<String>,
    /// `None` (normal), `"dev"` or `"build"`.
    pub kind: Option<String>,
    /// A `cfg(..)` or target triple for target-specific dependencies.
    pub target: Option<String>,
    /// A registry or git source; `None` for a path dependency.
    pub source: Option<String>,
    pub path: Option<PathBuf>,
}

/// One package of the metadata.
#[derive(Clone, Debug, Default)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub version: String,
    pub manifest_path: PathBuf,
    pub source: Option<String>,
    pub deps: Vec<DeclaredDep>,
    /// The kinds of every target (`lib`, `custom-build`, `proc-macro`, `bin`, ...).
    pub target_kinds: Vec<String>,
    pub features: Vec<String>,
}

impl Package {
    /// The library's crate name (what symbols and errors call it).
    pub fn crate_name(&self) -> String {
        self.name.replace('-', "_")
    }

    fn host_code(&self) -> Option<&'static str> {
        if self.target_kinds.iter().any(|k| k == "proc-macro") {
            Some("a procedural macro")
        } else if self.target_kinds.iter().any(|k| k == "custom-build") {
            Some("a build script")
        } else {
            None
        }
    }
}

/// A workspace's full `cargo metadata`: packages and resolved edges.
#[derive(Debug, Default)]
pub struct Metadata {
    pub packages: Vec<Package>,
    /// package id -> (dependency id, whether the edge is dev-only)
    pub edges: HashMap<String, Vec<(String, bool)>>,
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

impl Metadata {
    /// Parse `cargo metadata --format-version 1` output (with the resolve graph).
    pub fn parse(v: &Value) -> Result<Metadata> {
        let mut packages = Vec::new();
        for p in v["packages"].as_array().context("metadata has packages")? {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| DeclaredDep {
                    name: opt_str(&d["name"]).unwrap_or_default(),
                    rename: opt_str(&d["rename"]),
                    kind: opt_str(&d["kind"]),
                    target: opt_str(&d["target"]),
                    source: opt_str(&d["source"]),
                    path: opt_str(&d["path"]).map(PathBuf::from),
                })
                .collect();
            let target_kinds = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["kind"].as_array().into_iter().flatten().filter_map(opt_str))
                .collect();
            let features = p["features"].as_object().map(|f| f.keys().cloned().collect()).unwrap_or_default();
            packages.push(Package {
                id: opt_str(&p["id"]).context("package id")?,
                name: opt_str(&p["name"]).context("package name")?,
                version: opt_str(&p["version"]).unwrap_or_default(),
                manifest_path: PathBuf::from(opt_str(&p["manifest_path"]).context("manifest_path")?),
                source: opt_str(&p["source"]),
                deps,
                target_kinds,
                features,
            });
        }
        let mut edges = HashMap::new();
        for n in v["resolve"]["nodes"].as_array().context("metadata has a resolve graph")? {
            let id = opt_str(&n["id"]).context("node id")?;
            let out = n["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let kinds: Vec<Option<&str>> =
                        d["dep_kinds"].as_array().into_iter().flatten().map(|k| k["kind"].as_str()).collect();
                    let dev_only = !kinds.is_empty() && kinds.iter().all(|k| *k == Some("dev"));
                    opt_str(&d["pkg"]).map(|p| (p, dev_only))
                })
                .collect();
            edges.insert(id, out);
        }
        Ok(Metadata { packages, edges })
    }

    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.id == id)
    }

    /// Every package reachable from `from` (itself included), following
    /// dev-only edges only out of `from` itself when `with_own_dev` is set.
    fn closure(&self, from: &str, with_own_dev: bool) -> BTreeSet<String> {
        let mut seen = BTreeSet::from([from.to_owned()]);
        let mut todo = vec![from.to_owned()];
        while let Some(id) = todo.pop() {
            for (dep, dev_only) in self.edges.get(&id).into_iter().flatten() {
                if *dev_only && !(with_own_dev && id == from) {
                    continue;
                }
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }
}

/// The one package an extension may depend on: the interface at this path.
pub fn interface_manifest(root: &Path) -> PathBuf {
    root.join("kernel-spin/interface/Cargo.toml")
}

fn describe(d: &DeclaredDep) -> String {
    let mut s = format!("`{}`", d.name);
    if let Some(r) = &d.rename {
        s += &format!(" renamed to `{r}`");
    }
    match d.kind.as_deref() {
        Some("dev") => s += " as a dev-dependency",
        Some("build") => s += " as a build-dependency",
        _ => {}
    }
    if let Some(t) = &d.target {
        s += &format!(" for target `{t}` only");
    }
    match (&d.source, &d.path) {
        (Some(src), _) => s += &format!(" from {src}"),
        (None, Some(p)) => s += &format!(" at {}", p.display()),
        _ => {}
    }
    s
}

/// Everything wrong with the dependencies of extension `ext` (empty: it
/// passes). `interface` is spin-interface's manifest path.
pub fn violations(meta: &Metadata, ext: &Package, interface: &Path) -> Vec<String> {
    let mut why = Vec::new();
    for k in &ext.target_kinds {
        match k.as_str() {
            "lib" => {}
            "custom-build" => why.push("has a build script (host code run during the build)".to_owned()),
            "proc-macro" => why.push("is a procedural macro (host code run during the build)".to_owned()),
            other => why.push(format!("has a `{other}` target (an extension is a library only)")),
        }
    }
    if !ext.features.is_empty() {
        why.push(format!(
            "declares features ({}): an extension is checked and built with one cfg only",
            ext.features.join(", ")
        ));
    }
    let interface_dir = interface.parent().unwrap_or(interface);
    for d in &ext.deps {
        let is_interface = d.name == "spin-interface"
            && d.rename.is_none()
            && d.kind.is_none()
            && d.target.is_none()
            && d.source.is_none()
            && d.path.as_deref() == Some(interface_dir);
        if !is_interface {
            why.push(format!(
                "declares the dependency {} (allowed: only `spin-interface` at {}, a normal dependency \
                 for every target, not renamed)",
                describe(d),
                interface_dir.display()
            ));
        }
    }
    let interface_pkg = meta.packages.iter().find(|p| p.manifest_path == interface && p.source.is_none());
    let trusted = interface_pkg.map(|p| meta.closure(&p.id, false)).unwrap_or_default();
    for id in meta.closure(&ext.id, true) {
        if id == ext.id || trusted.contains(&id) {
            continue;
        }
        let what = match meta.package(&id) {
            Some(p) => {
                let src = p.source.clone().unwrap_or_else(|| p.manifest_path.display().to_string());
                let host = p.host_code().map(|h| format!(", {h}")).unwrap_or_default();
                format!("`{}` {} ({src}{host})", p.name, p.version)
            }
            None => format!("`{id}`"),
        };
        why.push(format!("pulls in {what}, which is outside spin-interface's trusted closure"));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    const IFACE: &str = "/r/kernel-spin/interface/Cargo.toml";

    fn pkg(id: &str, name: &str, manifest: &str) -> Package {
        Package {
            id: id.into(),
            name: name.into(),
            manifest_path: manifest.into(),
            target_kinds: vec!["lib".into()],
            ..Default::default()
        }
    }

    fn iface_dep() -> DeclaredDep {
        DeclaredDep {
            name: "spin-interface".into(),
            path: Some("/r/kernel-spin/interface".into()),
            ..Default::default()
        }
    }

    /// ext -> iface -> log (trusted); plus `extra` packages reachable from ext.
    fn world(ext_deps: Vec<DeclaredDep>, extra: Vec<(Package, bool)>) -> (Metadata, Package) {
        let mut ext = pkg("ext", "spin-ext-x", "/r/extensions/x/Cargo.toml");
        ext.deps = ext_deps;
        let mut log = pkg("log", "log", "/reg/log/Cargo.toml");
        log.source = Some("registry+crates.io".into());
        let mut edges = HashMap::from([
            ("ext".to_owned(), vec![("iface".to_owned(), false)]),
            ("iface".to_owned(), vec![("log".to_owned(), false)]),
        ]);
        let mut packages = vec![ext.clone(), pkg("iface", "spin-interface", IFACE), log];
        for (p, dev) in extra {
            edges.get_mut("ext").unwrap().push((p.id.clone(), dev));
            packages.push(p);
        }
        (Metadata { packages, edges }, ext)
    }

    #[test]
    fn the_interface_alone_passes() {
        let (m, ext) = world(vec![iface_dep()], vec![]);
        assert!(violations(&m, &ext, Path::new(IFACE)).is_empty());
    }

    #[test]
    fn renamed_target_specific_dev_and_registry_dependencies_fail() {
        let renamed =
            DeclaredDep { name: "shared-hal".into(), rename: Some("spin_interface".into()), ..iface_dep() };
        let target = DeclaredDep { target: Some("cfg(target_os = \"none\")".into()), ..iface_dep() };
        let dev = DeclaredDep { kind: Some("dev".into()), ..iface_dep() };
        let registry = DeclaredDep { source: Some("registry+crates.io".into()), path: None, ..iface_dep() };
        let elsewhere = DeclaredDep { path: Some("/tmp/spin-interface".into()), ..iface_dep() };
        for d in [renamed, target, dev, registry, elsewhere] {
            let (m, ext) = world(vec![iface_dep(), d.clone()], vec![]);
            let why = violations(&m, &ext, Path::new(IFACE));
            assert!(why.len() == 1 && why[0].contains("declares the dependency"), "{d:?}: {why:?}");
        }
    }

    #[test]
    fn a_package_outside_the_trusted_closure_fails_even_if_named_like_a_trusted_one() {
        let mut fake = pkg("fakelog", "log", "/r/fake-log/Cargo.toml");
        fake.target_kinds = vec!["proc-macro".into()];
        let (m, ext) = world(vec![iface_dep()], vec![(fake, false)]);
        let why = violations(&m, &ext, Path::new(IFACE));
        assert!(why.iter().any(|w| w.contains("`log`") && w.contains("procedural macro")), "{why:?}");
    }

    #[test]
    fn the_trusted_log_reached_directly_still_fails_by_declaration() {
        let log = DeclaredDep {
            name: "log".into(),
            source: Some("registry+crates.io".into()),
            ..Default::default()
        };
        let (m, ext) = world(vec![iface_dep(), log], vec![]);
        assert!(!violations(&m, &ext, Path::new(IFACE)).is_empty());
    }

    #[test]
    fn build_scripts_features_and_other_targets_fail() {
        let (m, mut ext) = world(vec![iface_dep()], vec![]);
        ext.target_kinds = vec!["lib".into(), "custom-build".into(), "bin".into()];
        ext.features = vec!["x".into()];
        let why = violations(&m, &ext, Path::new(IFACE));
        assert!(why.iter().any(|w| w.contains("build script")));
        assert!(why.iter().any(|w| w.contains("`bin` target")));
        assert!(why.iter().any(|w| w.contains("declares features")));
    }
}
