//! Fixture: the #25860 exploit with the implied bound carried by a struct
//! with a lifetime parameter: `&'long Short<'short>` implies `'short: 'long`.
#![no_std]
#![forbid(unsafe_code)]

pub struct Short<'short>(&'short ());

static PROOF: &Short<'static> = &Short(&());

fn widen<'long, 'short, T: ?Sized>(_p: &'long Short<'short>, v: &'short T) -> &'long T {
    v
}

/// Any borrow, for as long as the caller likes.
pub fn stretch<'a, 'b, T: ?Sized>(v: &'a T) -> &'b T {
    let f: for<'x> fn(_, &'x T) -> &'b T = widen;
    f(PROOF, v)
}
