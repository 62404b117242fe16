//! Fixture: the #25860 family with mutable references: a `&mut` that
//! outlives its referent (two live `&mut` to one place, in safe code).
#![no_std]
#![forbid(unsafe_code)]

static PROOF: &&() = &&();

fn widen_mut<'long, 'short, T: ?Sized>(_proof: &'long &'short (), v: &'short mut T) -> &'long mut T {
    v
}

/// Any mutable borrow, for as long as the caller likes.
pub fn stretch_mut<'a, 'b, T: ?Sized>(v: &'a mut T) -> &'b mut T {
    let f: for<'x> fn(_, &'x mut T) -> &'b mut T = widen_mut;
    f(PROOF, v)
}
