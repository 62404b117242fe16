//! The registered revocation policies.
//!
//! **Adding one** (the "write an ExOS pager policy" exercise): create
//! `pager/policies/<name>.rs` with a unit struct implementing
//! `crate::pager::Policy` (see `fifo.rs`, the shortest), and add one line
//! `<name>::<Type>,` to the list below. Select it in a program with
//! `exos::pager::use_policy("<its name()>")`. Then run
//! `cargo xtask test --filter pager`: the test
//! `exo::exos_pager_every_policy` runs the revocation scenarios against
//! every policy listed here and checks the invariants (the right number
//! of pages returned, never a page still needed, the environment keeps
//! running, nothing leaks).

/// Declares each policy's module and lists the policies, first = default.
macro_rules! policies {
    ($($module:ident :: $policy:ident,)+) => {
        $(pub mod $module;)+
        /// Every registered policy; the first is the default.
        pub static POLICIES: &[&dyn super::Policy] = &[$(&$module::$policy),+];
    };
}

policies! {
    clean_lru::CleanLru,
    fifo::Fifo,
}
