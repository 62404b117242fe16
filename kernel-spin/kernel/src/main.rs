//! kernel-spin: a SPIN-style kernel whose extensions run in ring 0 (ring 0).
//!
//! Extensions are safe-Rust crates linked into the kernel; protection comes
//! from the language, not the MMU. This file is the boot path: bring up the
//! HAL, claim the kernel key, install the trusted implementations behind
//! the extension interface, define the core events and the kernel domain,
//! load the boot extensions (scheduler, thread package, system calls, ...),
//! then do what the command line asks (`mode=test` runs the self-tests,
//! `mode=bench` the benchmarks, `scenario=...` a deliberate-failure
//! scenario, anything else boots and halts cleanly).
//!
//! Modules: [`services`] (PhysAddr, machine), [`spaces`] (Translation), [`strands`] (stacks and
//! the context switch), [`contain`] (fault containment), [`loader`] and
//! [`kdomain`] (extensions and the kernel's exports), [`dynload`] (certified
//! extension objects loaded into the running kernel), [`net`] (the NICs), [`imports`] (what the
//! core itself imports from extensions), [`ktests`] (in-kernel tests).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod bench;
mod contain;
mod dynload;
mod imports;
mod kdomain;
mod ktests;
mod ktests_contain;
mod ktests_dynload;
mod ktests_hostile;
mod ktests_net;
mod ktests_quota;
mod loader;
mod net;
mod pingpong;
mod process;
mod quota;
mod services;
mod spaces;
mod strands;
mod sysentry;
mod uexc;
mod uexc_more;

use bootloader_api::{BootInfo, entry_point};
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu, testing};
use spin_interface::KernelKey;

entry_point!(kernel_main, config = &shared_hal::boot::BOOTLOADER_CONFIG);

static KEY: spin::Once<&'static KernelKey> = spin::Once::new();

/// The kernel key (claimed at boot; never given to extensions).
#[inline(always)]
pub fn key() -> &'static KernelKey {
    debug_assert!(KEY.is_completed());
    // SAFETY: `boot` sets KEY before anything else that could call this
    // runs (no extension, process or interrupt handler of ours exists yet).
    unsafe { KEY.get_unchecked() }
}

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
    boot(platform.ramdisk);
    match cmdline.get("mode") {
        Some("test") => {
            let filter = cmdline.get("filter");
            let (p1, f1) = testing::run(shared_hal::selftest::TESTS, filter);
            // The HAL's timer test stops the timer; containment needs it.
            shared_hal::apic::start_timer();
            let (p2, f2) = testing::run(ktests::TESTS, filter);
            let (p3, f3) = testing::run(ktests_hostile::TESTS, filter);
            let (p4, f4) = testing::run(ktests_quota::TESTS, filter);
            let (p5, f5) = testing::run(ktests_contain::TESTS, filter);
            let (p6, f6) = testing::run(ktests_dynload::TESTS, filter);
            let (p7, f7) = testing::run(ktests_net::TESTS, filter);
            testing::finish(p1 + p2 + p3 + p4 + p5 + p6 + p7, f1 + f2 + f3 + f4 + f5 + f6 + f7)
        }
        Some("bench") => bench::run(&cmdline, platform.tsc_hz),
        _ => {
            println!("kernel-spin: nothing to run (try mode=test); halting");
            qemu::exit(qemu::ExitCode::Success)
        }
    }
}

/// Everything between the HAL and the first extension.
fn boot(ramdisk: Option<&'static [u8]>) {
    // First claim wins: no extension has run yet, so the key is ours.
    let key = KernelKey::claim().expect("the kernel claims its key before any extension runs");
    KEY.call_once(|| key);
    // No process may see another's x87 registers, nor the kernel run user code.
    shared_hal::cpu::disable_vector_units();
    shared_hal::cpu::enable_hardening();
    services::install(key);
    spaces::install(key);
    strands::install(key);
    process::install(key, ramdisk);
    contain::install(key);
    net::install(key);
    quota::install();
    kdomain::init(key);
    for (name, from) in loader::BOOT_EXTENSIONS {
        let loaded = match from {
            loader::Boot::Linked(ext) => {
                loader::load(key, name, ext).map(|_| ()).map_err(dynload::ObjError::Load)
            }
            loader::Boot::Object(file) => match dynload::from_archive(file) {
                None => panic!("boot extension {name:?}: no {file}.ext/.cert in the boot archive"),
                Some((object, cert)) => dynload::load(key, name, object, cert).map(|_| ()),
            },
        };
        if let Err(e) = loaded {
            panic!("boot extension {name:?} failed to load: {e:?}");
        }
    }
    imports::resolve(key);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // A panic in an extension's contained code unloads it and resumes the kernel.
    contain::on_panic(info);
    shared_hal::panic::report(info)
}
