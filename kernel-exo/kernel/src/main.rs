//! kernel-exo: an exokernel in the style of Aegis/Xok (ring 0).
//!
//! The kernel only *protects*: it exposes physical pages by number through
//! capabilities and secure bindings, delivers exceptions straight to the
//! environment's own handler, transfers control between environments
//! (PCT), hands out the processor as a vector of time slices, and revokes
//! visibly; a library OS in ring 3 does all the management. This file is
//! the boot path: bring up the HAL and the kernel, then do what the
//! command line asks (`mode=test` runs the self-tests, `mode=bench` the
//! benchmark program, `scenario=...` a deliberate-failure scenario, and
//! anything else boots the first environment, `exo-init`).
//!
//! Layout: `fast/` holds the assembly fast paths (SYSCALL entry and PCT,
//! exception dispatch); `syscalls` the table calls; `env`, `pages`,
//! `caps`, `bind`, `pt` the resources; `sched`, `monitor`, `revoke`,
//! `faults` the control flow; `net` the NICs and the packet filters; `loader` starts programs from the boot
//! archive.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod bench;
mod bind;
mod caps;
mod env;
mod fast;
mod faults;
mod kernel;
mod loader;
mod monitor;
mod net;
mod pages;
mod pt;
mod revoke;
mod sched;
mod syscalls;
mod tests;
mod uaccess;
mod wakeup;

use bootloader_api::{BootInfo, entry_point};
use hal_logic::cmdline::Cmdline;
use shared_hal::{println, qemu, testing};

entry_point!(kernel_main, config = &shared_hal::boot::BOOTLOADER_CONFIG);

/// Timer interrupts per second: one time slice per tick.
pub const TIMER_HZ: u32 = 1000;

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let platform = shared_hal::init(boot_info, TIMER_HZ);
    println!("kernel-exo: exokernel (protection in ring 0, management in the ring-3 library OS)");
    println!(
        "kernel-exo: tsc {} Hz, {} free frames, ramdisk {} bytes",
        platform.tsc_hz,
        shared_hal::memory::free_frames(),
        platform.ramdisk.map_or(0, |r| r.len())
    );
    let text = shared_hal::fwcfg::cmdline();
    let cmdline = Cmdline::new(&text);
    if let Some(scenario) = cmdline.get("scenario") {
        shared_hal::selftest::fault_scenario(scenario);
    }
    let mode = cmdline.get("mode");
    let filter = cmdline.get("filter");
    // The HAL's self-tests use its generic SYSCALL and trap paths, so they
    // run before the exokernel installs its own.
    let (hal_passed, hal_failed) = match mode {
        Some("test") => testing::run(shared_hal::selftest::TESTS, filter),
        _ => (0, 0),
    };
    init(&platform);
    match mode {
        Some("test") => {
            let (p, f) = testing::run(tests::TESTS, filter);
            testing::finish(hal_passed + p, hal_failed + f)
        }
        Some("bench") => bench::run(&cmdline),
        _ => run_init(),
    }
}

/// Bring up the exokernel over the HAL.
fn init(platform: &shared_hal::Platform) {
    shared_hal::cpu::disable_interrupts();
    kernel::init(platform.tsc_hz, platform.ramdisk);
    monitor::init();
    net::init();
    fast::init();
    faults::init();
    shared_hal::cpu::disable_vector_units();
    shared_hal::cpu::enable_hardening();
    shared_hal::apic::set_timer_hook(sched::on_tick);
}

/// Normal boot: run `exo-init` until nothing can run; success if it exited 0.
fn run_init() -> ! {
    let Some(id) = kernel::with(|k| match loader::spawn(k, "exo-init", "", 8, 1024) {
        Ok(id) => Some(id),
        Err(loader::LoadError::NotFound) => None,
        Err(e) => panic!("kernel-exo: cannot load exo-init: {e:?}"),
    }) else {
        println!("kernel-exo: no exo-init in the boot archive; halting");
        qemu::exit(qemu::ExitCode::Success)
    };
    monitor::run(true);
    let status = kernel::with(|k| {
        let i = k.env_index(id).expect("the record stays until reaped");
        let life = k.env(i).life;
        env::destroy(k, i, env::Ending { status: exo_abi::EnvStatus::Killed, detail: 0 });
        env::reap(k, i);
        life
    });
    println!("kernel-exo: exo-init ended: {status:?}");
    let ok = status == env::Life::Ended(exo_abi::EnvStatus::Exited, 0);
    qemu::exit(if ok { qemu::ExitCode::Success } else { qemu::ExitCode::Failure })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    shared_hal::panic::report(info)
}
