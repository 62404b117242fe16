//! Fixture: the #25860 family laundered through a trait object: the
//! translator reaches the caller as a higher-ranked `dyn Fn` whose own
//! type looks harmless (`&'static &'static ()`).
#![no_std]
#![forbid(unsafe_code)]

static PROOF: &&() = &&();

fn widen<'long, 'short, T: ?Sized>(_proof: &'long &'short (), v: &'short T) -> &'long T {
    v
}

/// Any borrow, for as long as the caller likes.
pub fn stretch<'a, 'b, T: ?Sized>(v: &'a T) -> &'b T {
    let w: for<'x> fn(_, &'x T) -> &'b T = widen;
    let f: &dyn for<'x> Fn(&'static &'static (), &'x T) -> &'b T = &w;
    f(PROOF, v)
}
