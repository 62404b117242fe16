//! kernel-spin: a SPIN-style kernel whose extensions run in ring 0 (ring 0).
//!
//! Extensions are safe-Rust crates linked into the kernel; protection comes
//! from the language, not the MMU. This file is
//! the boot path: bring up the HAL, print the banner, then do what the
//! command line asks (`mode=test` runs the self-tests, `scenario=...` runs a
//! deliberate-failure scenario, anything else boots and halts cleanly).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod bench;

use bootloader_api::{BootInfo, entry_point};
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu, testing};

entry_point!(kernel_main, config = &shared_hal::boot::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let platform = shared_hal::init(boot_info, 100);
    println!("kernel-spin: SPIN-style kernel (extensions in ring 0, protected by the language)");
    println!(
        "kernel-spin: tsc {} Hz, {} free frames, ramdisk {} bytes",
        platform.tsc_hz,
        shared_hal::memory::free_frames(),
        platform.ramdisk.map_or(0, |r| r.len())
    );
    let text = shared_hal::fwcfg::cmdline();
    let cmdline = Cmdline::new(&text);
    if let Some(scenario) = cmdline.get("scenario") {
        shared_hal::selftest::fault_scenario(scenario);
    }
    match cmdline.get("mode") {
        Some("test") => {
            let filter = cmdline.get("filter");
            let (p, f) = testing::run(shared_hal::selftest::TESTS, filter);
            testing::finish(p, f)
        }
        Some("bench") => bench::run(&cmdline, platform.tsc_hz),
        _ => {
            println!("kernel-spin: nothing to run (try mode=test); halting");
            qemu::exit(qemu::ExitCode::Success)
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    shared_hal::panic::report(info)
}
