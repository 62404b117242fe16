//! The kernel's own domain and the events it defines (ring 0): what the
//! core exports to extensions, restricted where the capability is
//! dangerous, and the authorizers that decide who may handle core events.

use spin_interface::abi::nr;
use spin_interface::event::{Combine, Event, EventInfo, anyone, kernel_only};
use spin_interface::strand::{self, StrandCore};
use spin_interface::translation;
use spin_interface::user::{self, SYSTEM_CALLS, UserServices};
use spin_interface::{Domain, ExportTable, Identity, KernelKey};

fn nothing(_: ()) {}
fn never(_: &()) -> bool {
    false
}
fn zero(_: u64) -> u64 {
    0
}

/// Events the dispatcher benchmarks raise: 1, 5, 10 and 50 unguarded
/// handlers, and 50 handlers whose guards all decline.
pub static BENCH_EVENTS: [Event<(), ()>; 5] = [
    Event::new("Bench.raise1", nothing, Combine::Last),
    Event::new("Bench.raise5", nothing, Combine::Last),
    Event::new("Bench.raise10", nothing, Combine::Last),
    Event::new("Bench.raise50", nothing, Combine::Last),
    Event::new("Bench.guards50", nothing, Combine::Last),
];

/// A guard for the bench extension's "50 guards false" handlers.
pub fn declining_guard() -> fn(&()) -> bool {
    never
}

/// An event any extension except "intruder" may handle (tests).
pub static TEST_EVENT: Event<u64, u64> = Event::new("Test.event", zero, Combine::Last);
/// An event only the kernel may handle (the intruder tries anyway).
pub static PRIVATE_EVENT: Event<u64, u64> = Event::new("Kernel.private", zero, Combine::Last);

fn only_bench(who: &Identity, _: &EventInfo) -> bool {
    who.name() == "bench"
}
fn not_intruder(who: &Identity, _: &EventInfo) -> bool {
    who.name() != "intruder"
}
fn only_scheduler(who: &Identity, _: &EventInfo) -> bool {
    who.name() == "scheduler"
}
fn only_thread_packages(who: &Identity, _: &EventInfo) -> bool {
    who.name() == "threads"
}

/// Which extension implements system call `n` (the SystemCall family's
/// authorization policy).
pub fn syscall_owner(n: u64) -> Option<&'static str> {
    Some(match n {
        nr::NULL | nr::EXIT | nr::WRITE | nr::YIELD => "syscalls",
        nr::THREAD_SPAWN | nr::THREAD_JOIN | nr::THREAD_EXIT => "syscalls",
        nr::SEM_CREATE | nr::SEM_SIGNAL | nr::SEM_WAIT => "syscalls",
        nr::XAS_REGISTER | nr::XAS_CALL | nr::XAS_RETURN => "xas",
        nr::VM_MAP | nr::VM_PROTECT | nr::VM_DIRTY | nr::VM_HANDLER => "vm",
        nr::UT_FORK | nr::UT_SIGNAL_WAIT | nr::UT_EXIT | nr::UT_JOIN => "uthreads",
        nr::BENCH_REPORT => "bench",
        nr::UDP_BIND | nr::UDP_SEND_TO | nr::UDP_RECV_FROM | nr::UDP_CLOSE => "sockets",
        // Free numbers lent to the misbehaving test extensions.
        22 => "syscall-panic",
        23 => "syscall-loop",
        _ => return None,
    })
}

fn syscall_authorizer(who: &Identity, e: &EventInfo) -> bool {
    syscall_owner(e.index as u64) == Some(who.name())
}

/// The VM extension handles user faults (and the tests lend the fault
/// events to `fault-reflect`, and the user Exception event to two
/// misbehaving extensions).
fn fault_handlers(who: &Identity, e: &EventInfo) -> bool {
    matches!(who.name(), "vm" | "fault-reflect")
        || (e.name == user::EXCEPTION.info().name && matches!(who.name(), "fault-panic" | "fault-loop"))
}

/// Extensions that implement system calls and may act on processes.
const USER_SERVICE_HOLDERS: &[&str] = &["syscalls", "xas", "vm", "uthreads", "sockets"];

/// The network layers that drive the NICs themselves (send frames,
/// handle `Ether.PacketArrived`); the layers above go through their
/// exported services.
const NET_HOLDERS: &[&str] = &["arp", "ip", "udp"];

fn net_layers(who: &Identity, _: &EventInfo) -> bool {
    NET_HOLDERS.contains(&who.name()) || who.id() == spin_interface::DomainId::KERNEL
}

/// Who learns that a process was reaped: the extensions that keep
/// per-process state (the holders of `UserServices`).
fn user_service_holders(who: &Identity, _: &EventInfo) -> bool {
    USER_SERVICE_HOLDERS.contains(&who.name())
}

/// The domain numbered `n` (numbers kept in the kernel's lock-free tables).
pub fn domain_id(n: u32) -> spin_interface::DomainId {
    spin_interface::DomainId::from_number(crate::key(), n)
}

/// Define the core events and register the kernel domain.
pub fn init(key: &'static KernelKey) {
    let me = Identity::kernel(key);
    for e in &BENCH_EVENTS {
        e.define(me, only_bench).expect("core events are defined once, at boot");
    }
    TEST_EVENT.define(me, not_intruder).expect("defined once");
    PRIVATE_EVENT.define(me, kernel_only).expect("defined once");
    strand::BLOCK.define(me, only_scheduler).expect("defined once");
    strand::UNBLOCK.define(me, only_scheduler).expect("defined once");
    strand::CHECKPOINT.define(me, only_thread_packages).expect("defined once");
    strand::RESUME.define(me, only_thread_packages).expect("defined once");
    spin_interface::phys::RECLAIM.define(me, anyone).expect("defined once");
    for e in &SYSTEM_CALLS {
        e.define(me, syscall_authorizer).expect("defined once");
    }
    spin_interface::net::ETHER_PACKET_ARRIVED.define(me, net_layers).expect("defined once");
    user::PROCESS_REAPED.define(me, user_service_holders).expect("defined once");
    user::PROCESS_KILLED.define(me, user_service_holders).expect("defined once");
    user::THREAD_ENDED.define(me, user_service_holders).expect("defined once");
    for e in [
        &translation::PAGE_NOT_PRESENT,
        &translation::PROTECTION_FAULT,
        &translation::BAD_ADDRESS,
        &user::EXCEPTION,
    ] {
        e.define(me, fault_handlers).expect("defined once");
    }

    let table = ExportTable::new()
        .object("Trusted.Strand", "core", StrandCore::new(key))
        .restrict("Trusted.Strand", &["threads"])
        .object("Trusted.User", "services", UserServices::new(key))
        .restrict("Trusted.User", USER_SERVICE_HOLDERS)
        .object("Trusted.Net", "services", spin_interface::net::NetServices::new(key))
        .restrict("Trusted.Net", NET_HOLDERS)
        .object("Bench", "raise1", &BENCH_EVENTS[0])
        .object("Bench", "raise5", &BENCH_EVENTS[1])
        .object("Bench", "raise10", &BENCH_EVENTS[2])
        .object("Bench", "raise50", &BENCH_EVENTS[3])
        .object("Bench", "guards50", &BENCH_EVENTS[4])
        .object("Bench", "never", declining_guard())
        .restrict("Bench", &["bench"])
        .object("Test", "event", &TEST_EVENT)
        .object("Test", "private", &PRIVATE_EVENT);
    Domain::create(me, table).expect("the kernel domain is registered first");
}
