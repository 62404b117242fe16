//! A family of environments holding pages, grants and bindings across
//! each other, abandoned by its root: the kernel's teardown must free it all.

use alloc::format;
use exo_abi::{ANY_PAGE, Binding, EnvId, Error, Prot, Rights};
use exo_user::arg_u64;
use exos::mem::FREE_BASE;
use exos::spawn::spawn_with;
use exos::sys;

/// Yield to `child` until it waits (its setup is done).
fn settle(child: EnvId) {
    for _ in 0..1000 {
        if sys::yield_to(child.0) == Err(Error::BadState) {
            return;
        }
    }
}

/// Allocate `n` pages and bind them from FREE_BASE.
fn hold_pages(n: u64) {
    // SAFETY: FREE_BASE.. holds no Rust data of ours.
    let _ = unsafe { exos::mem::map_fresh(FREE_BASE, n, Prot::RW, None) };
}

/// role=tree: two children (each with a grandchild), pages granted both
/// ways and bound into the children; then exit without cleaning up.
pub fn root() -> u64 {
    hold_pages(8);
    for _ in 0..2 {
        let Ok((page, _)) = sys::page_alloc(ANY_PAGE) else { return 1 };
        let child = spawn_with("exo-utest", 1, 200, |child| {
            let g = sys::page_grant(page, child, Rights::READ)?;
            // Bind our grant into the child's address space ourselves.
            let (_, r) =
                sys::bind_child(child, &[Binding { va: 0x70_0000_0000, cap: g.0, prot: Prot::READ.0 }]);
            r?;
            Ok(format!("role=tree-child depth=1 grant={}", g.0))
        });
        let Ok(child) = child else { return 2 };
        settle(child);
    }
    // Exit with everything still held: the kernel must clean up.
    0
}

/// role=tree-child depth=D: hold pages, grant one to the parent, make a
/// child of our own if D > 0, and wait.
pub fn child(args: &str) -> u64 {
    hold_pages(6);
    if let Ok((page, _)) = sys::page_alloc(ANY_PAGE) {
        let _ = sys::page_grant(page, EnvId(exos::info::get().parent), Rights::READ_WRITE);
    }
    if arg_u64(args, "depth").unwrap_or(0) > 0
        && let Ok(grandchild) = spawn_with("exo-utest", 0, 64, |_| Ok("role=tree-child depth=0".into()))
    {
        settle(grandchild);
    }
    let _ = exos::pct::install(None);
    sys::wait()
}
