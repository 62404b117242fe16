//! A cross-address-space call server (ring 3): registers its entry point
//! with the `xas` extension, exits its main thread with the server handle
//! as exit code (the kernel passes it to clients), and from then on runs
//! only inside calls, on the callers' strands.
#![no_std]
#![no_main]

use core::arch::naked_asm;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};
use spin_user::{exit, nr, syscall};

/// Calls served (lives in this address space, not the client's).
static SERVED: AtomicU64 = AtomicU64::new(0);

const STACK_SIZE: usize = 16 * 1024;
#[allow(dead_code)] // only its address is used
#[repr(align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// The service: `arg` → `2 * arg + 1`, counting calls.
extern "C" fn serve(arg: u64) -> u64 {
    SERVED.fetch_add(1, Ordering::Relaxed);
    2 * arg + 1
}

/// Entered by the kernel with RDX = the caller's argument; ends the call
/// with `xas_return(result)`.
#[unsafe(naked)]
extern "C" fn entry() -> ! {
    naked_asm!(
        "mov rdi, rdx",
        "call {serve}",
        "mov rdi, rax",
        "mov eax, {ret}",
        "syscall",
        "ud2",
        serve = sym serve,
        ret = const nr::XAS_RETURN,
    )
}

#[unsafe(no_mangle)]
extern "C" fn _start(_: u64, _: u64) -> ! {
    let stack_top = addr_of_mut!(STACK) as u64 + STACK_SIZE as u64;
    match syscall(nr::XAS_REGISTER, [entry as *const () as u64, stack_top, 0, 0, 0, 0]) {
        Ok(handle) => exit(handle as i64),
        Err(_) => exit(-1),
    }
}
