//! exo-init: the first environment the kernel starts. It proves the
//! library OS can do what the kernel will not: load a program into a child
//! environment with the primitives alone, run it, and collect its status.
#![no_std]
#![no_main]

use exo_abi::EnvStatus;
use exos::println;

fn main(_args: &str) -> u64 {
    let me = exos::sys::env_self();
    println!("exo-init: environment {:#x} running in ring 3", me.0);
    let child = match exos::spawn::spawn("exo-hello", "greeting=hello", 1, 64) {
        Ok(c) => c,
        Err(e) => {
            println!("exo-init: loading exo-hello failed: {e:?}");
            return 1;
        }
    };
    match exos::spawn::wait_child(child) {
        Ok((EnvStatus::Exited, 42)) => {
            println!("exo-init: child {:#x} ran and exited with 42", child.0);
            0
        }
        other => {
            println!("exo-init: child {:#x} ended unexpectedly: {other:?}", child.0);
            2
        }
    }
}

exos::entry!(main);
