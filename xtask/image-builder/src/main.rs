//! Host tool: wraps a kernel ELF (and an optional ramdisk) into a BIOS disk image.
//!
//! Usage: `image-builder <kernel-elf> <out.img> [--ramdisk <file>]`.
//! Driven by `cargo xtask`; not meant to be run by hand.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-builder: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The fields we change from the defaults (serde fills in the rest).
const BOOT_CONFIG_JSON: &str =
    r#"{ "frame_buffer_logging": false, "serial_logging": true, "log_level": "Warn" }"#;

fn run() -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: image-builder <kernel-elf> <out.img> [--ramdisk <file>]";
    let kernel = PathBuf::from(args.next().ok_or(usage)?);
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let mut ramdisk = None;
    while let Some(flag) = args.next() {
        match flag.to_str() {
            Some("--ramdisk") => ramdisk = Some(PathBuf::from(args.next().ok_or(usage)?)),
            _ => return Err(format!("unknown argument {flag:?}; {usage}")),
        }
    }
    if !kernel.is_file() {
        return Err(format!("kernel {} does not exist", kernel.display()));
    }

    // Serial logging stays on (it is how we see a failed boot); frame-buffer
    // logging is slow under TCG and nobody looks at the screen, so it is off.
    // BootConfig is #[non_exhaustive], so it is built from JSON.
    let config: bootloader::BootConfig =
        serde_json::from_str(BOOT_CONFIG_JSON).map_err(|e| format!("boot config: {e}"))?;

    let mut bios = bootloader::BiosBoot::new(&kernel);
    bios.set_boot_config(&config);
    if let Some(rd) = &ramdisk {
        bios.set_ramdisk(rd);
    }
    bios.create_disk_image(&out).map_err(|e| format!("creating {}: {e:#}", out.display()))
}
