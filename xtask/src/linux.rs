//! The monolithic baseline: a stock Debian kernel booted on the same QEMU
//! machine with a tiny initramfs whose `/init` is `bench-linux` (a static
//! musl binary running the same benchmark definitions).

use crate::env::{clean_cargo, root};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MUSL: &str = "x86_64-unknown-linux-musl";

/// Where downloaded kernels are cached.
fn cache() -> PathBuf {
    root().join("target/linux")
}

/// A kernel image to boot: the one given, else a cached or freshly
/// downloaded Debian `linux-image-<version>-amd64`.
pub fn kernel(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        if !path.is_file() {
            bail!("--linux-kernel {} does not exist", path.display());
        }
        return Ok(path.to_path_buf());
    }
    if let Some(found) = cached_kernel() {
        return Ok(found);
    }
    download_debian_kernel()?;
    cached_kernel().context("the downloaded package held no /boot/vmlinuz-*")
}

fn cached_kernel() -> Option<PathBuf> {
    let dir = cache().join("boot");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    found.sort();
    found.pop()
}

fn tool(name: &str) -> bool {
    Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// `linux-image-amd64` is a metapackage: find the versioned package it
/// depends on, download it with apt-get, and unpack only the kernel image.
fn download_debian_kernel() -> Result<()> {
    for t in ["apt-cache", "apt-get", "dpkg-deb", "tar"] {
        if !tool(t) {
            bail!(
                "{t} is not available (needed to fetch Debian's kernel); pass --linux-kernel <bzImage> instead"
            );
        }
    }
    let depends = Command::new("apt-cache").args(["depends", "linux-image-amd64"]).output()?;
    let text = String::from_utf8_lossy(&depends.stdout);
    let package = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_owned)
        .context("apt-cache knows no linux-image-amd64 (run apt-get update?)")?;
    let dl = cache().join("download");
    std::fs::create_dir_all(&dl)?;
    eprintln!("xtask: downloading {package} with apt-get (one-time, ~70 MB)");
    // As root, apt drops privileges to `_apt` for downloads, which cannot
    // write into our target directory; keep root for this one download.
    let ok = Command::new("apt-get")
        .current_dir(&dl)
        .args(["download", "-q", "-o", "APT::Sandbox::User=root", &package])
        .status()?;
    if !ok.success() {
        bail!("apt-get download {package} failed");
    }
    let deb = std::fs::read_dir(&dl)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download produced no .deb")?;
    // dpkg-deb --fsys-tarfile pkg.deb | tar -x ./boot/vmlinuz-*
    let mut tarball =
        Command::new("dpkg-deb").arg("--fsys-tarfile").arg(&deb).stdout(Stdio::piped()).spawn()?;
    let stdout = tarball.stdout.take().context("dpkg-deb output")?;
    let ok = Command::new("tar")
        .current_dir(cache())
        .args(["-x", "--wildcards", "./boot/vmlinuz-*"])
        .stdin(stdout)
        .status()?;
    let _ = tarball.wait();
    let _ = std::fs::remove_dir_all(&dl);
    if !ok.success() {
        bail!("unpacking the kernel from {} failed", deb.display());
    }
    Ok(())
}

/// Build `/init` (static musl) and pack the initramfs; returns its path.
pub fn initramfs() -> Result<PathBuf> {
    let installed =
        Command::new("rustup").current_dir(root()).args(["target", "list", "--installed"]).output()?;
    if !String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.trim() == MUSL) {
        eprintln!("xtask: adding the {MUSL} target (one-time)");
        let ok = Command::new("rustup").current_dir(root()).args(["target", "add", MUSL]).status()?;
        if !ok.success() {
            bail!("could not add the {MUSL} target; run: rustup target add {MUSL}");
        }
    }
    let mut cmd = clean_cargo(&root());
    cmd.args(["build", "--quiet", "--release", "--target", MUSL, "--package", "bench-linux"]);
    if !cmd.status()?.success() {
        bail!("building bench-linux for {MUSL} failed");
    }
    let init = std::fs::read(root().join("target").join(MUSL).join("release/bench-linux"))?;
    use crate::cpio::Entry;
    let archive = crate::cpio::archive(&[
        Entry::Dir { path: "dev" },
        Entry::CharDevice { path: "dev/console", major: 5, minor: 1 },
        Entry::Dir { path: "proc" },
        Entry::File { path: "init", mode: 0o755, data: &init },
    ]);
    let out = root().join("target/img/linux-initramfs.cpio");
    std::fs::create_dir_all(out.parent().expect("has parent"))?;
    std::fs::write(&out, archive)?;
    Ok(out)
}

/// The kernel command line for a benchmark boot. `norandmaps` turns off
/// address-space randomization, which the papers' systems did not have: with
/// it on, the page a row touches lands somewhere new at each boot and the
/// *dirty* row alone moved between about 13 000 and 29 000 instructions from
/// boot to boot; with it off, each row repeats within a few percent.
pub fn append(quick: bool, only: Option<&str>) -> String {
    let mut a = String::from("console=ttyS0 quiet loglevel=1 panic=-1 norandmaps");
    if quick {
        a.push_str(" testbed.quick");
    }
    if let Some(o) = only {
        a.push_str(" testbed.only=");
        a.push_str(&o.replace(' ', "_"));
    }
    a
}
