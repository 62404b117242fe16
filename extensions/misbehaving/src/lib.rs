//! Misbehaving extensions for the fault-containment and protection tests
//! (ring 0, safe Rust): one that panics while handling an event, one that
//! loops forever, two that do the same in a system call, two that do the
//! same while handling a user process's exception, one whose `init`
//! panics, and one that tries to reach what it was not granted. The
//! kernel must refuse, unload, and keep running. (Plus one well-behaved
//! fault handler that steers faults onto the kernel's general path.)
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::abi::Return;
use spin_interface::event::EventError;
use spin_interface::strand::StrandCore;
use spin_interface::translation::{FaultAction, FaultInfo, PAGE_NOT_PRESENT, PROTECTION_FAULT};
use spin_interface::user::{EXCEPTION, SYSTEM_CALLS, SyscallArgs};
use spin_interface::{Event, ExportTable, Extension, InitContext, InitError, KernelKey, LinkError};

/// Panics when the test event is raised with 13; otherwise answers `x + 1`.
pub static PANICKY: Extension = Extension::new("panicky", panicky_init);
/// Loops forever when the test event is raised with 99.
pub static LOOPER: Extension = Extension::new("looper", looper_init);
/// Handles system call 22 by panicking.
pub static SYSCALL_PANIC: Extension = Extension::new("syscall-panic", syscall_panic_init);
/// Handles system call 23 by looping forever.
pub static SYSCALL_LOOP: Extension = Extension::new("syscall-loop", syscall_loop_init);
/// Handles user exceptions by panicking.
pub static FAULT_PANIC: Extension = Extension::new("fault-panic", fault_panic_init);
/// Handles user exceptions by looping forever.
pub static FAULT_LOOP: Extension = Extension::new("fault-loop", fault_loop_init);
/// Well behaved: answers `Reflect` for every user fault with a function
/// of its own (not the interface's standard `reflect`, which the kernel
/// inlines), so faults take the kernel's general path; counts them.
pub static FAULT_REFLECT: Extension = Extension::new("fault-reflect", fault_reflect_init);
/// Panics in its `init`.
pub static BAD_INIT: Extension = Extension::new("bad-init", bad_init);
/// Tries to resolve a restricted interface, to handle a kernel-only event,
/// and to claim the kernel's key; exports what happened.
pub static INTRUDER: Extension = Extension::new("intruder", intruder_init);

fn test_event(ctx: &InitContext) -> Result<&'static Event<u64, u64>, InitError> {
    Ok(ctx.lookup("kernel", "Test", "event")?)
}

fn panicky_handler(x: u64) -> u64 {
    if x == 13 {
        panic!("panicky: unlucky number {x}");
    }
    x + 1
}

fn panicky_proc(x: u64) -> u64 {
    if x == 13 {
        panic!("panicky: procedure called with {x}");
    }
    x * 2
}

fn panicky_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    test_event(ctx)?.install(ctx.identity(), panicky_handler, None)?;
    Ok(ExportTable::new().procedure("Panicky", "double", panicky_proc))
}

static SPINS: AtomicU64 = AtomicU64::new(0);

fn looper_handler(x: u64) -> u64 {
    if x == 99 {
        loop {
            SPINS.fetch_add(1, Ordering::Relaxed);
        }
    }
    x + 100
}

fn looper_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    test_event(ctx)?.install(ctx.identity(), looper_handler, None)?;
    Ok(ExportTable::new())
}

fn syscall_panic(a: SyscallArgs) -> Return {
    panic!("syscall-panic: asked to handle call 22 with {:?}", a.0);
}

fn syscall_loop(_: SyscallArgs) -> Return {
    loop {
        SPINS.fetch_add(1, Ordering::Relaxed);
    }
}

fn syscall_panic_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    SYSTEM_CALLS[22].install(ctx.identity(), syscall_panic, None)?;
    Ok(ExportTable::new())
}

