//! exo-hello: a tiny environment loaded by exo-init's library OS.
#![no_std]
#![no_main]

fn main(args: &str) -> u64 {
    let info = exos::info::get();
    exos::println!("exo-hello: environment {:#x} (parent {:#x}) says {:?}", info.id, info.parent, args);
    42
}

exos::entry!(main);
