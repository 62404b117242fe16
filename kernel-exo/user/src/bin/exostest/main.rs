//! exo-exostest: the in-QEMU tests of ExOS, the library OS. The kernel's
//! tests start it with `role=<name>`; it exercises one part of ExOS from
//! ring 3, prints every failed check, and exits with the number of
//! failures. Roles that need a partner environment start one (a copy of
//! this program with another role, or a fork of themselves).
#![no_std]
#![no_main]

extern crate alloc;

mod fork;
mod ipc;
mod lrpc;
mod net;
mod pager;
mod threads;
mod vm;

use exo_user::arg;

fn main(args: &str) -> u64 {
    match arg(args, "role").unwrap_or("") {
        "vm" => vm::run(),
        "vm-errors" => vm::errors(),
        "threads" => threads::run(),
        "preempt" => threads::preempt(),
        "fork" => fork::run(),
        "pipe" => ipc::pipes(),
        "pipe-echo" => ipc::echo(args),
        "pipe-die" => ipc::die(args),
        "pipe-vandal" => ipc::vandal(args),
        "shm" => ipc::shm(),
        "shm-peer" => ipc::shm_peer(args),
        "lrpc" => lrpc::run(),
        "lrpc-server" => lrpc::server(),
        "lrpc-impostor" => lrpc::impostor(args),
        "pager" => pager::every_policy(),
        "pager-child" => pager::child(args),
        "pager-abort" => pager::abort(),
        "pager-ignore" => pager::ignore(args),
        "udp" => net::udp(),
        "udp-echo" => net::echo_server(),
        "net-errors" => net::errors(args),
        "net-hostile" => net::hostile_sender(),
        other => {
            exos::println!("exo-exostest: unknown role {other:?}");
            255
        }
    }
}

exos::entry!(main);
