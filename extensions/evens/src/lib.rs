//! Course exercise "write a SPIN extension with a guard" — the reference
//! solution (ring 0, safe Rust).
//!
//! The task: handle the `Hello.greeted` event exported by the `hello`
//! extension, but only for *even* greetings, answering half the number.
//! Since `Hello.greeted` sums its handlers' answers, `Hello.greet(n)` then
//! returns `(n + 1) + n / 2` for even `n` and `n + 1` for odd `n`.
//!
//! The guard is what makes this an exercise about SPIN's dispatcher: the
//! dispatcher evaluates `is_even` before calling `on_even_greeting`, so the
//! handler never sees odd numbers and needs no test of its own.
//! `spin::exercise_guarded_extension` (run it with
//! `cargo xtask test --filter exercise_guarded`) checks the behaviour.
#![no_std]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};
use spin_interface::event::Event;
use spin_interface::{ExportTable, Extension, InitContext, InitError};

/// The descriptor the kernel's loader reads.
pub static EXTENSION: Extension = Extension::new("evens", init);

/// How many greetings passed the guard (exported for the test).
static HANDLED: AtomicU64 = AtomicU64::new(0);

/// The guard: runs before the handler, on every raise.
fn is_even(n: &u64) -> bool {
    n.is_multiple_of(2)
}

/// The handler: only ever called with even numbers.
fn on_even_greeting(n: u64) -> u64 {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    n / 2
}

/// Exported: how many greetings this extension handled.
fn handled(_: ()) -> u64 {
    HANDLED.load(Ordering::Relaxed)
}

fn init(ctx: &InitContext) -> Result<ExportTable, InitError> {
    // Find the event in the domain that defines it; `hello` lets anyone
    // install handlers on it, so this succeeds (an event whose definer
    // refuses us would return EventError::Denied here).
    let greeted: &'static Event<u64, u64> = ctx.lookup("hello", "Hello", "greeted")?;
    greeted.install(ctx.identity(), on_even_greeting, Some(is_even))?;
    Ok(ExportTable::new().procedure("Evens", "handled", handled))
}
