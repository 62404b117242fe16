//! The contract with the bootloader: the configuration each kernel embeds
//! with `bootloader_api::entry_point!`, and reading what it hands over.

use bootloader_api::BootInfo;
use bootloader_api::config::{BootloaderConfig, Mapping};

/// Start of the kernel half. Every mapping the bootloader makes (kernel image,
/// stack, boot info, physical-memory window, ramdisk) is placed above it, so
/// the lower half is free for user address spaces.
pub const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// The bootloader configuration both kernels use.
pub const BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.mappings.dynamic_range_start = Some(KERNEL_HALF);
    config.kernel_stack_size = 256 * 1024;
    config
};

/// The ramdisk as a byte slice, if the image carried one.
pub fn ramdisk(boot_info: &'static BootInfo) -> Option<&'static [u8]> {
    let addr = boot_info.ramdisk_addr.into_option()?;
    if boot_info.ramdisk_len == 0 {
        return None;
    }
    // SAFETY: the bootloader mapped `ramdisk_len` bytes of ramdisk at
    // `ramdisk_addr` (in the kernel half) and never unmaps or reuses them.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, boot_info.ramdisk_len as usize) })
}
