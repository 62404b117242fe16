//! Building: kernels (stable, `x86_64-unknown-none`), user programs, the
//! ramdisk that carries them, and BIOS disk images (through the nightly
//! image builder in xtask/image-builder).

use crate::Kernel;
use crate::env::{clean_cargo, image_builder_dir, root};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

const TARGET: &str = "x86_64-unknown-none";

/// The ring-3 programs each kernel's image carries in its ramdisk, as
/// `(cargo package, binary name)`. Empty until the kernels grow user space.
fn user_programs(kernel: Kernel) -> &'static [(&'static str, &'static str)] {
    match kernel {
        Kernel::Exo => &[
            ("exo-user", "exo-init"),
            ("exo-user", "exo-hello"),
            ("exo-user", "exo-utest"),
            ("exo-user", "exo-hostile"),
            ("exo-user", "exo-fuzz"),
            ("exo-user", "exo-exostest"),
            ("exo-user", "exo-bench"),
        ],
        Kernel::Spin => &[
            ("spin-user", "spin-usertests"),
            ("spin-user", "spin-server"),
            ("spin-user", "spin-ubench"),
            ("spin-user", "spin-fuzz"),
            ("spin-user", "spin-udp"),
        ],
    }
}

/// Path of a kernel's ELF file after `build_kernel`.
pub fn kernel_elf(kernel: Kernel) -> PathBuf {
    root().join("target").join(TARGET).join("release").join(format!("kernel-{}", kernel.name()))
}

fn cargo_build(what: &str, mut cmd: std::process::Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running cargo to build {what}"))?;
    if !status.success() {
        bail!("building {what} failed (see the compiler output above)");
    }
    Ok(())
}

/// Build a kernel in release mode, as one optimization unit (fat LTO, one
/// codegen unit): a kernel image is one program. Without it a small
/// function of another workspace crate (the interface, the HAL) is never
/// inlined into its caller, and another crate's statics are reached through
/// the GOT. Only the kernels get it: host tools and user programs keep the
/// workspace profile (a fat-LTO xtask would only make the first build slower).
///
/// kernel-spin is built only if every extension passes the build checks
/// (`checks::gate`): no command builds it with an extension that fails them.
pub fn build_kernel(kernel: Kernel) -> Result<PathBuf> {
    let mut cmd = clean_cargo(&root());
    if kernel == Kernel::Spin {
        crate::checks::gate()?;
        // The certified objects first: the kernel embeds their export
        // table and the certificate key.
        for c in crate::extobj::build()? {
            eprintln!(
                "xtask: certified extension object {}: {} bytes, {} imports",
                c.name, c.bytes, c.imports
            );
        }
        cmd.env("SPIN_EXPORTS", crate::extobj::exports_file())
            .env("SPIN_CERT_KEY", crate::extobj::key_file());
    }
    cmd.args(["build", "--quiet", "--release", "--target", TARGET, "--package"])
        .arg(format!("kernel-{}", kernel.name()))
        .env("CARGO_PROFILE_RELEASE_LTO", "fat")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
    cargo_build(&format!("kernel-{}", kernel.name()), cmd)?;
    Ok(kernel_elf(kernel))
}

/// Build a kernel's user programs and pack them into a ramdisk archive.
/// Returns `None` when the kernel has no user programs.
pub fn build_ramdisk(kernel: Kernel) -> Result<Option<PathBuf>> {
    let programs = user_programs(kernel);
    if programs.is_empty() {
        return Ok(None);
    }
    let target_dir = root().join("target/user");
    let mut cmd = clean_cargo(&root());
    cmd.args(["build", "--quiet", "--release", "--target", TARGET]);
    for (package, _) in programs {
        cmd.args(["--package", package]);
    }
    // User programs are ordinary static executables linked low in the
    // address space (not the kernel's position-independent, top-2-GiB model),
    // so they get their own flags and their own target directory.
    cmd.env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C relocation-model=static -C code-model=small");
    cargo_build(&format!("kernel-{} user programs", kernel.name()), cmd)?;
    let mut files = Vec::new();
    for (_, bin) in programs {
        let path = target_dir.join(TARGET).join("release").join(bin);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        files.push((bin.to_string(), data));
    }
    if kernel == Kernel::Spin {
        // The certified extension objects (built with the kernel).
        for name in crate::extobj::LOADABLE {
            for ext in ["ext", "cert"] {
                let path = crate::extobj::out_dir().join(format!("{name}.{ext}"));
                let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                files.push((format!("{name}.{ext}"), data));
            }
        }
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let archive =
        hal_logic::ramdisk::pack(&refs).map_err(|e| anyhow::anyhow!("packing the ramdisk: {e:?}"))?;
    let out = root().join(format!("target/img/{}-ramdisk.bin", kernel.name()));
    std::fs::create_dir_all(out.parent().expect("has parent"))?;
    std::fs::write(&out, archive)?;
    Ok(Some(out))
}

/// Build the image builder (nightly; first build takes a few minutes).
fn image_builder() -> Result<PathBuf> {
    let target_dir = root().join("target/image-builder");
    let mut cmd = clean_cargo(&image_builder_dir());
    cmd.args(["build", "--quiet", "--release", "--locked"]).env("CARGO_TARGET_DIR", &target_dir);
    if !target_dir.join("release/image-builder").exists() {
        eprintln!("xtask: building the disk-image builder and the bootloader (first time: 2-4 minutes)");
    }
    cargo_build("the image builder", cmd)?;
    Ok(target_dir.join("release/image-builder"))
}

/// Build everything for `kernel` and return the path of its BIOS disk image.
pub fn image(kernel: Kernel) -> Result<PathBuf> {
    let elf = build_kernel(kernel)?;
    let ramdisk = build_ramdisk(kernel)?;
    let builder = image_builder()?;
    let out = root().join(format!("target/img/{}.img", kernel.name()));
    std::fs::create_dir_all(out.parent().expect("has parent"))?;
    let mut cmd = std::process::Command::new(builder);
    cmd.arg(&elf).arg(&out);
    if let Some(rd) = ramdisk {
        cmd.arg("--ramdisk").arg(rd);
    }
    let status = cmd.status().context("running the image builder")?;
    if !status.success() {
        bail!("the image builder failed for kernel-{}", kernel.name());
    }
    Ok(out)
}
