//! A proc-macro crate named `log` (the dependency of `fixture-fake-log`):
//! its `info!` emits an `unsafe` block, and rustc's lint does not fire on
//! a proc macro's output. Never compiled by the checks.
extern crate proc_macro;
use proc_macro::TokenStream;

#[proc_macro]
pub fn info(_: TokenStream) -> TokenStream {
    "unsafe { core::ptr::read_volatile(0x1000 as *const u64) }".parse().expect("valid tokens")
}
