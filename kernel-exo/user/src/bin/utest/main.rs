//! exo-utest: the functional test environments of kernel-exo. The kernel's
//! in-QEMU tests start it with `role=<name>`; it makes its checks from
//! ring 3, prints every failure, and exits with the number of failures.
//! Roles that need partners spawn copies of this program as children
//! (through the library OS) with other roles.
#![no_std]
#![no_main]

extern crate alloc;

mod bind;
mod exceptions;
mod pages;
mod pct;
mod revoke;
mod sched;
mod tree;
mod wakeup;

use exo_user::{Checks, arg};

fn main(args: &str) -> u64 {
    let role = arg(args, "role").unwrap_or("");
    match role {
        "basics" => basics(),
        "pages" => pages::run(),
        "bind" => bind::run(),
        "exceptions" => exceptions::run(),
        "pct" => pct::client(),
        "pct-server" => pct::server(),
        "pct-slow-server" => pct::slow_server(),
        "pct-donate" => pct::donate(),
        "pct-async" => pct::async_client(),
        "async-server" => pct::async_server(),
        "waiter" => exos::sys::wait(),
        "spin" => sched::spin(args),
        "yield" => sched::yield_test(),
        "yield-partner" => sched::yield_partner(args),
        "slice-answer" => sched::slice_answer(),
        "slice-ignore" => sched::slice_ignore(),
        "revoke-parent" => revoke::parent(args),
        "revoke-comply" => revoke::comply(args),
        "revoke-ignore" => revoke::ignore(args),
        "tree" => tree::root(),
        "tree-child" => tree::child(args),
        "bystander" => sched::bystander(args),
        "predicates" => wakeup::run(),
        "pred-sleeper" => wakeup::sleeper(args),
        other => {
            exos::println!("exo-utest: unknown role {other:?}");
            255
        }
    }
}

exos::entry!(main);

/// System calls work from ring 3 and the info page tells the truth.
fn basics() -> u64 {
    let mut c = Checks::new("basics");
    exos::sys::null();
    let info = exos::info::get();
    exo_user::expect_eq!(c, "env_self matches the info page", exos::sys::env_self().0, info.id);
    exo_user::expect_eq!(c, "the kernel is our parent", info.parent, 0);
    c.check(info.tsc_hz > 1_000_000, "tsc_hz is plausible", format_args!("{}", info.tsc_hz));
    c.check(info.slices > 0, "we own time slices", format_args!("{}", info.slices));
    exo_user::expect_eq!(
        c,
        "console_write",
        exos::sys::console_write(b"[basics] hello from ring 3\n"),
        Ok(())
    );
    exo_user::expect_eq!(c, "empty console_write", exos::sys::console_write(&[]), Ok(()));
    c.finish()
}
