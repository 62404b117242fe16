//! Fixture: the #25860 exploit with the nested reference hidden behind a
//! type alias.
#![no_std]
#![forbid(unsafe_code)]

type Proof<'long, 'short> = &'long &'short ();

static PROOF: Proof<'static, 'static> = &&();

fn widen<'long, 'short, T: ?Sized>(_p: Proof<'long, 'short>, v: &'short T) -> &'long T {
    v
}

/// Any borrow, for as long as the caller likes.
pub fn stretch<'a, 'b, T: ?Sized>(v: &'a T) -> &'b T {
    let f: for<'x> fn(_, &'x T) -> &'b T = widen;
    f(PROOF, v)
}
