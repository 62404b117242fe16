//! Program start and end: the `_start` glue (see [`entry!`](crate::entry)),
//! the panic handler, and the exit code a panic produces.

use crate::sys;

/// Exit code of an environment that panicked.
pub const PANIC_EXIT: u64 = 101;
/// Exit code of an environment whose runtime could not start.
pub const INIT_FAILED: u64 = 102;

/// Called by `_start` with the RDI/RSI the program was started with: the
/// address and length of its argument string (see `exos::spawn` and the
/// kernel's loader, which put it at the top of the initial stack).
pub fn run(args_ptr: u64, args_len: u64, main: fn(&str) -> u64) -> ! {
    // ExOS's private runtime page and its view of the address space come
    // first: everything else uses them.
    if let Err(e) = crate::private::init().and_then(|()| crate::vm::init()) {
        crate::println!("[exos] cannot start: {e:?}");
        sys::exit(INIT_FAILED);
    }
    let args = if args_ptr == 0 || args_len == 0 || args_len > 4096 {
        ""
    } else {
        // SAFETY: by the start convention both loaders follow, RDI/RSI
        // describe the argument bytes they copied into our stack, which
        // stay mapped and unchanged.
        let bytes = unsafe { core::slice::from_raw_parts(args_ptr as *const u8, args_len as usize) };
        core::str::from_utf8(bytes).unwrap_or("")
    };
    sys::exit(main(args))
}

/// Define the program's `_start`, which aligns the stack and runs `main`
/// (a `fn(&str) -> u64` taking the argument string and returning the exit
/// code).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        extern "C" fn __exos_start(args: u64, len: u64) -> ! {
            $crate::rt::run(args, len, $main)
        }

        /// The program's entry point.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub extern "C" fn _start() -> ! {
            core::arch::naked_asm!("and rsp, -16", "call {start}", "ud2", start = sym __exos_start)
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::println!("[exos] environment {:#x} panicked: {info}", crate::info::get().id);
    sys::exit(PANIC_EXIT)
}
