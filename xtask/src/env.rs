//! Prerequisites on a fresh machine: the bare-metal Rust target, the nightly
//! the image builder needs, and QEMU. Each is checked, installed when we can,
//! and otherwise reported in one sentence naming the command to run.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Where the image builder crate lives.
pub fn image_builder_dir() -> PathBuf {
    root().join("xtask/image-builder")
}

const KERNEL_TARGET: &str = "x86_64-unknown-none";

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The nightly channel pinned in xtask/image-builder/rust-toolchain.toml.
pub fn image_builder_toolchain() -> Result<String> {
    let path = image_builder_dir().join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.split('"').nth(1))
        .next()
        .map(str::to_owned)
        .with_context(|| format!("no channel in {}", path.display()))
}

/// Everything `build` needs: the kernel target on the pinned stable
/// toolchain and the image builder's nightly with rust-src and llvm-tools.
pub fn ensure_build_prerequisites() -> Result<()> {
    if !have("rustup") {
        bail!("rustup is not installed; install it from https://rustup.rs and run this command again");
    }
    // The stable toolchain running us is the one rust-toolchain.toml pins.
    let installed =
        output(Command::new("rustup").current_dir(root()).args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == KERNEL_TARGET) {
        eprintln!("xtask: adding the {KERNEL_TARGET} target (one-time)");
        let ok =
            Command::new("rustup").current_dir(root()).args(["target", "add", KERNEL_TARGET]).status()?;
        if !ok.success() {
            bail!("could not add the {KERNEL_TARGET} target; run: rustup target add {KERNEL_TARGET}");
        }
    }
    let nightly = image_builder_toolchain()?;
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    let has_components = toolchains.lines().any(|l| l.starts_with(&nightly))
        && output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", &nightly]))
            .is_ok_and(|c| c.contains("rust-src") && c.contains("llvm-tools"));
    if !has_components {
        eprintln!("xtask: installing {nightly} with rust-src and llvm-tools for the bootloader (one-time)");
        let ok = Command::new("rustup")
            .args(["toolchain", "install", &nightly, "--profile", "minimal"])
            .args(["--component", "rust-src", "--component", "llvm-tools-preview"])
            .status()?;
        if !ok.success() {
            bail!(
                "could not install {nightly}; run: rustup toolchain install {nightly} --profile minimal \
                 --component rust-src --component llvm-tools-preview"
            );
        }
    }
    Ok(())
}

const QEMU: &str = "qemu-system-x86_64";

/// Make sure `qemu-system-x86_64` runs; install it with apt-get when it is
/// missing and we are root on a Debian-like system. Returns its version line.
pub fn ensure_qemu() -> Result<String> {
    if !have(QEMU) {
        let root_user = output(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
        if !(root_user && have("apt-get")) {
            bail!("{QEMU} is not installed; install it with: sudo apt-get install qemu-system-x86");
        }
        eprintln!("xtask: installing qemu-system-x86 with apt-get (one-time)");
        let quiet =
            |c: &mut Command| c.env("DEBIAN_FRONTEND", "noninteractive").stdout(Stdio::null()).status();
        let _ = quiet(Command::new("apt-get").args(["update", "-qq"]));
        let ok = quiet(Command::new("apt-get").args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "qemu-system-x86",
        ]))?;
        if !ok.success() || !have(QEMU) {
            bail!("installing qemu-system-x86 failed; install it with: apt-get install qemu-system-x86");
        }
    }
    let v = output(Command::new(QEMU).arg("--version"))?;
    Ok(v.lines().next().unwrap_or("QEMU").trim().to_owned())
}

/// A `Command` for cargo with the environment of the outer `cargo xtask`
/// removed, so the nested build picks its own toolchain (from the
/// rust-toolchain.toml of its directory) and its own flags.
pub fn clean_cargo(dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let inherited_build_state = (k.starts_with("CARGO") && k != "CARGO_HOME")
            || k.starts_with("RUSTUP_TOOLCHAIN")
            || k.starts_with("RUSTC")
            || k.starts_with("RUSTDOC")
            || k.starts_with("RUSTFLAGS")
            || k.starts_with("__CARGO")
            || k == "RUST_RECURSION_COUNT"
            || k == "LD_LIBRARY_PATH";
        if inherited_build_state {
            cmd.env_remove(&key);
        }
    }
    cmd
}
