//! Fixture: the #25860 exploit written by a `macro_rules!` macro, so the
//! nested reference never appears in the source where it is used.
#![no_std]
#![forbid(unsafe_code)]

macro_rules! translator {
    ($name:ident, $l:lifetime, $s:lifetime) => {
        fn $name<$l, $s, T: ?Sized>(_p: & $l & $s (), v: & $s T) -> & $l T {
            v
        }
    };
}

translator!(widen, 'x, 'y);

static PROOF: &&() = &&();

/// Any borrow, for as long as the caller likes.
pub fn stretch<'a, 'b, T: ?Sized>(v: &'a T) -> &'b T {
    let f: for<'x> fn(_, &'x T) -> &'b T = widen;
    f(PROOF, v)
}