fn syscall_loop_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    SYSTEM_CALLS[23].install(ctx.identity(), syscall_loop, None)?;
    Ok(ExportTable::new())
}

fn fault_panic(f: FaultInfo) -> FaultAction {
    panic!("fault-panic: asked to handle vector {} at {:#x}", f.vector, f.rip);
}

fn fault_loop(_: FaultInfo) -> FaultAction {
    loop {
        SPINS.fetch_add(1, Ordering::Relaxed);
    }
}

fn fault_panic_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    EXCEPTION.install(ctx.identity(), fault_panic, None)?;
    Ok(ExportTable::new())
}

fn fault_loop_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    EXCEPTION.install(ctx.identity(), fault_loop, None)?;
    Ok(ExportTable::new())
}

static REFLECTED: AtomicU64 = AtomicU64::new(0);

fn fault_reflect(_: FaultInfo) -> FaultAction {
    REFLECTED.fetch_add(1, Ordering::Relaxed);
    FaultAction::Reflect
}

fn fault_reflect_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    for event in [&PAGE_NOT_PRESENT, &PROTECTION_FAULT, &EXCEPTION] {
        event.install(ctx.identity(), fault_reflect, None)?;
    }
    Ok(ExportTable::new().procedure("FaultReflect", "seen", |_: ()| REFLECTED.load(Ordering::Relaxed)))
}

fn bad_init(_: &InitContext) -> Result<ExportTable, InitError> {
    panic!("bad-init: giving up during initialisation");
}

/// Bits of [`report`]: each set bit is a refusal the intruder observed.
pub const REFUSED_RESOLVE: u64 = 1;
pub const REFUSED_INSTALL: u64 = 2;
pub const REFUSED_KEY: u64 = 4;
pub const REFUSED_TEST_EVENT: u64 = 8;

static OBSERVED: AtomicU64 = AtomicU64::new(0);

fn intruder_handler(x: u64) -> u64 {
    x
}

fn intruder_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    let me = ctx.identity();
    let mut seen = 0;
    // The raw strand operations are granted to thread packages only.
    if matches!(
        ctx.lookup::<&'static StrandCore>("kernel", "Trusted.Strand", "core"),
        Err(LinkError::NotGranted { interface: "Trusted.Strand" })
    ) {
        seen |= REFUSED_RESOLVE;
    }
    let private: &'static Event<u64, u64> = ctx.lookup("kernel", "Test", "private")?;
    if private.install(me, intruder_handler, None) == Err(EventError::Denied) {
        seen |= REFUSED_INSTALL;
    }
    if KernelKey::claim().is_none() {
        seen |= REFUSED_KEY;
    }
    if test_event(ctx)?.install(me, intruder_handler, None) == Err(EventError::Denied) {
        seen |= REFUSED_TEST_EVENT;
    }
    OBSERVED.store(seen, Ordering::SeqCst);
    Ok(ExportTable::new().procedure("Intruder", "report", report))
}

fn report(_: ()) -> u64 {
    OBSERVED.load(Ordering::SeqCst)
}

/// An endpoint on `UDP.PacketArrived` (port [`PANIC_PORT`]) that panics
/// on every datagram it gets.
pub static UDP_PANIC: Extension = Extension::new("udp-panic", udp_panic_init);
/// The port the panicking endpoint guards.
pub const PANIC_PORT: u16 = 6666;

fn udp_panic_init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    use spin_interface::net::UdpPacket;
    let arrived: &'static Event<UdpPacket, ()> = ctx.lookup("udp", "UDP", "PacketArrived")?;
    arrived.install(
        ctx.identity(),
        |u: UdpPacket| panic!("endpoint got port {}", u.dst_port),
        Some(is_panic_port),
    )?;
    Ok(ExportTable::new())
}

fn is_panic_port(u: &spin_interface::net::UdpPacket) -> bool {
    u.dst_port == PANIC_PORT
}
