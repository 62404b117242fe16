//! The measured fast paths, in assembly with every instruction explained:
//! the SYSCALL entry (table calls and the synchronous PCT) and the user
//! exception dispatch, plus the descriptor table they share with Rust.

pub mod envtab;
pub mod exceptions;
pub mod protect;
pub mod syscall;

/// Install the SYSCALL entry and the exception stubs.
pub fn init() {
    syscall::init();
    exceptions::init();
}
